"""Platform tokens at the broker and dashboard single sign-on, end to end: a real osbill serve
and the starter broker with --platform and a dashboard client. The browser is driven by hand
(no redirect followed by itself, cookies carried here) through the dashboard, the platform's
login and consent pages and libosb's /sso/callback; tokens the platform does not hand out
(the controller's resource-controller tokens, correctly signed malformed ones) come from
tests/tools/mint_token, which signs with the platform's own active key."""

import base64
import hashlib
import hmac
import html.parser
import http.client
import http.server
import json
import os
import subprocess
import threading
import time
import unittest
import urllib.parse
import uuid

from harness import Broker, BrokerTest, Platform, basic, binary, free_port

APIKEY_GRANT = "urn:ibm:params:oauth:grant-type:apikey"
OTHER_REDIRECT = "http://127.0.0.1:9/other-callback"


def mint_tool():
    path = os.environ.get("MINT_TOKEN")
    if path:
        return path
    # Next to the osbill binary's build tree: BUILD/src/cli/osbill -> BUILD/tests/tools.
    build = os.path.dirname(os.path.dirname(os.path.dirname(binary("OSBILL", "src/cli/osbill"))))
    return os.path.join(build, "tests", "tools", "mint_token")


def mint(data, *args):
    db = Platform.databases.get(data)
    out = subprocess.run([mint_tool(), data] + (["--db", db] if db else []) + list(args),
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError("mint_token %s failed (%d): %s" % (args[:1], out.returncode,
                                                                out.stderr))
    return out.stdout.strip() if args[0] != "--public-pem" else out.stdout


def b64u(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64json(seg):
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


class Form(html.parser.HTMLParser):
    """The first form's hidden fields."""

    def __init__(self, text):
        super().__init__()
        self.fields = {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value", "")


class Browser:
    """Just enough of a browser: cookies by host and path (not port, as browsers do), no
    redirects followed on its own."""

    def __init__(self):
        self.cookies = {}  # (host, name) -> {"value", "path", "attrs"}
        self.set_cookies = []  # every Set-Cookie seen, raw

    def _store(self, host, header):
        self.set_cookies.append(header)
        parts = [p.strip() for p in header.split(";")]
        name, _, value = parts[0].partition("=")
        attrs = {}
        for p in parts[1:]:
            k, _, v = p.partition("=")
            attrs[k.lower()] = v
        if attrs.get("max-age") == "0":
            self.cookies.pop((host, name), None)
        else:
            self.cookies[(host, name)] = {"value": value, "path": attrs.get("path", "/"),
                                          "attrs": attrs}

    def cookie(self, host, name):
        c = self.cookies.get((host, name))
        return c and c["value"]

    def find(self, prefix):
        return {n: c for (h, n), c in self.cookies.items() if n.startswith(prefix)}

    @staticmethod
    def _path_match(req_path, cookie_path):
        return (req_path == cookie_path or req_path.startswith(cookie_path.rstrip("/") + "/")
                or cookie_path == "/")

    def request(self, method, url, form=None):
        u = urllib.parse.urlsplit(url)
        hdrs = {}
        jar = ["%s=%s" % (n, c["value"]) for (h, n), c in self.cookies.items()
               if h == u.hostname and self._path_match(u.path, c["path"])]
        if jar:
            hdrs["Cookie"] = "; ".join(jar)
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        try:
            conn.request(method, u.path + ("?" + u.query if u.query else ""), body=body,
                         headers=hdrs)
            r = conn.getresponse()
            resp = Resp(r.status, r.getheaders(), r.read())
        finally:
            conn.close()
        for k, v in resp.headers:
            if k.lower() == "set-cookie":
                self._store(u.hostname, v)
        return resp

    def get(self, url):
        return self.request("GET", url)

    def post(self, url, form):
        return self.request("POST", url, form)


class Resp:
    def __init__(self, status, headers, raw):
        self.status, self.headers, self.raw = status, headers, raw
        self.text = raw.decode("utf-8", "replace")

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __repr__(self):
        return "<%d %r>" % (self.status, self.raw[:300])


def split_url(url):
    base, _, qs = url.partition("?")
    return base, dict(urllib.parse.parse_qsl(qs, keep_blank_values=True))


def broker_url(broker):
    return "http://127.0.0.1:%d" % broker.port


class PlatformTokens:
    """Claims of a platform token and ways to sign them, for one platform."""

    def __init__(self, platform):
        self.p = platform

    def claims(self, **over):
        now = int(time.time())
        c = {"iss": self.p.url + "/identity", "sub": "crn:v1:osbill:public:starter-kv:::",
             "iam_id": self.p.init["iam_id"], "account": {"bss": self.p.init["account_id"]},
             "client_id": "resource-controller", "grant_type": "client_credentials",
             "scope": "osbill", "iat": now, "exp": now + 600, "jti": str(uuid.uuid4())}
        c.update(over)
        return {k: v for k, v in c.items() if v is not None}

    def token(self, **over):
        return mint(self.p.data, compact(self.claims(**over)))

    def sign(self, header_text, payload_text):
        """A hand-made token, correctly signed over exactly the segments it carries."""
        hseg, pseg = b64u(header_text.encode()), b64u(payload_text.encode())
        return "%s.%s.%s" % (hseg, pseg, mint(self.p.data, "--sign", hseg + "." + pseg))

    def kid(self):
        return mint(self.p.data, "--kid")


def osb_bearer(port, token, path="/v2/catalog"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", path, headers={"Authorization": "Bearer " + token,
                                        "X-Broker-API-Version": "2.17"})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def platform_bearer(port, token):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", "/v1/accounts", headers={"Authorization": "Bearer " + token})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def wait_for(cond, timeout=10, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


# ------------------------------------------------------------------ dashboard SSO

class SSOWorld(unittest.TestCase):
    """A platform with a provider (its starter-kv dashboard client), a consumer account with
    users, and the starter broker with --platform and that client, holding one instance of the
    consumer's. The flow helpers drive a browser through it."""

    @classmethod
    def setUpClass(cls):
        cls.p = Platform().start()
        cls.broker = None
        try:
            cls._setup()
        except BaseException:
            cls._teardown()
            raise

    @classmethod
    def _setup(cls):
        c = cls.p.client()
        op = c.apikey_token(cls.p.init["api_key"])

        def account(name, kind, email, pw):
            r = c.call("POST", "/v1/accounts", token=op, body={
                "name": name, "kind": kind, "owner": {"email": email, "name": name, "password": pw}})
            assert r.status == 201, r
            key = c.call("POST", "/v1/apikeys", token=op, body={
                "name": "owner", "iam_id": r.json["owner_iam_id"], "account_id": r.json["id"]})
            assert key.status == 201, key
            return r.json["id"], r.json["owner_iam_id"], c.apikey_token(key.json["apikey"])

        cls.provider, _, provider_token = account("kv-provider", "provider",
                                                  "owner@kv.example", "provider-pw-1")
        cls.consumer, cls.consumer_owner, consumer_token = account(
            "globex", "consumer", "owner@globex.example", "consumer-pw-1")
        cls.owner_login = ("owner@globex.example", "consumer-pw-1")
        r = c.call("POST", "/v1/clients", token=provider_token, body={
            "account_id": cls.provider, "name": "Starter KV dashboard",
            "service_name": "starter-kv", "redirect_uris": ["http://127.0.0.1:9/placeholder"]})
        assert r.status == 201, r
        cls.client = r.json

        cls.broker = Broker(extra=["--platform", cls.p.url,
                                   "--sso-client-id", cls.client["client_id"]])
        cls.broker.env = {"OSB_SSO_CLIENT_SECRET": cls.client["client_secret"]}
        cls.broker.start()
        cls.burl = broker_url(cls.broker)
        cls.callback = cls.burl + "/sso/callback"
        r = c.call("PATCH", "/v1/clients/" + cls.client["client_id"], token=provider_token,
                   body={"redirect_uris": [cls.callback, OTHER_REDIRECT]})
        assert r.status == 200, r

        # The consumer's users: one with Reader on the instance, one without any policy.
        cls.users = {}
        for name in ("reader", "outsider"):
            email, pw = "%s@globex.example" % name, "%s-password-1" % name
            r = c.call("POST", "/v1/users", token=consumer_token, body={
                "account_id": cls.consumer, "email": email, "name": name, "password": pw})
            assert r.status == 201, r
            cls.users[name] = (email, pw, r.json["iam_id"])

        osb = cls.broker.client()
        cls.iid = "kv-" + uuid.uuid4().hex
        r = osb.provision(cls.iid, body_extra={
            "context": {"platform": "osbill", "account_id": cls.consumer}})
        assert r.status == 201, r
        cls.provision_answer = r.json
        r = c.call("POST", "/v1/policies", token=consumer_token, body={
            "type": "access",
            "subjects": [{"attributes": [{"name": "iam_id", "value": cls.users["reader"][2]}]}],
            "roles": [{"role_id": "crn:v1:bluemix:public:iam::::serviceRole:Reader"}],
            "resources": [{"attributes": [{"name": "accountId", "value": cls.consumer},
                                          {"name": "serviceName", "value": "starter-kv"},
                                          {"name": "serviceInstance", "value": cls.iid}]}]})
        assert r.status == 201, r
        # Something to show: one key of five bytes, written through the data API.
        r = osb.bind(cls.iid, "b-" + uuid.uuid4().hex)
        assert r.status == 201, r
        creds = r.json["credentials"]
        data = http.client.HTTPConnection("127.0.0.1", cls.broker.port, timeout=30)
        data.request("PUT", urllib.parse.urlsplit(creds["url"]).path + "/greeting", body=b"hello",
                     headers={"X-Api-Key": creds["apikey"]})
        resp = data.getresponse()
        resp.read()
        data.close()
        assert resp.status == 204, resp.status
        cls.put_hour = int(time.time() // 3600)
        osb.close()
        c.close()

    @classmethod
    def tearDownClass(cls):
        cls._teardown()

    @classmethod
    def _teardown(cls):
        try:
            if cls.broker:
                try:
                    cls.broker.stop()
                finally:
                    cls.broker.cleanup()
        finally:
            try:
                cls.p.stop()
            finally:
                cls.p.cleanup()

    def dash(self, iid=None):
        return self.burl + "/dashboard/" + urllib.parse.quote(iid or self.iid, safe="")

    # -------------------------------------------------------------- flow helpers

    def start(self, browser, iid=None):
        """Opens the dashboard without a session: 302 to the platform's authorize."""
        r = browser.get(self.dash(iid))
        self.assertEqual(r.status, 302, r)
        base, q = split_url(r.header("Location"))
        self.assertEqual(base, self.p.url + "/identity/authorize")
        return r, q

    def platform_sign_in(self, browser, authorize_url, login, approve=True):
        """Login (when the browser has no platform session) and consent (on first use);
        returns the platform's final answer, a 302 to the redirect URI."""
        r = browser.get(authorize_url)
        if r.status == 200 and 'name="password"' in r.text:
            form = Form(r.text)
            self.assertEqual(form.fields.get("action"), "login")
            r = browser.post(self.p.url + "/identity/authorize",
                             dict(form.fields, email=login[0], password=login[1]))
        if r.status == 200:
            self.assertIn("Allow", r.text)
            form = Form(r.text)
            self.assertIn("csrf", form.fields)
            r = browser.post(self.p.url + "/identity/authorize",
                             dict(form.fields, action="approve" if approve else "deny"))
        self.assertEqual(r.status, 302, r)
        return r

    def sign_in(self, browser, login, iid=None):
        """The whole flow; returns the dashboard's final answer."""
        r, _ = self.start(browser, iid)
        r = self.platform_sign_in(browser, r.header("Location"), login)
        base, q = split_url(r.header("Location"))
        self.assertEqual(base, self.callback)
        r = browser.get(r.header("Location"))
        self.assertEqual(r.status, 302, r)
        self.assertEqual(r.header("Location"), urllib.parse.urlsplit(self.dash(iid)).path)
        return browser.get(self.dash(iid))

    def session_cookie(self, browser):
        found = {n: c for n, c in browser.find("osb_sso_").items() if "_s" not in n[8:]}
        self.assertEqual(len(found), 1, browser.cookies)
        return next(iter(found.items()))



class DashboardSSOTest(SSOWorld):
    """The whole sign-in: dashboard -> platform login and consent -> callback -> dashboard."""

    def test_provision_answers_the_dashboard_url(self):
        self.assertEqual(self.provision_answer["dashboard_url"], self.dash())
        osb = self.broker.client()
        r = osb.call("GET", "/v2/service_instances/" + self.iid)
        osb.close()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["dashboard_url"], self.dash())

    def test_full_sign_in_shows_the_instance(self):
        b = Browser()
        r, q = self.start(b)
        self.assertEqual(q["response_type"], "code")
        self.assertEqual(q["client_id"], self.client["client_id"])
        self.assertEqual(q["redirect_uri"], self.callback)
        self.assertEqual(q["scope"], "openid")
        self.assertEqual(q["code_challenge_method"], "S256")
        self.assertRegex(q["code_challenge"], r"^[A-Za-z0-9_-]{43}$")
        self.assertRegex(q["state"], r"^[A-Za-z0-9_-]{43}$")
        self.assertEqual(r.header("Cache-Control"), "no-store")
        state_cookies = b.find("osb_sso_")
        self.assertEqual(len(state_cookies), 1)
        (name, sc), = state_cookies.items()
        self.assertEqual(sc["path"], "/sso/callback")
        self.assertEqual(sc["attrs"]["max-age"], "600")
        self.assertIn("httponly", sc["attrs"])
        self.assertEqual(sc["attrs"]["samesite"], "Lax")
        self.assertNotIn(q["state"], sc["value"].split(".")[1])  # the MAC is not the state

        login = self.users["reader"][:2]
        r = self.platform_sign_in(b, r.header("Location"), login)
        base, cb = split_url(r.header("Location"))
        self.assertEqual(base, self.callback)
        self.assertEqual(cb["state"], q["state"])
        self.assertIn("code", cb)
        r = b.get(r.header("Location"))
        self.assertEqual(r.status, 302, r)
        self.assertEqual(r.header("Location"), "/dashboard/" + self.iid)
        self.assertEqual(b.find(name), {}, "the state cookie is cleared after use")
        sname, session = self.session_cookie(b)
        self.assertEqual(session["path"], "/")
        self.assertIn("httponly", session["attrs"])
        self.assertEqual(session["attrs"]["samesite"], "Lax")
        self.assertTrue(0 < int(session["attrs"]["max-age"]) <= 3600, session)

        r = b.get(self.dash())
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type").startswith("text/html"))
        self.assertEqual(r.header("Cache-Control"), "no-store")
        self.assertIn('<dd id="instance">%s</dd>' % self.iid, r.text)
        self.assertIn('<dd id="plan">standard</dd>', r.text)
        self.assertIn('<dd id="keys">1</dd>', r.text)
        self.assertIn('<dd id="bytes">5</dd>', r.text)
        if int(time.time() // 3600) == self.put_hour:  # the count is per clock hour
            self.assertIn('<dd id="calls">1</dd>', r.text)
        self.assertIn('<dd id="user">%s</dd>' % self.users["reader"][2], r.text)
        # The session holds: no new sign-in for the next page view.
        r = b.get(self.dash())
        self.assertEqual(r.status, 200, r)

    def test_user_without_a_policy_is_refused(self):
        b = Browser()
        r = self.sign_in(b, self.users["outsider"][:2])
        self.assertEqual(r.status, 403, r)
        self.assertNotIn(self.iid, r.text.replace(self.dash(), ""))
        # Signed in all the same: a second visit asks the platform again, no new sign-in.
        self.assertEqual(b.get(self.dash()).status, 403)

    def test_reader_is_refused_on_another_instance(self):
        b = Browser()
        self.assertEqual(self.sign_in(b, self.users["reader"][:2]).status, 200)
        self.assertEqual(b.get(self.dash("no-such-instance")).status, 403)

    def test_tampered_state_fails_and_a_replayed_code_fails(self):
        b = Browser()
        r, q = self.start(b)
        (name, sc), = b.find("osb_sso_").items()
        sc = dict(sc)  # a copy: the tampering below changes the jar's own entry
        r = self.platform_sign_in(b, r.header("Location"), self.users["reader"][:2])
        _, cb = split_url(r.header("Location"))
        state, code = cb["state"], cb["code"]

        def callback(state_value, cookie_value=None):
            if cookie_value is not None:
                b.cookies[("127.0.0.1", name)]["value"] = cookie_value
            return b.get(self.callback + "?" + urllib.parse.urlencode(
                {"code": code, "state": state_value}))

        flipped = state[:10] + ("A" if state[10] != "A" else "B") + state[11:]
        self.assertEqual(callback(flipped).status, 400)
        self.assertEqual(callback("short").status, 400)
        payload, mac = sc["value"].split(".")
        bad_mac = mac[:10] + ("A" if mac[10] != "A" else "B") + mac[11:]
        self.assertEqual(callback(state, payload + "." + bad_mac).status, 400)
        forged = b64u(json.dumps({"n": state, "r": "/evil", "x": int(time.time()) + 600}).encode())
        self.assertEqual(callback(state, forged + "." + mac).status, 400)
        # The code is still unused: the state checks came first.
        r = callback(state, sc["value"])
        self.assertEqual(r.status, 302, r)
        self.assertEqual(r.header("Location"), "/dashboard/" + self.iid)
        # Replaying the same callback, with the state cookie put back, fails at the platform.
        b2 = Browser()
        b2.cookies[("127.0.0.1", name)] = dict(sc)
        r = b2.get(self.callback + "?" + urllib.parse.urlencode({"code": code, "state": state}))
        self.assertEqual(r.status, 400, r)
        self.assertEqual(b2.find("osb_sso_"), {}, "no session from a replayed code")

    def test_state_of_another_browser_fails(self):
        victim, attacker = Browser(), Browser()
        self.start(victim)
        r, _ = self.start(attacker)
        r = self.platform_sign_in(attacker, r.header("Location"), self.users["outsider"][:2])
        # The attacker's callback URL opened in the victim's browser (login CSRF): refused.
        r = victim.get(r.header("Location"))
        self.assertEqual(r.status, 400, r)
        self.assertEqual([n for n in victim.find("osb_sso_") if "_s" not in n[8:]], [])

    def test_code_for_another_redirect_uri_fails(self):
        b = Browser()
        r, q = self.start(b)
        # Signed in at the platform already, so authorize answers at once.
        self.platform_sign_in(b, r.header("Location"), self.users["reader"][:2])
        r, q = self.start(b)
        q["redirect_uri"] = OTHER_REDIRECT
        r = b.get(self.p.url + "/identity/authorize?" + urllib.parse.urlencode(q))
        self.assertEqual(r.status, 302, r)
        base, other = split_url(r.header("Location"))
        self.assertEqual(base, OTHER_REDIRECT)
        r = b.get(self.callback + "?" + urllib.parse.urlencode(
            {"code": other["code"], "state": q["state"]}))
        self.assertEqual(r.status, 400, r)

    def test_declined_consent_is_403(self):
        b = Browser()
        r, _ = self.start(b)
        email, pw = "decliner@globex.example", "decliner-pw-1"
        c = self.p.client()
        op = c.apikey_token(self.p.init["api_key"])
        self.assertEqual(c.call("POST", "/v1/users", token=op, body={
            "account_id": self.consumer, "email": email, "name": "d", "password": pw}).status, 201)
        c.close()
        r = self.platform_sign_in(b, r.header("Location"), (email, pw), approve=False)
        _, cb = split_url(r.header("Location"))
        self.assertEqual(cb["error"], "access_denied")
        self.assertEqual(b.get(r.header("Location")).status, 403)

    def test_callback_without_a_sign_in_is_400(self):
        b = Browser()
        self.assertEqual(b.get(self.callback).status, 400)
        self.assertEqual(b.get(self.callback + "?code=x&state=" + "A" * 43).status, 400)
        self.assertEqual(b.get(self.callback + "?state=%00%ff&code=" + "x" * 5000).status, 400)

    def test_forged_session_cookie_means_a_new_sign_in(self):
        b = Browser()
        self.assertEqual(self.sign_in(b, self.users["outsider"][:2]).status, 403)
        name, session = self.session_cookie(b)
        payload, mac = session["value"].split(".")
        claims = b64json(payload)
        claims["s"] = self.users["reader"][2]
        session["value"] = b64u(compact(claims).encode()) + "." + mac
        r = b.get(self.dash())
        self.assertEqual(r.status, 302, r)
        self.assertTrue(r.header("Location").startswith(self.p.url + "/identity/authorize?"))
        for bad in ("", "x", "a.b", "." * 10, "A" * 5000):
            session["value"] = bad
            self.assertEqual(b.get(self.dash()).status, 302)

    def test_markup_in_an_instance_id_is_escaped(self):
        iid = "x<script>alert(1)</script>&\"'" + uuid.uuid4().hex[:6]
        osb = self.broker.client()
        r = osb.provision(iid, body_extra={
            "context": {"platform": "osbill", "account_id": self.consumer}})
        osb.close()
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["dashboard_url"], self.dash(iid))
        b = Browser()
        r = self.sign_in(b, self.owner_login, iid)  # the account's administrator
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("<script>", r.text)
        self.assertIn("x&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39;", r.text)
        self.assertIn('<dd id="user">%s</dd>' % self.consumer_owner, r.text)

    def test_bearer_tokens_at_the_broker(self):
        tokens = PlatformTokens(self.p)
        self.assertEqual(osb_bearer(self.broker.port, tokens.token()), 200)
        # Basic works as before.
        osb = self.broker.client()
        self.assertEqual(osb.call("GET", "/v2/catalog").status, 200)
        osb.close()
        # Tokens of other clients of the same platform are not for brokers.
        c = self.p.client()
        user_token = c.apikey_token(self.p.init["api_key"])
        r = c.form("/identity/token", {"grant_type": "client_credentials"}, headers={
            "Authorization": basic(self.client["client_id"], self.client["client_secret"])})
        self.assertEqual(r.status, 200, r)
        c.close()
        self.assertEqual(platform_bearer(self.p.port, user_token), 200)
        self.assertEqual(osb_bearer(self.broker.port, user_token), 401)
        self.assertEqual(osb_bearer(self.broker.port, r.json["access_token"]), 401)
        self.assertEqual(osb_bearer(self.broker.port, tokens.token(client_id="osbill")), 401)
        # The provider's usage route takes the controller's token too (broker credentials).
        self.assertEqual(osb_bearer(self.broker.port, tokens.token(),
                                    "/usage/" + urllib.parse.quote(self.iid, safe="")), 200)


class PlatformDownTest(SSOWorld):
    """The platform goes away: dashboards answer 502 at once, sign-ins in flight 502, the
    controller's tokens still verify with the cached keys, and the broker stops cleanly."""

    def test_platform_down(self):
        b = Browser()
        self.assertEqual(self.sign_in(b, self.users["reader"][:2]).status, 200)
        token = PlatformTokens(self.p).token()
        pending = Browser()
        r, _ = self.start(pending)
        r = self.platform_sign_in(pending, r.header("Location"), self.users["reader"][:2])
        callback_url = r.header("Location")
        self.p.stop()
        for _ in range(2):
            t0 = time.time()
            r = b.get(self.dash())
            self.assertEqual(r.status, 502, r)
            self.assertLess(time.time() - t0, 6.0)
        r = pending.get(callback_url)
        self.assertEqual(r.status, 502, r)
        self.assertEqual(osb_bearer(self.broker.port, token), 200)
        self.assertTrue(self.broker.alive())


class NoSSOTest(BrokerTest):
    """Without a dashboard client: no dashboard_url, no dashboard or callback routes."""

    def test_no_dashboard(self):
        iid = self.uid("inst")
        r = self.osb.provision(iid)
        self.assertEqual(r.status, 201, r)
        self.assertNotIn("dashboard_url", r.json)
        b = Browser()
        self.assertEqual(b.get(broker_url(self.broker) + "/dashboard/" + iid).status, 404)
        self.assertEqual(b.get(broker_url(self.broker) + "/sso/callback?code=a&state=b").status,
                         404)
        # No platform: bearer tokens are not taken at all.
        self.assertEqual(osb_bearer(self.broker.port, "a.b.c"), 401)

    def test_sso_flags_need_the_platform(self):
        exe = binary("STARTER_BROKER", "examples/starter-broker/starter-broker")
        for extra in (["--sso-client-id", "c"], ["--sso-client-id", "c", "--sso-client-secret", "s"],
                      ["--platform", "http://127.0.0.1:9", "--sso-client-id", "c"]):
            out = subprocess.run([exe, "--data", "/nonexistent/x", "--user", "u", "--password", "p"]
                                 + extra, capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 2, (extra, out.stderr))
            self.assertIn("--sso-client-secret", out.stderr)


# ------------------------------------------------------------------ key rotation

class KeyRotationTest(unittest.TestCase):
    """The broker follows the platform's key rotation: the next key is already cached; a key
    it has never seen costs exactly one JWKS refresh, shared by concurrent requests; unknown
    kids refresh at most once per 30 s. Fetches are counted in the platform's access log."""

    @classmethod
    def setUpClass(cls):
        cls.p = Platform(extra=["--access-log"]).start()
        cls.broker = None
        try:
            cls.broker = Broker(extra=["--platform", cls.p.url]).start()
        except BaseException:
            cls.p.stop()
            cls.p.cleanup()
            raise
        cls.tokens = PlatformTokens(cls.p)

    @classmethod
    def tearDownClass(cls):
        try:
            try:
                cls.broker.stop()
            finally:
                cls.broker.cleanup()
        finally:
            try:
                cls.p.stop()
            finally:
                cls.p.cleanup()

    def fetches(self):
        return self.p.log().count(" GET /identity/keys ")

    def assertFetches(self, n):
        wait_for(lambda: self.fetches() >= n, what="%d JWKS fetches" % n)
        time.sleep(0.3)  # and no more than n
        self.assertEqual(self.fetches(), n)

    def rotate(self):
        c = self.p.client()
        op = c.apikey_token(self.p.init["api_key"])
        r = c.call("POST", "/identity/keys/rotate", token=op)
        c.close()
        self.assertEqual(r.status, 200, r)
        return r.json["active_kid"]

    def test_rotation(self):
        self.assertFetches(1)
        first = self.tokens.token()
        self.assertEqual(osb_bearer(self.broker.port, first), 200)

        # The next key was published before it became active: no fetch needed.
        kid = self.rotate()
        self.assertEqual(self.tokens.kid(), kid)
        self.assertEqual(osb_bearer(self.broker.port, self.tokens.token()), 200)
        self.assertFetches(1)

        # Two more rotations: the active key is one the broker has never seen.
        self.rotate()
        kid = self.rotate()
        token = self.tokens.token()
        self.assertEqual(b64json(token.split(".")[0])["kid"], kid)
        results = []

        def call():
            results.append(osb_bearer(self.broker.port, token))

        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 8)
        self.assertFetches(2)  # one refresh for the unseen kid, shared by all eight
        # Tokens of the retired keys are still good until they expire.
        self.assertEqual(osb_bearer(self.broker.port, first), 200)

        # Unknown kids now: refused, and no further fetch within 30 s.
        header = compact({"alg": "RS256", "typ": "JWT", "kid": b64u(os.urandom(32))})
        forged = self.tokens.sign(header, compact(self.tokens.claims()))
        for _ in range(3):
            self.assertEqual(osb_bearer(self.broker.port, forged), 401)
        self.assertFetches(2)
        c = self.p.client()
        published = len(c.call("GET", "/identity/keys").json["keys"])
        c.close()
        log = self.broker.log()
        self.assertIn("libosb: 2 signing keys from %s/identity/keys" % self.p.url, log)
        self.assertIn("libosb: %d signing keys from" % published, log)


# ------------------------------------------------------------------ forged tokens

class ForgedTokenTest(unittest.TestCase):
    """Each token here is refused with 401 by the platform (GET /v1/accounts) and by libosb
    (GET /v2/catalog) alike."""

    @classmethod
    def setUpClass(cls):
        cls.p = Platform().start()
        cls.broker = None
        try:
            cls.broker = Broker(extra=["--platform", cls.p.url]).start()
        except BaseException:
            cls.p.stop()
            cls.p.cleanup()
            raise
        cls.t = PlatformTokens(cls.p)

    @classmethod
    def tearDownClass(cls):
        try:
            try:
                cls.broker.stop()
            finally:
                cls.broker.cleanup()
        finally:
            try:
                cls.p.stop()
            finally:
                cls.p.cleanup()

    def assertRefused(self, token, platform=True, broker=True):
        if platform:
            self.assertEqual(platform_bearer(self.p.port, token), 401, "platform took it")
        if broker:
            self.assertEqual(osb_bearer(self.broker.port, token), 401, "broker took it")

    def header(self, **over):
        h = {"alg": "RS256", "typ": "JWT", "kid": self.t.kid()}
        h.update(over)
        return compact(h)

    def test_a_valid_token_is_taken_by_both(self):
        # Each side takes the token issued for it, and refuses the other's (wrong client).
        broker_token = self.t.token()
        platform_token = self.t.token(client_id="osbill")
        self.assertEqual(osb_bearer(self.broker.port, broker_token), 200)
        self.assertEqual(platform_bearer(self.p.port, platform_token), 200)
        self.assertEqual(platform_bearer(self.p.port, broker_token), 401)
        self.assertEqual(osb_bearer(self.broker.port, platform_token), 401)
        # ... and so is one made by hand through the same signing path.
        self.assertEqual(osb_bearer(self.broker.port,
                                    self.t.sign(self.header(), compact(self.t.claims()))), 200)
        self.assertEqual(platform_bearer(self.p.port, self.t.sign(
            self.header(), compact(self.t.claims(client_id="osbill")))), 200)

    def test_forged_tokens(self):
        # Every forgery of a token for the broker is refused by the broker, and every forgery
        # of one for the platform's API by the platform.
        for client, platform, broker in (("resource-controller", False, True),
                                         ("osbill", True, False)):
            for name, token in self.forgeries(client).items():
                with self.subTest(name, client=client):
                    self.assertRefused(token, platform=platform, broker=broker)

    def forgeries(self, client):
        class Tokens:
            def __init__(s, t):
                s.t = t

            def claims(s, **over):
                return s.t.claims(**dict({"client_id": client}, **over))

            def token(s, **over):
                return s.t.token(**dict({"client_id": client}, **over))

            def sign(s, h, p):
                return s.t.sign(h, p)

            def kid(s):
                return s.t.kid()

        t = Tokens(self.t)
        valid = t.token()
        h64, p64, s64 = valid.split(".")
        claims = t.claims()
        pem = mint(self.p.data, "--public-pem")
        hs_input = b64u(self.header(alg="HS256").encode()) + "." + p64
        hs_sig = b64u(hmac.new(pem.encode(), hs_input.encode(), hashlib.sha256).digest())

        def padded(obj):
            # A payload whose base64url needs padding, then padded; signed as sent.
            for n in range(4):
                body = compact(dict(obj, pad="x" * n))
                seg = b64u(body.encode())
                if len(seg) % 4:
                    return body, seg + "=" * (-len(seg) % 4)
            raise AssertionError("unreachable")

        def std_alphabet(obj):
            # A payload whose standard base64 has '+' or '/': the wrong alphabet.
            for n in range(64):
                body = compact(dict(obj, pad="~" * n + "?"))
                seg = base64.b64encode(body.encode()).decode().rstrip("=")
                if "+" in seg or "/" in seg:
                    return seg
            raise AssertionError("unreachable")

        pad_body, pad_seg = padded(claims)
        h_seg = b64u(self.header().encode())
        std_seg = std_alphabet(claims)
        cases = {
            "alg none, no signature": b64u(self.header(alg="none").encode()) + "." + p64 + ".",
            "alg none, with the signature": b64u(self.header(alg="none").encode()) + "." + p64
                                            + "." + s64,
            "HS256 keyed with the public key": hs_input + "." + hs_sig,
            "unknown kid": t.sign(self.header(kid=b64u(os.urandom(32))), compact(claims)),
            "no kid": t.sign(compact({"alg": "RS256", "typ": "JWT"}), compact(claims)),
            "jwk header": t.sign(self.header(jwk={"kty": "RSA"}), compact(claims)),
            "jku header": t.sign(self.header(jku=self.p.url + "/identity/keys"), compact(claims)),
            "tampered payload": h64 + "." + b64u(compact(dict(claims, iam_id="osbill-evil"))
                                                 .encode()) + "." + s64,
            "tampered signature": h64 + "." + p64 + "." + s64[:40]
                                  + ("A" if s64[40] != "A" else "B") + s64[41:],
            "signature of another token": h64 + "." + p64 + "." + t.token().split(".")[2],
            "expired": t.token(exp=int(time.time()) - 300, iat=int(time.time()) - 900),
            "not yet valid": t.token(nbf=int(time.time()) + 600),
            "issued in the future": t.token(iat=int(time.time()) + 600),
            "no exp": t.token(exp=None),
            "exp not an integer": t.token(exp=str(int(time.time()) + 600)),
            "wrong issuer": t.token(iss="http://evil.example/identity"),
            "issuer with a trailing slash": t.token(iss=self.p.url + "/identity/"),
            "issuer of the platform's base": t.token(iss=self.p.url),
            "duplicate kid in the header": t.sign(
                self.header()[:-1] + ',"kid":"%s"}' % b64u(os.urandom(32)), compact(claims)),
            "duplicate alg in the header": t.sign(
                '{"alg":"none","alg":"RS256","typ":"JWT","kid":"%s"}' % t.kid(), compact(claims)),
            "duplicate iss in the payload": t.sign(
                self.header(), compact(claims)[:-1] + ',"iss":"http://evil.example/identity"}'),
            "duplicate client_id in the payload": t.sign(
                self.header(), compact(claims)[:-1] + ',"client_id":"%s"}' % client),
            "oversized payload": t.sign(self.header(), compact(dict(claims, pad="a" * 9000))),
            "oversized header": t.sign(self.header(pad="a" * 1500), compact(claims)),
            "oversized signature": h64 + "." + p64 + "." + s64 * 8,
            "padding in the payload": "%s.%s.%s" % (h_seg, pad_seg,
                                                    mint(self.p.data, "--sign",
                                                         h_seg + "." + pad_seg)),
            "padding in the signature": valid + "==",
            "standard base64 alphabet": "%s.%s.%s" % (h_seg, std_seg,
                                                      mint(self.p.data, "--sign",
                                                           h_seg + "." + std_seg)),
            "non-base64url characters": "%s.%s.%s" % (h_seg, p64[:20] + "*!" + p64[20:],
                                                      mint(self.p.data, "--sign", h_seg + "."
                                                           + p64[:20] + "*!" + p64[20:])),
            "non-ASCII byte": h64 + "." + p64[:10] + "\u00e9" + p64[10:] + "." + s64,
            "four segments": valid + ".e30",
            "two segments": h64 + "." + p64,
            "empty segments": "..",
            "not a token": "garbage",
            "header not JSON": t.sign("not json", compact(claims)),
            "payload an array": t.sign(self.header(), "[1,2,3]"),
        }
        self.assertNotEqual(pad_body, compact(claims))
        # The other side's client: the wrong audience.
        cases["token of the other side's client"] = self.t.token(
            client_id="osbill" if client == "resource-controller" else "resource-controller")
        return cases

    def test_wrong_client_id_at_the_broker(self):
        for cid in ("osbill", "resource-controller ", "Resource-Controller", ""):
            with self.subTest(client_id=cid):
                token = self.t.token(client_id=cid)
                self.assertEqual(osb_bearer(self.broker.port, token), 401)
                self.assertEqual(platform_bearer(self.p.port, token), 200)
        # ... and the platform's API refuses the token issued for brokers.
        self.assertEqual(platform_bearer(self.p.port, self.t.token()), 401)
        token = self.t.token(client_id=None)
        self.assertEqual(osb_bearer(self.broker.port, token), 401)
        nul = self.t.sign(self.header(), compact(self.t.claims()).replace(
            '"client_id":"resource-controller"', '"client_id":"resource-controller\\u0000x"'))
        self.assertEqual(osb_bearer(self.broker.port, nul), 401)

    def test_revoked_token_at_the_platform(self):
        c = self.p.client()
        op = c.apikey_token(self.p.init["api_key"])
        r = c.call("POST", "/v1/clients", token=op, body={
            "account_id": self.p.init["account_id"], "name": "revoker",
            "redirect_uris": ["https://revoker.example/cb"]})
        self.assertEqual(r.status, 201, r)
        auth = {"Authorization": basic(r.json["client_id"], r.json["client_secret"])}
        tok = c.form("/identity/token", {"grant_type": "client_credentials"},
                     headers=auth).json["access_token"]
        self.assertEqual(platform_bearer(self.p.port, tok), 200)
        self.assertEqual(c.form("/identity/revoke", {"token": tok}, headers=auth).status, 200)
        c.close()
        self.assertRefused(tok, broker=False)


class RevocationTest(unittest.TestCase):
    """A token revoked at the platform is refused by libosb too, once the broker's next poll
    of /identity/revocations has seen it; other tokens of the same client keep working. The
    broker here takes the tokens of an OAuth client made for the test (--token-client-id), so
    the platform itself issues them and the client can revoke them."""

    @classmethod
    def setUpClass(cls):
        cls.p = Platform().start()
        cls.broker = None
        try:
            c = cls.p.client()
            op = c.apikey_token(cls.p.init["api_key"])
            r = c.call("POST", "/v1/clients", token=op, body={
                "account_id": cls.p.init["account_id"], "name": "controller",
                "redirect_uris": ["https://controller.example/cb"]})
            assert r.status == 201, r
            c.close()
            cls.client_id = r.json["client_id"]
            cls.auth = {"Authorization": basic(r.json["client_id"], r.json["client_secret"])}
            cls.broker = Broker(extra=["--platform", cls.p.url, "--token-client-id",
                                       cls.client_id, "--revocation-poll", "200"]).start()
        except BaseException:
            if cls.broker:
                cls.broker.stop()
                cls.broker.cleanup()
            cls.p.stop()
            cls.p.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            try:
                cls.broker.stop()
            finally:
                cls.broker.cleanup()
        finally:
            try:
                cls.p.stop()
            finally:
                cls.p.cleanup()

    def token(self):
        c = self.p.client()
        try:
            r = c.form("/identity/token", {"grant_type": "client_credentials"}, headers=self.auth)
            self.assertEqual(r.status, 200, r)
            return r.json["access_token"]
        finally:
            c.close()

    def test_revocation_reaches_the_broker(self):
        tok, other = self.token(), self.token()
        wait_for(lambda: osb_bearer(self.broker.port, tok) == 200, what="the broker takes the token")
        self.assertEqual(osb_bearer(self.broker.port, other), 200)
        c = self.p.client()
        try:
            self.assertEqual(c.form("/identity/revoke", {"token": tok}, headers=self.auth).status, 200)
            lst = c.call("GET", "/identity/revocations")
            self.assertEqual(lst.status, 200, lst)
            jti = b64json(tok.split(".")[1])["jti"]
            self.assertIn(jti, [e["jti"] for e in lst.json["revocations"]])
        finally:
            c.close()
        wait_for(lambda: osb_bearer(self.broker.port, tok) == 401, timeout=5,
                 what="the broker refuses the revoked token")
        self.assertEqual(osb_bearer(self.broker.port, other), 200)

    def test_discovery_names_the_revocation_list(self):
        c = self.p.client()
        try:
            d = c.call("GET", "/identity/.well-known/openid-configuration").json
        finally:
            c.close()
        self.assertEqual(d["revocation_list_uri"], self.p.url + "/identity/revocations")


# ------------------------------------------------------------------ a platform that fails

class FakePlatform(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mode):
        self.mode = mode
        self.hits = 0
        super().__init__(("127.0.0.1", 0), FakeHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]


class FakeHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.hits += 1
        mode = self.server.mode
        if mode == "slow":
            time.sleep(8)
            return
        body = {
            "garbage": b"<html>not json",
            "not a jwks": b'{"keys": "none"}',
            "bad keys": json.dumps({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"},
                                             {"kty": "oct", "k": "c2VjcmV0"}, "x", None]}).encode(),
            "huge": b'{"keys":[' + b" " * (2 << 20) + b"]}",
            "redirect": b"",
        }[mode]
        self.send_response(302 if mode == "redirect" else 200)
        if mode == "redirect":
            self.send_header("Location", "file:///etc/passwd")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass


class BrokenPlatformTest(unittest.TestCase):
    """A platform whose JWKS cannot be had: bearer tokens are refused within a few seconds,
    Basic keeps working, the broker neither crashes nor hangs on stop."""

    def token(self):
        now = int(time.time())
        h = compact({"alg": "RS256", "typ": "JWT", "kid": b64u(os.urandom(32))})
        p = compact({"iss": "x", "client_id": "resource-controller", "exp": now + 600})
        return b64u(h.encode()) + "." + b64u(p.encode()) + "." + b64u(os.urandom(256))

    def check(self, platform_url):
        broker = Broker(extra=["--platform", platform_url]).start()
        try:
            for i in range(3):
                t0 = time.time()
                self.assertEqual(osb_bearer(broker.port, self.token()), 401)
                self.assertLess(time.time() - t0, 4.0, "request %d waited too long" % i)
            osb = broker.client()
            t0 = time.time()
            self.assertEqual(osb.call("GET", "/v2/catalog").status, 200)
            self.assertLess(time.time() - t0, 1.0)
            osb.close()
            self.assertTrue(broker.alive())
        finally:
            t0 = time.time()
            try:
                broker.stop()
            finally:
                broker.cleanup()
            self.assertLess(time.time() - t0, 10.0)
        return broker

    def test_unreachable(self):
        broker = self.check("http://127.0.0.1:%d" % free_port())
        self.assertNotIn("signing keys from", broker.log())

    def test_answers_that_are_not_a_usable_jwks(self):
        for mode in ("garbage", "not a jwks", "bad keys", "huge", "redirect", "slow"):
            with self.subTest(mode):
                fake = FakePlatform(mode)
                try:
                    broker = self.check(fake.url)
                    self.assertGreaterEqual(fake.hits, 1)
                    self.assertNotIn("signing keys from", broker.log())
                finally:
                    fake.shutdown()
                    fake.server_close()


if __name__ == "__main__":
    unittest.main()
