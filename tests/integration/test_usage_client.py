"""libosb's usage client, through the starter broker, against a real osbill serve.

The broker meters each data call (API_CALLS, and the STORAGE_BYTES peak) and submits one
record per instance, plan and period (2 s here) through the usage client. Outage test: the
platform is killed while the broker keeps serving and metering, the broker itself is killed
once during the outage (its spool and its open usage are on disk), and when the platform is
back every call arrives, counted once. A record the platform refuses (a measure the plan does
not define) is not retried: it lands in osb_usage_rejected."""

import json
import os
import sqlite3
import time
import unittest
import urllib.parse

from harness import (LITE, SERVICE_ID, STANDARD, Broker, Client, Platform, OSB, basic, free_port,
                     make_accounts, metered_offering, API_CALLS_METRIC)

REGION = "us-south"
PERIOD_S = 2
STORAGE = {"id": "STORAGE_BYTES", "display_name": "Stored bytes", "unit": "byte",
           "metering_model": "standard_max"}


def wait_for(test, cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.1)
    test.fail("timed out waiting for " + (what() if callable(what) else what))


class UsageClientTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.p = Platform(extra=["--reclamation-period", "0"])
        cls.p.argv[cls.p.argv.index("127.0.0.1:0")] = "127.0.0.1:%d" % cls.port
        cls.p.start()
        try:
            c = cls.p.client()
            op = c.apikey_token(cls.p.init["api_key"])
            acc = make_accounts(c, op, (("acme", "provider"), ("initech", "consumer")))
            cls.acme, cls.initech = acc["acme"], acc["initech"]
            c.close()
            cls.broker = Broker(extra=["--platform", cls.p.url, "--usage-period", str(PERIOD_S)])
            # A fixed port: the platform's registration of the broker outlives its restarts.
            cls.broker.argv[cls.broker.argv.index("127.0.0.1:0")] = "127.0.0.1:%d" % free_port()
            # The key through the environment, as a deployment would keep it off argv.
            cls.broker.env = dict(os.environ, OSB_USAGE_APIKEY=cls.acme["apikey"])
            cls.broker.start()
            c = cls.p.client()
            # lite meters calls only: the broker's records, which carry storage too, are
            # refused for its instances.
            metered_offering(c, cls.acme["token"], cls.broker, REGION,
                             {STANDARD: ("standard", [API_CALLS_METRIC, STORAGE]),
                              LITE: ("lite", [API_CALLS_METRIC])},
                             allow=[cls.initech["id"]])
            c.close()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if getattr(cls, "broker", None):
                cls.broker.stop()
            cls.p.stop()
        finally:
            if getattr(cls, "broker", None):
                cls.broker.cleanup()
            cls.p.cleanup()

    # ------------------------------------------------------------ helpers

    def instance(self, plan):
        c = self.p.client()
        r = c.call("POST", "/v2/resource_instances", token=self.initech["token"],
                   body={"name": "u-%s" % os.urandom(3).hex(), "target": REGION,
                         "resource_plan_id": plan})
        self.assertEqual(r.status, 201, r)
        guid = r.json["guid"]
        deadline = time.time() + 30
        while r.json["state"] != "active" and time.time() < deadline:
            time.sleep(0.1)
            r = c.call("GET", "/v2/resource_instances/" + guid, token=self.initech["token"])
            self.assertEqual(r.status, 200, r)
        c.close()
        self.assertEqual(r.json["state"], "active", r)
        return guid, r.json["crn"]  # the broker knows the instance by its CRN

    def bind(self, iid, plan):
        osb = OSB(self.broker.port, self.broker.user, self.broker.password)
        r = osb.bind(iid, "key-" + os.urandom(3).hex(), plan=plan)
        osb.close()
        self.assertEqual(r.status, 201, r)
        return r.json["credentials"]

    def put(self, creds, name, value):
        http = Client(self.broker.port)
        path = urllib.parse.urlparse(creds["url"]).path + "/" + name
        r = http.request("PUT", path, raw=value, headers={"X-Api-Key": creds["apikey"]})
        http.close()
        self.assertEqual(r.status, 204, r)

    def stored(self, iid):
        """The platform's accepted records of an instance: [(start, end, {measure: qty})]."""
        rows = self.p.sql("SELECT start_ms, end_ms, measured_usage FROM usage_records_full"
                          " WHERE instance_id = ? ORDER BY start_ms", (iid,))
        out = []
        for start, end, mu in rows:
            out.append((start, end, {m["measure"]: m["quantity"] for m in json.loads(mu)}))
        return out

    def broker_db(self, sql, args=()):
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.broker.data, "broker.db"),
                             uri=True, timeout=10)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def calls(self, iid):
        return sum(int(q.get("API_CALLS", "0")) for _, _, q in self.stored(iid))

    def wait(self, cond, timeout, what):
        wait_for(self, cond, timeout, what)

    # ------------------------------------------------------------ tests

    def test_outage(self):
        iid, crn = self.instance(STANDARD)
        creds = self.bind(crn, STANDARD)
        made, size = 0, 0
        for i in range(5):
            self.put(creds, "before-%d" % i, b"x" * 10)
            made, size = made + 1, size + 10
        self.wait(lambda: self.calls(iid) == made, 4 * PERIOD_S + 10, "the first period")

        self.p.kill()
        try:
            # The broker serves and meters on, over several periods, and is killed once.
            end = time.time() + 3 * PERIOD_S
            i = 0
            while time.time() < end:
                self.put(creds, "during-%d" % i, b"y" * 20)
                made, size, i = made + 1, size + 20, i + 1
                time.sleep(0.05)
            self.broker.restart(kill=True)
            for j in range(10):
                self.put(creds, "after-kill-%d" % j, b"z" * 5)
                made, size = made + 1, size + 5
            time.sleep(PERIOD_S + 0.5)
            spooled = self.broker_db("SELECT count(*) FROM osb_usage_spool")[0][0]
            self.assertGreater(spooled, 0, "records wait on the spool while the platform is down")
        finally:
            self.p.restart()
        self.assertEqual(self.p.port, self.port)
        # Back: the spool drains (backoff is at most a few seconds after a short outage).
        self.wait(lambda: self.calls(iid) == made, 40, "every call of the outage")
        self.wait(lambda: self.broker_db("SELECT count(*) FROM osb_usage_spool")[0][0] == 0, 10,
                  "an empty spool")
        recs = self.stored(iid)
        peaks = [int(q["STORAGE_BYTES"]) for _, _, q in recs]
        self.assertEqual(max(peaks), size, recs)
        self.assertEqual(peaks, sorted(peaks), "values only grew: so did the peaks")
        for (s1, e1, _), (s2, _, _) in zip(recs, recs[1:]):
            self.assertLessEqual(e1, s2, "records of one plan do not overlap: %r" % recs)
        self.assertEqual(self.broker_db("SELECT count(*) FROM osb_usage_rejected")[0][0], 0)

        # A stop sends the period still open, without waiting for its end.
        for j in range(3):
            self.put(creds, "last-%d" % j, b"w")
            made += 1
        self.broker.restart()
        self.wait(lambda: self.calls(iid) == made, 10, "the usage of the open period")
        self.assertEqual(self.broker_db("SELECT count(*) FROM usage_open")[0][0], 0)

    def test_refused_records_are_kept_not_retried(self):
        iid, crn = self.instance(LITE)
        creds = self.bind(crn, LITE)
        self.put(creds, "a", b"1")
        self.wait(lambda: self.broker_db("SELECT count(*) FROM osb_usage_rejected"
                                         " WHERE record LIKE ?", ("%" + crn + "%",))[0][0] >= 1,
                  4 * PERIOD_S + 10, "the refusal")
        # the calls' record, and perhaps already storage records of idle periods after it
        for status, code, record in self.broker_db(
                "SELECT status, code, record FROM osb_usage_rejected WHERE record LIKE ?",
                ("%" + crn + "%",)):
            self.assertEqual((status, code), (400, "invalid_measured_usage"), record)
            self.assertIn('"STORAGE_BYTES"', record)
        self.assertEqual(self.broker_db("SELECT count(*) FROM osb_usage_spool"
                                        " WHERE record LIKE ?", ("%" + crn + "%",))[0][0], 0)
        self.assertEqual(self.stored(iid), [])
        self.assertIn("refused a usage record of instance %s" % crn, self.broker.log())


