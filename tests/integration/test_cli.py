"""The osbill command line against a real osbill serve: login with an API key and the saved
session (0600), IAM commands, and an offering's onboarding through `osbill offering`, with
--output json for scripts and the errors a user sees."""

import json
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

from harness import Broker, Platform


class CLITest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Platform().start()
        cls.home = tempfile.mkdtemp(prefix="osbill-cli-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.home, ignore_errors=True)
        try:
            cls.p.stop()
        finally:
            cls.p.cleanup()

    def osbill(self, *args, ok=True, home=None):
        env = dict(os.environ, OSBILL_HOME=home or self.home)
        out = subprocess.run([self.p.bin] + list(args), capture_output=True, text=True,
                             timeout=60, env=env)
        if ok:
            self.assertEqual(out.returncode, 0, (args, out.stdout, out.stderr))
        return out

    def j(self, *args):
        return json.loads(self.osbill(*(list(args) + ["--output", "json"])).stdout)

    def login(self, apikey, home=None):
        self.osbill("login", "--endpoint", self.p.url, "--apikey", apikey, home=home)

    def test_login_session_and_iam_commands(self):
        out = self.osbill("account", "list", ok=False, home=tempfile.mkdtemp(prefix="nologin-"))
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("not logged in", out.stderr)
        bad = self.osbill("login", "--endpoint", self.p.url, "--apikey", "wrong", ok=False)
        self.assertNotEqual(bad.returncode, 0)
        self.login(self.p.init["api_key"])
        mode = stat.S_IMODE(os.stat(os.path.join(self.home, "session.json")).st_mode)
        self.assertEqual(mode, 0o600)
        with open(os.path.join(self.home, "session.json")) as f:
            self.assertNotIn(self.p.init["api_key"], f.read())
        acct = self.j("account", "create", "--name", "cli-provider", "--kind", "provider",
                      "--owner-email", "cli@example.com", "--owner-name", "Cli",
                      "--owner-password", "cli-password-1")
        self.assertEqual(acct["kind"], "provider")
        ids = [a["id"] for a in self.j("account", "list")["resources"]]
        self.assertIn(acct["id"], ids)
        sid = self.j("serviceid", "create", "--account", acct["id"], "--name", "robot")
        key = self.j("apikey", "create", "--name", "robot-key", "--iam-id", sid["iam_id"],
                     "--account", acct["id"])
        self.assertTrue(key["apikey"])
        out = self.osbill("account", "create", "--name", "x", ok=False)
        self.assertEqual(out.returncode, 2)

    def test_offering_flow(self):
        self.login(self.p.init["api_key"])
        acct = self.j("account", "create", "--name", "cli-acme", "--kind", "provider",
                      "--owner-email", "cli-acme@example.com", "--owner-name", "Acme",
                      "--owner-password", "cli-acme-password")
        key = self.j("apikey", "create", "--name", "k", "--iam-id", acct["owner_iam_id"],
                     "--account", acct["id"])
        home = tempfile.mkdtemp(prefix="osbill-cli-acme-")
        self.addCleanup(shutil.rmtree, home, True)
        self.login(key["apikey"], home=home)

        def j(*args):
            out = self.osbill(*(list(args) + ["--output", "json"]), home=home)
            return json.loads(out.stdout) if out.stdout.strip() else None

        spec = os.path.join(home, "offering.json")
        with open(spec, "w") as f:
            json.dump({"short_description": "From a file.", "tags": ["cli"],
                       "documentation_url": "https://cli.example.com/docs"}, f)
        o = j("offering", "create", "--name", "cli-queue", "--display-name", "CLI Queue",
              "--file", spec, "--set", "icon_url=https://cli.example.com/i.svg")
        self.assertEqual((o["name"], o["short_description"], o["tags"]),
                         ("cli-queue", "From a file.", ["cli"]))
        # Human output shows the steps and what they miss.
        human = self.osbill("offering", "steps", o["id"], home=home).stdout
        self.assertIn("[ ] 1. Documentation and marketing listing", human)
        self.assertIn("missing: listing.bullets", human)
        # Validation errors name the field.
        bad = self.osbill("offering", "update", o["id"], "--set", "icon_url=nope", ok=False,
                          home=home)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("[icon_url]", bad.stderr)
        o = j("offering", "update", o["id"], "--set",
              'listing={"bullets":[{"title":"Fast","description":"Quick."}]}', "--unset", "tags")
        self.assertNotIn("tags", o)
        self.assertEqual(j("offering", "listing", o["id"], "submit")["listing_review"]["state"],
                         "in_review")
        approve = self.osbill("offering", "listing", o["id"], "approve", ok=False, home=home)
        self.assertNotEqual(approve.returncode, 0)  # only the operator approves
        self.assertEqual(self.j("offering", "listing", o["id"], "approve")
                         ["listing_review"]["state"], "approved")
        secrets = j("offering", "iam", o["id"])
        self.assertTrue(secrets["apikey"]["apikey"] and secrets["client"]["client_secret"])
        o = j("offering", "redirect-uris", o["id"], "--uri", "https://cli.example.com/cb")
        self.assertTrue(o["steps"][3]["complete"])
        o = j("offering", "visibility", o["id"], "limited")
        self.assertEqual(o["visibility"], "limited")
        other = self.j("account", "create", "--name", "cli-consumer", "--kind", "consumer")
        j("offering", "allow", o["id"], other["id"])
        self.assertEqual([a["account_id"] for a in j("offering", "allowlist", o["id"])["accounts"]],
                         [other["id"]])
        req = self.osbill("offering", "publication", o["id"], "request", ok=False, home=home)
        self.assertEqual(req.returncode, 1)
        self.assertIn("[scorecard]", req.stderr)
        j("offering", "publication", o["id"], "comment", "--comment", "When can it go live?")
        self.assertEqual(j("offering", "reviews", o["id"])["reviews"][0]["comment"],
                         "When can it go live?")
        out_file = os.path.join(home, "catalog.json")
        self.osbill("offering", "catalog-json", o["id"], "--out", out_file, home=home)
        with open(out_file) as f:
            self.assertEqual(json.load(f)["services"][0]["name"], "cli-queue")
        found = j("offering", "search", "--query", "from a FILE")
        self.assertIn(o["id"], [x["id"] for x in found["offerings"]])
        self.assertIn(o["id"], [x["id"] for x in j("offering", "list")["offerings"]])
        self.assertEqual(self.osbill("offering", "bogus", ok=False, home=home).returncode, 2)
        self.assertEqual(self.osbill("offering", "--help", home=home).returncode, 0)

    def test_plans_broker_and_validation_from_the_exported_catalog(self):
        # The whole provider loop from the command line: plans, the catalog.json export, the
        # starter broker started on that very file, registration, deployment, validation.
        self.login(self.p.init["api_key"])
        acct = self.j("account", "create", "--name", "cli-kv", "--kind", "provider",
                      "--owner-email", "cli-kv@example.com", "--owner-name", "KV",
                      "--owner-password", "cli-kv-password")
        key = self.j("apikey", "create", "--name", "k", "--iam-id", acct["owner_iam_id"],
                     "--account", acct["id"])
        home = tempfile.mkdtemp(prefix="osbill-cli-kv-")
        self.addCleanup(shutil.rmtree, home, True)
        self.login(key["apikey"], home=home)

        def j(*args, env=None):
            out = self.osbill(*(list(args) + ["--output", "json"]), home=home)
            return json.loads(out.stdout) if out.stdout.strip() else None

        o = j("offering", "create", "--name", "kv-cli", "--display-name", "KV from the CLI",
              "--set", "short_description=A key-value store.")
        schema = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
                  "properties": {"max_keys": {"type": "integer", "minimum": 1}},
                  "additionalProperties": False}
        plans = {
            "lite": {"name": "lite", "kind": "lite", "display_name": "Lite",
                     "description": "Free: 100 keys.",
                     "schemas": {"service_instance": {"create": {"parameters": schema}}}},
            "standard": {"name": "standard", "kind": "metered", "display_name": "Standard",
                         "description": "Pay per call.", "plan_updateable": True,
                         "metrics": [{"id": "API_CALLS", "display_name": "API calls",
                                      "unit": "call", "metering_model": "standard_add",
                                      "charge_unit_quantity": "1000"}],
                         "pricing": {"API_CALLS": {"USD": {"model": "linear", "tiers": [
                             {"up_to": None, "price": "0.50"}]}}}},
            "premium": {"name": "premium", "kind": "subscription", "display_name": "Premium",
                        "description": "Flat monthly fee.",
                        "pricing": {"MONTHLY_FEE": {"USD": {"model": "linear", "tiers": [
                            {"up_to": None, "price": "25"}]}}}},
        }
        ids = {}
        for name, plan in plans.items():
            path = os.path.join(home, name + ".json")
            with open(path, "w") as f:
                json.dump(plan, f)
            ids[name] = j("offering", "plan-create", o["id"], "--file", path)["id"]
        listed = j("offering", "plans", o["id"])["plans"]
        self.assertEqual(sorted(p["name"] for p in listed), ["lite", "premium", "standard"])
        # A bad price names its field.
        bad = os.path.join(home, "bad-pricing.json")
        with open(bad, "w") as f:
            json.dump({"API_CALLS": {"USD": {"model": "linear",
                                              "tiers": [{"up_to": None, "price": "-1"}]}}}, f)
        out = self.osbill("offering", "pricing", o["id"], ids["standard"], "--file", bad,
                          ok=False, home=home)
        self.assertEqual(out.returncode, 1)
        self.assertIn("[pricing.API_CALLS.USD.tiers[0].price]", out.stderr)

        exported = os.path.join(home, "catalog.json")
        self.osbill("offering", "catalog-json", o["id"], "--out", exported, home=home)
        broker = Broker(extra=["--catalog", exported], async_seconds=1).start()
        self.addCleanup(broker.cleanup)
        self.addCleanup(broker.stop)
        env_home = dict(os.environ, OSBILL_HOME=home, OSB_BROKER_PASSWORD=broker.password)
        reg = subprocess.run([self.p.bin, "offering", "broker-register", o["id"], "--region",
                              "local", "--url", "http://127.0.0.1:%d" % broker.port, "--user",
                              broker.user, "--output", "json"], capture_output=True, text=True,
                             env=env_home, timeout=60)
        self.assertEqual(reg.returncode, 0, reg.stderr)
        self.assertNotIn(broker.password, reg.stdout)
        for name in ids:
            j("offering", "deploy", o["id"], ids[name], "local")
        human = self.osbill("offering", "validate", o["id"], "--wait", "25", home=home).stdout
        self.assertIn(": passed", human.splitlines()[0], human)
        self.assertIn("[pass] lifecycle.provision", human)
        self.assertNotIn("FAIL", human)
        steps = j("offering", "get", o["id"])["steps"]
        self.assertTrue(steps[2]["complete"], steps[2])
        self.assertEqual(len(j("offering", "scorecards", o["id"])["scorecards"]), 1)


if __name__ == "__main__":
    unittest.main()
