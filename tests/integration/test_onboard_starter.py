"""scripts/onboard-starter, the first-run onboarding of `make run`, against a real osbill
serve and the starter broker started on the catalog.json it exports: the offering, its plans,
IAM and SSO, the support webhook (the broker's receiver, which takes a delivery signed with
the secret), the broker registered, deployed and validated, and the secrets kept out of
stdout and in a 0600 file."""

import hashlib
import hmac
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import unittest

from harness import Broker, Client, Platform

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "scripts", "onboard-starter")


class OnboardStarterTest(unittest.TestCase):
    def test_define_then_register(self):
        p = Platform().start()
        self.addCleanup(p.cleanup)
        self.addCleanup(p.stop)
        tmp = tempfile.mkdtemp(prefix="onboard-")
        self.addCleanup(shutil.rmtree, tmp, True)
        state, catalog = os.path.join(tmp, "starter.json"), os.path.join(tmp, "catalog.json")
        # The broker's address must be known before it starts (its SSO callback is registered).
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        broker = Broker(extra=["--catalog", catalog], async_seconds=1)
        broker.argv[broker.argv.index("127.0.0.1:0")] = "127.0.0.1:%d" % port
        out = subprocess.run([SCRIPT, "define", p.url, p.init["api_key"],
                              "http://127.0.0.1:%d" % port, state, catalog],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(stat.S_IMODE(os.stat(state).st_mode), 0o600)
        with open(state) as f:
            st = json.load(f)
        for secret in ("provider_apikey", "service_apikey", "sso_client_secret",
                       "support_secret"):
            self.assertNotIn(st[secret], out.stdout + out.stderr)
        with open(catalog) as f:
            exported = json.load(f)
        svc = exported["services"][0]
        self.assertEqual(svc["name"], "starter-kv")
        self.assertEqual(sorted(pl["name"] for pl in svc["plans"]), ["lite", "premium", "standard"])
        broker.env = {"OSB_SSO_CLIENT_ID": st["sso_client_id"],
                      "OSB_SSO_CLIENT_SECRET": st["sso_client_secret"],
                      "OSB_SUPPORT_SECRET": st["support_secret"]}
        broker.argv += ["--platform", p.url]
        broker.start()
        self.addCleanup(broker.cleanup)
        self.addCleanup(broker.stop)
        env = dict(os.environ, OSB_BROKER_USER=broker.user, OSB_BROKER_PASSWORD=broker.password)
        out = subprocess.run([SCRIPT, "register", state, "http://127.0.0.1:%d" % broker.port],
                             capture_output=True, text=True, timeout=120, env=env)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("validation passed", out.stdout, out.stdout)
        self.assertNotIn(broker.password, out.stdout + out.stderr)
        c = p.client()
        try:
            tok = c.apikey_token(st["provider_apikey"])
            o = c.call("GET", "/v1/offerings/" + st["offering_id"], token=tok).json
            hook = c.call("GET", "/v1/offerings/%s/support/webhook" % st["offering_id"],
                          token=tok).json
        finally:
            c.close()
        self.assertEqual(o["visibility"], "limited")
        # the offering's support cases go to the broker, which takes them signed with the secret
        self.assertEqual(hook["url"], "http://127.0.0.1:%d/support/webhook" % port)
        body = json.dumps({"event": "case.created", "delivery_id": "d-1",
                           "case": {"id": "c-1"}, "update": {"seq": 1}}).encode()
        t = int(time.time())
        mac = hmac.new(st["support_secret"].encode(), b"%d." % t + body,
                       hashlib.sha256).hexdigest()
        b = Client(broker.port)
        try:
            r = b.request("POST", "/support/webhook", raw=body, headers={
                "Content-Type": "application/json", "X-Osbill-Delivery": "d-1",
                "X-Osbill-Event": "case.created", "X-Osbill-Signature": "t=%d,v1=%s" % (t, mac)})
        finally:
            b.close()
        self.assertEqual(r.status, 200, r)
        steps = {s["id"]: s for s in o["steps"]}
        self.assertTrue(steps["broker"]["complete"], steps["broker"])
        self.assertEqual(steps["docs_and_listing"]["missing"], ["listing_review"])
        self.assertEqual(steps["offering"]["missing"], [])
        # A second define on the same platform refuses cleanly (the service name is taken).
        again = subprocess.run([SCRIPT, "define", p.url, p.init["api_key"], "http://127.0.0.1:1",
                                os.path.join(tmp, "s2.json"), os.path.join(tmp, "c2.json")],
                               capture_output=True, text=True, timeout=120)
        self.assertEqual(again.returncode, 1)
        self.assertIn("409", again.stderr)


if __name__ == "__main__":
    unittest.main()
