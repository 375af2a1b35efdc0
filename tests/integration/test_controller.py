"""The resource controller over HTTP against a real osbill serve and two real starter brokers:
instances created, read, listed and deleted through /v2/resource_instances, synchronously
(lite) and asynchronously (premium, polled by the platform), errors named by field, one
operation at a time per instance, isolation between accounts, a platform restart during an
async provision, and the instance_lifecycle evidence that completes onboarding step 5.

The starter-kv offering stays in limited visibility with the consumer account (initech)
allowlisted: that is how a provider tests before publication, and what step 5 asks for."""

import os
import time
import unittest
import urllib.parse

from bad_broker import BadBroker
from harness import (LITE, PREMIUM, SERVICE_ID, STANDARD, AccountsTest, Broker, Platform,
                     make_accounts)

FAST = "us-south"   # the starter broker with premium taking 1 s
SLOW = "eu-de"      # another one with premium taking 4 s: long enough to restart meanwhile


class ControllerTest(AccountsTest):

    @classmethod
    def setUpClass(cls):
        cls.p = Platform(extra=["--reclamation-period", "0"]).start()
        cls.brokers = {FAST: Broker(async_seconds=1).start(),
                       SLOW: Broker(async_seconds=4).start()}
        try:
            cls._setup()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _setup(cls):
        c = cls.p.client()
        cls.op_token = c.apikey_token(cls.p.init["api_key"])
        cls.accounts = make_accounts(
            c, cls.op_token, (("acme", "provider"),
                              ("initech", "consumer"),
                              ("globex", "consumer")))
        acme = cls.accounts["acme"]["token"]

        def ok(r, status=(200, 201, 204)):
            assert r.status in status, r
            return r.json

        ok(c.call("POST", "/v1/offerings", token=acme,
                  body={"id": SERVICE_ID, "name": "starter-kv", "display_name": "Starter KV"}))
        for name, pid in (("lite", LITE), ("standard", STANDARD), ("premium", PREMIUM)):
            ok(c.call("POST", "/v1/offerings/%s/plans" % SERVICE_ID, token=acme,
                      body={"id": pid, "name": name, "display_name": name.title(),
                            "kind": "lite" if name == "lite" else "subscription",
                            "description": "The %s plan." % name}))
        for region, b in cls.brokers.items():
            ok(c.call("POST", "/v1/offerings/%s/brokers" % SERVICE_ID, token=acme,
                      body={"region": region, "url": "http://127.0.0.1:%d" % b.port,
                            "auth": {"type": "basic", "username": b.user,
                                     "password": b.password}}))
        # lite and standard only where the fast broker runs; premium in both regions.
        for pid, region in ((LITE, FAST), (STANDARD, FAST), (PREMIUM, FAST), (PREMIUM, SLOW)):
            ok(c.call("PUT", "/v1/offerings/%s/plans/%s/deployments/%s"
                      % (SERVICE_ID, pid, region), token=acme))
        ok(c.call("POST", "/v1/offerings/%s/visibility" % SERVICE_ID, token=acme,
                  body={"visibility": "limited"}))
        ok(c.call("PUT", "/v1/offerings/%s/allowlist/%s"
                  % (SERVICE_ID, cls.accounts["initech"]["id"]), token=acme))

        # broken-kv: a broker whose provisions answer 500 (orphan mitigation)
        o = ok(c.call("POST", "/v1/offerings", token=acme,
                      body={"name": "broken-kv", "display_name": "Broken KV"}))
        pl = ok(c.call("POST", "/v1/offerings/%s/plans" % o["id"], token=acme,
                       body={"name": "lite", "display_name": "Lite", "kind": "lite",
                             "description": "The lite plan."}))
        cls.broken_plan = pl["id"]
        cls.bad = BadBroker(o["id"], "broken-kv",
                            [{"id": pl["id"], "name": "lite", "free": True, "bindable": True}],
                            mode="errors_500").start()
        ok(c.call("POST", "/v1/offerings/%s/brokers" % o["id"], token=acme,
                  body={"region": FAST, "url": "http://127.0.0.1:%d" % cls.bad.port,
                        "auth": {"type": "basic", "username": cls.bad.user,
                                 "password": cls.bad.password}}))
        ok(c.call("PUT", "/v1/offerings/%s/plans/%s/deployments/%s"
                  % (o["id"], pl["id"], FAST), token=acme))
        ok(c.call("POST", "/v1/offerings/%s/visibility" % o["id"], token=acme,
                  body={"visibility": "limited"}))
        ok(c.call("PUT", "/v1/offerings/%s/allowlist/%s"
                  % (o["id"], cls.accounts["initech"]["id"]), token=acme))
        c.close()

    @classmethod
    def tearDownClass(cls):
        try:
            if getattr(cls, "bad", None):
                cls.bad.stop()
            for b in cls.brokers.values():
                b.stop()
            cls.p.stop()
        finally:
            for b in cls.brokers.values():
                b.cleanup()
            cls.p.cleanup()

    # ------------------------------------------------------------ helpers

    def create(self, plan=LITE, region=FAST, who="initech", status=201, **extra):
        body = {"name": "inst-%s" % os.urandom(3).hex(), "target": region,
                "resource_plan_id": plan}
        body.update(extra)
        r = self.call(who, "POST", "/v2/resource_instances", body)
        self.assertEqual(r.status, status, r)
        return r.json

    def get(self, ident, who="initech"):
        return self.call(who, "GET", "/v2/resource_instances/" +
                         urllib.parse.quote(ident, safe=""))

    def wait_state(self, guid, state, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.get(guid)
            self.assertEqual(r.status, 200, r)
            if r.json["state"] == state:
                return r.json
            self.assertIn(r.json["state"], ("provisioning", "removing", "active"), r)
            time.sleep(0.2)
        raise AssertionError("instance %s not %s after %ss: %r" % (guid, state, timeout, r))

    def assertField(self, r, target, status=400):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.json["errors"][0]["target"], target, r)

    def step5(self):
        r = self.call("acme", "GET", "/v1/offerings/%s" % SERVICE_ID)
        self.assertEqual(r.status, 200, r)
        return [s for s in r.json["steps"] if s["step"] == 5][0]

    # ------------------------------------------------------------ tests

    def test_sync_lifecycle(self):
        inst = self.create(LITE, parameters={"max_keys": 5})
        guid = inst["guid"]
        self.assertEqual(inst["state"], "active", inst)
        self.assertEqual(inst["crn"], "crn:v1:osbill:public:starter-kv:%s:a/%s:%s::"
                         % (FAST, self.accounts["initech"]["id"], guid))
        self.assertEqual(inst["id"], inst["crn"])
        self.assertEqual((inst["resource_plan_id"], inst["resource_id"], inst["region_id"],
                          inst["resource_group_id"]), (LITE, SERVICE_ID, FAST, "default"))
        self.assertEqual(inst["parameters"], {"max_keys": 5})
        self.assertEqual(inst["last_operation"]["state"], "succeeded")

        # by guid and by URL-encoded CRN
        for ident in (guid, inst["crn"]):
            r = self.get(ident)
            self.assertEqual((r.status, r.json["guid"]), (200, guid), r)

        # the broker has it, under the CRN as its instance id
        osb = self.brokers[FAST].client()
        self.addCleanup(osb.close)
        r = osb.call("GET", "/v2/service_instances/" + osb.q(inst["crn"]))
        self.assertEqual((r.status, r.json["plan_id"], r.json["parameters"]),
                         (200, LITE, {"max_keys": 5}), r)

        lst = self.call("initech", "GET", "/v2/resource_instances")
        self.assertEqual(lst.status, 200, lst)
        self.assertIn(guid, [i["guid"] for i in lst.json["resources"]])
        self.assertEqual(lst.json["rows_count"], len(lst.json["resources"]))
        only = self.call("initech", "GET", "/v2/resource_instances",
                         query={"resource_plan_id": PREMIUM, "state": "active"})
        self.assertNotIn(guid, [i["guid"] for i in only.json["resources"]])
        named = self.call("initech", "GET", "/v2/resource_instances",
                          query={"name": inst["name"], "resource_id": SERVICE_ID,
                                 "resource_group_id": "default"})
        self.assertEqual([i["guid"] for i in named.json["resources"]], [guid], named)
        for q in ({"name": inst["name"] + "-not"}, {"resource_id": self.broken_plan},
                  {"resource_group_id": "other"}):
            r = self.call("initech", "GET", "/v2/resource_instances", query=q)
            self.assertNotIn(guid, [i["guid"] for i in r.json["resources"]], q)

        r = self.call("initech", "DELETE", "/v2/resource_instances/" + guid)
        self.assertEqual(r.status, 204, r)
        gone = self.get(guid).json
        self.assertEqual(gone["state"], "removed", gone)
        self.assertIsNotNone(gone["deleted_at"])
        r = osb.call("GET", "/v2/service_instances/" + osb.q(inst["crn"]))
        self.assertEqual(r.status, 404, r)
        lst = self.call("initech", "GET", "/v2/resource_instances")
        self.assertNotIn(guid, [i["guid"] for i in lst.json["resources"]])
        removed = self.call("initech", "GET", "/v2/resource_instances",
                            query={"state": "removed"})
        self.assertIn(guid, [i["guid"] for i in removed.json["resources"]])
        self.assertEqual(self.call("initech", "DELETE", "/v2/resource_instances/" + guid).status,
                         410)

    def test_paging(self):
        made = [self.create(STANDARD)["guid"] for _ in range(3)]
        seen, url, pages = [], "/v2/resource_instances?limit=2&resource_plan_id=" + STANDARD, 0
        while url:
            r = self.call("initech", "GET", url)
            self.assertEqual(r.status, 200, r)
            self.assertLessEqual(len(r.json["resources"]), 2)
            seen += [i["guid"] for i in r.json["resources"]]
            url, pages = r.json["next_url"], pages + 1
        self.assertGreaterEqual(pages, 2)
        self.assertEqual(len(seen), len(set(seen)))
        for g in made:
            self.assertIn(g, seen)
        self.assertField(self.call("initech", "GET", "/v2/resource_instances",
                                   query={"limit": "0"}), "limit")

    def test_async_create_and_delete(self):
        inst = self.create(PREMIUM, status=202)
        self.assertEqual(inst["state"], "provisioning", inst)
        done = self.wait_state(inst["guid"], "active")
        self.assertEqual(done["last_operation"]["state"], "succeeded")
        self.assertTrue(done["last_operation"]["async"])
        r = self.call("initech", "DELETE", "/v2/resource_instances/" + inst["guid"])
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["state"], "removing", r)
        self.wait_state(inst["guid"], "removed")

    def test_delete_while_provisioning_conflicts(self):
        inst = self.create(PREMIUM, status=202)
        r = self.call("initech", "DELETE", "/v2/resource_instances/" + inst["guid"])
        self.assertEqual(r.status, 409, r)
        self.assertEqual(r.json["errors"][0]["code"], "operation_in_progress")
        self.wait_state(inst["guid"], "active")
        r = self.call("initech", "DELETE", "/v2/resource_instances/" + inst["guid"])
        self.assertEqual(r.status, 202, r)
        # ... and a second DELETE while the first runs
        again = self.call("initech", "DELETE", "/v2/resource_instances/" + inst["guid"])
        self.assertEqual(again.status, 409, again)
        self.wait_state(inst["guid"], "removed")

    def test_other_accounts_see_nothing(self):
        inst = self.create(LITE)
        for ident in (inst["guid"], inst["crn"]):
            self.assertEqual(self.get(ident, who="globex").status, 404)
            r = self.call("globex", "DELETE", "/v2/resource_instances/" +
                          urllib.parse.quote(ident, safe=""))
            self.assertEqual(r.status, 404, r)
        lst = self.call("globex", "GET", "/v2/resource_instances")
        self.assertEqual((lst.status, lst.json["resources"]), (200, []), lst)
        self.assertEqual(self.c.call("GET", "/v2/resource_instances/" + inst["guid"]).status, 401)
        self.assertEqual(self.get(inst["guid"]).json["state"], "active")
        self.assertEqual(self.get("no-such-instance").status, 404)

    def test_request_errors_name_the_field(self):
        base = {"name": "x", "target": FAST, "resource_plan_id": LITE}

        def post(who="initech", **kw):
            body = dict(base)
            body.update(kw)
            for k in [k for k, v in body.items() if v is None]:
                del body[k]
            return self.call(who, "POST", "/v2/resource_instances", body)

        self.assertField(post(name=None), "name")
        self.assertField(post(name=""), "name")
        self.assertField(post(target=None), "target")
        self.assertField(post(resource_plan_id=None), "resource_plan_id")
        self.assertField(post(resource_plan_id="no-such-plan"), "resource_plan_id")
        self.assertField(post(parameters=[1]), "parameters")
        self.assertField(post(resource_group="bad group!"), "resource_group")
        # lite runs in us-south only
        self.assertField(post(target=SLOW), "target")
        self.assertField(post(target="ap-north"), "target")
        # globex is not on the allowlist: the plan does not exist for it
        self.assertField(post(who="globex"), "resource_plan_id")
        self.assertEqual(self.call("globex", "GET", "/v2/resource_instances",
                                   query={"state": "failed"}).json["resources"], [])
        self.assertEqual(self.c.call("POST", "/v2/resource_instances", body=base).status, 401)

    def test_parameters_refused_by_the_broker(self):
        r = self.call("initech", "POST", "/v2/resource_instances",
                      {"name": "too-big", "target": FAST, "resource_plan_id": LITE,
                       "parameters": {"max_keys": 1000}})
        self.assertEqual(r.status, 400, r)
        self.assertIn("broker", r.json["errors"][0]["message"])
        failed = self.call("initech", "GET", "/v2/resource_instances",
                           query={"state": "failed"}).json["resources"]
        mine = [i for i in failed if i["name"] == "too-big"]
        self.assertEqual(len(mine), 1, failed)
        self.assertEqual(mine[0]["last_operation"]["state"], "failed")
        # nothing was created at the broker: deleting it is immediate
        r = self.call("initech", "DELETE", "/v2/resource_instances/" + mine[0]["guid"])
        self.assertEqual(r.status, 204, r)

    def test_broker_500_fails_the_instance_and_mitigates_the_orphan(self):
        r = self.call("initech", "POST", "/v2/resource_instances",
                      {"name": "orphan", "target": FAST, "resource_plan_id": self.broken_plan})
        self.assertEqual(r.status, 502, r)
        self.assertIn("HTTP 500", r.json["errors"][0]["message"])
        failed = [i for i in self.call("initech", "GET", "/v2/resource_instances",
                                       query={"state": "failed"}).json["resources"]
                  if i["name"] == "orphan"]
        self.assertEqual(len(failed), 1)
        crn = failed[0]["crn"]
        # the platform sends DELETE, without the user's identity, until the broker says 410
        deadline, deletes = time.time() + 10, []
        while time.time() < deadline and not deletes:
            with self.bad.lock:
                deletes = [(m, p, h) for m, p, h, _ in self.bad.requests
                           if m == "DELETE" and urllib.parse.quote(crn, safe="") in p]
            time.sleep(0.1)
        self.assertEqual(len(deletes), 1, deletes)
        self.assertNotIn("X-Broker-API-Originating-Identity", deletes[0][2])
        self.assertIn("plan_id=" + self.broken_plan, deletes[0][1])
        # the orphan mitigation is over: a user's DELETE is not refused with 409
        time.sleep(0.3)
        r = self.call("initech", "DELETE", "/v2/resource_instances/" + failed[0]["guid"])
        self.assertEqual(r.status, 204, r)

    def test_restart_during_async_provision(self):
        inst = self.create(PREMIUM, region=SLOW, status=202)
        self.c.close()
        self.p.restart()
        self.c = self.p.client()
        # The issuer follows the new port: tokens of the old one are not valid any more.
        for a in self.accounts.values():
            a["token"] = self.c.apikey_token(a["apikey"])
        self.__class__.op_token = self.c.apikey_token(self.p.init["api_key"])
        self.assertEqual(self.get(inst["guid"]).json["state"], "provisioning")
        done = self.wait_state(inst["guid"], "active", timeout=40)
        self.assertEqual(done["last_operation"]["state"], "succeeded")
        r = self.call("initech", "DELETE", "/v2/resource_instances/" + inst["guid"])
        self.assertEqual(r.status, 202, r)
        self.wait_state(inst["guid"], "removed", timeout=40)

    def test_lifecycle_completes_onboarding_step_5(self):
        inst = self.create(LITE)
        r = self.call("initech", "DELETE", "/v2/resource_instances/" + inst["guid"])
        self.assertEqual(r.status, 204, r)
        step = self.step5()
        self.assertNotIn("evidence.instance_lifecycle", step["missing"], step)


if __name__ == "__main__":
    unittest.main()
