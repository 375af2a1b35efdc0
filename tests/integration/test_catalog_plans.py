"""Catalog plans over HTTP against a real osbill serve: the three kinds of plan (lite,
subscription, metered), their metrics, schemas and maintenance info, the pricing document and
every rule it is checked against, price versions before and after publication, the plan
lifecycle (patch, delete, deprecate, approve), who may see and change plans, and what step 2
of onboarding still misses."""

import datetime
import json
import os
import subprocess
import unittest
import uuid

from harness import Platform

FEE = {"id": "MONTHLY_FEE", "display_name": "Monthly fee", "unit": "instance-month",
       "metering_model": "monthlyproration", "charge_unit_quantity": "1",
       "allow_negative": False}

API_CALLS = {"id": "API_CALLS", "display_name": "API calls", "unit": "call",
             "metering_model": "standard_add", "charge_unit_quantity": "1000"}
STORAGE = {"id": "STORAGE", "display_name": "Storage", "unit": "GB-month",
           "metering_model": "dailyproration_avg"}


def linear(price):
    return {"model": "linear", "tiers": [{"up_to": None, "price": price}]}


def month_after(months):
    now = datetime.datetime.now(datetime.timezone.utc)
    m = now.year * 12 + now.month - 1 + months
    return "%04d-%02d" % (m // 12, m % 12 + 1)


class CatalogPlansTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Platform().start()
        c = cls.p.client()
        cls.op_token = c.apikey_token(cls.p.init["api_key"])
        cls.tenants = {}
        for name, kind in (("acme", "provider"), ("initech", "provider"),
                           ("globex", "consumer")):
            r = c.call("POST", "/v1/accounts", token=cls.op_token,
                       body={"name": name, "kind": kind,
                             "owner": {"email": "%s@example.com" % name, "name": name.title(),
                                       "password": "password-%s" % name}})
            assert r.status == 201, r
            acct = r.json
            r = c.call("POST", "/v1/apikeys", token=cls.op_token,
                       body={"name": "owner key", "iam_id": acct["owner_iam_id"],
                             "account_id": acct["id"]})
            assert r.status == 201, r
            cls.tenants[name] = {"account": acct["id"], "token": c.apikey_token(r.json["apikey"])}
        c.close()
        cls.acme = cls.tenants["acme"]["token"]
        cls.initech = cls.tenants["initech"]["token"]
        cls.globex = cls.tenants["globex"]["token"]

    @classmethod
    def tearDownClass(cls):
        try:
            cls.p.stop()
        finally:
            cls.p.cleanup()

    def setUp(self):
        self.c = self.p.client()

    def tearDown(self):
        self.c.close()

    # ------------------------------------------------------------ helpers

    def offering(self):
        name = "svc-" + os.urandom(4).hex()
        r = self.c.call("POST", "/v1/offerings", token=self.acme,
                        body={"name": name, "display_name": "Service " + name})
        self.assertEqual(r.status, 201, r)
        return r.json["id"]

    def plans(self, oid):
        return "/v1/offerings/%s/plans" % oid

    def create(self, oid, token=None, **fields):
        return self.c.call("POST", self.plans(oid), token=token or self.acme, body=fields)

    def metered_body(self, **extra):
        body = {"name": "standard", "kind": "metered", "display_name": "Standard",
                "description": "Pay for what you use.", "metrics": [API_CALLS, STORAGE],
                "pricing": {"API_CALLS": {"USD": linear("0.5"), "EUR": linear("0.45")},
                            "STORAGE": {"USD": linear("0.02"), "EUR": linear("0.02")}}}
        body.update(extra)
        return body

    def assertFieldError(self, r, status, target):
        self.assertEqual(r.status, status, r)
        err = r.json["errors"][0]
        self.assertEqual(err.get("target"), target, r)
        self.assertIsInstance(err["message"], str)
        self.assertTrue(r.json["trace"])

    def missing(self, oid):
        r = self.c.call("GET", "/v1/offerings/" + oid, token=self.acme)
        self.assertEqual(r.status, 200, r)
        step = r.json["steps"][1]
        self.assertEqual(step["step"], 2)
        return [m for m in step["missing"] if m == "plans" or m.startswith("plans.")]

    def make_public(self, oid):
        # The visibility and publication workflow is built in another file (publish.c); until
        # it lands, flip the offering to public in the store the way its approval will, so
        # that the plan approval and the published price rules can be tested here.
        self.p.sql("UPDATE offerings SET visibility = 'public' WHERE id = ?", (oid,))

    def approve(self, oid, pid, token=None):
        return self.c.call("POST", "%s/%s/approve" % (self.plans(oid), pid),
                           token=token or self.op_token)

    # ------------------------------------------------------------ the three kinds

    def test_lite_plan(self):
        oid = self.offering()
        r = self.create(oid, name="lite", kind="lite", display_name="Lite",
                        description="Free forever, 1,000 calls a month.")
        self.assertEqual(r.status, 201, r)
        j = r.json
        uuid.UUID(j["id"])  # a generated OSB plan id
        self.assertEqual((j["name"], j["kind"], j["free"]), ("lite", "lite", True))
        self.assertEqual((j["bindable"], j["plan_updateable"]), (True, False))
        self.assertEqual((j["state"], j["published"]), ("active", False))
        self.assertIsNone(j["pricing"])
        self.assertEqual(j["metrics"], [])
        self.assertNotIn("sample_usage_curl", j)
        self.assertEqual(j["offering_id"], oid)
        # free given and right is accepted
        r = self.create(oid, name="lite", kind="lite", display_name="Lite", description="x",
                        free=True)
        self.assertFieldError(r, 409, "name")
        r = self.c.call("GET", "%s/%s" % (self.plans(oid), j["id"]), token=self.acme)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, j)

    def test_subscription_plan(self):
        oid = self.offering()
        r = self.create(oid, name="pro", kind="subscription", display_name="Pro",
                        description="A flat monthly fee.", free=False, bindable=False,
                        pricing={"MONTHLY_FEE": {"USD": linear("29.00"),
                                                 "JPY": linear(3000)}})
        self.assertEqual(r.status, 201, r)
        j = r.json
        self.assertEqual(j["metrics"], [FEE])
        self.assertEqual((j["free"], j["bindable"]), (False, False))
        self.assertEqual(j["pricing"], {"MONTHLY_FEE": {
            "USD": {"model": "linear", "tiers": [{"up_to": None, "price": "29"}]},
            "JPY": {"model": "linear", "tiers": [{"up_to": None, "price": "3000"}]}}})
        # the platform meters the fee: nothing for the provider to submit
        self.assertNotIn("sample_usage_curl", j)
        # Extra metrics beside the fee are the provider's; the fee stays linear.
        r = self.create(oid, name="pro-plus", kind="subscription", display_name="Pro+",
                        description="Fee plus overage.", metrics=[API_CALLS],
                        pricing={"MONTHLY_FEE": {"USD": {"model": "block_tier", "tiers": [
                            {"up_to": None, "price": "1"}]}},
                            "API_CALLS": {"USD": linear("1")}})
        self.assertFieldError(r, 400, "pricing.MONTHLY_FEE.USD.model")
        r = self.create(oid, name="pro-plus", kind="subscription", display_name="Pro+",
                        description="Fee plus overage.", metrics=[FEE, API_CALLS])
        self.assertEqual(r.status, 201, r)
        self.assertEqual([m["id"] for m in r.json["metrics"]], ["MONTHLY_FEE", "API_CALLS"])
        self.assertIn('"measure":"API_CALLS"', r.json["sample_usage_curl"])
        self.assertNotIn("MONTHLY_FEE", r.json["sample_usage_curl"])

    def test_metered_plan(self):
        oid = self.offering()
        pid = "acme.standard_" + os.urandom(3).hex()
        tiers = [{"up_to": 1000, "price": "0.10"}, {"up_to": "10000.000", "price": "0.080"},
                 {"up_to": None, "price": 0}]
        r = self.create(oid, id=pid, name="standard", kind="metered", display_name="Standard",
                        description="Pay per call.\nVolume discounts.", plan_updateable=True,
                        metrics=[API_CALLS, dict(STORAGE, allow_negative=True,
                                                 charge_unit_quantity=2)],
                        maintenance_info={"version": "1.2.3-rc.1+build.5",
                                          "description": "TLS 1.3"},
                        schemas={"service_instance": {"create": {"parameters": {
                            "$schema": "http://json-schema.org/draft-04/schema#",
                            "type": "object", "properties": {"size": {"enum": ["s", "m"]}}}}},
                            "service_binding": {"create": {"parameters": {"type": "object"}}}},
                        pricing={"API_CALLS": {"USD": {"model": "graduated_tier",
                                                       "tiers": tiers}},
                                 "STORAGE": {"USD": linear("0.25")}})
        self.assertEqual(r.status, 201, r)
        j = r.json
        self.assertEqual(j["id"], pid)
        self.assertEqual(j["metrics"], [
            dict(API_CALLS, allow_negative=False),
            dict(STORAGE, allow_negative=True, charge_unit_quantity="2")])
        self.assertEqual(j["pricing"]["API_CALLS"]["USD"]["tiers"], [
            {"up_to": "1000", "price": "0.1"}, {"up_to": "10000", "price": "0.08"},
            {"up_to": None, "price": "0"}])
        self.assertEqual(j["maintenance_info"]["version"], "1.2.3-rc.1+build.5")
        self.assertEqual(j["schemas"]["service_binding"]["create"]["parameters"],
                         {"type": "object"})
        self.assertTrue(j["plan_updateable"])
        self.assertEqual(self.missing(oid), [])

    def test_sample_usage_curl_runs(self):
        oid = self.offering()
        r = self.create(oid, **self.metered_body())
        self.assertEqual(r.status, 201, r)
        cmd = r.json["sample_usage_curl"]
        # Run it with a curl that prints its arguments instead of sending them.
        script = "curl() { printf '%s\\0' \"$@\"; }\n" + cmd
        out = subprocess.run(["bash", "-c", script], capture_output=True, timeout=30,
                             env={"PATH": os.environ["PATH"], "TOKEN": "tok-1",
                                  "INSTANCE_ID": "inst-1", "REGION": "us-south"})
        self.assertEqual(out.returncode, 0, out)
        args = out.stdout.decode().split("\0")[:-1]
        self.assertEqual(args[:3], ["-X", "POST", "%s/v4/metering/resources/%s/usage"
                                    % (self.p.url, oid)])
        self.assertIn("Authorization: Bearer tok-1", args)
        self.assertIn("Content-Type: application/json", args)
        records = json.loads(args[args.index("-d") + 1])
        self.assertEqual(len(records), 1)
        rec = records[0]
        self.assertEqual((rec["resource_instance_id"], rec["plan_id"], rec["region"]),
                         ("inst-1", r.json["id"], "us-south"))
        self.assertIsInstance(rec["start"], int)
        self.assertEqual(rec["end"] - rec["start"], 3600000)
        self.assertEqual(rec["measured_usage"], [{"measure": "API_CALLS", "quantity": 1},
                                                 {"measure": "STORAGE", "quantity": 1}])

    # ------------------------------------------------------------ validation, one rule each

    def test_validation(self):
        oid = self.offering()
        big = {"type": "object", "description": "x" * (70 * 1024)}
        two = {"USD": linear("1")}
        cases = [
            ("body not an object", None, ""),
            ("unknown field", {"colour": "red"}, "colour"),
            ("bad id", {"id": "has space"}, "id"),
            ("id too long", {"id": "a" * 65}, "id"),
            ("name missing", {"name": None}, "name"),
            ("name with uppercase", {"name": "Standard"}, "name"),
            ("name from a digit", {"name": "1plan"}, "name"),
            ("wrong kind", {"kind": "free"}, "kind"),
            ("kind missing", {"kind": None}, "kind"),
            ("lite not named lite", {"kind": "lite", "metrics": [], "pricing": None}, "name"),
            ("lite with pricing", {"name": "lite", "kind": "lite", "metrics": []}, "pricing"),
            ("free wrong for metered", {"free": True}, "free"),
            ("free wrong for lite", {"name": "lite", "kind": "lite", "free": False,
                                     "pricing": None}, "free"),
            ("display_name missing", {"display_name": None}, "display_name"),
            ("display_name too long", {"display_name": "x" * 101}, "display_name"),
            ("description too long", {"description": "x" * 1001}, "description"),
            ("bindable not a bool", {"bindable": "yes"}, "bindable"),
            ("plan_updateable not a bool", {"plan_updateable": "yes"}, "plan_updateable"),
            ("plan_updateable a number", {"plan_updateable": 1}, "plan_updateable"),
            ("metric not an object", {"metrics": ["API_CALLS"]}, "metrics[0]"),
            ("second metric not an object", {"metrics": [API_CALLS, 7]}, "metrics[1]"),
            ("metric null", {"metrics": [API_CALLS, None]}, "metrics[1]"),
            ("metrics not an array", {"metrics": API_CALLS}, "metrics"),
            ("metric with an unknown field", {"metrics": [dict(API_CALLS, color="red")]},
             "metrics[0].color"),
            ("metric display_name missing",
             {"metrics": [{k: v for k, v in API_CALLS.items() if k != "display_name"}]},
             "metrics[0].display_name"),
            ("metric display_name empty", {"metrics": [dict(API_CALLS, display_name="")]},
             "metrics[0].display_name"),
            ("metric display_name too long",
             {"metrics": [API_CALLS, dict(STORAGE, display_name="x" * 101)]},
             "metrics[1].display_name"),
            ("metric display_name not text", {"metrics": [dict(API_CALLS, display_name=5)]},
             "metrics[0].display_name"),
            ("metric allow_negative not a bool",
             {"metrics": [dict(API_CALLS, allow_negative="no")]}, "metrics[0].allow_negative"),
            ("metric allow_negative a number",
             {"metrics": [API_CALLS, dict(STORAGE, allow_negative=0)]},
             "metrics[1].allow_negative"),
            ("bad metric id", {"metrics": [dict(API_CALLS, id="api_calls")]}, "metrics[0].id"),
            ("metric id reserved", {"metrics": [dict(API_CALLS, id="MONTHLY_FEE")]},
             "metrics[0].id"),
            ("duplicate metric", {"metrics": [API_CALLS, API_CALLS]}, "metrics[1].id"),
            ("too many metrics", {"metrics": [dict(API_CALLS, id="M%d" % i)
                                              for i in range(21)]}, "metrics"),
            ("bad metering model", {"metrics": [dict(API_CALLS, metering_model="sum")]},
             "metrics[0].metering_model"),
            ("metric unit missing", {"metrics": [dict(API_CALLS, unit="")]}, "metrics[0].unit"),
            ("charge_unit_quantity 0", {"metrics": [dict(API_CALLS, charge_unit_quantity="0")]},
             "metrics[0].charge_unit_quantity"),
            ("charge_unit_quantity negative",
             {"metrics": [dict(API_CALLS, charge_unit_quantity="-5")]},
             "metrics[0].charge_unit_quantity"),
            ("charge_unit_quantity not numeric",
             {"metrics": [dict(API_CALLS, charge_unit_quantity="lots")]},
             "metrics[0].charge_unit_quantity"),
            ("schema of another draft", {"schemas": {"service_instance": {"create": {
                "parameters": {"$schema": "http://json-schema.org/draft-07/schema#",
                               "type": "object"}}}}},
             "schemas.service_instance.create.parameters"),
            ("schema not a valid draft-04 schema", {"schemas": {"service_instance": {"update": {
                "parameters": {"type": "strnig"}}}}},
             "schemas.service_instance.update.parameters"),
            ("schema with an empty required (draft-04 meta-schema)",
             {"schemas": {"service_binding": {"create": {"parameters": {"required": []}}}}},
             "schemas.service_binding.create.parameters"),
            ("schema with a remote $ref", {"schemas": {"service_instance": {"create": {
                "parameters": {"$ref": "https://schemas.example.com/params.json"}}}}},
             "schemas.service_instance.create.parameters"),
            ("schemas over 64 kB", {"schemas": {"service_instance": {"create": {
                "parameters": big}}}}, "schemas"),
            ("schemas with an unknown part", {"schemas": {"service_key": {}}},
             "schemas.service_key"),
            ("maintenance_info bad semver", {"maintenance_info": {"version": "1.2"}},
             "maintenance_info.version"),
            ("maintenance_info leading zero", {"maintenance_info": {"version": "01.2.3"}},
             "maintenance_info.version"),
            ("maintenance_info not an object", {"maintenance_info": "1.2.0"},
             "maintenance_info"),
            ("maintenance_info version missing", {"maintenance_info": {"description": "x"}},
             "maintenance_info.version"),
            ("maintenance_info unknown field",
             {"maintenance_info": {"version": "1.2.0", "notes": "x"}}, "maintenance_info.notes"),
            ("maintenance_info.description empty",
             {"maintenance_info": {"version": "1.2.0", "description": ""}},
             "maintenance_info.description"),
            ("maintenance_info.description not text",
             {"maintenance_info": {"version": "1.2.0", "description": 12}},
             "maintenance_info.description"),
            ("maintenance_info.description too long",
             {"maintenance_info": {"version": "1.2.0", "description": "x" * 1001}},
             "maintenance_info.description"),
            ("pricing: unknown metric", {"pricing": {"NOPE": two}}, "pricing.NOPE"),
            ("pricing: unknown currency", {"pricing": {"API_CALLS": {"XYZ": linear("1")},
                                                       "STORAGE": {"XYZ": linear("1")}}},
             "pricing.API_CALLS.XYZ"),
            ("pricing: unknown model", {"pricing": {"API_CALLS": {"USD": {
                "model": "volume", "tiers": [{"up_to": None, "price": "1"}]}}, "STORAGE": two}},
             "pricing.API_CALLS.USD.model"),
            ("pricing: negative price", {"pricing": {"API_CALLS": {"USD": linear("-0.01")},
                                                     "STORAGE": two}},
             "pricing.API_CALLS.USD.tiers[0].price"),
            ("pricing: 10 fractional digits",
             {"pricing": {"API_CALLS": {"USD": linear("0.0000000001")}, "STORAGE": two}},
             "pricing.API_CALLS.USD.tiers[0].price"),
            ("pricing: JSON real price", {"pricing": {"API_CALLS": {"USD": linear(0.5)},
                                                      "STORAGE": two}},
             "pricing.API_CALLS.USD.tiers[0].price"),
            ("pricing: tiers not ascending", {"pricing": {"API_CALLS": {"USD": {
                "model": "simple_tier", "tiers": [{"up_to": "100", "price": "1"},
                                                  {"up_to": "100", "price": "0.5"},
                                                  {"up_to": None, "price": "0.1"}]}},
                "STORAGE": two}}, "pricing.API_CALLS.USD.tiers[1].up_to"),
            ("pricing: up_to zero", {"pricing": {"API_CALLS": {"USD": {
                "model": "block_tier", "tiers": [{"up_to": "0", "price": "1"},
                                                 {"up_to": None, "price": "2"}]}},
                "STORAGE": two}}, "pricing.API_CALLS.USD.tiers[0].up_to"),
            ("pricing: last tier not open", {"pricing": {"API_CALLS": {"USD": {
                "model": "graduated_tier", "tiers": [{"up_to": "100", "price": "1"},
                                                     {"up_to": "200", "price": "0.5"}]}},
                "STORAGE": two}}, "pricing.API_CALLS.USD.tiers[1].up_to"),
            ("pricing: null in the middle", {"pricing": {"API_CALLS": {"USD": {
                "model": "graduated_tier", "tiers": [{"up_to": None, "price": "1"},
                                                     {"up_to": None, "price": "0.5"}]}},
                "STORAGE": two}}, "pricing.API_CALLS.USD.tiers[0].up_to"),
            ("pricing: linear with two tiers", {"pricing": {"API_CALLS": {"USD": {
                "model": "linear", "tiers": [{"up_to": "100", "price": "1"},
                                             {"up_to": None, "price": "0.5"}]}},
                "STORAGE": two}}, "pricing.API_CALLS.USD.tiers"),
            ("pricing: missing currency on one metric",
             {"pricing": {"API_CALLS": {"USD": linear("1"), "EUR": linear("1")},
                          "STORAGE": {"USD": linear("1")}}}, "pricing.STORAGE.EUR"),
            ("pricing: a metric not priced", {"pricing": {"API_CALLS": two}},
             "pricing.STORAGE"),
            ("pricing: no currency at all", {"metrics": [], "pricing": {}}, "pricing"),
        ]
        for what, change, target in cases:
            with self.subTest(what):
                if change is None:
                    r = self.c.call("POST", self.plans(oid), token=self.acme, body=[1])
                else:
                    body = self.metered_body()
                    for k, v in change.items():
                        if v is None:
                            body.pop(k, None)
                        else:
                            body[k] = v
                    r = self.create(oid, **body)
                self.assertFieldError(r, 400, target)
        # A change is checked the same way, field by field, and changes nothing when refused.
        r = self.create(oid, **self.metered_body(maintenance_info={"version": "1.0.0"}))
        self.assertEqual(r.status, 201, r)
        url = "%s/%s" % (self.plans(oid), r.json["id"])
        for change, target in (({"plan_updateable": "yes"}, "plan_updateable"),
                               ({"plan_updateable": None}, "plan_updateable"),
                               ({"maintenance_info": {"version": "1.1.0", "description": ""}},
                                "maintenance_info.description"),
                               ({"metrics": [API_CALLS, dict(STORAGE, allow_negative="yes")]},
                                "metrics[1].allow_negative"),
                               ({"metrics": [dict(API_CALLS, display_name=None), STORAGE]},
                                "metrics[0].display_name"),
                               ({"metrics": [[], STORAGE]}, "metrics[0]")):
            with self.subTest(patch=change):
                self.assertFieldError(self.c.call("PATCH", url, token=self.acme, body=change),
                                      400, target)
        got = self.c.call("GET", url, token=self.acme).json
        self.assertFalse(got["plan_updateable"])
        self.assertEqual(got["maintenance_info"], {"version": "1.0.0"})
        self.assertEqual(self.c.call("DELETE", url, token=self.acme).status, 204)
        # Nothing was created by any of them.
        r = self.c.call("GET", self.plans(oid), token=self.acme)
        self.assertEqual(r.json, {"total_count": 0, "plans": []})

    # ------------------------------------------------------------ uniqueness and access

    def test_duplicates(self):
        oid, other = self.offering(), self.offering()
        pid = "plan-" + os.urandom(4).hex()
        self.assertEqual(self.create(oid, **self.metered_body(id=pid)).status, 201)
        self.assertFieldError(self.create(oid, **self.metered_body()), 409, "name")
        # plan ids are unique on the whole platform, not only in an offering
        self.assertFieldError(self.create(other, **self.metered_body(id=pid)), 409, "id")
        self.assertEqual(self.create(other, **self.metered_body()).status, 201)

    def test_other_accounts_cannot_see_or_change_plans(self):
        oid = self.offering()
        r = self.create(oid, **self.metered_body())
        self.assertEqual(r.status, 201, r)
        pid = r.json["id"]
        base = self.plans(oid)
        calls = [("GET", base, None), ("POST", base, self.metered_body(name="x")),
                 ("GET", base + "/" + pid, None), ("PATCH", base + "/" + pid,
                                                   {"display_name": "Mine"}),
                 ("DELETE", base + "/" + pid, None), ("POST", base + "/" + pid + "/deprecate",
                                                      None),
                 ("GET", base + "/" + pid + "/pricing", None),
                 ("PUT", base + "/" + pid + "/pricing", {"pricing": {}})]
        for who in ("initech", "globex"):
            for method, path, body in calls:
                with self.subTest(who=who, method=method, path=path):
                    r = self.c.call(method, path, token=self.tenants[who]["token"], body=body)
                    self.assertEqual(r.status, 404, r)
        self.assertEqual(self.c.call("GET", base).status, 401)
        # Untouched.
        r = self.c.call("GET", base + "/" + pid, token=self.acme)
        self.assertEqual((r.status, r.json["display_name"], r.json["state"]),
                         (200, "Standard", "active"))

    # ------------------------------------------------------------ lifecycle

    def test_patch_delete_deprecate(self):
        oid = self.offering()
        r = self.create(oid, **self.metered_body())
        self.assertEqual(r.status, 201, r)
        pid, rev = r.json["id"], None
        url = "%s/%s" % (self.plans(oid), pid)
        rev = self.c.call("GET", "/v1/offerings/" + oid, token=self.acme).json["revision"]
        r = self.c.call("PATCH", url, token=self.acme,
                        body={"display_name": "Standard v2", "bindable": False,
                              "plan_updateable": True,
                              "maintenance_info": {"version": "2.0.0"}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["display_name"], r.json["bindable"], r.json["plan_updateable"],
                          r.json["maintenance_info"]),
                         ("Standard v2", False, True, {"version": "2.0.0"}))
        # every change touches the offering
        self.assertGreater(self.c.call("GET", "/v1/offerings/" + oid,
                                       token=self.acme).json["revision"], rev)
        for body, target in (({"name": "other"}, "name"), ({"id": "x"}, "id"),
                             ({"pricing": {}}, "pricing"), ({"free": True}, "free"),
                             ({"kind": "lite"}, "kind"), ({"kind": "gold"}, "kind"),
                             ({"description": ""}, "description"),
                             ({"metrics": [{"id": "bad id"}]}, "metrics[0].id")):
            with self.subTest(body=body):
                self.assertFieldError(self.c.call("PATCH", url, token=self.acme, body=body), 400,
                                      target)
        # Unpublished: metrics and kind change; the draft pricing keeps what still applies.
        r = self.c.call("PATCH", url, token=self.acme, body={"metrics": [API_CALLS]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(list(r.json["pricing"]), ["API_CALLS"])
        self.assertEqual(self.missing(oid), [])
        r = self.c.call("PATCH", url, token=self.acme, body={"kind": "subscription"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual([m["id"] for m in r.json["metrics"]], ["MONTHLY_FEE", "API_CALLS"])
        self.assertIn('"measure":"API_CALLS"', r.json["sample_usage_curl"])
        self.assertNotIn("MONTHLY_FEE", r.json["sample_usage_curl"])
        self.assertEqual(self.missing(oid), ["plans.standard.pricing"])
        r = self.c.call("PATCH", url, token=self.acme, body={"schemas": None,
                                                              "maintenance_info": None})
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("maintenance_info", r.json)
        # deprecate, twice: the same answer
        r1 = self.c.call("POST", url + "/deprecate", token=self.acme)
        self.assertEqual((r1.status, r1.json["state"]), (200, "deprecated"))
        r2 = self.c.call("POST", url + "/deprecate", token=self.acme)
        self.assertEqual((r2.status, r2.json), (200, r1.json))
        self.assertEqual(self.missing(oid), ["plans"])  # no active plan left
        # an unpublished plan can be deleted
        self.assertEqual(self.c.call("DELETE", url, token=self.acme).status, 204)
        self.assertEqual(self.c.call("GET", url, token=self.acme).status, 404)
        self.assertEqual(self.c.call("GET", url + "/pricing", token=self.acme).status, 404)
        self.assertEqual(self.c.call("DELETE", url, token=self.acme).status, 404)

    def test_missing_names_in_step_2(self):
        oid = self.offering()
        self.assertEqual(self.missing(oid), ["plans"])
        r = self.create(oid, name="metered", kind="metered", display_name="Metered",
                        description="By use.")
        self.assertEqual(r.status, 201, r)
        pid = r.json["id"]
        self.assertEqual(self.missing(oid), ["plans.metered.metrics", "plans.metered.pricing"])
        r = self.c.call("PATCH", "%s/%s" % (self.plans(oid), pid), token=self.acme,
                        body={"metrics": [API_CALLS]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.missing(oid), ["plans.metered.pricing"])
        r = self.c.call("PUT", "%s/%s/pricing" % (self.plans(oid), pid), token=self.acme,
                        body={"pricing": {"API_CALLS": {"CHF": linear("0.3")}}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.missing(oid), [])
        r = self.create(oid, name="lite", kind="lite", display_name="Lite", description="Free.")
        self.assertEqual(r.status, 201, r)
        r = self.create(oid, name="pro", kind="subscription", display_name="Pro",
                        description="Monthly.")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.missing(oid), ["plans.pro.pricing"])

    def test_draft_pricing_is_replaced(self):
        oid = self.offering()
        r = self.create(oid, **self.metered_body(pricing=None))
        self.assertEqual(r.status, 201, r)
        self.assertIsNone(r.json["pricing"])
        url = "%s/%s/pricing" % (self.plans(oid), r.json["id"])
        self.assertEqual(self.c.call("GET", url, token=self.acme).json,
                         {"current": None, "versions": []})
        body = {"pricing": {"API_CALLS": {"USD": linear("1")}, "STORAGE": {"USD": linear("2")}}}
        r = self.c.call("PUT", url, token=self.acme, body=body)
        self.assertEqual(r.status, 200, r)
        body["pricing"]["STORAGE"]["USD"] = linear("3.50")
        r = self.c.call("PUT", url, token=self.acme, body=body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual([v["effective_month"] for v in r.json["versions"]], ["0000-00"])
        self.assertEqual(r.json["current"]["STORAGE"]["USD"]["tiers"][0]["price"], "3.5")
        self.assertEqual(r.json["versions"][0]["pricing"], r.json["current"])
        self.assertEqual(self.c.call("GET", url, token=self.acme).json, r.json)
        # No month before publication; the rules hold for PUT too.
        self.assertFieldError(self.c.call("PUT", url, token=self.acme,
                                          body=dict(body, effective_month=month_after(1))),
                              400, "effective_month")
        self.assertFieldError(self.c.call("PUT", url, token=self.acme,
                                          body={"pricing": {"API_CALLS": {"USD": linear("1")}}}),
                              400, "pricing.STORAGE")
        self.assertFieldError(self.c.call("PUT", url, token=self.acme, body={}), 400, "pricing")
        self.assertFieldError(self.c.call("PUT", url, token=self.acme,
                                          body=dict(body, when="now")), 400, "when")
        r = self.create(oid, name="lite", kind="lite", display_name="Lite", description="Free.")
        self.assertFieldError(self.c.call("PUT", "%s/%s/pricing" % (self.plans(oid),
                                                                    r.json["id"]),
                                          token=self.acme, body=body), 400, "pricing")

    def test_publication_and_price_versions(self):
        oid = self.offering()
        r = self.create(oid, **self.metered_body())
        self.assertEqual(r.status, 201, r)
        pid = r.json["id"]
        first = r.json["pricing"]
        url = "%s/%s" % (self.plans(oid), pid)
        # Not public yet: nothing to approve.
        self.assertEqual(self.approve(oid, pid).status, 409)
        self.make_public(oid)
        # Only the operator approves.
        self.assertEqual(self.approve(oid, pid, token=self.acme).status, 403)
        self.assertEqual(self.approve(oid, pid, token=self.globex).status, 403)
        r = self.approve(oid, pid)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.json["published"])
        self.assertEqual(self.approve(oid, pid).status, 409)  # already published

        # Published: a price change names a month strictly after the current one.
        new = {"API_CALLS": {"USD": linear("0.4"), "EUR": linear("0.4")},
               "STORAGE": {"USD": linear("0.03"), "EUR": linear("0.03")}}
        for month in (None, month_after(0), month_after(-1), "2020-01", "2099-13", "next"):
            with self.subTest(month=month):
                body = {"pricing": new}
                if month is not None:
                    body["effective_month"] = month
                self.assertFieldError(self.c.call("PUT", url + "/pricing", token=self.acme,
                                                  body=body), 400, "effective_month")
        future = month_after(2)
        r = self.c.call("PUT", url + "/pricing", token=self.acme,
                        body={"pricing": new, "effective_month": future})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["current"], first)  # today's prices do not change
        self.assertEqual([v["effective_month"] for v in r.json["versions"]], ["0000-00", future])
        self.assertEqual(r.json["versions"][1]["pricing"]["API_CALLS"]["USD"]["tiers"][0]["price"],
                         "0.4")
        # Again for the same month: the not-yet-effective row is replaced, not added.
        new["API_CALLS"]["USD"] = linear("0.35")
        r = self.c.call("PUT", url + "/pricing", token=self.acme,
                        body={"pricing": new, "effective_month": future})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json["versions"]), 2)
        self.assertEqual(r.json["versions"][1]["pricing"]["API_CALLS"]["USD"]["tiers"][0]["price"],
                         "0.35")
        r = self.c.call("PUT", url + "/pricing", token=self.acme,
                        body={"pricing": new, "effective_month": month_after(3)})
        self.assertEqual([v["effective_month"] for v in r.json["versions"]],
                         ["0000-00", future, month_after(3)])
        self.assertEqual(self.c.call("GET", url, token=self.acme).json["pricing"], first)

        # Published plans keep their kind and metrics and are not deleted.
        self.assertFieldError(self.c.call("PATCH", url, token=self.acme,
                                          body={"metrics": [API_CALLS]}), 409, "metrics")
        self.assertFieldError(self.c.call("PATCH", url, token=self.acme,
                                          body={"kind": "subscription"}), 409, "kind")
        r = self.c.call("PATCH", url, token=self.acme,
                        body={"kind": "metered", "metrics": [API_CALLS, STORAGE],
                              "description": "Now with a better description."})
        self.assertEqual(r.status, 200, r)  # unchanged kind and metrics are fine
        self.assertEqual(self.c.call("DELETE", url, token=self.acme).status, 409)

        # A plan added after publication waits for the operator.
        r = self.create(oid, **self.metered_body(name="premium"))
        self.assertEqual(r.status, 201, r)
        premium = r.json["id"]
        self.assertFalse(r.json["published"])

        # The consumer sees published, active plans only, without the provider's fields.
        r = self.c.call("GET", self.plans(oid), token=self.globex)
        self.assertEqual(r.status, 200, r)
        self.assertEqual([p["id"] for p in r.json["plans"]], [pid])
        seen = r.json["plans"][0]
        for internal in ("state", "published", "sample_usage_curl", "created_at", "updated_at"):
            self.assertNotIn(internal, seen)
        self.assertEqual(seen["pricing"], first)
        self.assertEqual(self.c.call("GET", url, token=self.globex).json, seen)
        self.assertEqual(self.c.call("GET", "%s/%s" % (self.plans(oid), premium),
                                     token=self.globex).status, 404)
        r = self.c.call("GET", url + "/pricing", token=self.globex)
        self.assertEqual((r.status, r.json["current"]), (200, first))
        # ... and changes nothing.
        self.assertEqual(self.create(oid, token=self.globex,
                                     **self.metered_body(name="mine")).status, 403)
        self.assertEqual(self.c.call("PATCH", url, token=self.globex,
                                     body={"display_name": "x"}).status, 403)
        self.assertEqual(self.c.call("PUT", url + "/pricing", token=self.globex,
                                     body={"pricing": new}).status, 403)

        r = self.approve(oid, premium)
        self.assertEqual(r.status, 200, r)
        r = self.c.call("GET", self.plans(oid), token=self.globex)
        self.assertEqual([p["id"] for p in r.json["plans"]], [pid, premium])

        # Deprecated: gone for new consumers, kept (flagged) for its provider.
        r = self.c.call("POST", url + "/deprecate", token=self.acme)
        self.assertEqual((r.status, r.json["state"], r.json["published"]),
                         (200, "deprecated", True))
        r = self.c.call("GET", self.plans(oid), token=self.globex)
        self.assertEqual([p["id"] for p in r.json["plans"]], [premium])
        self.assertEqual(self.c.call("GET", url, token=self.globex).status, 404)
        r = self.c.call("GET", self.plans(oid), token=self.acme)
        self.assertEqual({p["id"]: p["state"] for p in r.json["plans"]},
                         {pid: "deprecated", premium: "active"})
        self.assertEqual(self.approve(oid, pid).status, 409)
        # The operator sees everything.
        r = self.c.call("GET", self.plans(oid), token=self.op_token)
        self.assertEqual(r.json["total_count"], 2)
        self.assertIn("sample_usage_curl", r.json["plans"][0])


if __name__ == "__main__":
    unittest.main()