if __name__ == "__main__":
    unittest.main()


class FakeMetering:
    """The platform's token and metering endpoints as a misbehaving platform would answer
    them: each metering request takes the next behaviour of a script, then "accept" forever.
    Behaviours: "503", "garbage" (a 202 that is not JSON), "hang" (answers after 3 s),
    "401", "accept" (201 for a new signature, 409 for one seen before), "accept-drop"
    (records them as accepted, then closes the connection without an answer)."""

    def __init__(self, script):
        import http.server
        import threading
        self.script = list(script)
        self.requests = []  # (time, behaviour, [records])
        self.accepted = {}  # signature -> record
        self.tokens = 0
        self.duplicates = 0
        self.mu = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def answer(self, status, body):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self.answer(404, {"error": "not_found"})

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/identity/token":
                    form = urllib.parse.parse_qs(body.decode())
                    if form.get("apikey") != ["fake-key"]:
                        return self.answer(400, {"error": "invalid_grant"})
                    with fake.mu:
                        fake.tokens += 1
                        tok = "tok-%d" % fake.tokens
                    return self.answer(200, {"access_token": tok, "expires_in": 3600,
                                             "token_type": "Bearer"})
                if self.path != "/v4/metering/resources/%s/usage" % SERVICE_ID:
                    return self.answer(404, {"error": "not_found"})
                records = json.loads(body)
                with fake.mu:
                    what = fake.script.pop(0) if fake.script else "accept"
                    fake.requests.append((time.time(), what, records,
                                          self.headers.get("Authorization")))
                if what == "503":
                    return self.answer(503, {"error": "unavailable"})
                if what == "garbage":
                    return self.answer(202, b"<html>not json")
                if what == "401":
                    return self.answer(401, {"error": "invalid_token"})
                if what == "hang":
                    time.sleep(3)
                    try:
                        return self.answer(503, {"error": "too late"})
                    except OSError:
                        return  # the client gave up long ago, as it should

                out = []
                with fake.mu:
                    for r in records:
                        sig = (r["resource_instance_id"], r.get("consumer_id"), r["plan_id"],
                               r.get("region"), r["start"], r["end"])
                        if sig in fake.accepted:
                            fake.duplicates += 1
                            out.append({"status": 409, "code": "duplicate"})
                        else:
                            fake.accepted[sig] = r
                            out.append({"status": 201})
                if what == "accept-drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.answer(202, {"resources": out})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def calls(self):
        with self.mu:
            return sum(int(m["quantity"]) for r in self.accepted.values()
                       for m in r["measured_usage"] if m["measure"] == "API_CALLS")

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class UsageClientRetryTest(unittest.TestCase):
    """The usage client against a platform that fails in each way it can."""

    def start(self, script, period="1"):
        self.fake = FakeMetering(script)
        self.addCleanup(self.fake.stop)
        self.broker = Broker(extra=["--platform", "http://127.0.0.1:%d" % self.fake.port,
                                    "--usage-period", period, "--usage-timeout", "1",
                                    "--usage-apikey", "fake-key"])
        self.broker.start()
        self.addCleanup(self.broker.cleanup)
        self.addCleanup(self.broker.stop)
        osb = OSB(self.broker.port, self.broker.user, self.broker.password)
        self.assertEqual(osb.provision("i-1", plan=STANDARD).status, 201)
        r = osb.bind("i-1", "k-1", plan=STANDARD)
        osb.close()
        self.assertEqual(r.status, 201, r)
        self.creds = r.json["credentials"]

    def put(self, n, value=b"v"):
        """n calls; with an empty value nothing is stored, so idle periods send nothing."""
        http = Client(self.broker.port)
        path = urllib.parse.urlparse(self.creds["url"]).path
        for i in range(n):
            r = http.request("PUT", "%s/k%d" % (path, i), raw=value,
                             headers={"X-Api-Key": self.creds["apikey"]})
            self.assertEqual(r.status, 204, r)
        http.close()

    def wait(self, cond, timeout, what):
        wait_for(self, cond, timeout, lambda: "%s: %r" % (what, self.fake.requests))

    def test_retries_with_backoff_until_accepted(self):
        self.start(["503", "garbage", "hang", "503", "401"])
        # Periods are whole seconds of the wall clock: the calls start just after one begins,
        # so they are all in it unless the machine is very slow (then in two, checked below).
        time.sleep(1.02 - time.time() % 1)
        self.put(7)
        self.wait(lambda: self.fake.calls() == 7, 30, "the calls")
        time.sleep(2.5)  # nothing is sent again once the platform has answered
        reqs = self.fake.requests
        self.assertEqual([w for _, w, _, _ in reqs[:6]], ["503", "garbage", "hang", "503",
                                                          "401", "accept"], reqs)
        # The calls' record leads every batch until it is taken (storage records of the idle
        # periods since join later batches), and nothing taken is sent again.
        self.assertTrue(all(r[0] == reqs[0][2][0] for _, _, r, _ in reqs[:6]), reqs)
        self.assertEqual(self.fake.duplicates, 0, reqs)
        self.assertTrue(all(w == "accept" for _, w, _, _ in reqs[6:]), reqs)
        # The first period's record: its calls, and the keys stored by its end.
        first = reqs[0][2][0]["measured_usage"]
        n = first[0]["quantity"] if first else None
        self.assertIn(n, [str(i) for i in range(1, 8)], first)
        self.assertEqual(first, [{"measure": "API_CALLS", "quantity": n},
                                 {"measure": "STORAGE_BYTES", "quantity": n}])
        # Exponential backoff with equal jitter: the n-th wait is within [d/2, d], d = 0.5 s
        # doubling; a hang costs its 1 s timeout on top.
        gaps = [b[0] - a[0] for a, b in zip(reqs, reqs[1:])]
        delays = [0.5, 1.0, 2.0, 4.0]
        for i, d in enumerate(delays):
            lo = d / 2 + (1.0 if reqs[i][1] == "hang" else 0)
            self.assertGreaterEqual(gaps[i], lo - 0.05, (i, gaps))
            self.assertLessEqual(gaps[i], lo + d / 2 + 1.5, (i, gaps))
        # A 401 is retried at once with a new token, and the backoff starts over after it.
        self.assertNotEqual(reqs[4][3], reqs[5][3])
        self.assertLess(gaps[4], 1.0, gaps)
        self.assertIn("usage not sent: the platform answered 503", self.broker.log())

    def test_an_answer_lost_after_acceptance_settles_on_409(self):
        self.start(["accept-drop"])
        self.put(3, value=b"")
        self.wait(lambda: len(self.fake.requests) >= 2, 20, "the second delivery")
        time.sleep(2.5)
        reqs = self.fake.requests
        self.assertEqual([w for _, w, _, _ in reqs], ["accept-drop", "accept"], reqs)
        self.assertEqual(reqs[0][2], reqs[1][2])
        self.assertEqual(self.fake.calls(), 3)
        db = sqlite3.connect(os.path.join(self.broker.data, "broker.db"))
        try:
            self.assertEqual(db.execute("SELECT count(*) FROM osb_usage_spool").fetchone()[0], 0)
            self.assertEqual(db.execute("SELECT count(*) FROM osb_usage_rejected").fetchone()[0],
                             0)
        finally:
            db.close()

    def flush(self):
        http = Client(self.broker.port)
        r = http.request("POST", "/usage/flush", headers={
            "Authorization": basic(self.broker.user, self.broker.password)})
        http.close()
        return r

    def test_flush_sends_now_and_tells_what_is_left(self):
        self.start(["503"] * 50)
        self.put(2, value=b"")
        time.sleep(1.2)  # the period is over: flush's round spools it and tries
        r = self.flush()
        self.assertEqual(r.status, 503, r)
        self.assertEqual((r.json["spooled"], r.json["accepted"]), (1, 0), r.json)
        self.assertGreaterEqual(r.json["failures"], 1, r.json)
        self.fake.script = []  # the platform is well again
        r = self.flush()
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["spooled"], r.json["accepted"], r.json["rejected"]), (0, 1, 0),
                         r.json)
        self.assertEqual(self.fake.calls(), 2)
        http = Client(self.broker.port)
        self.assertEqual(http.request("POST", "/usage/flush").status, 401)
        http.close()

    def test_idle_periods_still_meter_storage(self):
        self.start([])
        time.sleep(1.02 - time.time() % 1)  # all three calls in one period (see above)
        self.put(3)  # 3 bytes stored, then no call for several 1 s periods
        self.wait(lambda: sum(1 for r in self.fake.accepted.values()
                              if len(r["measured_usage"]) == 1) >= 2, 10, "idle periods")
        recs = sorted(self.fake.accepted.values(), key=lambda r: r["start"])
        calls = [r for r in recs if len(r["measured_usage"]) == 2]
        idle = [r for r in recs if len(r["measured_usage"]) == 1]
        self.assertEqual(len(calls), 1, recs)
        for r in idle:
            self.assertEqual(r["measured_usage"], [{"measure": "STORAGE_BYTES",
                                                    "quantity": "3"}], r)
            self.assertEqual((r["start"] % 1000, r["end"] - r["start"]), (0, 1000), r)
            self.assertGreater(r["start"], calls[0]["start"], "after the calls' period")
        starts = [r["start"] for r in idle]
        self.assertEqual(starts, list(range(starts[0], starts[0] + 1000 * len(starts), 1000)),
                         "one record a period, none twice")

    def test_stop_flushes_the_open_period(self):
        self.start([], period="3600")  # the period is far from over
        self.put(4)
        time.sleep(1.5)
        self.assertEqual(self.fake.requests, [])
        self.broker.stop()
        self.assertEqual(self.fake.calls(), 4, self.fake.requests)
