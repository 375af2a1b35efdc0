"""Crash test of usage ingestion (issue: "a record acknowledged is a record billed exactly
once"). Submitters send batches of new records continuously while osbill serve is killed
with SIGKILL at random moments and restarted, several times. A submitter whose request got
no answer sends the same batch again once the platform is back, until it gets one.

Afterwards:
- every record is stored exactly once (the unique signature), with the quantity it was sent
  with;
- every record that got a 201 is stored; a record is only stored if it got a 201, or a 409
  on a retry of a request whose first answer never came (it was committed before the kill);
- a 409 never answers a record's first and only delivery;
- nothing else is stored."""

import http.client
import json
import os
import random
import threading
import time
import unittest

from harness import (LITE, SERVICE_ID, Broker, Platform, free_port, make_accounts,
                     metered_offering, API_CALLS_METRIC)

REGION = "us-south"
SUBMITTERS = 3
BATCH = 40
KILLS = 4


class CrashTest(unittest.TestCase):

    def setUp(self):
        self.port = free_port()
        self.p = Platform(extra=["--reclamation-period", "0"])
        self.p.argv[self.p.argv.index("127.0.0.1:0")] = "127.0.0.1:%d" % self.port
        self.p.start()
        self.broker = Broker().start()
        self.addCleanup(self.cleanup)
        c = self.p.client()
        op = c.apikey_token(self.p.init["api_key"])
        acc = make_accounts(c, op, (("acme", "provider"), ("initech", "consumer")))
        acme, initech = acc["acme"], acc["initech"]

        metered_offering(c, acme["token"], self.broker, REGION,
                         {LITE: ("lite", [API_CALLS_METRIC])}, allow=[initech["id"]])
        r = c.call("POST", "/v2/resource_instances", token=initech["token"],
                   body={"name": "crash", "target": REGION, "resource_plan_id": LITE})
        self.assertEqual(r.status, 201, r)
        inst = r.json
        c.close()
        self.guid = inst["guid"]
        self.apikey = acme["apikey"]
        self.token = acme["token"]
        self.t0 = int(time.time() * 1000) + 50
        time.sleep(0.1)

    def cleanup(self):
        try:
            self.broker.stop()
            self.p.stop()
        finally:
            self.broker.cleanup()
            self.p.cleanup()

    def record(self, n):
        """Record n: its own start (so its own signature) and a quantity that names it."""
        return {"resource_instance_id": self.guid, "plan_id": LITE, "start": self.t0 + n,
                "end": self.t0 + n + 1,
                "measured_usage": [{"measure": "API_CALLS", "quantity": n + 1}]}

    def post(self, batch):
        """One delivery: the list of statuses, or None when no answer came."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("POST", "/v4/metering/resources/%s/usage" % SERVICE_ID,
                         body=json.dumps(batch),
                         headers={"Content-Type": "application/json",
                                  "Authorization": "Bearer " + self.token})
            r = conn.getresponse()
            body = r.read()
            if r.status != 202:
                return None  # e.g. 503 while stopping: nothing kept, send again
            return [e["status"] for e in json.loads(body)["resources"]]
        except (OSError, http.client.HTTPException, ValueError):
            return None
        finally:
            conn.close()

    def test_kill_during_submissions(self):
        stop = threading.Event()
        lock = threading.Lock()
        outcome = {}      # record number -> final status (201 or 409)
        retried = set()   # records whose delivery was sent more than once
        errors = []
        counter = [0]

        def submitter():
            while not stop.is_set():
                with lock:
                    first = counter[0]
                    counter[0] += BATCH
                batch = [self.record(first + i) for i in range(BATCH)]
                attempts = 0
                while True:
                    statuses = self.post(batch)
                    attempts += 1
                    if statuses is not None:
                        break
                    time.sleep(0.05)
                with lock:
                    for i, st in enumerate(statuses):
                        n = first + i
                        outcome[n] = st
                        if attempts > 1:
                            retried.add(n)
                        if st not in (201, 409) or (st == 409 and attempts == 1):
                            errors.append((n, st, attempts))

        threads = [threading.Thread(target=submitter) for _ in range(SUBMITTERS)]
        for th in threads:
            th.start()
        try:
            for _ in range(KILLS):
                time.sleep(random.uniform(0.3, 1.0))
                self.p.kill()
                time.sleep(random.uniform(0.0, 0.3))
                self.p.lines = []
                self.p.start()
            time.sleep(0.5)
        finally:
            stop.set()
            for th in threads:
                th.join(timeout=120)
        self.assertFalse(any(th.is_alive() for th in threads), "a submitter hung")
        self.assertEqual(errors, [])

        self.p.stop()
        rows = self.p.sql("SELECT start_ms, measured_usage FROM usage_records_full WHERE"
                          " instance_id = ?", (self.guid,))
        stored = {}
        for start, mu in rows:
            n = start - self.t0
            self.assertNotIn(n, stored, "record %d stored twice" % n)
            stored[n] = json.loads(mu)[0]["quantity"]
        self.assertEqual(set(stored), set(outcome), "stored records differ from the answered")
        for n, q in stored.items():
            self.assertEqual(q, str(n + 1), n)
        self.assertGreater(len(outcome), SUBMITTERS * BATCH * KILLS, "too little was sent")
        self.assertTrue(all(outcome[n] == 201 or n in retried for n in outcome))
        print("crash test: %d records answered, %d of them retried after a kill, %d stored"
              % (len(outcome), len(retried), len(stored)))


if __name__ == "__main__":
    unittest.main()
