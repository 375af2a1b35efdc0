"""The resource controller's second half over HTTP, against a real osbill serve and a real
starter broker: resource keys (bindings whose credentials work against the service's data
API), plan changes and parameter updates dated in the plan history, parameters checked
against the plan's schemas, account suspension and reactivation through /bluemix_v1, and
reclamation (a deleted instance kept disabled, restored or reclaimed).

The platform runs with its default reclamation period (7 days): deleting an instance here
schedules its reclamation, as it does for a real consumer."""

import base64
import os
import time
import unittest
import urllib.parse

from harness import (LITE, PREMIUM, SERVICE_ID, STANDARD, AccountsTest, Broker, Client, Platform,
                     make_accounts, starter_offering)

REGION = "us-south"
BEARER_REGION = "eu-gb"  # a broker there takes the platform's bearer token, not Basic


def q(s):
    return urllib.parse.quote(s, safe="")


class LifecycleTest(AccountsTest):

    @classmethod
    def setUpClass(cls):
        cls.p = Platform().start()
        cls.broker = Broker(async_seconds=1).start()
        cls.bearer_broker = None
        try:
            cls.bearer_broker = Broker(extra=["--platform", cls.p.url, "--token-client-id",
                                              "resource-controller"]).start()
            cls._setup()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _setup(cls):
        c = cls.p.client()
        cls.op_token = c.apikey_token(cls.p.init["api_key"])
        cls.accounts = make_accounts(
            c, cls.op_token, (("kvcorp", "provider"),
                              ("hooli", "consumer"),
                              ("piedpiper", "consumer")))
        tok = cls.accounts["kvcorp"]["token"]
        starter_offering(c, tok, cls.broker, REGION,
                         allow=[cls.accounts[who]["id"] for who in ("hooli", "piedpiper")])

        def ok(r):
            assert r.status in (200, 201, 204), r
            return r.json

        ok(c.call("POST", "/v1/offerings/%s/brokers" % SERVICE_ID, token=tok,
                  body={"region": BEARER_REGION,
                        "url": "http://127.0.0.1:%d" % cls.bearer_broker.port,
                        "auth": {"type": "bearer"}}))
        ok(c.call("PUT", "/v1/offerings/%s/plans/%s/deployments/%s"
                  % (SERVICE_ID, LITE, BEARER_REGION), token=tok))
        c.close()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.broker.stop()
            if cls.bearer_broker:
                cls.bearer_broker.stop()
            cls.p.stop()
        finally:
            cls.broker.cleanup()
            if cls.bearer_broker:
                cls.bearer_broker.cleanup()
            cls.p.cleanup()

    def setUp(self):
        super().setUp()
        self.osb = self.broker.client()

    def tearDown(self):
        self.osb.close()
        super().tearDown()

    # ------------------------------------------------------------ helpers

    def create(self, plan=LITE, who="hooli", status=201, **extra):
        body = {"name": "inst-%s" % os.urandom(3).hex(), "target": REGION,
                "resource_plan_id": plan}
        body.update(extra)
        r = self.call(who, "POST", "/v2/resource_instances", body)
        self.assertEqual(r.status, status, r)
        return r.json

    def get(self, guid, who="hooli"):
        return self.call(who, "GET", "/v2/resource_instances/" + q(guid))

    def wait(self, guid, pred, what, who="hooli", timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.get(guid, who)
            self.assertEqual(r.status, 200, r)
            if pred(r.json):
                return r.json
            time.sleep(0.1)
        raise AssertionError("instance %s: %s not reached: %r" % (guid, what, r))

    def broker_state(self, crn):
        r = self.osb.call("GET", "/bluemix_v1/service_instances/" + q(crn))
        self.assertEqual(r.status, 200, r)
        return r.json

    def wait_enabled(self, crn, enabled, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.broker_state(crn)["enabled"] == enabled:
                return
            time.sleep(0.1)
        self.fail("broker never saw %s enabled=%s" % (crn, enabled))

    def key(self, instance, who="hooli", status=201, **extra):
        body = {"name": "key-%s" % os.urandom(3).hex(), "source": instance}
        body.update(extra)
        r = self.call(who, "POST", "/v2/resource_keys", body)
        self.assertEqual(r.status, status, r)
        return r.json

    def data(self, creds, method, name, body=None):
        """The service's own data API with a key's credentials."""
        u = urllib.parse.urlsplit(creds["url"])
        cl = Client(u.port)
        try:
            return cl.request(method, u.path + "/" + name, raw=body,
                              headers={"X-Api-Key": creds["apikey"]})
        finally:
            cl.close()

    def reclamation(self, guid, who="hooli"):
        r = self.call(who, "GET", "/v1/reclamations", query={"resource_instance_id": guid})
        self.assertEqual(r.status, 200, r)
        return r.json["resources"]

    # ------------------------------------------------------------ keys

    def test_key_credentials_work_and_belong_to_the_owner(self):
        inst = self.create(LITE)
        k = self.key(inst["guid"], role="Writer")
        self.assertEqual((k["state"], k["role"], k["source_crn"]), ("active", "Writer",
                                                                    inst["crn"]), k)
        self.assertTrue(k["crn"].endswith(":resource-key:" + k["guid"]), k)
        self.assertEqual((k["last_operation"]["type"], k["last_operation"]["state"]),
                         ("create", "succeeded"), k)
        creds = k["credentials"]
        self.assertIn("apikey", creds)
        self.assertEqual(self.data(creds, "PUT", "greeting", b"hello").status, 204)
        r = self.data(creds, "GET", "greeting")
        self.assertEqual((r.status, r.raw), (200, b"hello"), r)

        # the broker holds the binding under the key's CRN
        r = self.osb.call("GET", "/v2/service_instances/%s/service_bindings/%s"
                          % (q(inst["crn"]), q(k["crn"])))
        self.assertEqual((r.status, r.json["credentials"]["apikey"]), (200, creds["apikey"]), r)

        # read by guid or CRN: with credentials for its account, never for another
        for ident in (k["guid"], k["crn"]):
            r = self.call("hooli", "GET", "/v2/resource_keys/" + q(ident))
            self.assertEqual((r.status, r.json["credentials"]), (200, creds), r)
            self.assertEqual(self.call("piedpiper", "GET", "/v2/resource_keys/" + q(ident)).status,
                             404)
            self.assertEqual(self.call("piedpiper", "DELETE",
                                       "/v2/resource_keys/" + q(ident)).status, 404)
        r = self.call("operator", "GET", "/v2/resource_keys/" + k["guid"])
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("credentials", r.json)
        self.assertEqual(self.call("piedpiper", "POST", "/v2/resource_keys",
                                   {"name": "steal", "source": inst["guid"]}).json["errors"][0]
                         ["target"], "source")
        lst = self.call("hooli", "GET", "/v2/resource_keys", query={"source": inst["guid"]})
        self.assertEqual([x["guid"] for x in lst.json["resources"]], [k["guid"]], lst)
        self.assertNotIn("credentials", lst.json["resources"][0])
        self.assertEqual(self.call("piedpiper", "GET", "/v2/resource_keys").json["resources"], [])

        # an instance with keys is deleted only recursively
        r = self.call("hooli", "DELETE", "/v2/resource_instances/" + inst["guid"])
        self.assertEqual((r.status, r.json["errors"][0]["code"]), (409, "instance_has_keys"), r)

        r = self.call("hooli", "DELETE", "/v2/resource_keys/" + k["guid"])
        self.assertEqual(r.status, 204, r)
        r = self.osb.call("GET", "/v2/service_instances/%s/service_bindings/%s"
                          % (q(inst["crn"]), q(k["crn"])))
        self.assertEqual(r.status, 404, r)
        self.assertEqual(self.data(creds, "GET", "greeting").status, 401)
        gone = self.call("hooli", "GET", "/v2/resource_keys/" + k["guid"]).json
        self.assertEqual((gone["state"], gone["credentials"]), ("removed", None), gone)
        self.assertEqual((gone["last_operation"]["type"], gone["last_operation"]["state"]),
                         ("delete", "succeeded"), gone)
        self.assertIsNotNone(gone["deleted_at"])
        # the instance's own last operation is still its create's
        self.assertEqual(self.get(inst["guid"]).json["last_operation"]["type"], "create")
        self.assertEqual(self.call("hooli", "DELETE", "/v2/resource_keys/" + k["guid"]).status,
                         410)

    def test_key_errors_name_the_field(self):
        inst = self.create(LITE)

        def post(**kw):
            body = {"name": "k", "source": inst["guid"]}
            body.update(kw)
            for f in [f for f, v in body.items() if v is None]:
                del body[f]
            return self.call("hooli", "POST", "/v2/resource_keys", body)

        for kw, target in (({"name": None}, "name"), ({"name": ""}, "name"),
                           ({"source": None}, "source"), ({"source": "nope"}, "source"),
                           ({"role": "Owner"}, "role"), ({"role": 7}, "role"),
                           ({"parameters": "x"}, "parameters"),
                           ({"parameters": {"role": "admin"}}, "parameters")):
            r = post(**kw)
            self.assertEqual((r.status, r.json["errors"][0]["target"]), (400, target), (kw, r))
        self.assertEqual(self.call("hooli", "GET", "/v2/resource_keys",
                                   query={"source": inst["guid"]}).json["resources"], [])
        # a role CRN is understood
        k = self.key(inst["guid"], role="crn:v1:bluemix:public:iam::::serviceRole:Reader",
                     parameters={"role": "reader"})
        self.assertEqual((k["role"], k["credentials"].get("role")), ("Reader", "reader"), k)
        self.assertEqual(self.call("hooli", "DELETE", "/v2/resource_keys/" + k["guid"]).status,
                         204)

    def test_recursive_delete_unbinds_first(self):
        inst = self.create(STANDARD)
        keys = [self.key(inst["guid"]) for _ in range(2)]
        r = self.call("hooli", "DELETE", "/v2/resource_instances/" + inst["guid"],
                      query={"recursive": "true"})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["state"], "pending_reclamation", r)
        recl = self.reclamation(inst["guid"])
        r = self.call("hooli", "POST", "/v1/reclamations/%s/actions/reclaim" % recl[0]["id"])
        self.assertEqual(r.status, 202, r)
        self.wait(inst["guid"], lambda j: j["state"] == "removed", "removed")
        for k in keys:
            r = self.call("hooli", "GET", "/v2/resource_keys/" + k["guid"])
            self.assertEqual(r.json["state"], "removed", r)
            r = self.osb.call("GET", "/v2/service_instances/%s/service_bindings/%s"
                              % (q(inst["crn"]), q(k["crn"])))
            self.assertIn(r.status, (404, 410), r)
        self.assertEqual(self.osb.call("GET", "/v2/service_instances/" + q(inst["crn"])).status,
                         404)
        self.assertEqual(self.reclamation(inst["guid"])[0]["state"], "RECLAIMED")

    def test_bearer_broker(self):
        """A broker registered for bearer authentication gets the platform's own token
        (client resource-controller) on every call, and Basic credentials never."""
        inst = self.create(LITE, target=BEARER_REGION)
        self.assertEqual((inst["state"], inst["region_id"]), ("active", BEARER_REGION), inst)
        k = self.key(inst["guid"])
        self.assertIn("apikey", k["credentials"])
        # the platform knows no Basic credentials of this broker: its token made the instance
        osb = self.bearer_broker.client()
        self.addCleanup(osb.close)
        r = osb.call("GET", "/v2/service_instances/" + q(inst["crn"]))
        self.assertEqual((r.status, r.json["plan_id"]), (200, LITE), r)
        self.assertEqual(self.call("hooli", "DELETE", "/v2/resource_keys/" + k["guid"]).status,
                         204)
        r = self.call("hooli", "DELETE", "/v2/resource_instances/" + inst["guid"])
        self.assertEqual(r.status, 202, r)
        recl = self.reclamation(inst["guid"])
        r = self.call("hooli", "POST", "/v1/reclamations/%s/actions/reclaim" % recl[0]["id"])
        self.assertEqual(r.status, 202, r)
        self.wait(inst["guid"], lambda j: j["state"] == "removed", "removed")

    # ------------------------------------------------------------ updates

    def test_plan_change_and_parameters(self):
        inst = self.create(LITE, parameters={"max_keys": 5})
        self.assertEqual([h["resource_plan_id"] for h in inst["plan_history"]], [LITE])
        # refused before the broker: lite's update schema, a plan of nothing, nothing to change
        for body, target in (({"parameters": {"max_keys": 0}}, "parameters"),
                             ({"parameters": {"colour": "red"}}, "parameters"),
                             ({"resource_plan_id": "no-such-plan"}, "resource_plan_id"),
                             ({"resource_plan_id": 3}, "resource_plan_id"),
                             ({"name": ""}, "name"), ({}, "name")):
            r = self.call("hooli", "PATCH", "/v2/resource_instances/" + inst["guid"], body)
            self.assertEqual(r.status, 400, (body, r))
            self.assertEqual(r.json["errors"][0]["target"], target, (body, r))
        r = self.call("hooli", "PATCH", "/v2/resource_instances/" + inst["guid"],
                      {"resource_plan_id": STANDARD, "parameters": {"max_keys": 50}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["resource_plan_id"], r.json["parameters"]),
                         (STANDARD, {"max_keys": 50}), r)
        self.assertEqual(r.json["last_operation"]["type"], "update")
        hist = r.json["plan_history"]
        self.assertEqual([h["resource_plan_id"] for h in hist], [LITE, STANDARD], hist)
        self.assertLess(hist[0]["from"], hist[1]["from"])
        b = self.osb.call("GET", "/v2/service_instances/" + q(inst["crn"]))
        self.assertEqual((b.json["plan_id"], b.json["parameters"]["max_keys"]), (STANDARD, 50), b)

        # a rename changes nothing at the broker
        r = self.call("hooli", "PATCH", "/v2/resource_instances/" + inst["guid"],
                      {"name": "renamed"})
        self.assertEqual((r.status, r.json["name"], r.json["resource_plan_id"]),
                         (200, "renamed", STANDARD), r)

        # refused by the broker: the instance stays as it was
        for n in range(3):
            self.assertEqual(self.call("hooli", "POST", "/v2/resource_keys",
                                       {"name": "k%d" % n, "source": inst["guid"]}).status, 201)
        keys = self.call("hooli", "GET", "/v2/resource_keys",
                         query={"source": inst["guid"]}).json["resources"]
        creds = self.call("hooli", "GET", "/v2/resource_keys/" + keys[0]["guid"]).json[
            "credentials"]
        for n in range(3):
            self.assertEqual(self.data(creds, "PUT", "k%d" % n, b"v").status, 204)
        r = self.call("hooli", "PATCH", "/v2/resource_instances/" + inst["guid"],
                      {"parameters": {"max_keys": 2}})
        self.assertEqual(r.status, 422, r)
        self.assertIn("broker", r.json["errors"][0]["message"])
        now = self.get(inst["guid"]).json
        self.assertEqual((now["state"], now["parameters"], now["last_operation"]["state"]),
                         ("active", {"max_keys": 50}, "failed"), now)
        self.assertEqual(self.call("piedpiper", "PATCH", "/v2/resource_instances/" +
                                   inst["guid"], {"name": "mine"}).status, 404)

    def test_async_plan_change_is_polled(self):
        inst = self.create(STANDARD)
        r = self.call("hooli", "PATCH", "/v2/resource_instances/" + inst["guid"],
                      {"resource_plan_id": PREMIUM})
        self.assertIn(r.status, (200, 202), r)
        done = self.wait(inst["guid"], lambda j: j["last_operation"]["type"] == "update" and
                         j["last_operation"]["state"] != "in progress", "update done")
        self.assertEqual((done["resource_plan_id"], done["last_operation"]["state"]),
                         (PREMIUM, "succeeded"), done)

    def test_create_parameters_checked_against_the_schema(self):
        r = self.call("hooli", "POST", "/v2/resource_instances",
                      {"name": "bad", "target": REGION, "resource_plan_id": LITE,
                       "parameters": {"max_keys": "many"}})
        self.assertEqual((r.status, r.json["errors"][0]["target"]), (400, "parameters"), r)
        self.assertIn("max_keys", r.json["errors"][0]["message"])
        names = [i["name"] for i in self.call("hooli", "GET", "/v2/resource_instances",
                                              query={"state": "failed"}).json["resources"]]
        self.assertNotIn("bad", names)

    # ------------------------------------------------------------ suspension

    def test_suspension_disables_and_reactivation_enables(self):
        acct = self.accounts["piedpiper"]["id"]
        inst = self.create(LITE, who="piedpiper")
        k = self.key(inst["guid"], who="piedpiper")
        self.assertEqual(self.data(k["credentials"], "PUT", "x", b"1").status, 204)
        self.assertEqual(self.call("piedpiper", "POST",
                                   "/v1/accounts/%s/suspend" % acct).status, 403)
        r = self.call("operator", "POST", "/v1/accounts/%s/suspend" % acct)
        self.assertEqual((r.status, r.json["state"]), (200, "suspended"), r)
        try:
            self.wait(inst["guid"], lambda j: j["state"] == "inactive", "inactive",
                      who="operator")
            self.wait_enabled(inst["crn"], False)
            self.assertEqual(self.data(k["credentials"], "GET", "x").status, 403)
            a = self.call("operator", "GET", "/v1/accounts/" + acct)
            self.assertEqual(a.json["state"], "suspended", a)
        finally:
            r = self.call("operator", "POST", "/v1/accounts/%s/reactivate" % acct)
            self.assertEqual((r.status, r.json["state"]), (200, "active"), r)
        self.wait(inst["guid"], lambda j: j["state"] == "active", "active", who="operator")
        self.wait_enabled(inst["crn"], True)
        r = self.data(k["credentials"], "GET", "x")
        self.assertEqual((r.status, r.raw), (200, b"1"), r)
        self.assertEqual(self.call("operator", "POST",
                                   "/v1/accounts/no-such-account/suspend").status, 404)

    # ------------------------------------------------------------ reclamation

    def test_reclamation_restore(self):
        inst = self.create(LITE)
        r = self.call("hooli", "DELETE", "/v2/resource_instances/" + inst["guid"])
        self.assertEqual((r.status, r.json["state"]), (202, "pending_reclamation"), r)
        self.wait_enabled(inst["crn"], False)
        recl = self.reclamation(inst["guid"])
        self.assertEqual(len(recl), 1, recl)
        self.assertEqual((recl[0]["state"], recl[0]["resource_instance_crn"]),
                         ("SCHEDULED", inst["crn"]))
        # about seven days from now
        self.assertEqual(self.reclamation(inst["guid"], who="piedpiper"), [])
        self.assertEqual(self.call("piedpiper", "POST", "/v1/reclamations/%s/actions/restore"
                                   % recl[0]["id"]).status, 404)
        again = self.call("hooli", "DELETE", "/v2/resource_instances/" + inst["guid"])
        self.assertEqual(again.status, 409, again)
        self.assertEqual(self.call("hooli", "POST", "/v1/reclamations/%s/actions/burn"
                                   % recl[0]["id"]).status, 400)
        r = self.call("hooli", "POST", "/v1/reclamations/%s/actions/restore" % recl[0]["id"])
        self.assertEqual(r.status, 200, r)
        self.assertIn(r.json["state"], ("RESTORING", "RESTORED"), r)
        self.wait(inst["guid"], lambda j: j["state"] == "active", "active")
        self.wait_enabled(inst["crn"], True)
        deadline = time.time() + 10
        while self.reclamation(inst["guid"])[0]["state"] != "RESTORED":
            self.assertLess(time.time(), deadline, self.reclamation(inst["guid"]))
            time.sleep(0.1)
        self.assertEqual(self.call("hooli", "POST", "/v1/reclamations/%s/actions/reclaim"
                                   % recl[0]["id"]).status, 409)
        # the broker still has it, as it was
        self.assertEqual(self.osb.call("GET", "/v2/service_instances/" + q(inst["crn"])).status,
                         200)
        # every state it went through, dated, in order
        hist = self.get(inst["guid"]).json["state_history"]
        self.assertEqual([h["state"] for h in hist],
                         ["provisioning", "active", "pending_reclamation", "active"], hist)
        self.assertEqual([h["from"] for h in hist], sorted(h["from"] for h in hist))


if __name__ == "__main__":
    unittest.main()
