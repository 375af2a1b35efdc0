"""Brokers, deployments and broker validation over HTTP against a real osbill serve: broker
registration with every field's validation, sealed passwords, one broker per region, who may
do what; plan deployments per region; validation scorecards against the real starter broker
(passes, completes onboarding step 3) and against bad_broker.py in each of its wrong modes
(fails, naming each failed check), a hanging broker that must not stall the platform, and a
platform stopping in the middle of a run."""

import base64
import copy
import json
import os
import shutil
import tempfile
import threading
import time
import unittest
import uuid

from bad_broker import BadBroker
from harness import LITE, PREMIUM, SERVICE_ID, STANDARD, AccountsTest, Broker, Platform

HERE = os.path.dirname(os.path.abspath(__file__))
STARTER_CATALOG = os.path.join(HERE, "..", "..", "examples", "starter-broker", "catalog.json")

LIFECYCLE = ["lifecycle.provision", "lifecycle.provision_identical", "lifecycle.fetch",
             "lifecycle.update", "errors.delete_without_ids", "lifecycle.bind",
             "lifecycle.bind_identical", "lifecycle.unbind", "lifecycle.unbind_again",
             "ibm.disable", "ibm.state_disabled", "ibm.enable", "ibm.state_enabled",
             "lifecycle.deprovision", "lifecycle.deprovision_again"]
ERRORS = ["errors.missing_version", "errors.wrong_credentials", "errors.unknown_plan",
          "errors.last_operation_unknown", "errors.binding_unknown_instance"]


def catalog_checks(plan_names):
    return (["catalog.fetch", "catalog.service"] + ["catalog.plan." + n for n in plan_names] +
            ["catalog.dashboard_client"])


class BrokersBase(AccountsTest):
    """One platform per class with a provider (acme), another provider (globex) and a
    consumer (initech), each with an owner's token."""

    platform_env = None

    @classmethod
    def setUpClass(cls):
        cls.p = Platform(env=cls.platform_env).start()
        c = cls.p.client()
        cls.op_token = c.apikey_token(cls.p.init["api_key"])
        cls.accounts = {}
        for name, kind in (("acme", "provider"), ("globex", "provider"),
                           ("initech", "consumer")):
            r = c.call("POST", "/v1/accounts", token=cls.op_token,
                       body={"name": name, "kind": kind,
                             "owner": {"email": "%s@example.com" % name, "name": name.title(),
                                       "password": "password-%s" % name}})
            assert r.status == 201, r
            k = c.call("POST", "/v1/apikeys", token=cls.op_token,
                       body={"name": "owner", "iam_id": r.json["owner_iam_id"],
                             "account_id": r.json["id"]})
            assert k.status == 201, k
            cls.accounts[name] = {"id": r.json["id"], "iam_id": r.json["owner_iam_id"],
                                  "token": c.apikey_token(k.json["apikey"])}
        c.close()
        cls.brokers = []

    @classmethod
    def tearDownClass(cls):
        try:
            for b in cls.brokers:
                b.stop()
            cls.p.stop()
        finally:
            cls.p.cleanup()

    # ------------------------------------------------------------ helpers

    def uid(self, prefix):
        return "%s-%s" % (prefix, os.urandom(4).hex())

    def offering(self, name=None, who="acme", **extra):
        body = {"name": name or self.uid("off"), "display_name": "Offering"}
        body.update(extra)
        r = self.call(who, "POST", "/v1/offerings", body)
        self.assertEqual(r.status, 201, r)
        return r.json

    def plan(self, oid, name, kind, plan_id=None, **doc):
        """A plan through the plans API (POST /v1/offerings/:id/plans)."""
        body = {"name": name, "kind": kind, "display_name": name.title(),
                "description": "The %s plan." % name}
        if plan_id:
            body["id"] = plan_id
        body.update(doc)
        r = self.call("acme", "POST", "/v1/offerings/%s/plans" % oid, body)
        self.assertEqual(r.status, 201, r)
        return r.json

    def three_plans(self, oid, ids=None):
        ids = ids or [str(uuid.uuid4()) for _ in range(3)]
        return [self.plan(oid, "lite", "lite", ids[0]),
                self.plan(oid, "standard", "subscription", ids[1]),
                self.plan(oid, "premium", "subscription", ids[2])]

    def register(self, oid, url, region="us-south", user="bad-user", password="bad-broker-pw",
                 who="acme", **extra):
        body = {"region": region, "url": url,
                "auth": {"type": "basic", "username": user, "password": password}}
        body.update(extra)
        r = self.call(who, "POST", "/v1/offerings/%s/brokers" % oid, body)
        self.assertEqual(r.status, 201, r)
        return r.json

    def deploy(self, oid, pid, region="us-south", status=201):
        r = self.call("acme", "PUT",
                      "/v1/offerings/%s/plans/%s/deployments/%s" % (oid, pid, region))
        self.assertEqual(r.status, status, r)
        return r.json

    def bad(self, o, plans, mode, **kw):
        b = BadBroker(o["id"], o["name"],
                      [{"id": p["id"], "name": p["name"], "free": p["name"] == "lite",
                        "bindable": True} for p in plans], mode=mode, **kw).start()
        self.brokers.append(b)
        return b

    def validate(self, oid, body=None, wait=None, status=202):
        query = {"wait": str(wait)} if wait is not None else None
        r = self.call("acme", "POST", "/v1/offerings/%s/validate" % oid, body or {}, query=query)
        self.assertEqual(r.status, status, r)
        return r

    def scorecard(self, oid, sid, timeout=90):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.call("acme", "GET", "/v1/offerings/%s/scorecards/%s" % (oid, sid))
            self.assertEqual(r.status, 200, r)
            if r.json["state"] != "running":
                return r.json
            time.sleep(0.2)
        raise AssertionError("scorecard %s still running after %ss" % (sid, timeout))

    def run_validation(self, oid, **body):
        r = self.validate(oid, body)
        self.assertEqual(r.json["state"], "running")
        return self.scorecard(oid, r.json["id"])

    @staticmethod
    def by_name(sc):
        return {c["name"]: c for c in sc["checks"]}

    @staticmethod
    def failed(sc):
        return {c["name"] for c in sc["checks"] if not c["passed"]}

    def step3(self, oid):
        r = self.call("acme", "GET", "/v1/offerings/" + oid)
        self.assertEqual(r.status, 200, r)
        return r.json["steps"][2]

    def assertField(self, r, target, status=400):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.json["errors"][0]["target"], target, r)
        self.assertTrue(r.json["errors"][0]["message"], r)


