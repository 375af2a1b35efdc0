"""`make demo`'s tour (scripts/demo) on the binaries under test: every step of it runs against a
real platform and starter broker, and what it prints at the end is the month's real invoice
and statement."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(HERE, "..", "..", "scripts", "demo")
CALLS = 600


class DemoTest(unittest.TestCase):
    def test_the_whole_tour(self):
        tmp = tempfile.mkdtemp(prefix="osbill-demo-")
        self.addCleanup(shutil.rmtree, tmp, True)
        env = dict(os.environ, OSBILL_DEMO_DIR=os.path.join(tmp, "demo"),
                   OSBILL_DEMO_CALLS=str(CALLS))
        r = subprocess.run([sys.executable, DEMO], capture_output=True, text=True, env=env,
                           timeout=400)
        out = r.stdout
        self.assertEqual(r.returncode, 0, out[-3000:] + r.stderr[-3000:])
        # The six steps, each complete before publication's.
        for n in range(1, 6):
            self.assertRegex(out, r"\[x\] %d\. " % n)
        self.assertIn("visibility public, every step complete: True", out)
        self.assertRegex(out, r"the dashboard: \d+ keys, \d+ bytes stored, signed in as "
                              r"osbill-[0-9a-f-]+")
        # The invoice: 600 calls at 0.50 USD per 1,000 are 0.30 USD, and nothing else costs a
        # cent; the statement splits it.
        self.assertRegex(out, r"invoice 1 \(invoice, finalized\) of \d{4}-\d\d for [0-9a-f]+: "
                              r"0\.30 USD")
        self.assertRegex(out, r"(?m)^ +[0-9a-f-]{36} +[0-9a-f-]{36} +API_CALLS +%d +0\.6 +0\.30$"
                         % CALLS)
        m = re.search(r"(?m)^ +[0-9a-f-]{36} +[0-9a-f]{32} +\d{4}-\d\d +0\.30 +(\S+) +(\S+) +USD$",
                      out)
        self.assertTrue(m, out[-2000:])
        self.assertEqual(int(m.group(1).replace(".", "")) + int(m.group(2).replace(".", "")), 30)
        # The support case reached the provider's webhook, and both answers are in it.
        self.assertIn("the broker's receiver verified the signature and kept case.created", out)
        self.assertIn("A disk was slow; it is replaced.", out)
        self.assertIn("waiting_on_client -> resolved", out)
        # Secrets stay in the demo's files: none of them is printed.
        with open(os.path.join(tmp, "demo", "accounts.json")) as f:
            secrets = f.read()
        logs = ""
        for name in ("platform.log", "broker.log"):
            with open(os.path.join(tmp, "demo", name)) as f:
                logs += f.read()
        found = re.findall(r'"(?:password|apikey|sso_client_secret|webhook_secret)": "([^"]+)"',
                           secrets)
        self.assertEqual(len(found), 8)
        for s in found:
            self.assertNotIn(s, out + r.stderr + logs)
        self.assertEqual(os.stat(os.path.join(tmp, "demo", "accounts.json")).st_mode & 0o777,
                         0o600)
        html = [n for n in os.listdir(os.path.join(tmp, "demo")) if n.endswith(".html")]
        self.assertEqual(html, ["invoice-1.html"])


if __name__ == "__main__":
    unittest.main()
