"""Billing over HTTP against a real osbill serve and the starter broker (spec/billing.md):
an account's live usage and estimated charges, the isolation of accounts, closing a month
(who may, the grace deadline, idempotence, gapless invoice numbers, statements with the
revenue share), invoices as JSON, CSV and HTML, records on either side of a month boundary,
JPY rounding, a free plan, and a plan change inside a month.

Instances are created now; to rate a month that has ended, a test moves an instance's plan
history back in the database, as if it had been created then."""

import calendar
import csv
import decimal
import io
import json
import os
import subprocess
import time
import unittest

from harness import (LITE, SERVICE_ID, STANDARD, PREMIUM, AccountsTest, Broker, Platform,
                     deploy_limited, make_accounts)

REGION = "us-south"
DAY = 86400000

API_CALLS = {"id": "API_CALLS", "display_name": "API calls", "unit": "call",
             "metering_model": "standard_add"}
STORAGE = {"id": "STORAGE", "display_name": "Storage", "unit": "GB",
           "metering_model": "standard_max"}
SPEC_TIERS = [{"up_to": "1000", "price": "0.10"}, {"up_to": "10000", "price": "0.08"},
              {"up_to": None, "price": "0.05"}]


def linear(p):
    return {"model": "linear", "tiers": [{"up_to": None, "price": p}]}


def month_of(ms):
    t = time.gmtime(ms // 1000)
    return "%04d-%02d" % (t.tm_year, t.tm_mon)


def month_range(m):
    y, mo = int(m[:4]), int(m[5:])
    a = calendar.timegm((y, mo, 1, 0, 0, 0)) * 1000
    ny, nm = (y + 1, 1) if mo == 12 else (y, mo + 1)
    return a, calendar.timegm((ny, nm, 1, 0, 0, 0)) * 1000


def now_ms():
    return int(time.time() * 1000)


def r12(x):
    return x.quantize(decimal.Decimal("1e-12"), rounding=decimal.ROUND_HALF_UP)


def cents(x):
    return x.quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_UP)


D = decimal.Decimal


