"""An offering's whole way from draft to public with the real starter broker, every step
through the platform's API as a provider, a tester and the operator would take it, and each
gate refusing while its step is incomplete: no plans or pricing, no passing scorecard, no
single sign-on, no test in limited visibility."""

import json
import os
import shutil
import socket
import tempfile
import time
import unittest
import urllib.parse

from harness import Broker, Platform

HERE = os.path.dirname(os.path.abspath(__file__))
STARTER_CATALOG = os.path.join(HERE, "..", "..", "examples", "starter-broker", "catalog.json")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class DraftToPublicTest(unittest.TestCase):
    def setUp(self):
        self.p = Platform().start()
        self.addCleanup(self.p.cleanup)
        self.addCleanup(self.p.stop)
        self.c = self.p.client()
        self.addCleanup(self.c.close)
        self.op = self.c.apikey_token(self.p.init["api_key"])
        self.tok = {"operator": self.op}
        self.acct = {}
        for name, kind in (("kvcorp", "provider"), ("tester", "consumer"),
                           ("outsider", "consumer")):
            r = self.c.call("POST", "/v1/accounts", token=self.op, body={
                "name": name, "kind": kind,
                "owner": {"email": "%s@example.com" % name, "name": name.title(),
                          "password": "password-%s" % name}})
            self.assertEqual(r.status, 201, r)
            k = self.c.call("POST", "/v1/apikeys", token=self.op, body={
                "name": "owner", "iam_id": r.json["owner_iam_id"], "account_id": r.json["id"]})
            self.acct[name] = r.json["id"]
            self.tok[name] = self.c.apikey_token(k.json["apikey"])

    def call(self, who, method, path, body=None, status=None, **kw):
        r = self.c.call(method, path, body=body, token=self.tok[who], **kw)
        if status is not None:
            self.assertEqual(r.status, status, r)
        return r

    def gates(self, oid):
        r = self.call("kvcorp", "POST", "/v1/offerings/%s/publication" % oid,
                      {"action": "request"})
        if r.status == 200:
            return []
        self.assertEqual(r.status, 409, r)
        return [e["target"] for e in r.json["errors"]]

    def wait_instance(self, who, guid, states, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.call(who, "GET", "/v2/resource_instances/" + guid)
            if r.status == 200 and r.json["state"] in states:
                return r.json
            if r.status == 404 and "removed" in states:
                return None
            time.sleep(0.2)
        self.fail("instance %s never reached %s: %r" % (guid, states, r))

    def test_walk(self):
        with open(STARTER_CATALOG) as f:
            starter = json.load(f)["services"][0]
        # 1-2. The offering and its metadata; every gate is closed.
        o = self.call("kvcorp", "POST", "/v1/offerings", {
            "id": starter["id"], "name": "starter-kv", "display_name": "Starter KV",
            "short_description": "A metered key-value store.",
            "long_description": "Namespaces as a service.",
            "icon_url": "https://kv.example.com/icon.svg",
            "documentation_url": "https://kv.example.com/docs",
            "terms_url": "https://kv.example.com/terms",
            "support": {"url": "https://kv.example.com/support", "hours": "24x7",
                        "severity_targets": {"1": 60, "2": 120, "3": 480, "4": 1440}}},
            status=201).json
        oid = o["id"]
        g = self.gates(oid)
        for t in ("listing.bullets", "plans", "iam", "broker", "scorecard", "sso.redirect_uris",
                  "visibility.limited", "evidence.instance_lifecycle"):
            self.assertIn(t, g)
        # Plans: a paid plan without its prices keeps the pricing gate closed.
        by_name = {p["name"]: p for p in starter["plans"]}
        api_calls = {"id": "API_CALLS", "display_name": "API calls", "unit": "call",
                     "metering_model": "standard_add", "charge_unit_quantity": "1000"}
        self.call("kvcorp", "POST", "/v1/offerings/%s/plans" % oid, {
            "id": by_name["lite"]["id"], "name": "lite", "kind": "lite", "display_name": "Lite",
            "description": "Free.", "schemas": by_name["lite"]["schemas"]}, status=201)
        std = self.call("kvcorp", "POST", "/v1/offerings/%s/plans" % oid, {
            "id": by_name["standard"]["id"], "name": "standard", "kind": "metered",
            "display_name": "Standard", "description": "Pay per call.",
            "schemas": by_name["standard"].get("schemas"), "metrics": [api_calls]},
            status=201).json
        self.assertIn("plans.standard.pricing", self.gates(oid))
        self.call("kvcorp", "PUT", "/v1/offerings/%s/plans/%s/pricing" % (oid, std["id"]),
                  {"pricing": {"API_CALLS": {"USD": {"model": "graduated_tier", "tiers": [
                      {"up_to": "1000", "price": "0.10"}, {"up_to": None, "price": "0.08"}]}}}},
                  status=200)
        self.assertNotIn("plans.standard.pricing", self.gates(oid))
        # IAM, then SSO with the broker's callback: its gate opens only with a redirect URI.
        port = free_port()
        broker_url = "http://127.0.0.1:%d" % port
        iam = self.call("kvcorp", "POST", "/v1/offerings/%s/iam" % oid, status=201).json
        self.assertIn("sso.redirect_uris", self.gates(oid))
        self.call("kvcorp", "PATCH", "/v1/offerings/%s/iam" % oid,
                  {"redirect_uris": [broker_url + "/sso/callback"]}, status=200)
        self.assertNotIn("sso.redirect_uris", self.gates(oid))
        # 1. The listing, reviewed by the operator.
        self.call("kvcorp", "PATCH", "/v1/offerings/" + oid, {"listing": {"bullets": [
            {"title": "Namespaces", "description": "One per instance."}]}}, status=200)
        self.call("kvcorp", "POST", "/v1/offerings/%s/listing/review" % oid,
                  {"action": "submit"}, status=200)
        self.call("operator", "POST", "/v1/offerings/%s/listing/review" % oid,
                  {"action": "approve"}, status=200)
        # 3. The broker, on the platform's own catalog.json, registered, deployed, validated.
        tmp = tempfile.mkdtemp(prefix="walk-")
        self.addCleanup(shutil.rmtree, tmp, True)
        exported = self.call("kvcorp", "GET", "/v1/offerings/%s/catalog.json" % oid,
                             status=200).json
        path = os.path.join(tmp, "catalog.json")
        with open(path, "w") as f:
            json.dump(exported, f)
        broker = Broker(extra=["--catalog", path, "--platform", self.p.url], async_seconds=1)
        broker.argv[broker.argv.index("127.0.0.1:0")] = "127.0.0.1:%d" % port
        broker.env = {"OSB_SSO_CLIENT_ID": iam["client"]["client_id"],
                      "OSB_SSO_CLIENT_SECRET": iam["client"]["client_secret"]}
        broker.start()
        self.addCleanup(broker.cleanup)
        self.addCleanup(broker.stop)
        b = self.call("kvcorp", "POST", "/v1/offerings/%s/brokers" % oid, {
            "region": "us-south", "url": broker_url,
            "auth": {"type": "basic", "username": broker.user, "password": broker.password}},
            status=201).json
        for plan in self.call("kvcorp", "GET", "/v1/offerings/%s/plans" % oid).json["plans"]:
            self.call("kvcorp", "PUT", "/v1/offerings/%s/plans/%s/deployments/us-south"
                      % (oid, plan["id"]), status=201)
        self.assertIn("scorecard", self.gates(oid))
        sc = self.call("kvcorp", "POST", "/v1/offerings/%s/validate" % oid,
                       {"broker_id": b["id"]}, query={"wait": "25"}, status=200).json
        self.assertEqual(sc["state"], "passed", json.dumps(sc, indent=1))
        self.assertNotIn("scorecard", self.gates(oid))
        # 5. Limited visibility: the tester (allowlisted) provisions and deletes an instance;
        # the outsider sees nothing.
        self.call("kvcorp", "POST", "/v1/offerings/%s/visibility" % oid,
                  {"visibility": "limited"}, status=200)
        self.call("kvcorp", "PUT", "/v1/offerings/%s/allowlist/%s" % (oid, self.acct["tester"]),
                  status=204)
        self.call("outsider", "GET", "/v1/offerings/" + oid, status=404)
        self.assertEqual(self.gates(oid), ["evidence.instance_lifecycle", "evidence.usage"])
        inst = self.call("tester", "POST", "/v2/resource_instances", {
            "name": "walk-test", "target": "us-south",
            "resource_plan_id": std["id"]})
        self.assertIn(inst.status, (201, 202), inst)
        guid = inst.json["guid"]
        self.wait_instance("tester", guid, ("active",))
        # The provider meters the tester's use of its metered plan.
        time.sleep(0.01)
        end = int(time.time() * 1000)
        r = self.call("kvcorp", "POST", "/v4/metering/resources/%s/usage" % oid, [{
            "resource_instance_id": guid, "plan_id": std["id"], "start": end - 1, "end": end,
            "measured_usage": [{"measure": "API_CALLS", "quantity": 42}]}], status=202)
        self.assertEqual(r.json["resources"], [{"status": 201}], r)
        self.assertEqual(self.gates(oid), ["evidence.instance_lifecycle"])
        self.call("outsider", "GET", "/v2/resource_instances/" + guid, status=404)
        r = self.call("tester", "DELETE", "/v2/resource_instances/" + guid)
        self.assertIn(r.status, (200, 202, 204), r)
        # A deleted instance waits for its reclamation (7 days by default); the tester
        # reclaims it at once, which deprovisions it at the broker.
        self.wait_instance("tester", guid, ("pending_reclamation",))
        recl = self.call("tester", "GET", "/v1/reclamations",
                         query={"resource_instance_id": guid}, status=200).json["resources"]
        self.assertEqual([x["state"] for x in recl], ["SCHEDULED"], recl)
        self.call("tester", "POST", "/v1/reclamations/%s/actions/reclaim" % recl[0]["id"],
                  status=202)
        self.wait_instance("tester", guid, ("removed",))
        # 6. Publication: requested by the provider, approved by the operator only.
        self.assertEqual(self.gates(oid), [])
        self.call("kvcorp", "POST", "/v1/offerings/%s/publication" % oid,
                  {"action": "approve"}, status=403)
        o = self.call("operator", "POST", "/v1/offerings/%s/publication" % oid,
                      {"action": "approve"}, status=200).json
        self.assertEqual((o["visibility"], o["publication"]), ("public", "approved"))
        self.assertTrue(all(s["complete"] for s in o["steps"]), o["steps"])
        # Public: the outsider finds it and its published plans.
        found = self.call("outsider", "GET", "/v1/catalog",
                          query={"q": "starter"}).json["offerings"]
        self.assertEqual([x["id"] for x in found], [oid])
        self.assertEqual(sorted(p["name"] for p in found[0]["plans"]), ["lite", "standard"])


if __name__ == "__main__":
    unittest.main()
