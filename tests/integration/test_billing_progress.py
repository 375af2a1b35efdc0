"""`osbill billing close` on a terminal draws the close's progress: a month big enough to take
a while (1,500,000 records across 10,000 instances, loaded into SQLite the way
bench/run-billing-bench loads its 10 million) is closed with the CLI on a pseudo-terminal,
and the bar it draws follows the platform's progress (rating n of N, then finalizing) before
the close's answer. Off a terminal (a pipe) nothing but the answer is printed."""

import importlib.machinery
import importlib.util
import os
import pty
import re
import select
import shutil
import subprocess
import tempfile
import time
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
        self.p, self.b, _, self.records = bench.setup(self.tmp, self.month, ACCOUNTS,
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


if __name__ == "__main__":
    unittest.main()
