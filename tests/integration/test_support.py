"""Support cases end to end: a real osbill serve and the starter broker as the provider's
support webhook receiver (--support-secret). A consumer's case about an instance of the
provider's offering reaches the webhook signed (HMAC-SHA256 over the time and the body); the
receiver refuses tampered, replayed, stale and unsigned deliveries; a webhook that is down
gets the case once it is back; updates flow both ways (the provider answers through the API,
the consumer's answers are delivered); each account sees only its own cases, a provider only
those about its offerings; the first-response targets show as missed to the operator."""

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import (SERVICE_ID, STANDARD, API_CALLS_METRIC, AccountsTest, Broker, Client,
                     Platform, basic, free_port, make_accounts, metered_offering)

REGION = "us-south"
SUPPORT = {"url": "https://kv.example.com/support", "email": "support@kv.example.com",
           "hours": "24x7", "severity_targets": {"1": 30, "2": 120, "3": 480, "4": 1440}}


def sign(secret, body, t=None):
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), b"%d." % t + body, hashlib.sha256).hexdigest()
    return "t=%d,v1=%s" % (t, mac)


class SupportTest(AccountsTest):

    @classmethod
    def setUpClass(cls):
        cls.p = Platform(extra=["--support-retry-max", "2"]).start()
        cls.broker = Broker()
        cls.broker.argv[cls.broker.argv.index("127.0.0.1:0")] = "127.0.0.1:%d" % free_port()
        cls.broker.start()
        try:
            cls._setup()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _setup(cls):
        c = cls.p.client()
        cls.op_token = c.apikey_token(cls.p.init["api_key"])
        cls.accounts = make_accounts(c, cls.op_token, (("acme", "provider"),
                                                       ("hooli", "provider"),
                                                       ("initech", "consumer"),
                                                       ("globex", "consumer")))
        tok = cls.accounts["acme"]["token"]
        metered_offering(c, tok, cls.broker, REGION, {STANDARD: ("standard", [API_CALLS_METRIC])},
                         allow=[cls.accounts["initech"]["id"], cls.accounts["globex"]["id"]])
        r = c.call("PATCH", "/v1/offerings/%s" % SERVICE_ID, token=tok, body={"support": SUPPORT})
        assert r.status == 200, r
        # The provider's service ID answers cases too, as the provider's own systems would.
        r = c.call("POST", "/v1/offerings/%s/iam" % SERVICE_ID, token=tok)
        assert r.status in (200, 201), r
        cls.service_token = c.apikey_token(r.json["apikey"]["apikey"])
        # The webhook: the starter broker, with the secret shown once.
        cls.hook = "http://127.0.0.1:%d/support/webhook" % cls.broker.port
        r = c.call("PUT", "/v1/offerings/%s/support/webhook" % SERVICE_ID, token=tok,
                   body={"url": cls.hook})
        assert r.status == 201, r
        cls.secret = r.json["secret"]
        cls.broker.stop()
        cls.broker.env = {"OSB_SUPPORT_SECRET": cls.secret}
        cls.broker.start()
        # initech's instance of the offering
        r = c.call("POST", "/v2/resource_instances", token=cls.accounts["initech"]["token"],
                   body={"name": "kv-1", "target": REGION, "resource_plan_id": STANDARD})
        assert r.status in (201, 202), r
        cls.instance = r.json
        c.close()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.broker.stop()
            cls.p.stop()
        finally:
            cls.broker.cleanup()
            cls.p.cleanup()

    # ------------------------------------------------------------ helpers

    def open_case(self, who="initech", instance=True, **over):
        body = {"severity": 2, "subject": "Writes fail", "description": "PUT answers 500."}
        if instance:
            body["instance_id"] = self.instance["guid"]
        body.update(over)
        r = self.call(who, "POST", "/v1/support/cases", body)
        self.assertEqual(r.status, 201, r)
        return r.json

    def received(self):
        b = Client(self.broker.port)
        try:
            r = b.request("GET", "/support/cases",
                          headers={"Authorization": basic(self.broker.user,
                                                          self.broker.password)})
        finally:
            b.close()
        self.assertEqual(r.status, 200, r)
        return r.json

    def until(self, pred, what, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = pred()
            if v:
                return v
            time.sleep(0.1)
        self.fail("not reached: %s (platform log: %s)" % (what, self.p.log()[-2000:]))

    def deliveries_of(self, case_id):
        return [d for d in self.received() if d["case_id"] == case_id]

    def post_hook(self, body, headers):
        b = Client(self.broker.port)
        try:
            return b.request("POST", "/support/webhook", raw=body,
                             headers=dict({"Content-Type": "application/json"}, **headers))
        finally:
            b.close()

    # ------------------------------------------------------------ delivery

    def test_a_case_reaches_the_webhook_signed(self):
        case = self.open_case(severity=1, subject="Down", description="Nothing answers.")
        self.assertEqual((case["status"], case["routed_to"], case["provider_account_id"],
                          case["offering_id"], case["instance_id"], case["account_id"]),
                         ("new", "provider", self.accounts["acme"]["id"], SERVICE_ID,
                          self.instance["guid"], self.accounts["initech"]["id"]))
        # the provider's own support, from the offering's public support model
        self.assertEqual(case["provider_support"], {k: SUPPORT[k] for k in ("url", "email",
                                                                            "hours")})
        # severity 1's target: 30 minutes from opening
        self.assertEqual(case["first_response"]["missed"], False)
        self.assertIsNotNone(case["first_response"]["due_at"])
        got = self.until(lambda: self.deliveries_of(case["id"]), "the case at the webhook")
        self.assertEqual(len(got), 1, got)
        d = got[0]
        self.assertEqual((d["event"], d["received"]), ("case.created", 1))
        self.assertEqual(d["payload"]["case"]["subject"], "Down")
        self.assertEqual(d["payload"]["update"]["seq"], 1)
        self.assertEqual(d["payload"]["answer_at"], "/v1/support/cases/%s/updates" % case["id"])
        # the platform's record of it, for the provider and the operator
        for who in ("acme", "operator"):
            r = self.call(who, "GET", "/v1/support/cases/%s" % case["id"])
            self.assertEqual(r.status, 200, r)
            ds = r.json["deliveries"]
            self.until(lambda: self.call(who, "GET", "/v1/support/cases/%s" % case["id"]).json[
                "deliveries"][0]["state"] == "delivered", "delivered on the platform")
        r = self.call("acme", "GET", "/v1/support/cases/%s" % case["id"])
        ds = r.json["deliveries"]
        self.assertEqual((ds[0]["event"], ds[0]["state"], ds[0]["attempts"],
                          ds[0]["last_attempt"]["status"]), ("case.created", "delivered", 1, 200))
        # the consumer sees its case and updates, not the deliveries
        r = self.call("initech", "GET", "/v1/support/cases/%s" % case["id"])
        self.assertNotIn("deliveries", r.json)
        self.assertEqual([u["side"] for u in r.json["updates"]], ["consumer"])
        # the secret is nowhere in the platform's log
        self.assertNotIn(self.secret, self.p.log())

    def test_the_receiver_refuses_what_the_platform_did_not_sign(self):
        body = json.dumps({"event": "case.created", "delivery_id": "d-test-1",
                           "case": {"id": "c-test", "subject": "Forged?"},
                           "update": {"seq": 1}}).encode()
        hdr = {"X-Osbill-Delivery": "d-test-1", "X-Osbill-Event": "case.created"}
        good = sign(self.secret, body)
        r = self.post_hook(body, dict(hdr, **{"X-Osbill-Signature": good}))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"received": "d-test-1", "again": False})
        # the very same request again: a replay
        r = self.post_hook(body, dict(hdr, **{"X-Osbill-Signature": good}))
        self.assertEqual(r.status, 409, r)
        # tampered: one byte of the body, or the signature, or another secret
        r = self.post_hook(body.replace(b"Forged?", b"Forged!"),
                           dict(hdr, **{"X-Osbill-Signature": good}))
        self.assertEqual(r.status, 401, r)
        flipped = good[:-1] + ("0" if good[-1] != "0" else "1")
        r = self.post_hook(body, dict(hdr, **{"X-Osbill-Signature": flipped}))
        self.assertEqual(r.status, 401, r)
        r = self.post_hook(body, dict(hdr, **{"X-Osbill-Signature": sign("whsec_other", body)}))
        self.assertEqual(r.status, 401, r)
        # outside the replay window, either way
        for t in (int(time.time()) - 301, int(time.time()) + 301):
            r = self.post_hook(body, dict(hdr, **{"X-Osbill-Signature": sign(self.secret, body,
                                                                             t)}))
            self.assertEqual(r.status, 401, (t, r))
        for bad in (None, "", "v1=abc", "t=1,v1=zz", "t=x,v1=" + "0" * 64):
            h = dict(hdr)
            if bad is not None:
                h["X-Osbill-Signature"] = bad
            self.assertEqual(self.post_hook(body, h).status, 401, bad)
        # the platform retrying a delivery (a new time) is acknowledged again, once stored
        time.sleep(1.1)
        r = self.post_hook(body, dict(hdr, **{"X-Osbill-Signature": sign(self.secret, body)}))
        self.assertEqual((r.status, r.json["again"]), (200, True), r)
        self.assertEqual([d["received"] for d in self.received()
                          if d["delivery_id"] == "d-test-1"], [2])

    def test_a_webhook_that_is_down_gets_the_case_once_back(self):
        self.broker.stop()
        try:
            case = self.open_case(subject="While you were out")

            def failing():
                r = self.call("acme", "GET", "/v1/support/cases/%s" % case["id"])
                ds = r.json["deliveries"]
                return ds and ds[0]["attempts"] >= 2 and ds[0]["last_attempt"] and ds[0]
            d = self.until(failing, "two failed attempts")
            self.assertEqual(d["state"], "pending")
            self.assertEqual(d["last_attempt"]["status"], None)
            self.assertEqual(d["last_attempt"]["error"], "connect")
        finally:
            self.broker.start()
        got = self.until(lambda: self.deliveries_of(case["id"]), "the case after the outage")
        self.assertEqual([x["event"] for x in got], ["case.created"])
        d = self.until(lambda: (lambda x: x["state"] == "delivered" and x)(self.call(
            "acme", "GET", "/v1/support/cases/%s" % case["id"]).json["deliveries"][0]),
            "delivered after the outage")
        self.assertGreaterEqual(d["attempts"], 3)
        self.assertIn("delivering case %s's update 1" % case["id"], self.p.log())

    def test_updates_flow_both_ways(self):
        case = self.open_case(subject="Slow reads")
        cid = case["id"]
        path = "/v1/support/cases/%s/updates" % cid
        # the provider answers through the API (its user, then its service ID)
        r = self.call("acme", "POST", path, {"comment": "Which region?",
                                             "status": "waiting_on_client"})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["status"], "waiting_on_client")
        self.assertIsNotNone(r.json["first_response"]["responded_at"])
        self.assertFalse(r.json["first_response"]["missed"])
        # the consumer reads it, and answers: back in progress, delivered to the webhook
        r = self.call("initech", "GET", "/v1/support/cases/%s" % cid)
        ups = r.json["updates"]
        self.assertEqual([(u["seq"], u["side"], u["status_to"]) for u in ups],
                         [(1, "consumer", "new"), (2, "provider", "waiting_on_client")])
        self.assertEqual(ups[1]["comment"], "Which region?")
        r = self.call("initech", "POST", path, {"comment": "us-south"})
        self.assertEqual((r.status, r.json["status"]), (201, "in_progress"), r)
        got = self.until(lambda: len(self.deliveries_of(cid)) == 2 and self.deliveries_of(cid),
                         "the consumer's answer at the webhook")
        self.assertEqual([(d["event"], d["payload"]["update"]["seq"],
                           d["payload"]["update"]["side"]) for d in got],
                         [("case.created", 1, "consumer"), ("case.updated", 3, "consumer")])
        self.assertEqual(got[1]["payload"]["update"]["comment"], "us-south")
        self.assertEqual(got[1]["payload"]["case"]["status"], "in_progress")
        c = Client(self.p.port)
        r = c.request("POST", path, body={"comment": "Fixed a slow disk.", "status": "resolved"},
                      headers={"Authorization": "Bearer " + self.service_token})
        c.close()
        self.assertEqual((r.status, r.json["status"]), (201, "resolved"), r)
        r = self.call("initech", "POST", path, {"status": "closed"})
        self.assertEqual((r.status, r.json["status"]), (201, "closed"), r)
        # a closed case takes nothing more, from anyone
        for who in ("initech", "acme", "operator"):
            r = self.call(who, "POST", path, {"comment": "one more thing"})
            self.assertEqual(r.status, 409, (who, r))
        r = self.call("initech", "GET", "/v1/support/cases/%s" % cid)
        self.assertEqual([(u["side"], u["status_from"], u["status_to"]) for u in
                          r.json["updates"]],
                         [("consumer", None, "new"), ("provider", "new", "waiting_on_client"),
                          ("consumer", "waiting_on_client", "in_progress"),
                          ("provider", "in_progress", "resolved"),
                          ("consumer", "resolved", "closed")])
        # the provider's own answers are not sent to its webhook: created, the consumer's
        # answer, the consumer's close
        self.until(lambda: len(self.deliveries_of(cid)) == 3, "the close at the webhook")
        self.assertEqual([d["payload"]["update"]["seq"] for d in self.deliveries_of(cid)],
                         [1, 3, 5])

    # ------------------------------------------------------------ isolation

    def test_each_sees_only_its_own(self):
        mine = self.open_case(subject="About my instance")
        platform = self.open_case(instance=False, subject="My invoice", severity=3,
                                  description="The invoice's total looks wrong.")
        self.assertEqual((platform["routed_to"], platform["provider_account_id"],
                          platform["offering_id"]), ("operator", None, None))
        self.assertIsNone(platform["first_response"]["due_at"])
        self.assertNotIn("provider_support", platform)

        def ids(who, **q):
            r = self.call(who, "GET", "/v1/support/cases", query=q or None)
            self.assertEqual(r.status, 200, r)
            return {c["id"] for c in r.json["resources"]}

        self.assertTrue({mine["id"], platform["id"]} <= ids("initech"))
        self.assertTrue({mine["id"], platform["id"]} <= ids("operator"))
        self.assertIn(mine["id"], ids("acme"))
        self.assertNotIn(platform["id"], ids("acme"))  # the platform's, not the provider's
        self.assertEqual(ids("hooli"), set())           # another provider: none of acme's
        self.assertFalse({mine["id"], platform["id"]} & ids("globex"))
        for who in ("globex", "hooli"):
            for cid in (mine["id"], platform["id"]):
                self.assertEqual(self.call(who, "GET", "/v1/support/cases/%s" % cid).status,
                                 404)
                self.assertEqual(self.call(who, "POST", "/v1/support/cases/%s/updates" % cid,
                                           {"comment": "me too"}).status, 404)
        r = self.call("acme", "GET", "/v1/support/cases/%s" % platform["id"])
        self.assertEqual(r.status, 404, r)
        # another account's instance is not one to open a case about
        r = self.call("globex", "POST", "/v1/support/cases",
                      {"severity": 3, "subject": "x", "description": "y",
                       "instance_id": self.instance["guid"]})
        self.assertEqual((r.status, r.json["errors"][0]["target"]), (404, "instance_id"), r)
        r = self.call("globex", "GET", "/v1/support/cases",
                      query={"account_id": self.accounts["initech"]["id"]})
        self.assertEqual(r.status, 403, r)
        # by CRN too, and filters
        crn = self.open_case(instance_id=self.instance["crn"], subject="By CRN")
        self.assertEqual(crn["instance_id"], self.instance["guid"])
        self.assertIn(crn["id"], ids("acme", instance_id=self.instance["guid"], status="new"))
        self.assertNotIn(crn["id"], ids("acme", status="closed"))
        # the operator answers the platform's case; the provider cannot
        r = self.call("operator", "POST", "/v1/support/cases/%s/updates" % platform["id"],
                      {"comment": "Looking at it."})
        self.assertEqual((r.status, r.json["status"]), (201, "in_progress"), r)
        # the webhook of another provider's offering is not acme's to see or set
        for method, body in (("GET", None), ("PUT", {"url": "https://evil.example/"}),
                             ("DELETE", None)):
            r = self.call("hooli", method, "/v1/offerings/%s/support/webhook" % SERVICE_ID,
                          body)
            self.assertEqual(r.status, 404, (method, r))

    def test_roles_limit_what_members_do(self):
        """A Viewer of the provider's account reads its cases but answers none and cannot
        touch the webhook; the offering's service ID answers cases but cannot redirect
        them; a consumer's Viewer reads its account's cases but opens none."""
        case = self.open_case(subject="Who may answer?")
        tokens = {}
        for who in ("acme", "initech"):
            acc = self.accounts[who]
            r = self.call(who, "POST", "/v1/users",
                          {"account_id": acc["id"], "email": "viewer@%s.example" % who,
                           "name": "Viewer", "password": "viewer-pass-1"})
            self.assertEqual(r.status, 201, r)
            key = self.call(who, "POST", "/v1/apikeys",
                            {"name": "viewer", "iam_id": r.json["iam_id"]}).json["apikey"]
            tokens[who] = self.c.apikey_token(key)
        path = "/v1/support/cases/%s" % case["id"]
        as_ = lambda tok, method, p, body=None: self.c.call(method, p, body=body, token=tok)
        self.assertEqual(as_(tokens["acme"], "GET", path).status, 200)
        r = as_(tokens["acme"], "POST", path + "/updates", {"comment": "a viewer's word"})
        self.assertEqual(r.status, 403, r)
        hook = "/v1/offerings/%s/support/webhook" % SERVICE_ID
        self.assertEqual(as_(tokens["acme"], "GET", hook).status, 200)
        for method, body in (("PUT", {"url": "https://elsewhere.example/"}), ("DELETE", None)):
            self.assertEqual(as_(tokens["acme"], method, hook, body).status, 403, method)
            self.assertEqual(as_(self.service_token, method, hook, body).status, 403, method)
        self.assertEqual(self.call("acme", "GET", hook).json["url"], self.hook)
        self.assertEqual(as_(tokens["initech"], "GET", path).status, 200)
        r = as_(tokens["initech"], "POST", "/v1/support/cases",
                {"severity": 4, "subject": "x", "description": "y"})
        self.assertEqual(r.status, 403, r)
        r = as_(tokens["initech"], "POST", path + "/updates", {"comment": "me too"})
        self.assertEqual(r.status, 403, r)
        # nothing of it changed the case
        r = self.call("initech", "GET", path)
        self.assertEqual([u["seq"] for u in r.json["updates"]], [1])

    def test_a_missed_first_response_shows_to_the_operator(self):
        late = self.open_case(severity=1, subject="Urgent and ignored")
        answered = self.open_case(severity=4, subject="A question")
        # the target passes (the clock moved on): moved back here, in the platform's file
        self.p.sql("UPDATE support_cases SET first_response_due_ms = created_ms - 1,"
                   " created_ms = created_ms - 3600000 WHERE id = ?", (late["id"],))
        r = self.call("operator", "GET", "/v1/support/cases", query={"first_response": "missed"})
        self.assertEqual(r.status, 200, r)
        missed = {c["id"]: c for c in r.json["resources"]}
        self.assertIn(late["id"], missed)
        self.assertNotIn(answered["id"], missed)
        self.assertTrue(missed[late["id"]]["first_response"]["missed"])
        # answering late does not undo it
        r = self.call("acme", "POST", "/v1/support/cases/%s/updates" % late["id"],
                      {"comment": "Sorry, on it."})
        self.assertTrue(r.json["first_response"]["missed"], r.json)
        r = self.call("acme", "POST", "/v1/support/cases/%s/updates" % answered["id"],
                      {"comment": "Here is how."})
        self.assertFalse(r.json["first_response"]["missed"], r.json)
        r = self.call("operator", "GET", "/v1/support/cases", query={"first_response": "missed"})
        ids = [c["id"] for c in r.json["resources"]]
        self.assertIn(late["id"], ids)
        self.assertNotIn(answered["id"], ids)

    # ------------------------------------------------------------ the CLI

    def osbill(self, who, *args, ok=True):
        home = self.homes.get(who)
        if home is None:
            home = self.homes[who] = tempfile.mkdtemp(prefix="osbill-case-cli-")
            self.addCleanup(shutil.rmtree, home, True)
            key = self.p.init["api_key"] if who == "operator" else self.accounts[who]["apikey"]
            self.osbill(who, "login", "--endpoint", self.p.url, "--apikey", key)
        r = subprocess.run([self.p.bin] + list(args), capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, OSBILL_HOME=home))
        if ok:
            self.assertEqual(r.returncode, 0, (args, r.stdout, r.stderr))
        return r

    def test_the_case_commands(self):
        self.homes = {}
        r = self.osbill("initech", "case", "create", "--severity", "2", "--subject",
                        "From the CLI", "--description", "Reads are slow.", "--instance",
                        self.instance["guid"], "--output", "json")
        case = json.loads(r.stdout)
        self.assertEqual((case["routed_to"], case["severity"]), ("provider", 2))
        r = self.osbill("initech", "case", "list")
        self.assertIn("From the CLI", r.stdout)
        self.assertRegex(r.stdout, r"(?m)^number +id +severity +status")
        # the provider answers; the consumer reads the answer in show
        r = self.osbill("acme", "case", "update", case["id"], "--comment",
                        "Which keys?\nAll of them?", "--status", "waiting_on_client")
        self.assertIn("waiting_on_client", r.stdout)
        r = self.osbill("initech", "case", "show", case["id"])
        self.assertIn("#2 ", r.stdout)
        self.assertIn("  Which keys?\n  All of them?\n", r.stdout)
        self.assertIn("new -> waiting_on_client", r.stdout)
        self.assertNotIn("deliveries", r.stdout)
        # the provider sees the delivery to its webhook
        self.until(lambda: "delivered" in self.osbill("acme", "case", "show", case["id"]).stdout,
                   "the delivery in case show")
        # the webhook: shown without its secret; rotating shows the new one once
        r = self.osbill("acme", "case", "webhook", "get", "--offering", SERVICE_ID)
        self.assertIn(self.hook, r.stdout)
        self.assertIn("X-Osbill-Signature", r.stdout)
        self.assertNotIn("whsec_", r.stdout)
        # what another account may not do, the CLI reports and exits non-zero
        r = self.osbill("globex", "case", "show", case["id"], ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("No such support case", r.stderr)
        r = self.osbill("initech", "case", "create", "--severity", "9", "--subject", "x",
                        "--description", "y", ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("severity", r.stderr)
        r = self.osbill("operator", "case", "list", "--missed", "--output", "json")
        self.assertNotIn(case["id"], [c["id"] for c in json.loads(r.stdout)["resources"]])

    # ------------------------------------------------------------ bad input

    def test_bad_input_changes_nothing(self):
        before = self.call("operator", "GET", "/v1/support/cases").json["rows_count"]
        good = {"severity": 2, "subject": "s", "description": "d",
                "instance_id": self.instance["guid"]}
        bad = [({**good, "severity": 0}, "severity"), ({**good, "severity": 5}, "severity"),
               ({**good, "severity": "2"}, "severity"), ({**good, "severity": 2.0}, "severity"),
               ({k: v for k, v in good.items() if k != "subject"}, "subject"),
               ({**good, "subject": ""}, "subject"), ({**good, "subject": "x" * 201}, "subject"),
               ({**good, "description": 7}, "description"),
               ({**good, "subject": "bell\u0007"}, "subject"),
               ({**good, "priority": "high"}, None), ({**good, "instance_id": 12}, "instance_id")]
        for body, target in bad:
            r = self.call("initech", "POST", "/v1/support/cases", body)
            self.assertEqual(r.status, 400, (body, r))
            if target:
                self.assertEqual(r.json["errors"][0]["target"], target, (body, r.json))
        r = self.c.request("POST", "/v1/support/cases", raw=b'{"severity": 2,',
                           headers={"Authorization": "Bearer " +
                                    self.accounts["initech"]["token"],
                                    "Content-Type": "application/json"})
        self.assertEqual(r.status, 400, r)
        r = self.c.request("POST", "/v1/support/cases", raw=b"[1]",
                           headers={"Authorization": "Bearer " +
                                    self.accounts["initech"]["token"],
                                    "Content-Type": "application/json"})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(self.c.request("POST", "/v1/support/cases", body=good).status, 401)
        r = self.c.request("POST", "/v1/support/cases", body=good,
                           headers={"Authorization": "Bearer forged.token.here"})
        self.assertEqual(r.status, 401, r)
        self.assertEqual(self.call("operator", "GET", "/v1/support/cases").json["rows_count"],
                         before)
        case = self.open_case()
        path = "/v1/support/cases/%s/updates" % case["id"]
        for body, status in (({}, 400), ({"status": "new"}, 400), ({"status": "done"}, 400),
                             ({"comment": ""}, 400), ({"comment": 3}, 400),
                             ({"status": "waiting_on_client"}, 400), ({"extra": 1}, 400)):
            r = self.call("initech", "POST", path, body)
            self.assertEqual(r.status, status, (body, r))
        self.assertEqual(self.call("initech", "POST", "/v1/support/cases/nope/updates",
                                   {"comment": "x"}).status, 404)
        self.assertEqual(len(self.call("initech", "GET", "/v1/support/cases/%s" % case["id"])
                             .json["updates"]), 1)
        for q in ({"status": "open"}, {"limit": "0"}, {"limit": "x"}, {"first_response": "ok"}):
            self.assertEqual(self.call("initech", "GET", "/v1/support/cases", query=q).status,
                             400, q)

    def test_the_webhook_setting(self):
        path = "/v1/offerings/%s/support/webhook" % SERVICE_ID
        r = self.call("acme", "GET", path)
        self.assertEqual((r.status, r.json["url"]), (200, self.hook), r)
        self.assertNotIn("secret", r.json)
        self.assertEqual(r.json["signature_header"], "X-Osbill-Signature")
        for body in ({"url": "ftp://x"}, {"url": ""}, {}, {"url": "https://u:p@hooks.example/"},
                     {"url": self.hook, "rotate_secret": 1}, {"url": self.hook, "secret": "mine"}):
            self.assertEqual(self.call("acme", "PUT", path, body).status, 400, body)
        # the same URL again keeps the secret (none shown); the stored one is sealed
        r = self.call("acme", "PUT", path, {"url": self.hook})
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("secret", r.json)
        [(sealed,)] = self.p.sql("SELECT secret_sealed FROM support_webhooks")
        self.assertNotIn(self.secret.encode(), bytes(sealed))
        self.assertNotIn(self.secret[6:].encode(), bytes(sealed))


if __name__ == "__main__":
    unittest.main()