class BillingTest(AccountsTest):

    @classmethod
    def setUpClass(cls):
        cls.p = Platform(extra=["--reclamation-period", "0"]).start()
        cls.broker = Broker().start()
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
                                                       ("initech", "consumer"),
                                                       ("globex", "consumer")))
        # a consumer that bills in yen
        r = c.call("POST", "/v1/accounts", token=cls.op_token,
                   body={"name": "tanaka", "kind": "consumer", "currency": "JPY",
                         "owner": {"email": "tanaka@example.com", "name": "Tanaka",
                                   "password": "password-tanaka"}})
        assert r.status == 201, r
        k = c.call("POST", "/v1/apikeys", token=cls.op_token,
                   body={"name": "owner", "iam_id": r.json["owner_iam_id"],
                         "account_id": r.json["id"]})
        assert k.status == 201, k
        cls.accounts["tanaka"] = {"id": r.json["id"], "token": c.apikey_token(k.json["apikey"])}

        tok = cls.accounts["acme"]["token"]
        r = c.call("POST", "/v1/offerings", token=tok,
                   body={"id": SERVICE_ID, "name": "starter-kv", "display_name": "Starter KV"})
        assert r.status == 201, r
        plans = {
            LITE: {"name": "lite", "kind": "lite", "metrics": [API_CALLS]},
            STANDARD: {"name": "standard", "kind": "metered", "metrics": [API_CALLS, STORAGE],
                       "pricing": {"API_CALLS": {"USD": {"model": "graduated_tier",
                                                         "tiers": SPEC_TIERS},
                                                 "JPY": linear("0.7")},
                                   "STORAGE": {"USD": linear("0.02"), "JPY": linear("3")}}},
            # a subscription: the platform's MONTHLY_FEE, and overage by the provider's metrics
            PREMIUM: {"name": "premium", "kind": "subscription", "metrics": [API_CALLS, STORAGE],
                      "pricing": {"MONTHLY_FEE": {"USD": linear("29.00"),
                                                  "JPY": linear("3000")},
                                  "API_CALLS": {"USD": {"model": "simple_tier",
                                                        "tiers": SPEC_TIERS},
                                                "JPY": linear("0.5")},
                                  "STORAGE": {"USD": linear("0.01"), "JPY": linear("2")}}},
        }
        for pid, body in plans.items():
            body.update({"id": pid, "display_name": body["name"].title(),
                         "description": "The %s plan." % body["name"], "plan_updateable": True})
            r = c.call("POST", "/v1/offerings/%s/plans" % SERVICE_ID, token=tok, body=body)
            assert r.status == 201, r
        deploy_limited(c, tok, cls.broker, REGION, plans,
                       allow=[cls.accounts[a]["id"] for a in ("initech", "globex", "tanaka")])
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

    def instance(self, who, plan=STANDARD, since=None):
        """A new instance of who's; with since, its plan history begins then."""
        r = self.call(who, "POST", "/v2/resource_instances",
                      {"name": "b-%s" % os.urandom(3).hex(), "target": REGION,
                       "resource_plan_id": plan})
        self.assertIn(r.status, (201, 202), r)  # the starter broker provisions premium async
        inst = r.json
        for _ in range(200):  # active before its history moves
            if self.call(who, "GET", "/v2/resource_instances/%s" % inst["guid"]).json[
                    "state"] == "active":
                break
            time.sleep(0.05)
        else:
            self.fail("instance %s never became active" % inst["guid"])
        if since is not None:
            self.p.sql_all([
                ("UPDATE instance_plan_history SET from_ms = ? WHERE instance_id = ?",
                 (since, inst["guid"])),
                ("UPDATE resource_instances SET created_ms = ? WHERE guid = ?",
                 (since, inst["guid"])),
                ("UPDATE instance_state_history SET from_ms = ? WHERE instance_id = ?",
                 (since, inst["guid"]))])
        return inst

    def change_plan_at(self, inst, plan, at):
        self.p.sql("INSERT INTO instance_plan_history (instance_id, plan_id, from_ms)"
                   " VALUES (?, ?, ?)", (inst["guid"], plan, at))

    def submit(self, inst, start, end, usage, plan=None, consumer=None):
        rec = {"resource_instance_id": inst["guid"], "plan_id": plan or inst["resource_plan_id"],
               "start": start, "end": end,
               "measured_usage": [{"measure": m, "quantity": q} for m, q in usage]}
        if consumer:
            rec["consumer_id"] = consumer
        r = self.call("acme", "POST", "/v4/metering/resources/%s/usage" % SERVICE_ID, [rec])
        self.assertEqual(r.status, 202, r)
        return r.json["resources"][0]

    def accepted(self, *a, **kw):
        out = self.submit(*a, **kw)
        self.assertEqual(out["status"], 201, out)

    def usage(self, who, account, month):
        return self.call(who, "GET", "/v4/accounts/%s/usage/%s" % (self.accounts[account]["id"],
                                                                  month))

    @staticmethod
    def lines_of(j, guid):
        return {(l["plan_id"], l["metric"]): l for l in j["lines"]
                if l["resource_instance_id"] == guid}


