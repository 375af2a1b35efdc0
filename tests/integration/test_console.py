"""The web console end to end: a real osbill serve and the starter broker, and
tests/e2e/console.mjs driving headless Debian Chromium (playwright-core, executablePath
/usr/bin/chromium) through it: the provider takes the starter broker's offering through the
six steps in the wizard, the operator approves its listing and its publication and closes the
month, the consumer tests it in limited visibility, provisions it from the plan's form, sees
its usage charted and its invoice (CSV, print); the API's errors show next to their fields;
another account's pages show nothing; switching accounts and signing out.
Screenshots of each page at 1280x800 and 390 pixels wide go to build-*/console-shots (not
committed). Also checked here without a browser: the console's files and their headers, and
its OAuth client (public, PKCE, its one redirect URI)."""

import calendar
import json
import os
import shutil
import subprocess
import time
import unittest
import urllib.parse

from harness import (SERVICE_ID, STANDARD, AccountsTest, Broker, Client, Platform,
                     make_accounts)

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
        # deleted instances go at once: the tester's instance completes its lifecycle
        cls.p = Platform(extra=["--reclamation-period", "0"]).start()
        cls.broker = Broker()
        cls.broker.start()
        try:
            c = cls.p.client()
            cls.op_token = c.apikey_token(cls.p.init["api_key"])
            cls.accounts = make_accounts(c, cls.op_token, (("acme", "provider"),
                                                           ("initech", "consumer")))
            cls.operator_account = c.call("GET", "/v1/accounts/%s" % cls.p.init["account_id"],
                                          token=cls.op_token).json
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
            # a form posted by another site's page is refused (login CSRF), by the browser's
            # Sec-Fetch-Site or by an Origin that is not this host
            form = urllib.parse.urlencode(dict(q, action="login", email="acme@example.com",
                                               password="password-acme")).encode()
            hdr = {"Content-Type": "application/x-www-form-urlencoded"}
            for extra in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                          {"Origin": "https://evil.example"}):
                r = c.request("POST", "/identity/authorize", raw=form, headers=dict(hdr, **extra))
                self.assertEqual(r.status, 403, extra)
                self.assertIsNone(r.header("Set-Cookie"), extra)
                r = c.request("POST", "/identity/logout", headers=extra)
                self.assertEqual(r.status, 403, extra)
            # the platform's own page: signed in, redirected back with a code
            r = c.request("POST", "/identity/authorize", raw=form, headers=dict(
                hdr, **{"Sec-Fetch-Site": "same-origin", "Origin": self.p.url}))
            self.assertEqual(r.status, 302, r)
            self.assertIn("code=", r.header("Location"))
        finally:
            c.close()

    def test_in_the_browser(self):
        if not os.access(CHROMIUM, os.X_OK):
            raise AssertionError("%s is missing (scripts/install-deps installs chromium)"
                                 % CHROMIUM)
        npm_ci()
        shots = os.path.abspath(os.environ.get("OSBILL_SHOTS_DIR", os.path.join(
            os.path.dirname(self.p.bin), "..", "..", "console-shots")))
        month = time.strftime("%Y-%m", time.gmtime())
        cfg = {"platform": self.p.url, "offering_name": "starter-kv", "service_id": SERVICE_ID,
               "plan_id": STANDARD, "region": REGION, "month": month,
               "broker": {"url": "http://127.0.0.1:%d" % self.broker.port,
                          "user": self.broker.user, "password": self.broker.password},
               "operator": {"email": "operator@example.com", "password": "operator-pw-1",
                            "name": self.operator_account["name"], "kind": "operator",
                            "account_id": self.operator_account["id"]}}
        for who, key in (("consumer", "initech"), ("provider", "acme")):
            cfg[who] = {"email": "%s@example.com" % key, "password": "password-%s" % key,
                        "name": key, "kind": "consumer" if key == "initech" else "provider",
                        "account_id": self.accounts[key]["id"]}
        proc = subprocess.Popen(["node", os.path.join(E2E_DIR, "console.mjs")], cwd=E2E_DIR,
                                env=dict(os.environ, OSBILL_E2E=json.dumps(cfg),
                                         OSBILL_SHOTS=shots, CHROMIUM=CHROMIUM),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        res, submitted = None, None
        try:
            for line in proc.stdout:
                if not line.startswith("{"):
                    continue
                msg = json.loads(line)
                if msg.get("need") == "usage":
                    # the provider's metering: 4,000 calls of the consumer's instance
                    submitted, why = self.submit_usage(msg["instance"], 4000)
                    proc.stdin.write("ok\n" if submitted else "refused: %s\n" % why)
                    proc.stdin.flush()
                else:
                    res = msg
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err = proc.stderr.read()
        self.assertIsNotNone(res, err[-3000:])
        self.assertTrue(res["ok"], json.dumps(res, indent=1) + err[-2000:] +
                        self.p.log()[-3000:])
        self.assertEqual(proc.returncode, 0, err[-2000:])
        self.assertTrue(submitted)
        self.assertGreaterEqual(len(res["checks"]), 60, res["checks"])
        for page in ("sign-in", "home", "wizard-listing", "wizard-offering", "wizard-broker",
                     "wizard-limited", "approvals", "catalog", "create-instance", "instance",
                     "usage", "case", "wizard-publication", "billing", "accounts", "invoices",
                     "invoice", "statement", "wizard-after-launch"):
            for size in ("desktop", "phone"):
                self.assertGreater(os.path.getsize(os.path.join(shots, "%s-%s.png" % (
                    page, size))), 1000, (page, size))
        # what the browser did is what the API holds
        o = self.call("operator", "GET", "/v1/offerings/%s" % SERVICE_ID).json
        self.assertEqual(o["visibility"], "public")
        self.assertTrue(all(s["complete"] for s in o["steps"]), o["steps"])
        inv = self.call("initech", "GET", "/v1/invoices").json["resources"]
        self.assertEqual([(i["month"], i["total"], i["currency"]) for i in inv],
                         [(month, "2.00", "USD")])
        # the price scheduled from next month on, the current month's kept
        pr = self.call("acme", "GET", "/v1/offerings/%s/plans/%s/pricing" % (SERVICE_ID,
                                                                            STANDARD)).json
        prices = [(v.get("effective_month"), v["pricing"]["API_CALLS"]["USD"]["tiers"][0]["price"])
                  for v in pr["versions"]]
        self.assertEqual(len(prices), 2, pr)
        y, m = map(int, month.split("-"))
        following = "%04d-%02d" % (y + m // 12, m % 12 + 1)
        self.assertEqual(prices[-1], (following, "0.4"), pr)
        cases = self.call("initech", "GET", "/v1/support/cases").json["resources"]
        self.assertEqual([(c["subject"], c["status"]) for c in cases],
                         [("Slow writes", "waiting_on_client")])
        # the broker's password typed in the wizard is in no log
        self.assertNotIn(self.broker.password, self.p.log())

    def submit_usage(self, instance, calls):
        inst = self.call("initech", "GET", "/v2/resource_instances/%s" % instance).json
        created = calendar.timegm(time.strptime(inst["created_at"][:19], "%Y-%m-%dT%H:%M:%S"))
        start = (created + 1) * 1000  # inside the instance's time on its plan
        while int(time.time() * 1000) <= start + 1:
            time.sleep(0.1)
        rec = {"resource_instance_id": instance, "plan_id": inst["resource_plan_id"],
               "start": start, "end": int(time.time() * 1000),
               "measured_usage": [{"measure": "API_CALLS", "quantity": calls}]}
        r = self.call("acme", "POST", "/v4/metering/resources/%s/usage" % SERVICE_ID, [rec])
        ok = r.status == 202 and r.json["resources"][0]["status"] == 201
        return ok, json.dumps(r.json)[:300]


if __name__ == "__main__":
    unittest.main()
