"""A close that takes a while (1,500,000 records across 10,000 instances, loaded into SQLite the
way bench/run-billing-bench loads its 10 million): `osbill billing close` on a terminal draws
its progress (rating n of N, then finalizing) before the answer, and nothing but the answer
off a terminal (a pipe); a close cut off by the platform's death, or by its stop (which
answers the close 503 at once), is finished by the platform when it starts again, with every
invoice once and gapless numbers."""

import importlib.machinery
import importlib.util
import json
import os
import pty
import re
import select
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(HERE, "..", "..", "bench", "run-billing-bench")
ACCOUNTS, PER_ACCOUNT, RECORDS = 1000, 10, 150


def bench_module():
    loader = importlib.machinery.SourceFileLoader("billing_bench", BENCH)
    spec = importlib.util.spec_from_loader("billing_bench", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def on_a_terminal(argv, env, timeout=600):
    """Runs argv with stdout and stderr on a pseudo-terminal: (exit status, all it wrote)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([master], [], [], 1)
        if not r:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return proc.wait(timeout=60), out.decode("utf-8", "replace")


class CloseProgressTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="osbill-progress-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        bench = bench_module()
        now = int(time.time() * 1000)
        cur0, _ = bench.month_range(bench.month_of(now))
        self.month = bench.month_of(bench.month_range(bench.month_of(cur0 - 1))[0] - 1)
        self.bench = bench
        self.p, self.b, self.op, self.records = bench.setup(self.tmp, self.month, ACCOUNTS,
                                                      PER_ACCOUNT, RECORDS)
        for proc in (self.p, self.b):
            self.addCleanup(proc.stop)
        self.env = dict(os.environ, OSBILL_HOME=os.path.join(self.tmp, "home"))
        os.makedirs(self.env["OSBILL_HOME"])
        subprocess.run([self.p.bin, "login", "--endpoint", self.p.url, "--apikey",
                        self.p.init["api_key"]], env=self.env, check=True, capture_output=True)

    def test_the_bar_follows_the_close(self):
        self.assertEqual(self.records, ACCOUNTS * PER_ACCOUNT * RECORDS)
        rc, out = on_a_terminal([self.p.bin, "billing", "close", self.month], self.env)
        self.assertEqual(rc, 0, out)
        total = ACCOUNTS * PER_ACCOUNT  # the meters; the metered plan has no fee stretches
        bars = re.findall(r"\r\[([# ]{30})\] +(\d+)%  (rating|finalizing) (\d+) of (\d+)", out)
        self.assertTrue(bars, repr(out[-2000:]))
        last = -1
        for fill, pct, phase, done, of in bars:
            pct, done, of = int(pct), int(done), int(of)
            self.assertEqual(of, total, bars)
            self.assertGreaterEqual(done, last)  # it only goes forward
            last = done
            want = 100 if phase == "finalizing" else done * 100 // total
            self.assertEqual(pct, want, (fill, pct, phase, done))
            self.assertEqual(fill.count("#"), pct * 30 // 100, fill)
            self.assertEqual(fill, "#" * fill.count("#") + " " * (30 - fill.count("#")))
        # the bar is wiped before the answer, which is the last line
        self.assertIn("\r" + " " * 60 + "\r", out)
        self.assertRegex(out.rstrip(), r"%s: closed, %d invoices, 1 statements$" %
                         (self.month, ACCOUNTS))
        # closing again is the same answer at once, and off a terminal only the answer
        r = subprocess.run([self.p.bin, "billing", "close", self.month], env=self.env,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        self.assertEqual(r.stdout.strip(), "%s: closed, %d invoices, 1 statements" %
                         (self.month, ACCOUNTS))

    def test_a_close_cut_off_is_finished_after_a_restart(self):
        self.cut_off(graceful=False)

    def test_a_close_stopped_with_the_platform_is_finished_after_a_restart(self):
        self.cut_off(graceful=True)

    def cut_off(self, graceful):
        """The platform killed (or stopped with SIGTERM) in the middle of a close, then
        started again: the close is finished once, from the start."""
        path = "/v1/billing/periods/%s" % self.month
        answer = []

        def close():
            try:
                answer.append(self.bench.request(self.p.port, "POST", path + "/close", self.op))
            except urllib.error.HTTPError as e:
                answer.append((e.code, json.loads(e.read())))
            except (urllib.error.URLError, OSError, ValueError):
                pass  # the platform dies under it

        t = threading.Thread(target=close, daemon=True)
        t.start()
        deadline = time.time() + 60
        polls = []  # (when, how long, what), for a failure's message
        while time.time() < deadline:
            t0 = time.time()
            _, got = self.bench.request(self.p.port, "GET", path, self.op)
            pg = got.get("progress")
            polls.append((round(t0 % 100, 3), round(time.time() - t0, 3), got["state"],
                          pg and (pg["phase"], pg["done"])))
            # closed to usage, being rated: nothing issued yet
            if pg and pg["phase"] in ("counting", "rating"):
                break
            if got["state"] == "closed" and got.get("finalized_at"):
                self.fail("the close ended before it was seen: %r" % polls[-50:])
            time.sleep(0.005)
        else:
            self.fail("no close in progress: %r" % polls[-50:])
        self.assertEqual(got["state"], "closing", got)
        if graceful:
            # it stops at once, answering the close 503 rather than waiting for it
            self.p.stop(timeout=30)
            t.join(30)
            self.assertEqual(answer and answer[0][0], 503, answer)
            self.assertIn("it is finished when the platform starts again", self.p.log())
        else:
            self.p.kill()
            t.join(30)
        row = self.p.sql("SELECT state, finalized_ms FROM billing_periods WHERE month = ?",
                         (self.month,))
        self.assertEqual(row, [("closed", None)])  # closed to usage, nothing issued
        self.assertEqual(self.p.sql("SELECT count(*) FROM invoices"), [(0,)])

        self.p.start()
        c = self.p.client()
        op = c.apikey_token(self.p.init["api_key"])
        c.close()
        deadline = time.time() + 120
        while time.time() < deadline:
            _, got = self.bench.request(self.p.port, "GET", path, op)
            if got["state"] == "closed":
                break
            time.sleep(0.1)
        self.assertEqual(got["state"], "closed", got)
        self.assertTrue(got["finalized_at"], got)
        self.assertIn("finishing the close of %s, cut off before the restart" % self.month,
                      self.p.log())
        numbers = [r[0] for r in self.p.sql(
            "SELECT number FROM invoices WHERE month = ? ORDER BY number", (self.month,))]
        self.assertEqual(numbers, list(range(1, ACCOUNTS + 1)))
        self.assertEqual(self.p.sql("SELECT count(DISTINCT account_id) FROM invoices"),
                         [(ACCOUNTS,)])
        self.assertEqual(self.p.sql("SELECT count(*) FROM statements"), [(1,)])
        # the operator's close now answers at once with what the platform finished
        st, again = self.bench.request(self.p.port, "POST", path + "/close", op)
        self.assertEqual((st, again["state"], again["invoices"], again["statements"]),
                         (200, "closed", ACCOUNTS, 1), again)


if __name__ == "__main__":
    unittest.main()