class BrokerRegistrationTest(BrokersBase):
    def test_register_read_list(self):
        o = self.offering()
        self.assertIn("broker", self.step3(o["id"])["missing"])
        b = self.register(o["id"], "https://broker.example.com/osb", api_version="2.14")
        self.assertEqual(b["region"], "us-south")
        self.assertEqual(b["url"], "https://broker.example.com/osb")
        self.assertEqual(b["auth"], {"type": "basic", "username": "bad-user"})
        self.assertEqual(b["api_version"], "2.14")
        self.assertEqual(b["offering_id"], o["id"])
        self.assertIsNone(b["scorecard"])
        for k in ("id", "created_at", "updated_at"):
            self.assertTrue(b[k])
        r = self.call("acme", "GET", "/v1/offerings/%s/brokers/%s" % (o["id"], b["id"]))
        self.assertEqual((r.status, r.json), (200, b))
        b2 = self.register(o["id"], "http://10.0.0.2:8080", region="eu-de",
                           auth={"type": "bearer"})
        self.assertEqual(b2["auth"], {"type": "bearer"})
        self.assertEqual(b2["api_version"], "2.17")
        r = self.call("acme", "GET", "/v1/offerings/%s/brokers" % o["id"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual([x["region"] for x in r.json["brokers"]], ["eu-de", "us-south"])
        self.assertEqual(r.json["total_count"], 2)
        missing = self.step3(o["id"])["missing"]
        self.assertNotIn("broker", missing)
        self.assertIn("scorecard", missing)

    def test_every_field_is_checked(self):
        o = self.offering()
        path = "/v1/offerings/%s/brokers" % o["id"]
        good = {"region": "us-south", "url": "https://b.example.com",
                "auth": {"type": "basic", "username": "u", "password": "p"}}

        def with_(**kw):
            b = copy.deepcopy(good)
            for k, v in kw.items():
                if v is None:
                    b.pop(k, None)
                else:
                    b[k] = v
            return b

        cases = [
            (with_(region=None), "region"), (with_(region="US-south"), "region"),
            (with_(region="u"), "region"), (with_(region="1south"), "region"),
            (with_(region="a" * 33), "region"), (with_(region="us_south"), "region"),
            (with_(region=7), "region"),
            (with_(url=None), "url"), (with_(url="ftp://b.example.com"), "url"),
            (with_(url="b.example.com"), "url"), (with_(url="https://"), "url"),
            (with_(url="https://user:pw@b.example.com"), "url"),
            (with_(url="https://b.example.com/?x=1"), "url"),
            (with_(url="https://b.example.com/#frag"), "url"),
            (with_(url="https://b.example.com:0"), "url"),
            (with_(url="https://b.example.com:99999"), "url"),
            (with_(url="https://b example.com"), "url"),
            (with_(url="https://b.example.com/" + "a" * 2100), "url"),
            (with_(auth=None), "auth"), (with_(auth="basic"), "auth"),
            (with_(auth={"type": "digest"}), "auth.type"), (with_(auth={}), "auth.type"),
            (with_(auth={"type": "basic", "password": "p"}), "auth.username"),
            (with_(auth={"type": "basic", "username": "a:b", "password": "p"}), "auth.username"),
            (with_(auth={"type": "basic", "username": "u"}), "auth.password"),
            (with_(auth={"type": "basic", "username": "u", "password": ""}), "auth.password"),
            (with_(auth={"type": "basic", "username": "u", "password": 5}), "auth.password"),
            (with_(auth={"type": "basic", "username": "u", "password": "p\n"}), "auth.password"),
            (with_(auth={"type": "bearer", "password": "p"}), "auth.password"),
            (with_(auth={"type": "basic", "username": "u", "password": "p", "x": 1}), "auth.x"),
            (with_(api_version="2.11"), "api_version"), (with_(api_version="3.0"), "api_version"),
            (with_(api_version=2.17), "api_version"),
            (with_(color="blue"), "color"),
        ]
        for body, target in cases:
            with self.subTest(body=body):
                self.assertField(self.call("acme", "POST", path, body), target)
        self.assertField(self.call("acme", "POST", path, ["not", "an", "object"]), "")
        r = self.c.request("POST", path, raw=b"{bad json",
                           headers={"Authorization": "Bearer " + self.accounts["acme"]["token"],
                                    "Content-Type": "application/json"})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(self.call("acme", "GET", path).json["brokers"], [])
        # IPv6 literals and ports are fine.
        self.register(o["id"], "http://[::1]:8090/base/", region="local")

    def test_passwords_are_sealed_and_never_shown(self):
        o = self.offering()
        secret = "s3cret-" + os.urandom(12).hex()
        b = self.register(o["id"], "https://b.example.com", password=secret)
        second = "other-" + os.urandom(12).hex()
        r = self.call("acme", "PATCH", "/v1/offerings/%s/brokers/%s" % (o["id"], b["id"]),
                      {"url": "https://b2.example.com",
                       "auth": {"type": "basic", "username": "u2", "password": second}})
        self.assertEqual(r.status, 200, r)
        for path in ("/v1/offerings/%s/brokers" % o["id"],
                     "/v1/offerings/%s/brokers/%s" % (o["id"], b["id"]),
                     "/v1/offerings/" + o["id"]):
            raw = self.call("acme", "GET", path).raw
            self.assertNotIn(secret.encode(), raw)
            self.assertNotIn(second.encode(), raw)
            self.assertNotIn(b"password", raw)
        self.assertNotIn(second.encode(), r.raw)
        for name in os.listdir(self.p.data):
            full = os.path.join(self.p.data, name)
            if os.path.isfile(full):
                with open(full, "rb") as f:
                    data = f.read()
                self.assertNotIn(secret.encode(), data, "a broker password in clear in " + name)
                self.assertNotIn(second.encode(), data, "a broker password in clear in " + name)
        stored = self.p.stored_bytes()
        self.assertNotIn(secret.encode(), stored, "a broker password in clear in the database")
        self.assertNotIn(second.encode(), stored, "a broker password in clear in the database")
        self.assertNotIn(secret, self.p.log())
        self.assertNotIn(second, self.p.log())
        # What is stored is sealed: version byte, 24-byte nonce, ciphertext and tag.
        [(blob,)] = self.p.sql("SELECT secret FROM brokers WHERE id = ?", (b["id"],))
        self.assertEqual(blob[0], 1)
        self.assertEqual(len(blob), 1 + 24 + len(second) + 16)

    def test_sealed_password_is_bound_to_its_broker(self):
        # A sealed password copied onto another broker's row does not open there.
        o = self.offering()
        bb = self.bad(o, [], "good")
        a = self.register(o["id"], bb.url, region="us-south")
        b = self.register(o["id"], bb.url, region="eu-de", password="another-password")
        self.p.sql("UPDATE brokers SET secret = (SELECT secret FROM brokers WHERE id = ?)"
                   " WHERE id = ?", (a["id"], b["id"]))
        r = self.validate(o["id"], {"broker_id": b["id"]}, status=409)
        self.assertIn("password", r.json["errors"][0]["message"])

    def test_one_broker_per_region(self):
        o = self.offering()
        first = self.register(o["id"], "https://b.example.com")
        r = self.call("acme", "POST", "/v1/offerings/%s/brokers" % o["id"],
                      {"region": "us-south", "url": "https://c.example.com",
                       "auth": {"type": "bearer"}})
        self.assertEqual(r.status, 409, r)
        self.assertIn("us-south", r.json["errors"][0]["message"])
        other = self.register(o["id"], "https://c.example.com", region="eu-gb")
        r = self.call("acme", "PATCH", "/v1/offerings/%s/brokers/%s" % (o["id"], other["id"]),
                      {"region": "us-south"})
        self.assertEqual(r.status, 409, r)
        self.assertIn("us-south", r.json["errors"][0]["message"])
        # Another offering may use the same region.
        self.register(self.offering()["id"], "https://b.example.com")
        self.assertEqual(first["region"], "us-south")

    def test_patch_and_delete(self):
        o = self.offering()
        b = self.register(o["id"], "https://b.example.com")
        path = "/v1/offerings/%s/brokers/%s" % (o["id"], b["id"])
        # A new URL needs the password again: the stored one only goes where it was given.
        self.assertField(self.call("acme", "PATCH", path, {"url": "https://evil.example.com"}),
                         "auth.password")
        r = self.call("acme", "PATCH", path, {})
        self.assertEqual((r.status, r.json), (200, b), r)  # nothing changed, not even the time
        r = self.call("acme", "PATCH", path, {"api_version": "2.13"})
        self.assertEqual((r.status, r.json["api_version"]), (200, "2.13"), r)
        self.assertEqual(r.json["url"], "https://b.example.com")
        r = self.call("acme", "PATCH", path, {"auth": {"type": "basic", "username": "renamed"}})
        self.assertEqual((r.status, r.json["auth"]["username"]), (200, "renamed"), r)
        self.assertField(self.call("acme", "PATCH", path, {"region": "X"}), "region")
        self.assertField(self.call("acme", "PATCH", path, {"secret": "x"}), "secret")
        r = self.call("acme", "PATCH", path, {"auth": {"type": "bearer"},
                                              "url": "https://new.example.com"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["auth"], {"type": "bearer"})
        # Back to basic needs a password.
        self.assertField(self.call("acme", "PATCH", path,
                                   {"auth": {"type": "basic", "username": "u"}}), "auth.password")
        self.assertEqual(self.call("acme", "PATCH", "/v1/offerings/%s/brokers/nope" % o["id"],
                                   {"api_version": "2.17"}).status, 404)
        self.assertEqual(self.call("acme", "DELETE", path).status, 204)
        self.assertEqual(self.call("acme", "DELETE", path).status, 404)
        self.assertEqual(self.call("acme", "GET", path).status, 404)

    def test_other_accounts(self):
        o = self.offering()
        b = self.register(o["id"], "https://b.example.com")
        base = "/v1/offerings/%s" % o["id"]
        body = {"region": "eu-de", "url": "https://b.example.com", "auth": {"type": "bearer"}}
        for who in ("globex", "initech"):  # draft: they do not even see it
            self.assertEqual(self.call(who, "GET", base + "/brokers").status, 404)
            self.assertEqual(self.call(who, "POST", base + "/brokers", body).status, 404)
            self.assertEqual(self.call(who, "GET", base + "/brokers/" + b["id"]).status, 404)
            self.assertEqual(self.call(who, "DELETE", base + "/brokers/" + b["id"]).status, 404)
            self.assertEqual(self.call(who, "GET", base + "/deployments").status, 404)
            self.assertEqual(self.call(who, "POST", base + "/validate", {}).status, 404)
            self.assertEqual(self.call(who, "GET", base + "/scorecards").status, 404)
        self.assertEqual(self.c.call("GET", base + "/brokers").status, 401)
        # A consumer who may see the offering (limited, allowlisted) still may not touch them.
        r = self.call("acme", "POST", base + "/visibility", {"visibility": "limited"})
        self.assertEqual(r.status, 200, r)
        r = self.call("acme", "PUT", base + "/allowlist/" + self.accounts["initech"]["id"])
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.call("initech", "GET", base).status, 200)
        self.assertEqual(self.call("initech", "GET", base + "/brokers").status, 403)
        self.assertEqual(self.call("initech", "GET", base + "/brokers/" + b["id"]).status, 403)
        self.assertEqual(self.call("initech", "POST", base + "/brokers", body).status, 403)
        self.assertEqual(self.call("initech", "PATCH", base + "/brokers/" + b["id"],
                                   {"api_version": "2.12"}).status, 403)
        self.assertEqual(self.call("initech", "POST", base + "/validate", {}).status, 403)
        self.assertEqual(self.call("initech", "GET", base + "/scorecards").status, 403)
        self.assertEqual(self.call("initech", "GET", base + "/deployments").status, 403)
        # The operator may.
        self.assertEqual(self.call("operator", "GET", base + "/brokers").status, 200)


class DeploymentTest(BrokersBase):
    def test_deployments(self):
        o = self.offering()
        oid = o["id"]
        lite, std, prem = self.three_plans(oid)
        r = self.call("acme", "PUT",
                      "/v1/offerings/%s/plans/%s/deployments/us-south" % (oid, lite["id"]))
        self.assertField(r, "region", 409)  # no broker there yet
        b = self.register(oid, "https://b.example.com")
        d = self.deploy(oid, lite["id"])
        self.assertEqual((d["plan_id"], d["plan_name"], d["region"], d["broker_id"]),
                         (lite["id"], "lite", "us-south", b["id"]))
        again = self.deploy(oid, lite["id"], status=200)
        self.assertEqual(again, d)
        self.deploy(oid, std["id"])
        missing = self.step3(oid)["missing"]
        self.assertIn("deployments.premium", missing)
        self.assertNotIn("deployments.lite", missing)
        self.assertNotIn("deployments.standard", missing)
        self.assertEqual(self.call("acme", "PUT", "/v1/offerings/%s/plans/nope/deployments/us-south"
                                   % oid).status, 404)
        self.assertField(self.call("acme", "PUT", "/v1/offerings/%s/plans/%s/deployments/Bad_Region"
                                   % (oid, lite["id"])), "region")
        # A plan of another offering is not this offering's.
        other = self.offering()
        op = self.plan(other["id"], "lite", "lite")
        self.assertEqual(self.call("acme", "PUT", "/v1/offerings/%s/plans/%s/deployments/us-south"
                                   % (oid, op["id"])).status, 404)
        r = self.call("acme", "GET", "/v1/offerings/%s/deployments" % oid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual([(x["plan_name"], x["region"]) for x in r.json["deployments"]],
                         [("lite", "us-south"), ("standard", "us-south")])
        # The broker cannot go while plans are deployed through it.
        r = self.call("acme", "DELETE", "/v1/offerings/%s/brokers/%s" % (oid, b["id"]))
        self.assertEqual(r.status, 409, r)
        r = self.call("acme", "PATCH", "/v1/offerings/%s/brokers/%s" % (oid, b["id"]),
                      {"region": "eu-de"})
        self.assertEqual(r.status, 409, r)
        self.assertEqual(self.call("globex", "PUT", "/v1/offerings/%s/plans/%s/deployments/us-south"
                                   % (oid, prem["id"])).status, 404)
        for pid in (lite["id"], std["id"]):
            path = "/v1/offerings/%s/plans/%s/deployments/us-south" % (oid, pid)
            self.assertEqual(self.call("acme", "DELETE", path).status, 204)
            self.assertEqual(self.call("acme", "DELETE", path).status, 404)
        self.assertEqual(self.call("acme", "GET", "/v1/offerings/%s/deployments" % oid)
                         .json["deployments"], [])
        self.assertEqual(self.call("acme", "DELETE", "/v1/offerings/%s/brokers/%s"
                                   % (oid, b["id"])).status, 204)


class StarterValidationTest(BrokersBase):
    """The real starter broker, with an offering built from its own catalog.json."""

    def test_starter_broker_passes_and_completes_step_3(self):
        o = self.offering(name="starter-kv", id=SERVICE_ID)
        oid = o["id"]
        self.assertEqual(oid, SERVICE_ID)
        plans = self.three_plans(oid, [LITE, STANDARD, PREMIUM])
        # Dashboard SSO: the offering's OAuth client, declared in the broker's catalog.
        r = self.call("acme", "POST", "/v1/offerings/%s/iam" % oid)
        self.assertEqual(r.status, 201, r)
        client = r.json["client"]
        cb = "https://starter.example.com/sso/callback"
        r = self.call("acme", "PATCH", "/v1/offerings/%s/iam" % oid, {"redirect_uris": [cb]})
        self.assertEqual(r.status, 200, r)
        with open(STARTER_CATALOG) as f:
            cat = json.load(f)
        cat["services"][0]["dashboard_client"] = {"id": client["client_id"],
                                                  "secret": client["client_secret"],
                                                  "redirect_uri": cb}
        tmp = tempfile.mkdtemp(prefix="starter-cat-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "catalog.json")
        with open(path, "w") as f:
            json.dump(cat, f)
        broker = Broker(extra=["--catalog", path], async_seconds=1).start()
        self.addCleanup(broker.cleanup)
        self.addCleanup(broker.stop)
        b = self.register(oid, "http://127.0.0.1:%d" % broker.port, user=broker.user,
                          password=broker.password)
        for p in plans:
            self.deploy(oid, p["id"])
        self.assertEqual(self.step3(oid)["missing"], ["scorecard"])

        # ?wait= answers with the finished scorecard.
        r = self.validate(oid, {"timeout_s": 10}, wait=50, status=200)
        sc = r.json
        self.assertEqual(sc["state"], "passed", json.dumps(sc, indent=1))
        self.assertEqual(sc["broker_id"], b["id"])
        self.assertEqual(sc["region"], "us-south")
        names = [c["name"] for c in sc["checks"]]
        self.assertEqual(names,
                         catalog_checks(["lite", "premium", "standard"]) + LIFECYCLE + ERRORS)
        checks = self.by_name(sc)
        self.assertNotIn("skipped", checks["catalog.dashboard_client"]["actual"])
        self.assertNotIn(client["client_secret"], json.dumps(sc))
        self.assertEqual(checks["errors.missing_version"]["actual"]["status"], 412)
        self.assertEqual(checks["errors.wrong_credentials"]["actual"]["status"], 401)
        self.assertEqual(checks["lifecycle.provision"]["actual"]["status"], 201)
        self.assertIn("<redacted>", checks["lifecycle.bind"]["actual"]["body"])
        self.assertEqual(sc["summary"]["failed"], 0)
        self.assertTrue(r.header("Location").endswith("/scorecards/" + sc["id"]))
        got = self.call("acme", "GET", "/v1/offerings/%s/scorecards/%s" % (oid, sc["id"]))
        self.assertEqual((got.status, got.json), (200, sc))

        step = self.step3(oid)
        self.assertEqual((step["complete"], step["missing"]), (True, []), step)
        self.assertEqual(self.call("acme", "GET", "/v1/offerings/%s/brokers/%s" % (oid, b["id"]))
                         .json["scorecard"]["state"], "passed")

        # A changed broker needs a new run; polling the scorecard works as well as ?wait=.
        r = self.call("acme", "PATCH", "/v1/offerings/%s/brokers/%s" % (oid, b["id"]),
                      {"api_version": "2.16"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.step3(oid)["missing"], ["scorecard"])
        second = self.run_validation(oid)
        self.assertEqual(second["state"], "passed", json.dumps(second, indent=1))
        self.assertTrue(self.step3(oid)["complete"])
        lst = self.call("acme", "GET", "/v1/offerings/%s/scorecards" % oid)
        self.assertEqual(lst.status, 200, lst)
        self.assertEqual([s["id"] for s in lst.json["scorecards"]], [second["id"], sc["id"]])
        self.assertNotIn("checks", lst.json["scorecards"][0])
        self.assertEqual(lst.json["scorecards"][0]["summary"]["failed"], 0)
        one = self.call("acme", "GET", "/v1/offerings/%s/scorecards" % oid, query={"limit": "1"})
        self.assertEqual(len(one.json["scorecards"]), 1)


    def test_starter_broker_on_bearer_passes(self):
        """The starter broker taking the platform's bearer token (libosb verifies it against
        the platform's JWKS) passes the whole validation with no Basic credentials known."""
        with open(STARTER_CATALOG) as f:
            cat = json.load(f)
        svc = cat["services"][0]
        svc["id"], svc["name"] = str(uuid.uuid4()), "starter-bearer"
        svc.pop("dashboard_client", None)
        ids = [str(uuid.uuid4()) for _ in svc["plans"]]
        for p, pid in zip(svc["plans"], ids):
            p["id"] = pid
        o = self.offering(name="starter-bearer", id=svc["id"])
        plans = self.three_plans(o["id"], [p["id"] for p in sorted(
            svc["plans"], key=lambda p: ["lite", "standard", "premium"].index(p["name"]))])
        tmp = tempfile.mkdtemp(prefix="starter-cat-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "catalog.json")
        with open(path, "w") as f:
            json.dump(cat, f)
        broker = Broker(extra=["--catalog", path, "--platform", self.p.url, "--token-client-id",
                               "resource-controller"], async_seconds=1).start()
        self.addCleanup(broker.cleanup)
        self.addCleanup(broker.stop)
        r = self.call("acme", "POST", "/v1/offerings/%s/brokers" % o["id"],
                      {"region": "us-south", "url": "http://127.0.0.1:%d" % broker.port,
                       "auth": {"type": "bearer"}})
        self.assertEqual(r.status, 201, r)
        for p in plans:
            self.deploy(o["id"], p["id"])
        sc = self.run_validation(o["id"], timeout_s=10)
        self.assertEqual(sc["state"], "passed", json.dumps(sc, indent=1))
        checks = self.by_name(sc)
        self.assertEqual(checks["lifecycle.provision"]["actual"]["status"], 201)
        self.assertEqual(checks["errors.wrong_credentials"]["actual"]["status"], 401)


class BadBrokerValidationTest(BrokersBase):
    """bad_broker.py in each of its modes: the scorecard fails and names what failed."""

    def setup_offering(self, mode, **kw):
        o = self.offering(name=self.uid("bb-" + mode.replace("_", "-"))[:31])
        plans = self.three_plans(o["id"])
        bb = self.bad(o, plans, mode, **kw)
        b = self.register(o["id"], bb.url)
        for p in plans:
            self.deploy(o["id"], p["id"])
        return o, plans, bb, b

    def test_good_mode_passes(self):
        # bad_broker.py's own baseline: when it does nothing wrong, the platform agrees.
        o, plans, bb, b = self.setup_offering("good")
        sc = self.run_validation(o["id"], timeout_s=5)
        self.assertEqual(sc["state"], "passed", json.dumps(sc, indent=1))
        self.assertEqual(self.failed(sc), set())
        self.assertIn("skipped", self.by_name(sc)["catalog.dashboard_client"]["actual"])
        self.assertTrue(self.step3(o["id"])["complete"])

    def test_headers_the_broker_receives(self):
        o = self.offering(name=self.uid("bb-headers"))
        plans = self.three_plans(o["id"])
        bb = self.bad(o, plans, "good")
        self.register(o["id"], bb.url, api_version="2.14")
        sc = self.run_validation(o["id"])
        self.assertEqual(sc["state"], "passed", json.dumps(sc, indent=1))
        reqs = bb.seen()
        self.assertGreater(len(reqs), 15)
        idents = [h.get("X-Broker-API-Request-Identity") for _, _, h, _ in reqs]
        for i in idents:
            uuid.UUID(i)
        self.assertEqual(len(set(idents)), len(idents), "one request identity per call")
        versions = [h.get("X-Broker-API-Version") for _, _, h, _ in reqs]
        self.assertEqual(versions.count(None), 1)  # the missing-version check
        self.assertEqual(set(versions) - {None}, {"2.14"})
        good = "Basic " + base64.b64encode(b"bad-user:bad-broker-pw").decode()
        auths = [h.get("Authorization") for _, _, h, _ in reqs]
        self.assertEqual(len([a for a in auths if a != good]), 1)  # the wrong-credentials check
        wrong = base64.b64decode([a for a in auths if a != good][0].split()[1]).decode()
        self.assertTrue(wrong.startswith("bad-user:"))
        prov = [(m, p, h) for m, p, h, _ in reqs
                if m == "PUT" and p.startswith("/v2/service_instances/") and "bindings" not in p]
        origin = prov[0][2]["X-Broker-API-Originating-Identity"].split(" ")
        self.assertEqual(origin[0], "osbill")
        self.assertEqual(json.loads(base64.b64decode(origin[1])),
                         {"iam_id": self.accounts["acme"]["iam_id"]})
        self.assertNotIn("X-Broker-API-Originating-Identity", reqs[0][2])  # catalog fetch
        # The probe's instance is gone, and the context is IBM's.
        self.assertEqual(bb.instances, {})
        puts = [p for p in prov if "accepts_incomplete=true" in p[1]]
        self.assertTrue(puts)

    def test_bad_json_catalog(self):
        o, plans, bb, b = self.setup_offering("bad_json")
        sc = self.run_validation(o["id"], timeout_s=5)
        self.assertEqual(sc["state"], "failed")
        checks = self.by_name(sc)
        fetch = checks["catalog.fetch"]
        self.assertFalse(fetch["passed"])
        self.assertEqual(fetch["actual"]["status"], 200)
        self.assertIn("not JSON", fetch["actual"]["reason"])
        self.assertIn("this is not json", fetch["actual"]["body"])
        self.assertTrue(checks["catalog.service"]["actual"]["error"].startswith("not run:"))
        for n in LIFECYCLE:
            self.assertTrue(checks[n]["actual"]["error"].startswith("not run:"), checks[n])
        for n in ERRORS:  # the broker does get these right
            self.assertTrue(checks[n]["passed"], checks[n])
        self.assertIn("scorecard", self.step3(o["id"])["missing"])

    def test_missing_service(self):
        o, plans, bb, b = self.setup_offering("missing_service")
        sc = self.run_validation(o["id"], timeout_s=5)
        self.assertEqual(sc["state"], "failed")
        checks = self.by_name(sc)
        self.assertTrue(checks["catalog.fetch"]["passed"])
        self.assertFalse(checks["catalog.service"]["passed"])
        self.assertIn(o["id"], checks["catalog.service"]["actual"]["reason"])
        self.assertTrue(checks["lifecycle.provision"]["actual"]["error"].startswith("not run:"))
        # Only the unknown-plan check tried to provision (and was refused).
        self.assertEqual(len(bb.seen("PUT", "/v2/service_instances/")), 1)
        self.assertEqual(bb.instances, {})

    def test_plan_mismatch(self):
        o, plans, bb, b = self.setup_offering("plan_mismatch")
        sc = self.run_validation(o["id"], timeout_s=5)
        self.assertEqual(sc["state"], "failed")
        self.assertEqual(self.failed(sc), {"catalog.plan.lite", "catalog.plan.standard",
                                           "catalog.plan.premium"})
        checks = self.by_name(sc)
        self.assertIn("name", checks["catalog.plan.lite"]["actual"]["reason"])
        self.assertIn("bindable", checks["catalog.plan.standard"]["actual"]["reason"])
        self.assertIn("no plan with id", checks["catalog.plan.premium"]["actual"]["reason"])
        self.assertTrue(checks["lifecycle.deprovision"]["passed"])

    def test_wrong_status_codes(self):
        o, plans, bb, b = self.setup_offering("wrong_codes")
        sc = self.run_validation(o["id"], timeout_s=5)
        self.assertEqual(sc["state"], "failed")
        self.assertEqual(self.failed(sc), {"lifecycle.unbind_again",
                                           "lifecycle.deprovision_again",
                                           "errors.missing_version", "errors.wrong_credentials",
                                           "errors.unknown_plan"})
        checks = self.by_name(sc)
        self.assertEqual(checks["lifecycle.unbind_again"]["actual"]["status"], 200)
        self.assertEqual(checks["lifecycle.unbind_again"]["expected"], "410")
        self.assertEqual(checks["errors.unknown_plan"]["actual"]["status"], 201)
        # The instance the unknown plan made was removed again.
        self.assertEqual(bb.instances, {})

    def test_server_errors(self):
        o, plans, bb, b = self.setup_offering("errors_500")
        sc = self.run_validation(o["id"], timeout_s=5)
        self.assertEqual(sc["state"], "failed")
        checks = self.by_name(sc)
        self.assertEqual(checks["lifecycle.provision"]["actual"]["status"], 500)
        for n in LIFECYCLE[1:]:
            self.assertEqual(checks[n]["actual"]["error"], "not run: the provision failed")
        # Cleaned up after the failure (the broker knows no such instance: 410).
        self.assertTrue(checks["lifecycle.cleanup"]["passed"], checks["lifecycle.cleanup"])
        self.assertEqual(self.failed(sc), set(LIFECYCLE))
        for n in ERRORS:
            self.assertTrue(checks[n]["passed"], checks[n])

    def test_async_broker_is_polled_with_retry_after(self):
        o, plans, bb, b = self.setup_offering("async")
        sc = self.run_validation(o["id"], timeout_s=5)
        self.assertEqual(sc["state"], "passed", json.dumps(sc, indent=1))
        checks = self.by_name(sc)
        self.assertEqual(checks["lifecycle.provision"]["actual"]["body"],
                         '{"state":"succeeded"}')
        # Two "in progress" answers with Retry-After: 1, then "succeeded": polled no faster.
        probe = bb.seen("PUT", "/v2/service_instances/")[0][1].split("?")[0]
        polls = [r[3] for r in bb.seen("GET", probe + "/last_operation")]
        self.assertGreaterEqual(len(polls), 3)
        self.assertGreaterEqual(polls[2] - polls[0], 1.8)
        self.assertEqual(bb.instances, {})

    def test_dashboard_client(self):
        o = self.offering(name=self.uid("bb-dash"))
        oid = o["id"]
        plans = self.three_plans(oid)
        client = self.call("acme", "POST", "/v1/offerings/%s/iam" % oid).json["client"]
        cb = "https://dash.example.com/cb"
        self.call("acme", "PATCH", "/v1/offerings/%s/iam" % oid, {"redirect_uris": [cb]})
        cases = [
            ({"id": client["client_id"], "secret": client["client_secret"], "redirect_uri": cb},
             None),
            ({"id": client["client_id"], "secret": "wrong-secret", "redirect_uri": cb}, "secret"),
            ({"id": client["client_id"], "secret": client["client_secret"],
              "redirect_uri": "https://evil.example.com/cb"}, "redirect_uri"),
            ({"id": "client-somebody-else", "secret": "x", "redirect_uri": cb}, "client_id"),
        ]
        bb = self.bad(o, plans, "dashboard")
        self.register(oid, bb.url)
        for dc, problem in cases:
            with self.subTest(problem=problem):
                bb.dashboard_client = dc
                sc = self.run_validation(oid, timeout_s=5)
                check = self.by_name(sc)["catalog.dashboard_client"]
                self.assertEqual(check["passed"], problem is None, check)
                if problem:
                    self.assertIn(problem, check["actual"]["reason"])
                    self.assertEqual(self.failed(sc), {"catalog.dashboard_client"})
                self.assertNotIn(client["client_secret"], json.dumps(sc))

    def test_bearer_broker_gets_the_platform_token(self):
        """A broker registered for bearer authentication is called with the platform's own
        token (never Basic); this one only knows Basic, so it refuses it and the scorecard
        says so at the first call."""
        o = self.offering(name=self.uid("bb-bearer"))
        plans = self.three_plans(o["id"])
        bb = self.bad(o, plans, "good")
        r = self.call("acme", "POST", "/v1/offerings/%s/brokers" % o["id"],
                      {"region": "us-south", "url": bb.url, "auth": {"type": "bearer"}})
        self.assertEqual(r.status, 201, r)
        sc = self.run_validation(o["id"], timeout_s=5)
        self.assertEqual(sc["state"], "failed")
        checks = self.by_name(sc)
        self.assertFalse(checks["catalog.fetch"]["passed"])
        self.assertEqual(checks["catalog.fetch"]["actual"]["status"], 401, checks["catalog.fetch"])
        self.assertTrue(checks["errors.wrong_credentials"]["passed"])
        auths = [h.get("Authorization", "") for _, _, h, _ in bb.seen()]
        self.assertFalse(any(a.startswith("Basic") for a in auths), auths)
        tokens = [a[7:] for a in auths if a.startswith("Bearer ") and "invalid" not in a]
        self.assertTrue(tokens, auths)
        # the token is the platform's, for brokers: its own API refuses it
        c = self.p.client()
        self.addCleanup(c.close)
        self.assertEqual(c.call("GET", "/v1/offerings", token=tokens[0]).status, 401)

    def test_hanging_broker_does_not_stall_the_platform(self):
        o, plans, bb, b = self.setup_offering("hang", hang_s=8)
        t0 = time.time()
        r = self.validate(o["id"], {"timeout_s": 3})
        self.assertLess(time.time() - t0, 3, "the run is not on the request's thread")
        sid = r.json["id"]
        # While the broker hangs, the platform answers everything else.
        c2 = self.p.client()
        c2.timeout = 5
        try:
            for path in ("/healthz", "/v1/offerings", "/v1/offerings/" + o["id"],
                         "/v1/offerings/%s/scorecards/%s" % (o["id"], sid)):
                t = time.time()
                resp = c2.call("GET", path, token=self.accounts["acme"]["token"])
                self.assertEqual(resp.status, 200, resp)
                self.assertLess(time.time() - t, 2.0, path)
            self.assertEqual(c2.call("GET", "/v1/offerings/%s/scorecards/%s" % (o["id"], sid),
                                     token=self.accounts["acme"]["token"]).json["state"],
                             "running")
            # One run per broker at a time: a second one waits for the first to end.
            r2 = self.validate(o["id"], {"timeout_s": 3}, status=409)
            self.assertEqual(r2.json["errors"][0]["target"], "broker_id")
            # ?wait= shorter than the run answers 202 on time, without holding a thread
            # (a second broker of the offering, hanging the same way).
            b2 = self.register(o["id"], bb.url, region="eu-de", user="bad-user",
                               password="bad-broker-pw")
            t = time.time()
            w = self.validate(o["id"], {"timeout_s": 3, "broker_id": b2["id"]}, wait=1,
                              status=202)
            self.assertEqual(w.json["state"], "running")
            self.assertTrue(0.8 <= time.time() - t < 4, time.time() - t)
            self.assertEqual(c2.call("GET", "/healthz").status, 200)
        finally:
            c2.close()
        for s in (sid, w.json["id"]):
            sc = self.scorecard(o["id"], s)
            self.assertEqual(sc["state"], "failed")
            fetch = self.by_name(sc)["catalog.fetch"]
            self.assertEqual(fetch["actual"], {"error": "timed out after 3 s"})
            self.assertTrue(self.by_name(sc)["errors.missing_version"]["passed"])

    def test_broker_hanging_on_provision(self):
        # The catalog is right; the probe's provision hangs (the broker keeps the instance and
        # answers only after hang_s). The per-call timeout ends the call, the scorecard names
        # the provision with the timeout as the broker's answer, the rest of the lifecycle is
        # reported as not run, the probe instance is cleaned up, the error cases still run,
        # and the platform answers everything else meanwhile.
        o, plans, bb, b = self.setup_offering("provision_hang", hang_s=8)
        t0 = time.time()
        r = self.validate(o["id"], {"timeout_s": 3})
        self.assertLess(time.time() - t0, 2, "the run is not on the request's thread")
        self.assertEqual(r.json["state"], "running")
        sid = r.json["id"]
        deadline = time.time() + 10
        while time.time() < deadline and not [
                x for x in bb.seen("PUT", "/v2/service_instances/") if "accepts_incomplete" in x[1]]:
            time.sleep(0.05)
        hung_at = time.time()
        self.assertTrue(bb.instances, "the provision did not reach the broker")
        c2 = self.p.client()
        c2.timeout = 5
        try:
            for path in ("/healthz", "/v1/offerings", "/v1/offerings/" + o["id"],
                         "/v1/catalog", "/v1/offerings/%s/brokers" % o["id"],
                         "/v1/offerings/%s/scorecards/%s" % (o["id"], sid)):
                t = time.time()
                resp = c2.call("GET", path, token=self.accounts["acme"]["token"])
                self.assertEqual(resp.status, 200, resp)
                self.assertLess(time.time() - t, 1.0, path)
            # Still inside the provision's timeout: the run is waiting on the broker.
            self.assertLess(time.time() - hung_at, 3)
            during = c2.call("GET", "/v1/offerings/%s/scorecards/%s" % (o["id"], sid),
                             token=self.accounts["acme"]["token"]).json
            self.assertEqual(during["state"], "running")
            # Another provider's work goes on meanwhile.
            t = time.time()
            other = c2.call("POST", "/v1/offerings", token=self.accounts["globex"]["token"],
                            body={"name": self.uid("busy"), "display_name": "Busy"})
            self.assertEqual(other.status, 201, other)
            self.assertLess(time.time() - t, 1.0)
        finally:
            c2.close()
        sc = self.scorecard(o["id"], sid)
        self.assertEqual(sc["state"], "failed")
        checks = self.by_name(sc)
        for n in catalog_checks(["lite", "premium", "standard"])[:-1]:
            self.assertTrue(checks[n]["passed"], checks[n])
        prov = checks["lifecycle.provision"]
        self.assertFalse(prov["passed"])
        self.assertEqual(prov["actual"], {"error": "timed out after 3 s"})
        for n in LIFECYCLE[1:]:
            self.assertFalse(checks[n]["passed"])
            self.assertEqual(checks[n]["actual"], {"error": "not run: the provision failed"})
        # The kept instance was removed after the failure (the broker found it: 200).
        self.assertTrue(checks["lifecycle.cleanup"]["passed"], checks["lifecycle.cleanup"])
        self.assertEqual(checks["lifecycle.cleanup"]["actual"]["status"], 200)
        self.assertEqual(bb.instances, {})
        for n in ERRORS:
            self.assertTrue(checks[n]["passed"], checks[n])
        self.assertEqual(self.failed(sc), set(LIFECYCLE))
        self.assertEqual(sc["summary"]["failed"], len(LIFECYCLE))
        # A failed scorecard keeps step 3 open.
        self.assertIn("scorecard", self.step3(o["id"])["missing"])

    def test_validate_request_errors(self):
        o = self.offering()
        oid = o["id"]
        r = self.validate(oid, {}, status=409)  # no broker
        self.assertIn("broker", r.json["errors"][0]["message"])
        self.register(oid, "http://127.0.0.1:9", region="us-south")
        self.register(oid, "http://127.0.0.1:9", region="eu-de")
        self.assertField(self.validate(oid, {}, status=400), "broker_id")
        self.assertField(self.validate(oid, {"broker_id": "nope"}, status=404), "broker_id", 404)
        self.assertField(self.validate(oid, {"broker_id": 5}, status=400), "broker_id")
        for t in (0, 61, "10", 1.5):
            self.assertField(self.validate(oid, {"timeout_s": t}, status=400), "timeout_s")
        self.assertField(self.validate(oid, {"speed": 1}, status=400), "speed")
        for w in ("61", "-1", "x"):
            self.assertField(self.validate(oid, {}, wait=w, status=400), "wait")
        self.assertEqual(self.call("acme", "GET", "/v1/offerings/%s/scorecards/nope" % oid).status,
                         404)
        self.assertEqual(self.call("acme", "POST", "/v1/offerings/nope/validate", {}).status, 404)
        # A broker nobody listens on: the run fails quickly, naming the connection error.
        brokers = self.call("acme", "GET", "/v1/offerings/%s/brokers" % oid).json["brokers"]
        sc = self.run_validation(oid, broker_id=brokers[0]["id"], timeout_s=2)
        self.assertEqual(sc["state"], "failed")
        self.assertTrue(self.by_name(sc)["catalog.fetch"]["actual"]["error"])
        self.assertEqual(sc["broker_id"], brokers[0]["id"])
        # Cloud metadata addresses are never called, whatever a provider registers.
        meta = self.register(oid, "http://169.254.169.254/latest", region="meta")
        sc = self.run_validation(oid, broker_id=meta["id"], timeout_s=2)
        self.assertIn("link-local", self.by_name(sc)["catalog.fetch"]["actual"]["error"])
        self.assertEqual(sc["summary"]["passed"], 0)


class ProxyIgnoredTest(BrokersBase):
    """The platform's environment names a proxy (that does not exist): validation still goes
    straight to the broker, so the address checks apply to the broker itself."""

    platform_env = {"http_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
                    "all_proxy": "http://127.0.0.1:9"}

    def test_validation_does_not_use_a_proxy(self):
        o, plans, bb, b = BadBrokerValidationTest.setup_offering(self, "good")
        sc = self.run_validation(o["id"])
        self.assertTrue(self.by_name(sc)["catalog.fetch"]["passed"], json.dumps(sc, indent=1))
        self.assertEqual(sc["state"], "passed", json.dumps(sc, indent=1))


class StopDuringValidationTest(unittest.TestCase):
    """The platform stops cleanly while a broker hangs in the middle of a validation, and the
    scorecard it leaves says the run did not finish."""

    def test_stop_while_broker_hangs(self):
        p = Platform().start()
        try:
            c = p.client()
            tok = c.apikey_token(p.init["api_key"])
            o = c.call("POST", "/v1/offerings", token=tok,
                       body={"name": "stop-test", "display_name": "Stop"}).json
            bb = BadBroker(o["id"], "stop-test", [], mode="hang", hang_s=60).start()
            r = c.call("POST", "/v1/offerings/%s/brokers" % o["id"], token=tok,
                       body={"region": "us-south", "url": bb.url,
                             "auth": {"type": "basic", "username": "bad-user",
                                      "password": "bad-broker-pw"}})
            self.assertEqual(r.status, 201, r)
            second = c.call("POST", "/v1/offerings/%s/brokers" % o["id"], token=tok,
                            body={"region": "eu-de", "url": bb.url,
                                  "auth": {"type": "basic", "username": "bad-user",
                                           "password": "bad-broker-pw"}})
            self.assertEqual(second.status, 201, second)
            r = c.call("POST", "/v1/offerings/%s/validate" % o["id"], token=tok,
                       body={"timeout_s": 50, "broker_id": r.json["id"]})
            self.assertEqual(r.status, 202, r)
            sid = r.json["id"]
            answers = []

            def waiter():
                w = p.client()
                try:
                    answers.append(w.call("POST", "/v1/offerings/%s/validate" % o["id"],
                                          token=tok, body={"timeout_s": 50,
                                                           "broker_id": second.json["id"]},
                                          query={"wait": "3"}))
                except Exception as e:  # noqa: BLE001 - recorded for the assertion
                    answers.append(e)
                finally:
                    w.close()

            th = threading.Thread(target=waiter)
            th.start()
            time.sleep(1.0)
            c.close()
            t0 = time.time()
            p.stop(timeout=20)  # exit 0, no sanitizer report
            self.assertLess(time.time() - t0, 15)
            th.join(10)
            # The deferred request was answered (202, the run still going) before the server
            # went, or its connection was closed by the stop: either way it did not hang.
            self.assertEqual(len(answers), 1)
            if not isinstance(answers[0], Exception):
                self.assertEqual(answers[0].status, 202, answers[0])
            bb.stop()
            p.lines = []
            p.start()
            c = p.client()
            tok = c.apikey_token(p.init["api_key"])
            sc = c.call("GET", "/v1/offerings/%s/scorecards/%s" % (o["id"], sid), token=tok)
            self.assertEqual(sc.status, 200, sc)
            self.assertEqual(sc.json["state"], "failed")
            fetch = {x["name"]: x for x in sc.json["checks"]}["catalog.fetch"]
            self.assertIn("stopping", fetch["actual"]["error"])
            c.close()
        finally:
            try:
                p.stop()
            finally:
                p.cleanup()


if __name__ == "__main__":
    unittest.main()