class LiveUsageTest(BillingTest):

    def test_estimate_of_the_current_month(self):
        now = now_ms()
        month = month_of(now)
        m0, _ = month_range(month)
        inst = self.instance("initech", since=m0)
        t = max(m0, now - 3600000)
        self.accepted(inst, t, t + 1000, [("API_CALLS", 12000), ("STORAGE", "5")])
        self.accepted(inst, t + 1000, t + 2000, [("API_CALLS", "500"), ("STORAGE", "7.000")])
        r = self.usage("initech", "initech", month)
        self.assertEqual(r.status, 200, r)
        j = r.json
        self.assertEqual((j["billing_month"], j["currency_code"], j["state"], j["estimate"]),
                         (month, "USD", "open", True))
        lines = self.lines_of(j, inst["guid"])
        calls = lines[(STANDARD, "API_CALLS")]
        # the spec's worked example: 1000 x 0.10 + 9000 x 0.08 + 2500 x 0.05
        self.assertEqual((calls["quantity"], calls["rateable_quantity"], calls["cost"],
                          calls["exact_cost"], calls["pricing_model"]),
                         ("12500", "12500", "945.00", "945", "graduated_tier"))
        storage = lines[(STANDARD, "STORAGE")]
        self.assertEqual((storage["quantity"], storage["cost"]), ("7", "0.14"))
        plan = [p for res in j["resources"] if res["resource_id"] == SERVICE_ID
                for p in res["plans"] if p["plan_id"] == STANDARD][0]
        self.assertEqual({u["metric"]: u["quantity"] for u in plan["usage"]},
                         {"API_CALLS": "12500", "STORAGE": "7"})
        # every line of this account is this instance's: the total is its two lines
        self.assertEqual(j["billable_cost"], "945.14")

        # a record more moves the estimate, exactly
        self.accepted(inst, t + 2000, t + 3000, [("API_CALLS", "0.5")])
        j = self.usage("initech", "initech", month).json
        self.assertEqual(self.lines_of(j, inst["guid"])[(STANDARD, "API_CALLS")]["cost"],
                         "945.03")  # 945.025 rounds half-up
        self.assertEqual(j["billable_cost"], "945.17")

    def test_accounts_read_only_their_own_usage(self):
        month = month_of(now_ms())
        r = self.usage("globex", "initech", month)
        self.assertEqual(r.status, 403, r)
        r = self.usage("acme", "initech", month)  # the provider reads statements, not this
        self.assertEqual(r.status, 403, r)
        r = self.usage("globex", "globex", month)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["lines"], r.json["resources"], r.json["billable_cost"]),
                         ([], [], "0.00"))
        r = self.usage("operator", "initech", month)
        self.assertEqual(r.status, 200, r)
        r = self.call("operator", "GET", "/v4/accounts/no-such-account/usage/%s" % month)
        self.assertEqual(r.status, 404, r)
        for bad in ("2026-13", "2026-1", "latest", "0000-01"):
            r = self.call("globex", "GET", "/v4/accounts/%s/usage/%s" %
                          (self.accounts["globex"]["id"], bad))
            self.assertEqual(r.status, 400, (bad, r))
        r = self.c.call("GET", "/v4/accounts/%s/usage/%s" % (self.accounts["globex"]["id"],
                                                             month))
        self.assertEqual(r.status, 401, r)

    def test_closing_the_current_month_needs_force(self):
        month = month_of(now_ms())
        r = self.call("operator", "POST", "/v1/billing/periods/%s/close" % month)
        self.assertEqual(r.status, 409, r)
        self.assertEqual(r.json["errors"][0]["code"], "too_early")
        y, m = int(month[:4]), int(month[5:])
        future = "%04d-%02d" % ((y + 1, 1) if m == 12 else (y, m + 1))
        r = self.call("operator", "POST", "/v1/billing/periods/%s/close" % future,
                      {"force": True})
        self.assertEqual(r.status, 409, r)
        self.assertEqual(r.json["errors"][0]["code"], "month_not_started")
        r = self.call("operator", "POST", "/v1/billing/periods/%s/close" % month,
                      {"force": "yes"})
        self.assertEqual(r.status, 400, r)
        r = self.call("operator", "GET", "/v1/billing/periods/%s" % month)
        self.assertEqual((r.status, r.json["state"]), (200, "open"))


