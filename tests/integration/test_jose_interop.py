"""Interoperability of osbill's access tokens with an independent JOSE implementation: a real
osbill serve issues tokens, and tests/interop/verify.mjs checks them with the npm `jose`
package (createRemoteJWKSet on the platform's JWKS URL + jwtVerify, RS256 only, exact
issuer). Tampered tokens must fail there too, and tokens keep verifying across a key
rotation. Needs node and npm (scripts/install-deps); the first run does `npm ci` in
tests/interop, which needs the npm registry."""

import base64
import json
import os
import shutil
import subprocess
import unittest

from harness import Platform

APIKEY_GRANT = "urn:ibm:params:oauth:grant-type:apikey"
INTEROP_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                            "..", "interop"))
VERIFY = os.path.join(INTEROP_DIR, "verify.mjs")


def b64url_decode(seg):
    return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))


def b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(seg):
    return json.loads(b64url_decode(seg))


def json_segment(obj):
    return b64url_encode(json.dumps(obj, separators=(",", ":")).encode())


def ensure_node_modules():
    """Runs `npm ci` in tests/interop once, when the jose package is not installed yet."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise AssertionError("test_jose_interop needs node and npm on PATH "
                             "(scripts/install-deps installs them)")
    if os.path.isfile(os.path.join(INTEROP_DIR, "node_modules", "jose", "package.json")):
        return node
    try:
        out = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=INTEROP_DIR,
                             capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise AssertionError("`npm ci` in %s did not finish within 600 s (is the npm registry "
                             "reachable?)" % INTEROP_DIR)
    if out.returncode != 0:
        raise AssertionError("`npm ci` in %s failed with exit status %d (the npm registry must "
                             "be reachable to install the pinned jose package):\n%s\n%s"
                             % (INTEROP_DIR, out.returncode, out.stdout[-3000:],
                                out.stderr[-3000:]))
    return node


class JoseInteropTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = ensure_node_modules()
        cls.p = Platform().start()
        c = cls.p.client()
        try:
            disco = c.call("GET", "/identity/.well-known/openid-configuration")
            assert disco.status == 200, disco
            cls.issuer = disco.json["issuer"]
            cls.jwks_uri = disco.json["jwks_uri"]
        finally:
            c.close()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.p.stop()
        finally:
            cls.p.cleanup()

    def setUp(self):
        self.c = self.p.client()

    def tearDown(self):
        self.c.close()

    def token(self):
        return self.c.apikey_token(self.p.init["api_key"])

    def verify(self, token, issuer=None):
        """Runs verify.mjs with the token on stdin: (exit status, payload or None, stderr)."""
        out = subprocess.run([self.node, VERIFY, self.jwks_uri, issuer or self.issuer],
                             input=token, capture_output=True, text=True, timeout=60,
                             cwd=INTEROP_DIR)
        payload = None
        if out.returncode == 0:
            payload = json.loads(out.stdout)
        return out.returncode, payload, out.stderr

    def assertVerifies(self, token):
        rc, payload, err = self.verify(token)
        self.assertEqual(rc, 0, "jose rejected an osbill token: %s" % err)
        self.assertEqual(payload["iam_id"], self.p.init["iam_id"])
        self.assertEqual(payload["sub"], self.p.init["iam_id"])
        self.assertEqual(payload["account"], {"bss": self.p.init["account_id"]})
        self.assertEqual(payload["iss"], self.issuer)
        self.assertEqual(payload["grant_type"], APIKEY_GRANT)
        self.assertIsInstance(payload["exp"], int)
        self.assertLessEqual(payload["exp"] - payload["iat"], 3600)
        return payload

    def assertRejected(self, token, issuer=None, why=""):
        rc, payload, err = self.verify(token, issuer)
        self.assertEqual(rc, 1, "jose accepted a bad token (%s): %r" % (why, payload))
        self.assertIn("verification failed", err)

    # ------------------------------------------------------------ tests

    def test_apikey_token_verifies(self):
        tok = self.token()
        header = b64json(tok.split(".")[0])
        self.assertEqual(header["alg"], "RS256")
        kids = [k["kid"] for k in self.c.call("GET", "/identity/keys").json["keys"]]
        self.assertIn(header["kid"], kids)
        self.assertVerifies(tok)

    def test_tampered_tokens_are_rejected(self):
        tok = self.token()
        h, p, s = tok.split(".")
        # A different signature byte (in the middle: the last character partly holds padding
        # bits, which a lenient decoder could ignore).
        sig = bytearray(b64url_decode(s))
        sig[len(sig) // 2] ^= 0x01
        self.assertRejected("%s.%s.%s" % (h, p, b64url_encode(bytes(sig))), why="signature bit")
        # Claims changed, signature kept.
        claims = b64json(p)
        claims["account"] = {"bss": "another-account"}
        self.assertRejected("%s.%s.%s" % (h, json_segment(claims), s), why="claims changed")
        claims = b64json(p)
        claims["exp"] = claims["exp"] + 86400
        self.assertRejected("%s.%s.%s" % (h, json_segment(claims), s), why="exp extended")
        # Header changed: alg none without a signature, HS256, an unknown kid.
        header = b64json(h)
        self.assertRejected("%s.%s." % (json_segment(dict(header, alg="none")), p),
                            why="alg none")
        self.assertRejected("%s.%s.%s" % (json_segment(dict(header, alg="HS256")), p, s),
                            why="alg HS256")
        self.assertRejected("%s.%s.%s" % (json_segment(dict(header, kid="unknown-kid")), p, s),
                            why="unknown kid")
        # Truncated, and a valid token for another issuer.
        self.assertRejected("%s.%s" % (h, p), why="two segments")
        self.assertRejected(tok, issuer=self.issuer + "/other", why="wrong issuer")
        # The untouched token still verifies.
        self.assertVerifies(tok)

    def test_tokens_verify_across_rotation(self):
        before = self.token()
        old_kid = b64json(before.split(".")[0])["kid"]
        self.assertVerifies(before)
        r = self.c.call("POST", "/identity/keys/rotate", token=before)
        self.assertEqual(r.status, 200, r)
        new_kid = r.json["active_kid"]
        self.assertNotEqual(new_kid, old_kid)
        after = self.token()
        self.assertEqual(b64json(after.split(".")[0])["kid"], new_kid)
        self.assertVerifies(after)
        # The retired key stays published until its tokens expire.
        self.assertVerifies(before)


if __name__ == "__main__":
    unittest.main()
