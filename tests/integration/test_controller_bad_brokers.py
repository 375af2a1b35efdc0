"""The resource controller against brokers that get the platform side of OSB wrong, over HTTP
with a real osbill serve (--broker-timeout 2, --reclamation-period 0), a real starter broker
that stays correct, and bad_broker.py breaking provisioning, binding or deprovisioning one way
per plan (spec/osb.md, "Platform side"):

- a provision that hangs past the broker timeout fails the instance and is orphan-mitigated,
  and meanwhile the platform serves /healthz, lists and creates on a good broker promptly;
- 5xx-like answers (timeout, a malformed 201/202, a 2xx other than 200/201/202) are followed
  by a DELETE without the user's identity until the broker answers 200 or 410; a malformed
  200, 408, other 4xx (400, 422 ConcurrencyError, 401 of a wrong password) and failed async
  operations are not;
- polling honours Retry-After and survives garbage answers; a failed last_operation fails the
  instance;
- a binding answered 500 fails the key and mitigates the binding, one answered 400 does not;
- a deprovision answered 500 is retried until the broker deletes the instance.

Every scenario ends with exactly one instance record of its plan: never lost or duplicated."""

import os
import threading
import time
import unittest
import urllib.parse

from bad_broker import BadBroker
from harness import LITE, SERVICE_ID, Broker, Platform, make_accounts

REGION = "us-south"
BROKER_TIMEOUT = 2      # --broker-timeout
HANG = 6                # how long provision_hang holds a PUT: well past the broker timeout
RETRY_AFTER = 4         # async_retry_after's Retry-After, four times the default poll interval
GARBAGE_POLLS = 2       # async_garbage_poll's garbage answers before "succeeded"
FAIL_DELETES = 2        # deprovision_500's 500s before the instance is deleted
NO_ORPHAN_WINDOW = 1.5  # how long a DELETE that must not come is waited for
PROMPT = 0.5            # "served promptly" while a broker hangs (the hang is 6 s)

BAD_MODES = ("provision_hang", "provision_200_garbage", "provision_201_garbage",
             "provision_201_empty", "provision_202_nonobject", "provision_204", "provision_408",
             "provision_400", "provision_422", "async_retry_after", "async_garbage_poll",
             "async_failed", "bind_500", "bind_400", "deprovision_500")
IDENTITY = "x-broker-api-originating-identity"


def q(s):
    return urllib.parse.quote(s, safe="")


class BadBrokersTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.p = Platform(extra=["--reclamation-period", "0",
                                "--broker-timeout", str(BROKER_TIMEOUT)]).start()
        cls.good = Broker(async_seconds=1).start()
        cls.bad = cls.locked = None
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
                              ("initech", "consumer")))
        acme = cls.accounts["acme"]["token"]
        initech = cls.accounts["initech"]["id"]

        def ok(r):
            assert r.status in (200, 201, 204), r
            return r.json

        def offering(name, plans, broker_port, user, password, oid=None):
            """A limited offering with plans [(id or None, name, kind)], its broker in REGION,
            every plan deployed there and initech allowlisted; returns (id, {name: plan id})."""
            body = {"name": name, "display_name": name.title()}
            if oid:
                body["id"] = oid
            o = ok(c.call("POST", "/v1/offerings", token=acme, body=body))
            ids = {}
            for pid, pname, kind in plans:
                pb = {"name": pname, "display_name": pname.title(), "kind": kind,
                      "description": "The %s plan." % pname}
                if pid:
                    pb["id"] = pid
                ids[pname] = ok(c.call("POST", "/v1/offerings/%s/plans" % o["id"], token=acme,
                                       body=pb))["id"]
            ok(c.call("POST", "/v1/offerings/%s/brokers" % o["id"], token=acme,
                      body={"region": REGION, "url": "http://127.0.0.1:%d" % broker_port,
                            "auth": {"type": "basic", "username": user,
                                     "password": password}}))
            for pid in ids.values():
                ok(c.call("PUT", "/v1/offerings/%s/plans/%s/deployments/%s"
                          % (o["id"], pid, REGION), token=acme))
            ok(c.call("POST", "/v1/offerings/%s/visibility" % o["id"], token=acme,
                      body={"visibility": "limited"}))
            ok(c.call("PUT", "/v1/offerings/%s/allowlist/%s" % (o["id"], initech), token=acme))
            return o["id"], ids

        # the good starter broker: its lite plan
        offering("starter-kv", [(LITE, "lite", "lite")], cls.good.port, cls.good.user,
                 cls.good.password, oid=SERVICE_ID)

        # bad-kv: one broker, one plan per way of misbehaving. The broker is started before it
        # knows the plan ids, so its port is known for the registration; plans are set after.
        cls.bad = BadBroker("pending", "bad-kv", [], hang_s=HANG, retry_after_s=RETRY_AFTER,
                            garbage_polls=GARBAGE_POLLS, fail_deletes=FAIL_DELETES).start()
        oid, ids = offering("bad-kv", [(None, m.replace("_", "-"), "subscription")
                                       for m in BAD_MODES],
                            cls.bad.port, cls.bad.user, cls.bad.password)
        cls.bad.service_id = oid
        cls.bad.plans = [{"id": ids[m.replace("_", "-")], "name": m.replace("_", "-"),
                          "free": False, "bindable": True} for m in BAD_MODES]
        cls.bad.plan_modes = {ids[m.replace("_", "-")]: m for m in BAD_MODES}
        cls.plan = {m: ids[m.replace("_", "-")] for m in BAD_MODES}

        # locked-kv: a correct broker registered with the wrong password (it answers 401)
        cls.locked = BadBroker("pending", "locked-kv", [], mode="good").start()
        oid, ids = offering("locked-kv", [(None, "lite", "lite")], cls.locked.port,
                            cls.locked.user, "not-the-broker-password")
        cls.locked.service_id = oid
        cls.locked.plans = [{"id": ids["lite"], "name": "lite", "free": True, "bindable": True}]
        cls.plan["wrong_password"] = ids["lite"]
        c.close()

    @classmethod
    def tearDownClass(cls):
        try:
            for b in (cls.bad, cls.locked):
                if b:
                    b.stop()
            cls.good.stop()
            cls.p.stop()
        finally:
            cls.good.cleanup()
            cls.p.cleanup()

    def setUp(self):
        self.c = self.p.client()

    def tearDown(self):
        self.c.close()

    # ------------------------------------------------------------ helpers

    def call(self, method, path, body=None, client=None, **kw):
        return (client or self.c).call(method, path, body=body,
                                       token=self.accounts["initech"]["token"], **kw)

    def create(self, mode, client=None):
        return self.call("POST", "/v2/resource_instances",
                         {"name": "%s-%s" % (mode.replace("_", "-"), os.urandom(3).hex()),
                          "target": REGION, "resource_plan_id": self.plan[mode]},
                         client=client)

    def get(self, guid):
        r = self.call("GET", "/v2/resource_instances/" + q(guid))
        self.assertEqual(r.status, 200, r)
        return r.json

    def wait_until(self, what, pred, timeout=15, interval=0.1):
        """pred() until it is true (returned), for timeout seconds."""
        deadline = time.time() + timeout
        while True:
            v = pred()
            if v:
                return v
            if time.time() > deadline:
                self.fail("%s: not reached within %ss" % (what, timeout))
            time.sleep(interval)

    def wait_state(self, guid, state, timeout=15):
        last = {}

        def reached():
            last["j"] = self.get(guid)
            return last["j"] if last["j"]["state"] == state else None
        try:
            return self.wait_until("instance %s %s" % (guid, state), reached, timeout)
        except AssertionError:
            raise AssertionError("instance %s not %s: %r" % (guid, state, last.get("j")))

    def records(self, mode):
        """Every instance record of the mode's plan, removed ones included."""
        out = []
        for state in (None, "removed"):
            url = "/v2/resource_instances?limit=100&resource_plan_id=" + q(self.plan[mode])
            if state:
                url += "&state=" + state
            while url:
                r = self.call("GET", url)
                self.assertEqual(r.status, 200, r)
                out += r.json["resources"]
                url = r.json["next_url"]
        return out

    def assertOneRecord(self, mode, guid, state):
        recs = self.records(mode)
        self.assertEqual([(i["guid"], i["state"]) for i in recs], [(guid, state)], recs)

    def failed_instance(self, mode):
        """The one failed instance of the mode's plan (a failed create names none)."""
        recs = self.records(mode)
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual(recs[0]["state"], "failed", recs)
        return recs[0]

    def broker_calls(self, broker, crn, binding=None, what=None):
        """The broker's requests about an instance (what: None for the instance itself,
        "last_operation", or "binding" with binding the key's CRN): (method, query, headers,
        time); headers with lowercase names."""
        out = []
        with broker.lock:
            reqs = list(broker.requests)
        for method, path, headers, t in reqs:
            u = urllib.parse.urlsplit(path)
            parts = [urllib.parse.unquote(s) for s in u.path.split("/") if s]
            if parts[:3] != ["v2", "service_instances", crn]:
                continue
            rest = parts[3:]
            kind = (None if not rest else "last_operation" if rest == ["last_operation"]
                    else "binding" if rest[0] == "service_bindings" else "other")
            if kind != what or (what == "binding" and rest[1:] != [binding]):
                continue
            out.append((method, dict(urllib.parse.parse_qsl(u.query)),
                        {k.lower(): v for k, v in headers.items()}, t))
        return out

    def orphan_deletes(self, crn, binding=None, broker=None):
        calls = self.broker_calls(broker or self.bad, crn, binding,
                                  "binding" if binding else None)
        return [c for c in calls if c[0] == "DELETE" and IDENTITY not in c[2]]

    def assertMitigated(self, crn, mode, binding=None):
        """The broker hears a DELETE without the user's identity, with service_id and plan_id,
        and then no longer holds the instance (or binding)."""
        deletes = self.wait_until("orphan mitigation of %s" % (binding or crn),
                                  lambda: self.orphan_deletes(crn, binding), timeout=10)
        for _, query, headers, _ in deletes:
            self.assertEqual((query.get("service_id"), query.get("plan_id")),
                             (self.bad.service_id, self.plan[mode]), query)
            self.assertIn("x-broker-api-version", headers)
        if binding:
            self.wait_until("binding dropped at the broker",
                            lambda: binding not in self.bad.instances.get(crn, {})
                            .get("bindings", {}), timeout=5)
        else:
            self.wait_until("instance dropped at the broker",
                            lambda: crn not in self.bad.instances, timeout=5)
        return deletes

    def assertNotMitigated(self, crn, binding=None, broker=None):
        """No DELETE without the user's identity comes within NO_ORPHAN_WINDOW (orphan
        mitigation is queued with the failure and sent at once, so it would have come)."""
        deadline = time.time() + NO_ORPHAN_WINDOW
        while time.time() < deadline:
            got = self.orphan_deletes(crn, binding, broker)
            self.assertEqual(got, [], "unexpected orphan mitigation of %s" % (binding or crn))
            time.sleep(0.1)

    def assertPuts(self, crn, n=1, broker=None):
        puts = [c for c in self.broker_calls(broker or self.bad, crn) if c[0] == "PUT"]
        self.assertEqual(len(puts), n, puts)
        return puts

    def assertFailed(self, inst, fragments, async_=False):
        lo = inst["last_operation"]
        self.assertEqual((inst["state"], lo["type"], lo["state"], lo["async"]),
                         ("failed", "create", "failed", async_), inst)
        for f in fragments:
            self.assertIn(f, lo["description"], lo)

    def assertError(self, r, status, code, fragments):
        self.assertEqual(r.status, status, r)
        err = r.json["errors"][0]
        self.assertEqual(err["code"], code, r)
        for f in fragments:
            self.assertIn(f, err["message"], r)

    def user_delete(self, guid):
        """DELETE by the user once no operation runs (orphan mitigation is one): 204, removed."""
        r = self.wait_until("DELETE not refused with 409", lambda: (
            lambda r: r if r.status != 409 else None)(
                self.call("DELETE", "/v2/resource_instances/" + guid)), timeout=10)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.get(guid)["state"], "removed")

    # ------------------------------------------------------------ a broker that hangs

    def test_hanging_provision_times_out_is_mitigated_and_stalls_nothing(self):
        crn_of = {}
        answer = {}

        def hanging_create():
            cl = self.p.client()
            try:
                t0 = time.time()
                answer["r"] = self.create("provision_hang", client=cl)
                answer["took"] = time.time() - t0
            finally:
                cl.close()

        th = threading.Thread(target=hanging_create, daemon=True)
        th.start()
        hang_plan = self.plan["provision_hang"]

        def put_arrived():
            with self.bad.lock:
                for m, path, _, t in self.bad.requests:
                    if m == "PUT" and "/service_bindings/" not in path:
                        crn = urllib.parse.unquote(urllib.parse.urlsplit(path).path
                                                   .split("/")[3])
                        if crn in self.bad.instances and \
                                self.bad.instances[crn]["plan_id"] == hang_plan:
                            crn_of["crn"], crn_of["t"] = crn, t
                            return True
            return False
        self.wait_until("the hanging PUT reaches the broker", put_arrived, timeout=10,
                        interval=0.02)
        t_put = crn_of["t"]

        # While the broker holds the PUT, the platform serves everything else promptly.
        timings = []
        good_guids = []
        for _ in range(3):
            t = time.time()
            r = self.c.call("GET", "/healthz")
            timings.append(("GET /healthz", time.time() - t))
            self.assertEqual(r.status, 200, r)
            t = time.time()
            r = self.call("GET", "/v2/resource_instances")
            timings.append(("GET /v2/resource_instances", time.time() - t))
            self.assertEqual(r.status, 200, r)
            t = time.time()
            r = self.call("POST", "/v2/resource_instances",
                          {"name": "good-%s" % os.urandom(3).hex(), "target": REGION,
                           "resource_plan_id": LITE})
            timings.append(("POST lite on the good broker", time.time() - t))
            self.assertEqual((r.status, r.json["state"]), (201, "active"), r)
            good_guids.append(r.json["guid"])
        during = time.time() - t_put
        self.assertLess(during, BROKER_TIMEOUT,
                        "the requests were not measured while the broker held the PUT")
        for what, took in timings:
            self.assertLess(took, PROMPT, "%s took %.2fs while a broker hung: %r"
                            % (what, took, timings))

        th.join(BROKER_TIMEOUT + 10)
        self.assertFalse(th.is_alive(), "the create that hangs was never answered")
        r = answer["r"]
        # The request is answered by the platform's own wait (202, still provisioning) or by
        # the timeout's failure (502), whichever comes first: never after the hang.
        self.assertLess(answer["took"], HANG - 1, answer)
        if r.status == 202:
            self.assertEqual(r.json["state"], "provisioning", r)
            guid = r.json["guid"]
        else:
            self.assertError(r, 502, "broker_error", ["did not answer the provision"])
            guid = self.failed_instance("provision_hang")["guid"]
        inst = self.wait_state(guid, "failed", timeout=BROKER_TIMEOUT + 5)
        self.assertLess(time.time(), t_put + HANG, "the failure waited for the hang to end")
        self.assertEqual(inst["crn"], crn_of["crn"])
        self.assertFailed(inst, ["did not answer the provision", "timeout"])

        deletes = self.assertMitigated(inst["crn"], "provision_hang")
        self.assertGreaterEqual(deletes[0][3], t_put + BROKER_TIMEOUT - 0.2, deletes)
        self.assertPuts(inst["crn"], 1)
        self.assertOneRecord("provision_hang", guid, "failed")
        for g in good_guids:
            self.assertEqual(self.get(g)["state"], "active")
        self.user_delete(guid)
        self.assertOneRecord("provision_hang", guid, "removed")

    # ------------------------------------------------------------ wrong answers to a PUT

    def check_mitigated_provision(self, mode, fragments):
        """A provision the broker answered wrongly: 502, the instance failed, and the orphan
        mitigated (spec/osb.md)."""
        r = self.create(mode)
        self.assertError(r, 502, "broker_error", fragments)
        inst = self.failed_instance(mode)
        self.assertFailed(inst, fragments)
        self.assertEqual(self.get(inst["guid"])["state"], "failed")
        self.assertMitigated(inst["crn"], mode)
        self.assertPuts(inst["crn"], 1)
        self.assertOneRecord(mode, inst["guid"], "failed")
        self.user_delete(inst["guid"])
        self.assertOneRecord(mode, inst["guid"], "removed")

    def test_201_with_garbage_is_mitigated(self):
        self.check_mitigated_provision("provision_201_garbage", ["HTTP 201", "malformed"])

    def test_201_with_an_empty_body_is_mitigated(self):
        self.check_mitigated_provision("provision_201_empty", ["HTTP 201", "malformed"])

    def test_202_with_a_non_object_is_mitigated(self):
        self.check_mitigated_provision("provision_202_nonobject", ["HTTP 202", "malformed"])

    def test_204_is_mitigated(self):
        self.check_mitigated_provision("provision_204", ["HTTP 204"])

    def test_200_with_garbage_fails_without_mitigation(self):
        # spec/osb.md: orphan mitigation after a malformed 201/202, not after a malformed 200
        # (OSB 2.17's table: "200, malformed response: failure, no orphan mitigation").
        mode = "provision_200_garbage"
        r = self.create(mode)
        self.assertError(r, 502, "broker_error", ["HTTP 200"])
        inst = self.failed_instance(mode)
        self.assertFailed(inst, ["HTTP 200"])
        self.assertNotMitigated(inst["crn"])
        self.assertPuts(inst["crn"], 1)
        self.assertOneRecord(mode, inst["guid"], "failed")

    # ------------------------------------------------------------ refusals: no mitigation

    def check_refused_provision(self, mode, status, code, fragments, broker=None):
        r = self.create(mode)
        self.assertError(r, status, code, fragments)
        inst = self.failed_instance(mode)
        self.assertFailed(inst, fragments)
        self.assertNotMitigated(inst["crn"], broker=broker)
        self.assertPuts(inst["crn"], 1, broker=broker)
        self.assertOneRecord(mode, inst["guid"], "failed")
        return inst

    def test_408_fails_without_mitigation(self):
        self.check_refused_provision("provision_408", 502, "broker_error",
                                     ["HTTP 408", "The request timed out."])

    def test_400_fails_without_mitigation(self):
        inst = self.check_refused_provision("provision_400", 400, "broker_refused",
                                            ["HTTP 400", "The parameters are wrong."])
        # nothing exists at the broker: the user's DELETE is answered 410 there, and done
        self.user_delete(inst["guid"])
        self.assertOneRecord("provision_400", inst["guid"], "removed")

    def test_422_concurrency_error_fails_without_mitigation(self):
        self.check_refused_provision("provision_422", 422, "broker_refused",
                                     ["HTTP 422", "Another operation is running."])

    def test_wrong_broker_password_fails_clearly_without_mitigation(self):
        inst = self.check_refused_provision("wrong_password", 502, "broker_error",
                                            ["HTTP 401"], broker=self.locked)
        # the broker refused the platform's credentials: it created nothing
        self.assertEqual(self.locked.instances, {})
        puts = self.assertPuts(inst["crn"], 1, broker=self.locked)
        self.assertIn("authorization", puts[0][2])

    # ------------------------------------------------------------ asynchronous provisions

    def test_retry_after_is_honoured(self):
        mode = "async_retry_after"
        r = self.create(mode)
        self.assertEqual((r.status, r.json["state"]), (202, "provisioning"), r)
        guid, crn = r.json["guid"], r.json["crn"]

        def polls():
            return [c[3] for c in self.broker_calls(self.bad, crn, what="last_operation")]
        first = self.wait_until("first last_operation", polls, timeout=10, interval=0.05)[0]
        # Until Retry-After has passed, no poll, and the API shows the instance provisioning.
        while time.time() < first + RETRY_AFTER - 0.3:
            j = self.get(guid)
            self.assertEqual((j["state"], j["last_operation"]["state"]),
                             ("provisioning", "in progress"), j)
            self.assertEqual(len(polls()), 1, "polled before Retry-After")
            time.sleep(0.2)
        done = self.wait_state(guid, "active", timeout=RETRY_AFTER + 5)
        self.assertEqual((done["last_operation"]["state"], done["last_operation"]["async"]),
                         ("succeeded", True), done)
        p = polls()
        self.assertEqual(len(p), 2, p)
        self.assertGreaterEqual(p[1] - p[0], RETRY_AFTER - 0.05, p)
        self.assertEqual(self.orphan_deletes(crn), [])
        self.assertPuts(crn, 1)
        self.assertOneRecord(mode, guid, "active")

    def test_garbage_last_operation_is_retried_until_it_succeeds(self):
        mode = "async_garbage_poll"
        r = self.create(mode)
        self.assertEqual((r.status, r.json["state"]), (202, "provisioning"), r)
        guid, crn = r.json["guid"], r.json["crn"]
        done = self.wait_state(guid, "active", timeout=20)
        self.assertEqual(done["last_operation"]["state"], "succeeded", done)
        polls = self.broker_calls(self.bad, crn, what="last_operation")
        self.assertEqual(len(polls), GARBAGE_POLLS + 1, polls)
        self.assertEqual(self.orphan_deletes(crn), [])
        self.assertPuts(crn, 1)
        self.assertOneRecord(mode, guid, "active")

    def test_failed_last_operation_fails_the_instance(self):
        mode = "async_failed"
        r = self.create(mode)
        self.assertEqual((r.status, r.json["state"]), (202, "provisioning"), r)
        guid, crn = r.json["guid"], r.json["crn"]
        inst = self.wait_state(guid, "failed", timeout=10)
        self.assertFailed(inst, ["failed the provision", "The disk array is on fire."],
                          async_=True)
        self.assertNotMitigated(crn)
        self.assertPuts(crn, 1)
        self.assertOneRecord(mode, guid, "failed")

    # ------------------------------------------------------------ bindings

    def key_of(self, guid):
        keys = []
        for state in (None, "removed"):
            query = {"source": guid}
            if state:
                query["state"] = state
            r = self.call("GET", "/v2/resource_keys", query=query)
            self.assertEqual(r.status, 200, r)
            keys += r.json["resources"]
        self.assertEqual(len(keys), 1, keys)
        return keys[0]

    def active_instance(self, mode):
        r = self.create(mode)
        self.assertEqual((r.status, r.json["state"]), (201, "active"), r)
        return r.json

    def test_bind_500_fails_the_key_and_mitigates_the_binding(self):
        mode = "bind_500"
        inst = self.active_instance(mode)
        r = self.call("POST", "/v2/resource_keys", {"name": "k500", "source": inst["guid"]})
        self.assertError(r, 502, "broker_error", ["binding", "HTTP 500"])
        key = self.key_of(inst["guid"])
        self.assertEqual((key["state"], key["last_operation"]["type"],
                          key["last_operation"]["state"]), ("failed", "create", "failed"), key)
        self.assertIn("HTTP 500", key["last_operation"]["description"])
        self.assertMitigated(inst["crn"], mode, binding=key["crn"])
        # the instance itself is untouched: not deleted, still one record
        self.assertEqual(self.orphan_deletes(inst["crn"]), [])
        self.assertIn(inst["crn"], self.bad.instances)
        self.assertEqual(self.get(inst["guid"])["state"], "active")
        self.assertOneRecord(mode, inst["guid"], "active")

    def test_bind_400_fails_the_key_without_mitigation(self):
        mode = "bind_400"
        inst = self.active_instance(mode)
        r = self.call("POST", "/v2/resource_keys", {"name": "k400", "source": inst["guid"]})
        self.assertError(r, 400, "broker_refused", ["HTTP 400", "The binding parameters are wrong."])
        key = self.key_of(inst["guid"])
        self.assertEqual((key["state"], key["last_operation"]["state"]), ("failed", "failed"),
                         key)
        self.assertNotMitigated(inst["crn"], binding=key["crn"])
        self.assertEqual(self.orphan_deletes(inst["crn"]), [])
        self.assertEqual(self.get(inst["guid"])["state"], "active")
        self.assertOneRecord(mode, inst["guid"], "active")

    # ------------------------------------------------------------ deprovisioning

    def test_deprovision_500_is_retried_until_the_broker_deletes(self):
        mode = "deprovision_500"
        inst = self.active_instance(mode)
        guid, crn = inst["guid"], inst["crn"]
        r = self.call("DELETE", "/v2/resource_instances/" + guid)
        self.assertEqual((r.status, r.json["state"]), (202, "removing"), r)
        gone = self.wait_state(guid, "removed", timeout=20)
        self.assertEqual((gone["last_operation"]["type"], gone["last_operation"]["state"]),
                         ("delete", "succeeded"), gone)
        self.assertIsNotNone(gone["deleted_at"])
        self.assertNotIn(crn, self.bad.instances)
        deletes = [c for c in self.broker_calls(self.bad, crn) if c[0] == "DELETE"]
        self.assertEqual(len(deletes), FAIL_DELETES + 1, deletes)
        for _, query, headers, _ in deletes:  # the user's delete, retried: with their identity
            self.assertIn(IDENTITY, headers)
            self.assertEqual(query.get("plan_id"), self.plan[mode])
        gaps = [b[3] - a[3] for a, b in zip(deletes, deletes[1:])]
        for g in gaps:  # with backoff, not in a tight loop
            self.assertGreaterEqual(g, 0.9, gaps)
        self.assertOneRecord(mode, guid, "removed")
        self.assertEqual(self.call("DELETE", "/v2/resource_instances/" + guid).status, 410)


if __name__ == "__main__":
    unittest.main()