class EstimateTest(BillingTest):
    """The provider's billing preview of a plan."""

    def estimate(self, plan, body, who="acme"):
        return self.call(who, "POST", "/v1/offerings/%s/plans/%s/estimate" % (SERVICE_ID, plan),
                         body)

    def test_preview(self):
        r = self.estimate(STANDARD, {"usage": [{"metric": "API_CALLS", "quantity": "12500"}]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["currency"], r.json["total"], r.json["free"]),
                         ("USD", "945.00", False))
        self.assertEqual([(l["metric"], l["cost"]) for l in r.json["lines"]],
                         [("API_CALLS", "945.00")])
        # a subscription: the month's fee comes with the overage
        r = self.estimate(PREMIUM, {"usage": [{"metric": "API_CALLS", "quantity": 12500}]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted((l["metric"], l["cost"]) for l in r.json["lines"]),
                         [("API_CALLS", "625.00"), ("MONTHLY_FEE", "29.00")])
        self.assertEqual(r.json["total"], "654.00")
        # yen: 12345 x 0.5 = 6172.5 rounds to 6173; half a month of the fee, 1500
        r = self.estimate(PREMIUM, {"currency": "JPY", "usage": [
            {"metric": "API_CALLS", "quantity": "12345"},
            {"metric": "MONTHLY_FEE", "quantity": "0.5"}]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["total"], "7673")
        r = self.estimate(LITE, {"usage": [{"metric": "API_CALLS", "quantity": "99"}]})
        self.assertEqual((r.status, r.json["free"], r.json["total"]), (200, True, "0.00"))
        r = self.estimate(STANDARD, {"usage": []}, who="operator")
        self.assertEqual((r.status, r.json["total"], r.json["lines"]), (200, "0.00", []))

    def test_preview_refusals(self):
        cases = [
            ({"usage": [{"metric": "NOPE", "quantity": "1"}]}, 400, "usage[0].metric"),
            ({"usage": [{"metric": "API_CALLS", "quantity": "1"},
                        {"metric": "API_CALLS", "quantity": "2"}]}, 400, "usage[1].metric"),
            ({"usage": [{"metric": "API_CALLS", "quantity": "ten"}]}, 400, "usage[0].quantity"),
            ({"usage": [{"metric": "API_CALLS", "quantity": 1.5}]}, 400, "usage[0].quantity"),
            ({"usage": [{"metric": "API_CALLS", "quantity": "-1"}]}, 400, "usage[0].quantity"),
            ({"usage": [{"metric": "API_CALLS", "quantity": "1e18"}]}, 400, "usage[0].quantity"),
            ({"usage": "lots"}, 400, None),
            ({"usage": [], "month": "2026-13"}, 400, None),
            ({"usage": [], "currency": "XYZ"}, 400, None),
            ({"usage": [{"metric": "API_CALLS", "quantity": "1"}], "currency": "GBP"}, 422,
             None),
        ]
        for body, status, field in cases:
            r = self.estimate(STANDARD, body)
            self.assertEqual(r.status, status, (body, r))
            if field:
                self.assertIn(field, r.json["errors"][0]["message"], (body, r))
        r = self.estimate(STANDARD, {"usage": []}, who="initech")
        self.assertEqual(r.status, 403, r)
        r = self.estimate("no-such-plan", {"usage": []})
        self.assertEqual(r.status, 404, r)
        r = self.call("acme", "POST", "/v1/offerings/%s/plans/%s/estimate" % (SERVICE_ID,
                                                                             STANDARD))
        self.assertEqual(r.status, 400, r)


class CloseTest(BillingTest):
    """Rates a month that has ended: two months back, whose grace deadline has passed."""

    def test_close_a_month(self):
        now = now_ms()
        cur0, _ = month_range(month_of(now))
        month = month_of(month_range(month_of(cur0 - 1))[0] - 1)  # two months back
        m0, m1 = month_range(month)
        mid = m0 + 10 * DAY

        a = self.instance("initech", since=m0 - DAY)
        # the last millisecond of the month is in it; the first of the next is not
        self.accepted(a, m1 - 1, m1 - 1, [("API_CALLS", "1000")])
        self.accepted(a, m1, m1, [("API_CALLS", "99999")])
        self.accepted(a, m0, m0 + DAY, [("STORAGE", "2.5")])
        # a plan change inside the month: separate lines per plan
        self.change_plan_at(a, PREMIUM, mid)
        self.accepted(a, mid, mid + 1000, [("API_CALLS", "1000.000000001")], plan=PREMIUM)
        out = self.submit(a, mid - 10, mid - 1, [("API_CALLS", "3")], plan=PREMIUM)
        self.assertEqual((out["status"], out["code"]), (400, "invalid_plan_id"))
        self.accepted(a, mid - 10, mid - 1, [("API_CALLS", "3")])

        y = self.instance("tanaka", since=m0)
        self.accepted(y, m0 + DAY, m0 + DAY + 5, [("API_CALLS", "12345")])  # x 0.7 = 8641.5
        free = self.instance("globex", plan=LITE, since=m0)
        self.accepted(free, m0 + 5, m0 + 6, [("API_CALLS", "777")])

        # a subscription begun on day 21: the platform's fee, prorated
        sub = self.instance("initech", plan=PREMIUM, since=m0 + 20 * DAY)
        out = self.submit(sub, m0 + 21 * DAY, m0 + 22 * DAY, [("MONTHLY_FEE", "1")])
        self.assertEqual((out["status"], out["code"]), (400, "invalid_measured_usage"))

        # the figures, worked out here independently: the fee is r12(active ms / month ms)
        days = (m1 - m0) // DAY
        fee_a = r12(D(days - 10) / D(days))     # a: on premium from day 11
        fee_sub = r12(D(days - 20) / D(days))   # sub: from day 21
        cost_a, cost_sub = cents(fee_a * 29), cents(fee_sub * 29)
        total = D("100.24") + D("0.05") + D("80.00") + cost_a + cost_sub

        # before the close: the live estimate of that month
        j = self.usage("initech", "initech", month).json
        self.assertEqual((j["estimate"], j["state"], j["days_counted"]),
                         (True, "open", days))
        live = self.lines_of(j, a["guid"])
        self.assertEqual(live[(STANDARD, "API_CALLS")]["quantity"], "1003")
        self.assertEqual(live[(STANDARD, "API_CALLS")]["cost"], "100.24")  # 100 + 3 x 0.08
        self.assertEqual(live[(STANDARD, "STORAGE")]["cost"], "0.05")
        self.assertEqual(live[(PREMIUM, "API_CALLS")]["cost"], "80.00")  # just above 1000
        self.assertEqual((D(live[(PREMIUM, "MONTHLY_FEE")]["quantity"]),
                          live[(PREMIUM, "MONTHLY_FEE")]["cost"]), (fee_a, str(cost_a)))
        self.assertNotIn((STANDARD, "MONTHLY_FEE"), live)  # a metered plan has no fee
        fee = self.lines_of(j, sub["guid"])
        self.assertEqual(sorted(fee), [(PREMIUM, "MONTHLY_FEE")])
        self.assertEqual(fee[(PREMIUM, "MONTHLY_FEE")]["cost"], str(cost_sub))
        self.assertEqual(j["billable_cost"], str(total))

        # the month after, still running: both subscriptions a whole month each
        nxt = month_of(m1)
        j = self.usage("initech", "initech", nxt).json
        self.assertEqual({l["resource_instance_id"]: (l["quantity"], l["cost"])
                          for l in j["lines"] if l["metric"] == "MONTHLY_FEE"},
                         {a["guid"]: ("1", "29.00"), sub["guid"]: ("1", "29.00")})

        # who may close
        for who in ("initech", "acme"):
            r = self.call(who, "POST", "/v1/billing/periods/%s/close" % month)
            self.assertEqual(r.status, 403, (who, r))
        r = self.call("operator", "POST", "/v1/billing/periods/%s/close" % month)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["state"], r.json["invoices"], r.json["statements"]),
                         ("closed", 3, 2))
        first = r.json
        # idempotent: the same answer, nothing issued twice
        r = self.call("operator", "POST", "/v1/billing/periods/%s/close" % month)
        self.assertEqual((r.status, r.json), (200, first))
        # the month takes no more usage
        out = self.submit(a, m0 + 5 * DAY, m0 + 5 * DAY, [("API_CALLS", "1")])
        self.assertEqual((out["status"], out["code"]), (400, "month_closed"))

        # invoices: one per account with usage, gapless numbers, each account its own
        r = self.call("operator", "GET", "/v1/invoices", query={"month": month})
        self.assertEqual(r.status, 200, r)
        invs = r.json["resources"]
        self.assertEqual(sorted(i["number"] for i in invs), [1, 2, 3])
        by_account = {i["account_id"]: i for i in invs}
        inv = by_account[self.accounts["initech"]["id"]]
        self.assertEqual((inv["currency"], inv["total"], inv["state"]),
                         ("USD", str(total), "finalized"))
        self.assertEqual((by_account[self.accounts["tanaka"]["id"]]["total"],
                          by_account[self.accounts["tanaka"]["id"]]["currency"]), ("8642", "JPY"))
        self.assertEqual(by_account[self.accounts["globex"]["id"]]["total"], "0.00")
        r = self.call("initech", "GET", "/v1/invoices")
        self.assertEqual([i["id"] for i in r.json["resources"]], [inv["id"]])
        r = self.call("initech", "GET", "/v1/invoices",
                      query={"account_id": self.accounts["tanaka"]["id"]})
        self.assertEqual(r.status, 403, r)
        r = self.call("tanaka", "GET", "/v1/invoices/%s" % inv["id"])
        self.assertEqual(r.status, 404, r)

        r = self.call("initech", "GET", "/v1/invoices/%s" % inv["id"])
        self.assertEqual(r.status, 200, r)
        lines = r.json["lines"]
        self.assertEqual([l["line"] for l in lines], list(range(1, len(lines) + 1)))
        self.assertEqual(sorted((l["resource_instance_id"], l["plan_id"], l["metric"], l["cost"])
                                for l in lines),
                         sorted([(a["guid"], STANDARD, "API_CALLS", "100.24"),
                                 (a["guid"], STANDARD, "STORAGE", "0.05"),
                                 (a["guid"], PREMIUM, "API_CALLS", "80.00"),
                                 (a["guid"], PREMIUM, "MONTHLY_FEE", str(cost_a)),
                                 (sub["guid"], PREMIUM, "MONTHLY_FEE", str(cost_sub))]))
        r = self.call("initech", "GET", "/v1/invoices/%s" % inv["id"], query={"format": "csv"})
        self.assertEqual(r.status, 200, r)
        rows = list(csv.DictReader(io.StringIO(r.raw.decode())))
        self.assertEqual(sorted(row["cost"] for row in rows),
                         sorted(["0.05", "100.24", "80.00", str(cost_a), str(cost_sub)]))
        r = self.call("initech", "GET", "/v1/invoices/%s" % inv["id"], query={"format": "html"})
        self.assertEqual(r.status, 200, r)
        self.assertIn(str(total), r.raw.decode())
        r = self.call("initech", "GET", "/v1/invoices/%s" % inv["id"], query={"format": "pdf"})
        self.assertEqual(r.status, 400, r)

        # a closed month's usage is its invoice's
        j = self.usage("initech", "initech", month).json
        self.assertEqual((j["estimate"], j["state"], j["billable_cost"]),
                         (False, "closed", str(total)))

        # statements: the provider's, per currency; shares sum to the gross
        r = self.call("acme", "GET", "/v1/statements", query={"month": month})
        self.assertEqual(r.status, 200, r)
        sts = {s["currency"]: s for s in r.json["resources"]}
        self.assertEqual(sorted(sts), ["JPY", "USD"])
        usd = sts["USD"]
        # per line: 100.24 x 0.87 = 87.2088 -> 87.21; 0.05 -> 0.0435 -> 0.04; 80 -> 69.60
        provider = (D("87.21") + D("0.04") + D("69.60") + cents(cost_a * D("0.87")) +
                    cents(cost_sub * D("0.87")))
        self.assertEqual((usd["gross"], usd["provider_share"], usd["platform_share"]),
                         (str(total), str(provider), str(total - provider)))
        self.assertEqual((sts["JPY"]["gross"], sts["JPY"]["provider_share"],
                          sts["JPY"]["platform_share"]), ("8642", "7519", "1123"))
        r = self.call("acme", "GET", "/v1/statements/%s" % usd["id"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual({p["plan_id"]: p["gross"] for p in r.json["plans"]},
                         {STANDARD: "100.29", PREMIUM: str(D("80.00") + cost_a + cost_sub),
                          LITE: "0.00"})
        r = self.call("initech", "GET", "/v1/statements")
        self.assertEqual(r.json["resources"], [])
        r = self.call("initech", "GET", "/v1/statements/%s" % usd["id"])
        self.assertEqual(r.status, 404, r)

        # a correction: the draft price of storage was wrong (0.02 for 0.04); the operator
        # voids the invoice, a credit note cancels it, a new one bills the right price
        r = self.call("acme", "PUT", "/v1/offerings/%s/plans/%s/pricing" % (SERVICE_ID, STANDARD),
                      {"pricing": {"API_CALLS": {"USD": {"model": "graduated_tier",
                                                         "tiers": SPEC_TIERS},
                                                 "JPY": linear("0.7")},
                                   "STORAGE": {"USD": linear("0.04"), "JPY": linear("3")}}})
        self.assertEqual(r.status, 200, r)
        path = "/v1/invoices/%s/void" % inv["id"]
        r = self.call("initech", "POST", path, {"reason": "storage price"})
        self.assertEqual(r.status, 403, r)
        for bad in (None, {}, {"reason": ""}, {"reason": 5}, {"reason": "x" * 501}):
            r = self.call("operator", "POST", path, bad)
            self.assertEqual(r.status, 400, (bad, r))
        r = self.call("operator", "POST", "/v1/invoices/no-such/void", {"reason": "x"})
        self.assertEqual(r.status, 404, r)
        r = self.call("operator", "POST", path, {"reason": "storage price"})
        self.assertEqual(r.status, 200, r)
        fix = r.json
        new_total = total + D("0.05")  # 2.5 GB x 0.04 = 0.10 in place of 0.05
        r = self.call("operator", "POST", path, {"reason": "twice"})
        self.assertEqual((r.status, r.json["errors"][0]["code"]), (409, "already_void"), r)
        r = self.call("operator", "POST", "/v1/invoices/%s/void" % fix["credit_note"],
                      {"reason": "no"})
        self.assertEqual(r.status, 409, r)

        old = self.call("initech", "GET", "/v1/invoices/%s" % inv["id"]).json
        self.assertEqual((old["state"], old["void_reason"], old["total"]),
                         ("void", "storage price", str(total)))  # its figures stay
        cn = self.call("initech", "GET", "/v1/invoices/%s" % fix["credit_note"]).json
        self.assertEqual((cn["kind"], cn["refers_to"], cn["total"]),
                         ("credit_note", inv["id"], str(-total)))
        self.assertEqual(sorted(l["cost"] for l in cn["lines"]),
                         sorted("-" + l["cost"] for l in old["lines"]))
        re_inv = self.call("initech", "GET", "/v1/invoices/%s" % fix["reissued"]).json
        self.assertEqual((re_inv["kind"], re_inv["state"], re_inv["refers_to"], re_inv["total"]),
                         ("invoice", "finalized", inv["id"], str(new_total)))
        r = self.call("operator", "GET", "/v1/invoices", query={"month": month})
        self.assertEqual(sorted(i["number"] for i in r.json["resources"]), [1, 2, 3, 4, 5])
        j = self.usage("initech", "initech", month).json
        self.assertEqual(j["billable_cost"], str(new_total))
        r = self.call("acme", "GET", "/v1/statements", query={"month": month})
        after = {s["currency"]: s for s in r.json["resources"]}
        self.assertEqual((after["USD"]["id"], after["USD"]["gross"]), (usd["id"], str(new_total)))
        self.assertEqual(D(after["USD"]["provider_share"]) + D(after["USD"]["platform_share"]),
                         new_total)
        self.assertEqual(after["JPY"]["gross"], "8642")


class CliTest(BillingTest):
    """osbill billing|invoice|statement against the same platform."""

    def osbill(self, who, *args):
        home = os.path.join(self.p.data, "cli-" + who)
        os.makedirs(home, exist_ok=True)
        env = dict(os.environ, OSBILL_HOME=home)
        key = self.p.init["api_key"] if who == "operator" else self.accounts[who]["apikey"]
        if not os.path.exists(os.path.join(home, ".logged-in")):
            out = subprocess.run([self.p.bin, "login", "--endpoint", self.p.url, "--apikey", key],
                                 capture_output=True, text=True, timeout=60, env=env)
            self.assertEqual(out.returncode, 0, out)
            open(os.path.join(home, ".logged-in"), "w").close()
        out = subprocess.run([self.p.bin] + list(args), capture_output=True, text=True,
                             timeout=120, env=env)
        self.assertEqual(out.returncode, 0, (args, out.stdout, out.stderr))
        return out.stdout

    def test_close_and_read_from_the_command_line(self):
        cur0, _ = month_range(month_of(now_ms()))
        month = month_of(month_range(month_of(cur0 - 1))[0] - 1)
        m0, m1 = month_range(month)
        inst = self.instance("initech", since=m0)
        self.accepted(inst, m0 + DAY, m0 + DAY + 10, [("API_CALLS", "12500")])

        j = json.loads(self.osbill("initech", "billing", "usage", month, "--output", "json"))
        self.assertEqual((j["billable_cost"], j["estimate"]), ("945.00", True))
        text = self.osbill("initech", "billing", "usage", month)
        self.assertIn("945.00 USD (estimate so far)", text)
        self.assertIn("open", self.osbill("operator", "billing", "period", month))
        text = self.osbill("operator", "billing", "close", month)
        self.assertIn("%s: closed, 1 invoices, 1 statements" % month, text)
        text = self.osbill("initech", "invoice", "list")
        self.assertIn("945.00", text)
        inv = json.loads(self.osbill("initech", "invoice", "list", "--output", "json"))
        iid = inv["resources"][0]["id"]
        csv_text = self.osbill("initech", "invoice", "show", iid, "--format", "csv")
        self.assertTrue(csv_text.startswith("line,resource_instance_id,"), csv_text)
        self.assertIn("945.00", csv_text)
        self.assertIn("<table>", self.osbill("initech", "invoice", "show", iid, "--format",
                                             "html"))
        self.assertIn("invoice 1 (invoice, finalized)", self.osbill("initech", "invoice", "show",
                                                                    iid))
        text = self.osbill("acme", "statement", "list", "--month", month)
        self.assertIn("822.15", text)  # 945.00 x 0.87
        sid = json.loads(self.osbill("acme", "statement", "list", "--output", "json"))[
            "resources"][0]["id"]
        self.assertIn(STANDARD, self.osbill("acme", "statement", "show", sid))
        text = self.osbill("operator", "invoice", "void", iid, "--reason", "a test")
        self.assertIn("voided %s; credit note" % iid, text)


if __name__ == "__main__":
    unittest.main()
