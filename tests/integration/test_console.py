"""The web console end to end: a real osbill serve and the starter broker, and
tests/e2e/console.mjs driving headless Debian Chromium (playwright-core, executablePath
/usr/bin/chromium) through it: signing in on the platform's own page (PKCE), the catalog and
its search, an instance, a support case whose refusal shows next to its field, switching to
the provider, which answers the case, pages of another account refused, signing out.
Screenshots of each page at 1280x800 and 390 pixels wide go to build-*/console-shots (not
committed). Also checked here without a browser: the console's files and their headers, and
its OAuth client (public, PKCE, its one redirect URI)."""

import json
import os
import shutil
import subprocess
import unittest
import urllib.parse

from harness import (SERVICE_ID, STANDARD, API_CALLS_METRIC, AccountsTest, Broker, Client,
                     Platform, make_accounts, metered_offering)

HERE = os.path.dirname(os.path.abspath(__file__))
E2E_DIR = os.path.normpath(os.path.join(HERE, "..", "e2e"))
REGION = "us-south"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def npm_ci():
    """`npm ci` in tests/e2e once, when playwright-core is not installed yet."""
    if os.path.isdir(os.path.join(E2E_DIR, "node_modules", "playwright-core")):
        return
    npm = shutil.which("npm")
    if not npm:
        raise AssertionError("the console tests need node and npm (scripts/install-deps)")
    out = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=E2E_DIR,
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise AssertionError("`npm ci` in %s failed: %s" % (E2E_DIR, out.stderr[-2000:]))


class ConsoleTest(AccountsTest):

    @classmethod
    def setUpClass(cls):
        cls.p = Platform().start()
        cls.broker = Broker()
        cls.broker.start()
        try:
            c = cls.p.client()
            cls.op_token = c.apikey_token(cls.p.init["api_key"])
            cls.accounts = make_accounts(c, cls.op_token, (("acme", "provider"),
                                                           ("initech", "consumer")))
            tok = cls.accounts["acme"]["token"]
            metered_offering(c, tok, cls.broker, REGION,
                             {STANDARD: ("standard", [API_CALLS_METRIC])},
                             allow=[cls.accounts["initech"]["id"]])
            r = c.call("POST", "/v2/resource_instances", token=cls.accounts["initech"]["token"],
                       body={"name": "kv-console", "target": REGION,
                             "resource_plan_id": STANDARD})
            assert r.status in (201, 202), r
            cls.instance = r.json
            c.close()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.broker.stop()
            cls.p.stop()
        finally:
            cls.broker.cleanup()
            cls.p.cleanup()

    def test_the_console_files(self):
        c = Client(self.p.port)
        try:
            r = c.request("GET", "/console")
            self.assertEqual((r.status, r.header("Location")), (301, "/console/"))
            r = c.request("GET", "/console/")
            self.assertEqual(r.status, 200)
            self.assertTrue(r.header("Content-Type").startswith("text/html"))
            csp = r.header("Content-Security-Policy")
            for d in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"):
                self.assertIn(d, csp)
            self.assertEqual(r.header("X-Frame-Options"), "DENY")
            for name, ctype in (("console.js", "text/javascript"), ("console.css", "text/css")):
                r = c.request("GET", "/console/" + name)
                self.assertEqual(r.status, 200, name)
                self.assertTrue(r.header("Content-Type").startswith(ctype), r.headers)
                self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")
            for bad in ("/console/nope.js", "/console/..%2Fosbill.db", "/console/.hidden"):
                self.assertEqual(c.request("GET", bad).status, 404, bad)
            r = c.request("GET", "/console/config.json")
            self.assertEqual(r.json["client_id"], "osbill-console")
            self.assertEqual(r.json["redirect_uri"], self.p.url + "/console/")
        finally:
            c.close()

    def test_the_console_client_is_public_with_its_one_redirect(self):
        c = Client(self.p.port)
        try:
            q = {"response_type": "code", "client_id": "osbill-console",
                 "redirect_uri": self.p.url + "/console/", "state": "s",
                 "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                 "code_challenge_method": "S256"}
            r = c.request("GET", "/identity/authorize?" + urllib.parse.urlencode(q))
            self.assertEqual(r.status, 200)
            self.assertIn(b"Sign in to continue to the osbill console", r.raw)
            # another redirect URI is not the console's
            bad = dict(q, redirect_uri="https://evil.example/console/")
            r = c.request("GET", "/identity/authorize?" + urllib.parse.urlencode(bad))
            self.assertEqual(r.status, 400)
            # without PKCE a public client is refused (redirected with the error)
            nopkce = {k: v for k, v in q.items() if not k.startswith("code_challenge")}
            r = c.request("GET", "/identity/authorize?" + urllib.parse.urlencode(nopkce))
            self.assertEqual(r.status, 302)
            self.assertIn("error=invalid_request", r.header("Location"))
            # logging out with no session is fine, and clears the cookie
            r = c.request("POST", "/identity/logout")
            self.assertEqual(r.status, 204)
            self.assertIn("Max-Age=0", r.header("Set-Cookie"))
        finally:
            c.close()

    def test_in_the_browser(self):
        if not os.access(CHROMIUM, os.X_OK):
            raise AssertionError("%s is missing (scripts/install-deps installs chromium)"
                                 % CHROMIUM)
        npm_ci()
        shots = os.path.join(os.environ.get("OSBILL_SHOTS_DIR",
                                            os.path.join(os.path.dirname(self.p.bin), "..",
                                                         "..", "console-shots")))
        cfg = {"platform": self.p.url, "offering_name": "starter-kv",
               "offering_display": "Starter KV",
               "instance": {k: self.instance[k] for k in ("guid", "crn", "name")}}
        for who, key in (("consumer", "initech"), ("provider", "acme")):
            cfg[who] = {"email": "%s@example.com" % key, "password": "password-%s" % key,
                        "name": key, "kind": "consumer" if key == "initech" else "provider",
                        "account_id": self.accounts[key]["id"]}
        out = subprocess.run(["node", os.path.join(E2E_DIR, "console.mjs")], cwd=E2E_DIR,
                             env=dict(os.environ, OSBILL_E2E=json.dumps(cfg),
                                      OSBILL_SHOTS=os.path.abspath(shots), CHROMIUM=CHROMIUM),
                             capture_output=True, text=True, timeout=300)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        self.assertTrue(lines, out.stdout[-2000:] + out.stderr[-2000:])
        res = json.loads(lines[-1])
        self.assertTrue(res["ok"], json.dumps(res, indent=1) + self.p.log()[-2000:])
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        self.assertGreaterEqual(len(res["checks"]), 20, res["checks"])
        for page in ("sign-in", "home", "catalog", "instance", "cases", "case", "invoices",
                     "offerings"):
            for size in ("desktop", "phone"):
                self.assertTrue(os.path.getsize(os.path.join(shots, "%s-%s.png" % (page, size)))
                                > 1000, (page, size))
        # what the browser did went through the API: the case and the provider's answer
        r = self.call("initech", "GET", "/v1/support/cases")
        case = [c for c in r.json["resources"] if c["subject"] == "Slow writes"]
        self.assertEqual(len(case), 1, r.json)
        self.assertEqual(case[0]["status"], "waiting_on_client")


if __name__ == "__main__":
    unittest.main()
