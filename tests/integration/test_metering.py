"""Usage ingestion over HTTP against a real osbill serve and the starter broker
(spec/billing.md, "Submitting usage"): who may submit, the whole-request errors, each
per-record outcome in the spec's order, exact decimal quantities, duplicates in one batch,
across batches and between concurrent submitters, the plan at a record's instant across a
plan change, and records stored once and only after their 201."""

import calendar
import json
import os
import threading
import time
import unittest

from harness import (LITE, SERVICE_ID, STANDARD, AccountsTest, Broker, Platform, make_accounts,
                     metered_offering, API_CALLS_METRIC)

REGION = "us-south"
OTHER_REGION = "eu-de"
METRICS = [
    API_CALLS_METRIC,
    {"id": "STORAGE_BYTES", "display_name": "Storage", "unit": "byte",
     "metering_model": "standard_max"},
    {"id": "CREDITS", "display_name": "Credits", "unit": "credit",
     "metering_model": "standard_add", "allow_negative": True},
]


def now_ms():
    return int(time.time() * 1000)


class MeteringTest(AccountsTest):

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
                                                       ("hooli", "provider"),
                                                       ("initech", "consumer"),
                                                       ("globex", "consumer")))
        metered_offering(c, cls.accounts["acme"]["token"], cls.broker, REGION,
                         {LITE: ("lite", METRICS[:1]), STANDARD: ("standard", METRICS)},
                         allow=[cls.accounts["initech"]["id"], cls.accounts["globex"]["id"]])
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

    def instance(self, plan=STANDARD, who="initech"):
        r = self.call(who, "POST", "/v2/resource_instances",
                      {"name": "m-%s" % os.urandom(3).hex(), "target": REGION,
                       "resource_plan_id": plan})
        self.assertEqual(r.status, 201, r)
        time.sleep(0.25)  # room for records after its creation and before now
        return r.json

    def submit(self, records, who="acme", raw=None, offering=SERVICE_ID):
        path = "/v4/metering/resources/%s/usage" % offering
        if raw is None:
            return self.call(who, "POST", path, records)
        return self.c.request("POST", path, raw=raw,
                              headers={"Authorization": "Bearer " +
                                       self.accounts[who]["token"],
                                       "Content-Type": "application/json"})

    def record(self, inst, start=None, end=None, **kw):
        end = now_ms() if end is None else end
        start = end - 100 if start is None else start
        r = {"resource_instance_id": inst["guid"], "plan_id": inst["resource_plan_id"],
             "start": start, "end": end,
             "measured_usage": [{"measure": "API_CALLS", "quantity": 10}]}
        r.update(kw)
        return r

    def outcomes(self, r):
        self.assertEqual(r.status, 202, r)
        return [(e["status"], e.get("code")) for e in r.json["resources"]]

    def stored(self, guid):
        return self.p.sql("SELECT start_ms, end_ms, measured_usage, consumer_id, region"
                          " FROM usage_records_full WHERE instance_id = ? ORDER BY id", (guid,))

    # ------------------------------------------------------------ who and what

    def test_only_the_offerings_provider_submits(self):
        inst = self.instance()
        rec = [self.record(inst)]
        for who in ("initech", "hooli", "operator"):
            r = self.submit(rec, who=who)
            self.assertEqual(r.status, 403, (who, r))
        r = self.c.call("POST", "/v4/metering/resources/%s/usage" % SERVICE_ID, body=rec)
        self.assertEqual(r.status, 401, r)
        r = self.c.call("POST", "/v4/metering/resources/%s/usage" % SERVICE_ID, body=rec,
                        token="not-a-token")
        self.assertEqual(r.status, 401, r)
        self.assertEqual(self.submit(rec, offering="no-such-offering").status, 404)
        self.assertEqual(self.stored(inst["guid"]), [])

    def test_whole_request_errors(self):
        inst = self.instance()
        one = json.dumps([self.record(inst)])
        for raw in (b"{not json", b"{}", b"[]", b'"x"', json.dumps(
                [self.record(inst, end=now_ms() - i) for i in range(101)]).encode(),
                one.replace('"plan_id"', '"start": 1, "plan_id"', 1).encode(),  # a key twice
                one.encode() + b" []", b"[" * 65 + b"]" * 65, b'[{"a": "\ud800"}]',
                b'[{"a": "\xff"}]', b'[{"a": 1.2.3}]', b'[{"a": NaN}]', b'[{"a": 01}]',
                b'[{"a": "x\u0000"}]', b'[{"a": "tab\there"}]',
                b'[{"a": "\xed\xa0\x80"}]', b'[{"a": "\xc0\xaf"}]'):
            r = self.submit(None, raw=raw)
            self.assertEqual(r.status, 400, (raw[:40], r))
        # a control character has no place in a consumer id, escaped or not
        r = self.submit([self.record(inst, consumer_id="a\x01b")])
        self.assertEqual(self.outcomes(r), [(400, "invalid_consumer_id")])
        r = self.c.request("POST", "/v4/metering/resources/%s/usage" % SERVICE_ID,
                           raw=json.dumps([self.record(inst)]).encode(),
                           headers={"Authorization": "Bearer " + self.accounts["acme"]["token"],
                                    "Content-Type": "text/plain"})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json["errors"][0]["code"], "bad_content_type", r)
        self.assertEqual(self.stored(inst["guid"]), [])
        # 100 records is the most a request may carry
        end = now_ms()
        r = self.submit([self.record(inst, start=end - 100 + i, end=end - 100 + i)
                         for i in range(100)])
        self.assertEqual(self.outcomes(r), [(201, None)] * 100)

    # ------------------------------------------------------------ each record's outcome

    def test_each_outcome_in_order(self):
        inst, other = self.instance(), self.instance(plan=LITE)
        t = now_ms()
        cases = [
            (self.record(inst, end=t - 1), (201, None)),
            # named by its CRN, the same instance: the same signature
            (self.record(inst, end=t - 1, resource_instance_id=inst["crn"]), (409, "duplicate")),
            (self.record(inst, resource_instance_id="no-such-instance"), (404, "not_found")),
            # 404 comes before every 400
            (self.record(inst, resource_instance_id="nope", start="x"), (404, "not_found")),
            (self.record(inst, start="1"), (400, "invalid_start")),
            (self.record(inst, start=1.5), (400, "invalid_start")),
            (self.record(inst, start=t, end=t - 1), (400, "invalid_end")),
            (self.record(inst, end=t + 10 * 60 * 1000), (400, "invalid_end")),
            (self.record(inst, plan_id=LITE), (400, "invalid_plan_id")),
            (self.record(inst, end=t - 2, measured_usage=[]), (400, "invalid_measured_usage")),
            (self.record(inst, end=t - 3, measured_usage=[{"measure": "NOPE", "quantity": 1}]),
             (400, "invalid_measured_usage")),
            (self.record(other, end=t - 3, measured_usage=[{"measure": "STORAGE_BYTES",
                                                            "quantity": 1}]),
             (400, "invalid_measured_usage")),
            (self.record(inst, end=t - 4, measured_usage=[{"measure": "API_CALLS", "quantity": 1},
                                                          {"measure": "API_CALLS",
                                                           "quantity": 2}]),
             (400, "invalid_measured_usage")),
            (self.record(inst, end=t - 5, measured_usage=[{"measure": "API_CALLS",
                                                           "quantity": -1}]),
             (400, "invalid_quantity")),
            (self.record(inst, end=t - 6, measured_usage=[{"measure": "API_CALLS",
                                                           "quantity": "1e3"}]),
             (400, "invalid_quantity")),
            (self.record(inst, end=t - 7, measured_usage=[{"measure": "API_CALLS",
                                                           "quantity": "1234567890123456"}]),
             (400, "invalid_quantity")),
            (self.record(inst, end=t - 8, measured_usage=[{"measure": "API_CALLS",
                                                           "quantity": "0.0000000001"}]),
             (400, "invalid_quantity")),
            (self.record(inst, end=t - 9, consumer_id=""), (400, "invalid_consumer_id")),
            (self.record(inst, end=t - 10, region=OTHER_REGION), (400, "invalid_region")),
            (self.record(inst, end=t - 11, region=REGION, consumer_id="app-1"), (201, None)),
        ]
        r = self.submit([c[0] for c in cases])
        got = self.outcomes(r)
        for (rec, want), have, entry in zip(cases, got, r.json["resources"]):
            self.assertEqual(have, want, (rec, entry))
            if want[0] != 201:
                self.assertTrue(entry.get("message"), entry)
        self.assertEqual(len(self.stored(inst["guid"])), 2)

    def test_quantities_are_exact_decimals(self):
        inst = self.instance()
        t = now_ms()
        raw = ('[{"resource_instance_id": "%s", "plan_id": "%s", "start": %d, "end": %d,'
               ' "measured_usage": [{"measure": "API_CALLS", "quantity": 0.1},'
               ' {"measure": "STORAGE_BYTES", "quantity": 1.50e2},'
               ' {"measure": "CREDITS", "quantity": "-999999999999999.123456789"}]},'
               ' {"resource_instance_id": "%s", "plan_id": "%s", "start": %d, "end": %d,'
               ' "measured_usage": [{"measure": "API_CALLS", "quantity": 123456789012345.000}]}]'
               % (inst["guid"], STANDARD, t - 10, t, inst["guid"], STANDARD, t - 20, t - 10))
        self.assertEqual(self.outcomes(self.submit(None, raw=raw.encode())),
                         [(201, None), (201, None)])
        rows = self.stored(inst["guid"])
        self.assertEqual(json.loads(rows[0][2]), [
            {"measure": "API_CALLS", "quantity": "0.1"},
            {"measure": "STORAGE_BYTES", "quantity": "150"},
            {"measure": "CREDITS", "quantity": "-999999999999999.123456789"}])
        self.assertEqual(json.loads(rows[1][2]),
                         [{"measure": "API_CALLS", "quantity": "123456789012345"}])
        # a number too long for a double is still kept to the digit, or refused
        raw = ('[{"resource_instance_id": "%s", "plan_id": "%s", "start": %d, "end": %d,'
               ' "measured_usage": [{"measure": "API_CALLS", "quantity": 1234567890123456}]}]'
               % (inst["guid"], STANDARD, t - 30, t - 20))
        self.assertEqual(self.outcomes(self.submit(None, raw=raw.encode())),
                         [(400, "invalid_quantity")])

    # ------------------------------------------------------------ duplicates

    def test_duplicates_in_a_batch_and_across_batches(self):
        inst = self.instance()
        t = now_ms() - 10
        a = self.record(inst, start=t - 100, end=t)
        b = self.record(inst, start=t - 100, end=t, consumer_id="c1")  # another signature
        self.assertEqual(self.outcomes(self.submit([a, a, b])),
                         [(201, None), (409, "duplicate"), (201, None)])
        # other quantities do not make another record: the signature decides
        again = dict(a, measured_usage=[{"measure": "API_CALLS", "quantity": 99}])
        self.assertEqual(self.outcomes(self.submit([again, b])),
                         [(409, "duplicate"), (409, "duplicate")])
        rows = self.stored(inst["guid"])
        self.assertEqual(len(rows), 2)
        self.assertEqual(json.loads(rows[0][2])[0]["quantity"], "10")

    def test_consumer_ids_are_stored_as_sent(self):
        # Characters that quoting (SQL, PostgreSQL's array literals) must carry through.
        inst = self.instance()
        t = now_ms() - 10
        odd = ['q"uote', "back\\slash", "{brace}", "comma,semi;", "NULL", "", "sp ace",
               "ünï"]
        recs = [self.record(inst, start=t - 100 - i, end=t - i, consumer_id=c)
                for i, c in enumerate(odd) if c]
        self.assertEqual(self.outcomes(self.submit(recs)), [(201, None)] * len(recs))
        self.assertEqual(self.outcomes(self.submit(recs[:2])), [(409, "duplicate")] * 2)
        got = sorted(row[3] for row in self.stored(inst["guid"]))
        self.assertEqual(got, sorted(c for c in odd if c))

    def test_concurrent_submitters_get_one_201(self):
        inst = self.instance()
        t = now_ms()
        recs = [self.record(inst, start=t - i - 1, end=t - i) for i in range(50)]
        results = []

        def send():
            c = self.p.client()
            try:
                results.append(c.call("POST", "/v4/metering/resources/%s/usage" % SERVICE_ID,
                                      body=recs, token=self.accounts["acme"]["token"]))
            finally:
                c.close()

        threads = [threading.Thread(target=send) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertEqual(len(results), 4)
        for i in range(50):
            statuses = sorted(r.json["resources"][i]["status"] for r in results)
            self.assertEqual(statuses, [201, 409, 409, 409], i)
        self.assertEqual(len(self.stored(inst["guid"])), 50)

    # ------------------------------------------------------------ the plan at a time

    def test_plan_change_mid_way(self):
        inst = self.instance(plan=LITE)
        before = now_ms()
        time.sleep(0.02)
        r = self.call("initech", "PATCH", "/v2/resource_instances/" + inst["guid"],
                      {"resource_plan_id": STANDARD})
        self.assertIn(r.status, (200, 202), r)
        deadline = time.time() + 20
        while time.time() < deadline:
            got = self.call("initech", "GET", "/v2/resource_instances/" + inst["guid"]).json
            if got["resource_plan_id"] == STANDARD and got["state"] == "active":
                break
            time.sleep(0.1)
        changed = max(h["from"] for h in got["plan_history"])
        self.assertTrue(changed)
        after = now_ms()
        rec = lambda plan, end: dict(self.record(inst, start=end, end=end), plan_id=plan)
        self.assertEqual(self.outcomes(self.submit([
            rec(LITE, before), rec(STANDARD, before), rec(STANDARD, after), rec(LITE, after),
            rec(LITE, inst_created(inst) - 1)])),
            [(201, None), (400, "invalid_plan_id"), (201, None), (400, "invalid_plan_id"),
             (400, "invalid_plan_id")])

    def test_many_records_of_one_instance_in_a_batch(self):
        # The checks read an instance once per request for each (instance, instant, plan,
        # region): every record still gets its own outcome.
        inst, other = self.instance(), self.instance()
        t = now_ms() - 50
        rec = lambda **kw: self.record(inst, start=t - 10, end=t, **kw)
        self.assertEqual(self.outcomes(self.submit([
            rec(consumer_id="a"), rec(consumer_id="b"),
            rec(consumer_id="a", region=REGION),                 # the same signature
            dict(rec(consumer_id="c"), resource_instance_id=inst["crn"]),
            rec(consumer_id="d", plan_id=LITE),                  # not its plan then
            rec(consumer_id="e", region="eu-nowhere"),
            dict(rec(consumer_id="f"), resource_instance_id=other["guid"]),
            dict(rec(consumer_id="g"), resource_instance_id="no-such-instance"),
            rec(consumer_id="h")])),
            [(201, None), (201, None), (409, "duplicate"), (201, None),
             (400, "invalid_plan_id"), (400, "invalid_region"), (201, None),
             (404, "not_found"), (201, None)])
        self.assertEqual(sorted(r[3] for r in self.stored(inst["guid"])), ["a", "b", "c", "h"])
        self.assertEqual([r[3] for r in self.stored(other["guid"])], ["f"])

    def test_deleted_instance_has_no_plan_after_its_deletion(self):
        inst = self.instance()
        during = now_ms()
        r = self.call("initech", "DELETE", "/v2/resource_instances/" + inst["guid"])
        self.assertIn(r.status, (202, 204), r)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.call("initech", "GET", "/v2/resource_instances/" +
                         inst["guid"]).json["state"] == "removed":
                break
            time.sleep(0.1)
        time.sleep(0.01)
        self.assertEqual(self.outcomes(self.submit([
            self.record(inst, start=during - 10, end=during),
            self.record(inst, start=now_ms(), end=now_ms())])),
            [(201, None), (400, "invalid_plan_id")])

    def test_closed_month_takes_no_records(self):
        # Until the billing API closes months, the test closes this one in the store itself
        # (and opens it again): what is checked is the ingestion's refusal.
        inst = self.instance()
        t = now_ms()
        month = time.strftime("%Y-%m", time.gmtime(t / 1000))
        self.p.sql("INSERT INTO billing_periods (month, state, closed_ms) VALUES"
                   " (?, 'closed', ?)", (month, t))
        try:
            r = self.submit([self.record(inst, end=t - 1)])
            self.assertEqual(self.outcomes(r), [(400, "month_closed")])
            self.assertIn(month, r.json["resources"][0]["message"])
        finally:
            self.p.sql("DELETE FROM billing_periods WHERE month = ?", (month,))
        self.assertEqual(self.stored(inst["guid"]), [])
        self.assertEqual(self.outcomes(self.submit([self.record(inst, end=t - 1)])),
                         [(201, None)])
        # A record that reaches back into a closed month overlaps it, though its instant is
        # in an open one; its batch mates in open months are taken.
        first = int(calendar.timegm(time.strptime(month + "-01", "%Y-%m-%d"))) * 1000
        prev = time.strftime("%Y-%m", time.gmtime((first - 1) / 1000))
        self.p.sql("INSERT INTO billing_periods (month, state, closed_ms) VALUES"
                   " (?, 'closed', ?)", (prev, t))
        try:
            r = self.submit([self.record(inst, start=first - 10, end=t - 2),
                             self.record(inst, start=first, end=t - 3)])
            self.assertEqual(self.outcomes(r), [(400, "month_closed"), (201, None)])
            self.assertIn(prev, r.json["resources"][0]["message"])
        finally:
            self.p.sql("DELETE FROM billing_periods WHERE month = ?", (prev,))

    def test_accepted_usage_is_onboarding_evidence(self):
        def step5():
            r = self.call("acme", "GET", "/v1/offerings/%s" % SERVICE_ID)
            self.assertEqual(r.status, 200, r)
            return [s for s in r.json["steps"] if s["step"] == 5][0]

        # The first test to submit usage (unittest runs them in name order).
        self.assertIn("evidence.usage", step5()["missing"])
        inst = self.instance()
        self.outcomes(self.submit([self.record(inst, plan_id=LITE)]))  # refused: no evidence
        self.assertIn("evidence.usage", step5()["missing"])
        self.assertEqual(self.outcomes(self.submit([self.record(inst)])), [(201, None)])
        self.assertNotIn("evidence.usage", step5()["missing"])

    # ------------------------------------------------------------ durability

    def test_listing_records_by_account_and_offering(self):
        a, b = self.instance(), self.instance(who="globex")
        t = now_ms()
        ends = [t - 300, t - 200, t - 100]
        self.assertEqual(self.outcomes(self.submit([self.record(a, end=e) for e in ends])),
                         [(201, None)] * 3)
        rb = self.record(b, measured_usage=[{"measure": "API_CALLS", "quantity": "2.25"}])
        self.assertEqual(self.outcomes(self.submit([rb])), [(201, None)])

        def page(who, **q):
            r = self.call(who, "GET", "/v1/usage/records", query=q)
            self.assertEqual(r.status, 200, (who, q, r))
            return r.json

        def listed(who, **q):
            return [(x["resource_instance_id"], x["end"]) for x in page(who, **q)["resources"]]

        mine = [(a["guid"], e) for e in ends]
        self.assertEqual(listed("initech", instance=a["guid"]), mine)
        self.assertEqual(listed("initech", instance=a["crn"]), mine)
        got = page("initech")["resources"]
        self.assertTrue(got and all(x["account_id"] == self.accounts["initech"]["id"]
                                    for x in got), got)
        self.assertEqual(got[-1]["measured_usage"], [{"measure": "API_CALLS", "quantity": "10"}])
        self.assertEqual(got[-1]["consumer_id"], None)
        self.assertEqual(got[-1]["plan_id"], STANDARD)
        self.assertEqual(got[-1]["month"], time.strftime("%Y-%m", time.gmtime(ends[-1] / 1000)))
        # Nobody reads another account's records; the provider reads its offering's.
        self.assertEqual(listed("initech", instance=b["guid"]), [])
        self.assertEqual(listed("globex", instance=a["guid"]), [])
        self.assertEqual(listed("hooli", instance=a["guid"]), [])
        self.assertEqual(listed("globex", instance=b["guid"]), [(b["guid"], rb["end"])])
        self.assertEqual(page("acme", instance=b["crn"])["resources"][0]["measured_usage"],
                         [{"measure": "API_CALLS", "quantity": "2.25"}])
        self.assertEqual(listed("acme", account_id=self.accounts["globex"]["id"],
                                instance=b["guid"]), [(b["guid"], rb["end"])])
        self.assertEqual(listed("operator", instance=a["guid"]), mine)
        self.assertEqual(listed("initech", account_id=self.accounts["globex"]["id"]), [])
        # Filters and pages.
        self.assertEqual(listed("initech", instance=a["guid"], **{"from": ends[1] - 1}),
                         mine[1:])
        self.assertEqual(listed("initech", instance=a["guid"], to=ends[1] - 1), mine[:1])
        self.assertEqual(listed("initech", instance=a["guid"], plan_id=LITE), [])
        self.assertEqual(listed("initech", instance=a["guid"], month="2001-01"), [])
        self.assertEqual(listed("initech", instance="no-such-instance"), [])
        first = page("initech", instance=a["guid"], limit=2)
        self.assertEqual(first["rows_count"], 2)
        nxt = first["next_url"]
        self.assertTrue(nxt.startswith("/v1/usage/records?limit=2&start="), nxt)
        r = self.c.call("GET", nxt, token=self.accounts["initech"]["token"])
        self.assertEqual([x["end"] for x in r.json["resources"]], ends[2:], r)
        self.assertIsNone(r.json["next_url"])
        for q in ({"limit": "0"}, {"limit": "1001"}, {"month": "2026-13"}, {"from": "abc"},
                  {"to": "-5"}, {"start": "x"}, {"plan_id": ""}):
            r = self.call("initech", "GET", "/v1/usage/records", query=q)
            self.assertEqual(r.status, 400, (q, r))
            self.assertEqual(r.json["errors"][0]["target"], list(q)[0], r)
        self.assertEqual(self.c.call("GET", "/v1/usage/records").status, 401)

    def test_records_survive_a_restart_and_stay_single(self):
        inst = self.instance()
        t = now_ms()
        recs = [self.record(inst, start=t - i - 1, end=t - i) for i in range(20)]
        self.assertEqual(self.outcomes(self.submit(recs)), [(201, None)] * 20)
        self.c.close()
        self.p.restart(kill=True)
        self.c = self.p.client()
        type(self).op_token = self.c.apikey_token(self.p.init["api_key"])
        for a in self.accounts.values():
            a["token"] = self.c.apikey_token(a["apikey"])
        self.assertEqual(self.outcomes(self.submit(recs)), [(409, "duplicate")] * 20)
        self.assertEqual(len(self.stored(inst["guid"])), 20)


def inst_created(inst):
    """The instance's creation time in ms, from its plan history."""
    import datetime
    first = min(h["from"] for h in inst["plan_history"])
    return int(datetime.datetime.fromisoformat(first.replace("Z", "+00:00")).timestamp() * 1000)


if __name__ == "__main__":
    unittest.main()
