"""The authorization code flow of the platform over HTTP, driven as a browser would: the
authorize request, login page, consent, the redirect with code and state, and the code
exchange with PKCE — with each error RFC 6749 and RFC 7636 give these endpoints."""

import base64
import hashlib
import html.parser
import os
import unittest
import urllib.parse

from harness import Platform, basic

REDIRECT = "https://dash.example.com/callback"


class Form(html.parser.HTMLParser):
    """The first form's hidden fields and submit buttons."""

    def __init__(self, text):
        super().__init__()
        self.fields, self.buttons = {}, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value", "")
        if tag == "button" and a.get("name"):
            self.buttons.append((a["name"], a.get("value")))


def pkce():
    verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class AuthorizeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Platform().start()
        c = cls.p.client()
        op = c.apikey_token(cls.p.init["api_key"])
        r = c.call("POST", "/v1/accounts", token=op, body={
            "name": "provider", "kind": "provider",
            "owner": {"email": "owner@provider.example", "name": "Owner", "password": "owner-password"}})
        cls.account = r.json["id"]
        key = c.call("POST", "/v1/apikeys", token=op, body={
            "name": "k", "iam_id": r.json["owner_iam_id"], "account_id": cls.account}).json["apikey"]
        cls.owner_token = c.apikey_token(key)
        cls.user = ("user@consumer.example", "user-password-1")
        r = c.call("POST", "/v1/accounts", token=op, body={
            "name": "consumer", "kind": "consumer",
            "owner": {"email": cls.user[0], "name": "User", "password": cls.user[1]}})
        cls.user_iam = r.json["owner_iam_id"]
        cls.conf = c.call("POST", "/v1/clients", token=cls.owner_token, body={
            "account_id": cls.account, "name": "Confidential Dash", "redirect_uris": [REDIRECT]}).json
        cls.pub = c.call("POST", "/v1/clients", token=cls.owner_token, body={
            "account_id": cls.account, "name": "SPA", "public": True,
            "redirect_uris": [REDIRECT + "?spa=1"]}).json
        c.close()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.p.stop()
        finally:
            cls.p.cleanup()

    def setUp(self):
        self.c = self.p.client()
        self.cookie = None

    def tearDown(self):
        self.c.close()

    def get(self, query):
        hdrs = {"Cookie": self.cookie} if self.cookie else {}
        return self.c.request("GET", "/identity/authorize?" + urllib.parse.urlencode(query), headers=hdrs)

    def post(self, fields):
        hdrs = {"Content-Type": "application/x-www-form-urlencoded"}
        if self.cookie:
            hdrs["Cookie"] = self.cookie
        r = self.c.request("POST", "/identity/authorize", raw=urllib.parse.urlencode(fields).encode(),
                           headers=hdrs)
        sc = r.header("Set-Cookie")
        if sc:
            self.cookie = sc.split(";")[0]
        return r

    def query(self, client, redirect=REDIRECT, challenge=None, state="st-123", **extra):
        q = {"client_id": client["client_id"], "redirect_uri": redirect, "response_type": "code",
             "state": state, "scope": "openid"}
        if challenge:
            q.update(code_challenge=challenge, code_challenge_method="S256")
        q.update(extra)
        return q

    def login_and_consent(self, q, approve=True):
        r = self.get(q)
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"Sign in", r.raw)
        form = Form(r.raw.decode())
        fields = dict(form.fields, email=self.user[0], password=self.user[1])
        r = self.post(fields)
        if r.status == 302:
            return r
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"Allow", r.raw)
        form = Form(r.raw.decode())
        return self.post(dict(form.fields, action="approve" if approve else "deny"))

    def redirect_params(self, r):
        self.assertEqual(r.status, 302, r)
        loc = r.header("Location")
        base, _, qs = loc.partition("?")
        return base, dict(urllib.parse.parse_qsl(qs))

    def exchange(self, code, verifier=None, client=None, redirect=REDIRECT):
        client = client or self.conf
        fields = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect}
        hdrs = {}
        if verifier:
            fields["code_verifier"] = verifier
        if "client_secret" in client:
            hdrs["Authorization"] = basic(client["client_id"], client["client_secret"])
        else:
            fields["client_id"] = client["client_id"]
        return self.c.form("/identity/token", fields, headers=hdrs)

    def test_full_flow_with_pkce(self):
        verifier, challenge = pkce()
        r = self.login_and_consent(self.query(self.conf, challenge=challenge))
        base, params = self.redirect_params(r)
        self.assertEqual(base, REDIRECT)
        self.assertEqual(params["state"], "st-123")
        r = self.exchange(params["code"], verifier)
        self.assertEqual(r.status, 200, r)
        self.assertIn("refresh_token", r.json)
        claims = r.json["access_token"].split(".")[1]
        claims = __import__("json").loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
        self.assertEqual(claims["iam_id"], self.user_iam)
        self.assertEqual(claims["client_id"], self.conf["client_id"])
        self.assertEqual(claims["grant_type"], "authorization_code")
        # The code works once.
        r = self.exchange(params["code"], verifier)
        self.assertEqual((r.status, r.json["error"]), (400, "invalid_grant"))
        # Signed in and consented: the next authorize goes straight back with a code.
        verifier2, challenge2 = pkce()
        r = self.get(self.query(self.conf, challenge=challenge2, state="again"))
        base, params = self.redirect_params(r)
        self.assertEqual(params["state"], "again")
        self.assertEqual(self.exchange(params["code"], verifier2).status, 200)

    def test_pkce_and_redirect_checks_at_the_token_endpoint(self):
        verifier, challenge = pkce()
        _, params = self.redirect_params(self.login_and_consent(self.query(self.conf, challenge=challenge)))
        r = self.exchange(params["code"], pkce()[0])
        self.assertEqual((r.status, r.json["error"]), (400, "invalid_grant"))
        # A failed attempt burns the code too.
        self.assertEqual(self.exchange(params["code"], verifier).json["error"], "invalid_grant")
        _, params = self.redirect_params(self.get(self.query(self.conf, challenge=challenge)))
        r = self.exchange(params["code"], verifier, redirect=REDIRECT + "/other")
        self.assertEqual((r.status, r.json["error"]), (400, "invalid_grant"))
        _, params = self.redirect_params(self.get(self.query(self.conf, challenge=challenge)))
        r = self.exchange(params["code"], None)
        self.assertEqual((r.status, r.json["error"]), (400, "invalid_grant"))
        _, params = self.redirect_params(self.get(self.query(self.conf, challenge=challenge)))
        wrong = dict(self.conf, client_secret="not-the-secret")
        r = self.exchange(params["code"], verifier, client=wrong)
        self.assertEqual((r.status, r.json["error"]), (401, "invalid_client"))

    def test_public_clients_need_pkce(self):
        r = self.get(self.query(self.pub, redirect=REDIRECT + "?spa=1"))
        base, params = self.redirect_params(r)
        self.assertEqual(base, REDIRECT)
        self.assertEqual((params["spa"], params["error"], params["state"]),
                         ("1", "invalid_request", "st-123"))
        verifier, challenge = pkce()
        r = self.login_and_consent(self.query(self.pub, redirect=REDIRECT + "?spa=1", challenge=challenge))
        _, params = self.redirect_params(r)
        r = self.exchange(params["code"], verifier, client=self.pub, redirect=REDIRECT + "?spa=1")
        self.assertEqual(r.status, 200, r)
        # A public client may not use client_credentials.
        r = self.c.form("/identity/token", {"grant_type": "client_credentials", "client_id": self.pub["client_id"]})
        self.assertEqual(r.status, 401)

    def test_request_errors(self):
        # Unknown client or redirect URI: an error page, never a redirect.
        for q in (dict(self.query(self.conf), client_id="nope"),
                  self.query(self.conf, redirect="https://evil.example/cb"),
                  self.query(self.conf, redirect=REDIRECT + "/"),
                  {"response_type": "code"}):
            r = self.get(q)
            self.assertEqual(r.status, 400, r)
            self.assertIsNone(r.header("Location"))
            self.assertIn(b"cannot be used", r.raw)
        _, params = self.redirect_params(self.get(self.query(self.conf, response_type="token")))
        self.assertEqual(params["error"], "unsupported_response_type")
        _, params = self.redirect_params(self.get(dict(self.query(self.conf, challenge=pkce()[1]),
                                                       code_challenge_method="plain")))
        self.assertEqual(params["error"], "invalid_request")
        for scope in ("admin", "openid admin", "", "openid  email"):
            _, params = self.redirect_params(self.get(self.query(self.conf, scope=scope)))
            self.assertEqual((params["error"], params["state"]), ("invalid_scope", "st-123"), scope)

    def test_wrong_password_and_deny(self):
        r = self.get(self.query(self.conf))
        form = Form(r.raw.decode())
        r = self.post(dict(form.fields, email=self.user[0], password="wrong-password"))
        self.assertEqual(r.status, 401)
        self.assertIn(b"not right", r.raw)
        self.assertIsNone(self.cookie)
        # Reflected parameters are escaped.
        r = self.get(self.query(self.conf, state='"><script>alert(1)</script>'))
        self.assertNotIn(b"<script>alert", r.raw)
        # A fresh user who denies consent goes back with access_denied.
        c = self.p.client()
        op = c.apikey_token(self.p.init["api_key"])
        c.call("POST", "/v1/accounts", token=op, body={
            "name": "other", "kind": "consumer",
            "owner": {"email": "denier@x.example", "name": "D", "password": "denier-password"}})
        c.close()
        self.user = ("denier@x.example", "denier-password")
        _, params = self.redirect_params(self.login_and_consent(self.query(self.conf), approve=False))
        self.assertEqual((params["error"], params["state"]), ("access_denied", "st-123"))

    def test_sign_in_throttled_after_repeated_failures(self):
        c = self.p.client()
        op = c.apikey_token(self.p.init["api_key"])
        r = c.call("POST", "/v1/accounts", token=op, body={
            "name": "guessed", "kind": "consumer",
            "owner": {"email": "guessed@x.example", "name": "G", "password": "the-right-password"}})
        c.close()
        self.assertEqual(r.status, 201, r)
        form = Form(self.get(self.query(self.conf)).raw.decode())
        for i in range(5):
            r = self.post(dict(form.fields, email="guessed@x.example", password="guess-%d" % i))
            self.assertEqual(r.status, 401, i)
        # Even the right password is refused now, differently and with a delay to wait.
        for email in ("guessed@x.example", "GUESSED@x.example"):
            r = self.post(dict(form.fields, email=email, password="the-right-password"))
            self.assertEqual(r.status, 429, email)
            self.assertIn(b"Too many failed sign-ins", r.raw)
            self.assertGreater(int(r.header("Retry-After")), 800)
            self.assertIsNone(self.cookie)
        # Other users are not affected.
        r = self.post(dict(form.fields, email="owner@provider.example", password="owner-password"))
        self.assertEqual(r.status, 200)

    def test_consent_needs_the_session_csrf_value(self):
        r = self.get(self.query(self.conf))
        form = Form(r.raw.decode())
        self.user = ("owner@provider.example", "owner-password")
        r = self.post(dict(form.fields, email=self.user[0], password=self.user[1]))
        self.assertEqual(r.status, 200)
        form = Form(r.raw.decode())
        self.assertIn("csrf", form.fields)
        r = self.post(dict(form.fields, action="approve", csrf="forged"))
        self.assertEqual(r.status, 403, r)
        self.cookie = None
        r = self.post(dict(form.fields, action="approve"))
        self.assertEqual(r.status, 200)  # without the session: back to the login page
        self.assertIn(b"Sign in", r.raw)


if __name__ == "__main__":
    unittest.main()
