"""Several nodes on one database. On PostgreSQL (under tests/pg/with-postgres): two `osbill
serve` processes share it, requests go to both, and one is killed in the middle of
asynchronous broker operations, of usage submissions, and of a month's close. The other takes
the work over: every operation completes once, no usage record is lost or stored twice, and
every invoice number is used once. On SQLite: a second node on the same file is refused."""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error

from harness import (API_CALLS_METRIC, PREMIUM, SERVICE_ID, STANDARD, Broker, Platform,
                     make_accounts, metered_offering)
from test_billing_progress import bench_module

ON_PG = bool(os.environ.get("OSBILL_TEST_PG"))
REGION = "us-south"
PUBLIC = "http://osbill.test"  # what a load balancer in front of both would be


def second_node(p, extra):
    """Another node of p's database: a data directory with the same secret key (as every
    node of a deployment has), started on its own port."""
    data = tempfile.mkdtemp(prefix="osbill-node2-")
    for name in os.listdir(p.data):
        if name == "secret.key":
            shutil.copy2(os.path.join(p.data, name), os.path.join(data, name))
    Platform.databases[data] = p.db
    q = Platform(data=data, extra=extra)
    q.init = p.init
    return q.start()


def now_ms():
    return int(time.time() * 1000)


@unittest.skipIf(ON_PG, "on SQLite only")
class OneFileOneNodeTest(unittest.TestCase):
    def test_a_second_node_on_a_sqlite_file_is_refused(self):
        p = Platform().start()
        self.addCleanup(p.cleanup)
        self.addCleanup(p.stop)
        out = subprocess.run([p.bin, "serve", "--data", p.data, "--listen", "127.0.0.1:0"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 1, out)
        self.assertIn("another osbill serve uses", out.stderr)
        self.assertIn("PostgreSQL", out.stderr)
        c = p.client()  # the first goes on
        self.assertEqual(c.request("GET", "/healthz").status, 200)
        c.close()


@unittest.skipUnless(ON_PG, "needs tests/pg/with-postgres")
class TwoNodesTest(unittest.TestCase):
    EXTRA = ["--public-url", PUBLIC, "--broker-timeout", "3", "--reclamation-period", "0"]

    def start_nodes(self):
        self.p1 = Platform(extra=self.EXTRA).start()
        self.addCleanup(self.p1.cleanup)
        self.addCleanup(self.p1.kill)
        self.p2 = second_node(self.p1, self.EXTRA)
        self.addCleanup(self.p2.cleanup)
        self.addCleanup(self.p2.stop)

    def test_async_operations_and_usage_survive_a_node(self):
        self.start_nodes()
        broker = Broker(async_seconds=2).start()
        self.addCleanup(broker.cleanup)
        self.addCleanup(broker.stop)
        c1, c2 = self.p1.client(), self.p2.client()
        self.addCleanup(c2.close)
        op = c1.apikey_token(self.p1.init["api_key"])
        acc = make_accounts(c1, op, (("acme", "provider"), ("initech", "consumer")))
        prov, cons = acc["acme"]["token"], acc["initech"]["token"]
        metered_offering(c1, prov, broker, REGION,
                         {STANDARD: ("standard", [API_CALLS_METRIC]),
                          PREMIUM: ("premium", [API_CALLS_METRIC])},
                         allow=[acc["initech"]["id"]])
        # Tokens of either node work on both: one issuer, one set of keys, also once the
        # keys are rotated on one of them (the other reads them when a token names the new).
        self.assertEqual(c2.call("GET", "/v1/accounts/" + acc["initech"]["id"],
                                 token=cons).status, 200)
        r = c1.call("POST", "/identity/keys/rotate", token=op)
        self.assertEqual(r.status, 200, r)
        fresh = c1.apikey_token(self.p1.init["api_key"])
        kid = json.loads(base64.urlsafe_b64decode(fresh.split(".")[0] + "=="))["kid"]
        self.assertEqual(kid, r.json["active_kid"])
        self.assertEqual(c2.call("GET", "/v1/accounts", token=fresh).status, 200)
        keys = c2.request("GET", "/identity/keys").json["keys"]
        self.assertIn(kid, [k["kid"] for k in keys])

        # Premium instances provision asynchronously (2 s at the broker); half are asked of
        # each node, then the first node dies with their operations under way.
        made = []
        for i in range(10):
            c = (c1, c2)[i % 2]
            r = c.call("POST", "/v2/resource_instances", token=cons,
                       body={"name": "n-%d" % i, "target": REGION, "resource_plan_id": PREMIUM})
            self.assertEqual(r.status, 202, r)
            made.append(r.json["guid"])
        c1.close()
        self.p1.kill()

        deadline = time.time() + 90
        states = {}
        while time.time() < deadline:
            states = {g: c2.call("GET", "/v2/resource_instances/" + g, token=cons).json["state"]
                      for g in made}
            if all(s == "active" for s in states.values()):
                break
            time.sleep(0.5)
        self.assertEqual(set(states.values()), {"active"}, states)
        q = self.p2.sql
        for g in made:
            # one create operation, succeeded once; the instance became active once
            self.assertEqual(q("SELECT kind, state FROM rc_operations WHERE instance_id = ?",
                               (g,)), [("create", "succeeded")], g)
            self.assertEqual(q("SELECT count(*) FROM instance_state_history WHERE instance_id"
                               " = ? AND state = 'active'", (g,)), [(1,)], g)
        self.assertEqual(q("SELECT count(*) FROM store_leases WHERE name LIKE 'rc.op.%'"),
                         [(0,)])
        self.assertIn("listening", "".join(self.p2.lines))

        # Usage, the first node back: each record is sent to one node, and again to the
        # other (a client that did not hear the answer), from threads at once; the first node
        # is killed in the middle. Each record is stored once.
        self.p1.start()
        t0 = now_ms() - 2000
        records = [{"resource_instance_id": made[n % len(made)], "plan_id": PREMIUM,
                    "start": t0 + n, "end": t0 + n + 1,
                    "measured_usage": [{"measure": "API_CALLS", "quantity": str(n + 1)}]}
                   for n in range(400)]
        path = "/v4/metering/resources/%s/usage" % SERVICE_ID
        created = [0] * len(records)
        errors = []

        def submit(part, first):
            nodes = [self.p1, self.p2] if first == 0 else [self.p2, self.p1]
            clients = {}
            try:
                for k in range(0, len(part), 10):
                    batch = part[k:k + 10]
                    for node in nodes:
                        for attempt in range(100):  # until a node answers it
                            target = node if node.alive() else self.p2
                            c = clients.get(target.port) or target.client()
                            clients[target.port] = c
                            try:
                                r = c.call("POST", path, batch, token=prov)
                            except (OSError, ValueError):
                                clients.pop(target.port, None)
                                time.sleep(0.05)
                                continue
                            if r.status != 202:
                                errors.append(r)
                                return
                            for rec, out in zip(batch, r.json["resources"]):
                                if out["status"] == 201:
                                    created[records.index(rec)] += 1
                                elif out.get("code") != "duplicate":
                                    errors.append(out)
                            break
            finally:
                for c in clients.values():
                    c.close()

        threads = [threading.Thread(target=submit, args=(records[i::4], i % 2))
                   for i in range(4)]
        for th in threads:
            th.start()
        time.sleep(0.3)
        self.p1.kill()
        for th in threads:
            th.join(120)
        self.assertEqual(errors, [])
        # Every record was answered 201 or duplicate; at most one 201 each (a node killed
        # after its commit but before its answer leaves a record with only 409s to hear).
        self.assertEqual([n for n in created if n > 1], [])
        self.assertGreater(sum(created), len(records) // 2)
        rows = q("SELECT r.start_ms, r.measured_usage FROM usage_records r JOIN usage_meters m"
                 " ON m.id = r.meter WHERE m.instance_id IN (%s)" % ",".join("?" * len(made)),
                 made)
        self.assertEqual(sorted(s - t0 for s, _ in rows), list(range(len(records))))
        self.assertEqual(sum(int(json.loads(u)[0]["quantity"]) for _, u in rows),
                         sum(range(1, len(records) + 1)))

    def test_a_month_close_survives_its_node(self):
        bench = bench_module()
        accounts, per_account, n_records = 1000, 10, 150
        now = now_ms()
        cur0, _ = bench.month_range(bench.month_of(now))
        month = bench.month_of(bench.month_range(bench.month_of(cur0 - 1))[0] - 1)
        tmp = tempfile.mkdtemp(prefix="osbill-nodes-")
        self.addCleanup(shutil.rmtree, tmp, True)
        p1, b, op1, stored = bench.setup(tmp, month, accounts, per_account, n_records)
        self.addCleanup(b.stop)
        self.addCleanup(p1.kill)
        p2 = second_node(p1, ["--reclamation-period", "0"])
        self.addCleanup(p2.cleanup)
        self.addCleanup(p2.stop)
        c = p2.client()
        op2 = c.apikey_token(p2.init["api_key"])
        c.close()

        path = "/v1/billing/periods/%s" % month
        answer = []

        def close():
            try:
                answer.append(bench.request(p1.port, "POST", path + "/close", op1))
            except (urllib.error.URLError, OSError, ValueError) as e:
                answer.append(e)  # the node dies under it

        t = threading.Thread(target=close, daemon=True)
        t.start()
        deadline = time.time() + 60
        seen = None
        while time.time() < deadline:
            _, got = bench.request(p1.port, "GET", path, op1)
            pg = got.get("progress")
            if pg and pg["phase"] in ("counting", "rating"):
                seen = got
                break
            self.assertFalse(got.get("finalized_at"), "the close ended before it was seen")
            time.sleep(0.005)
        self.assertTrue(seen, "no close in progress")
        # the other node refuses a second close of the month while the first one's runs
        st = None
        try:
            st, _ = bench.request(p2.port, "POST", path + "/close", op2)
        except urllib.error.HTTPError as e:
            st, body = e.code, json.loads(e.read())
            self.assertEqual(body["errors"][0]["code"], "close_running", body)
        self.assertEqual(st, 409)
        p1.kill()
        t.join(30)
        self.assertEqual(p2.sql("SELECT count(*) FROM invoices"), [(0,)])

        deadline = time.time() + 120
        while time.time() < deadline:
            _, got = bench.request(p2.port, "GET", path, op2)
            if got.get("finalized_at"):
                break
            time.sleep(0.2)
        self.assertEqual(got["state"], "closed", got)
        self.assertIn("finishing the close of %s, left by a node that stopped" % month, p2.log())
        numbers = [r[0] for r in p2.sql("SELECT number FROM invoices ORDER BY number")]
        self.assertEqual(numbers, list(range(1, accounts + 1)))
        self.assertEqual(p2.sql("SELECT count(DISTINCT account_id) FROM invoices"),
                         [(accounts,)])
        self.assertEqual(p2.sql("SELECT count(*) FROM statements"), [(1,)])
        self.assertEqual(p2.sql("SELECT count(*) FROM usage_records"), [(stored,)])
        self.assertEqual(p2.sql("SELECT count(*) FROM store_leases"), [(0,)])
        # closing again, on either node, is the same answer
        st, again = bench.request(p2.port, "POST", path + "/close", op2)
        self.assertEqual((st, again["invoices"], again["statements"]), (200, accounts, 1), again)


if __name__ == "__main__":
    unittest.main()
