"""An offering's whole way from draft to public through the `osbill` command line alone, with
the real starter broker and --output json for every step a script takes: the operator makes
the accounts; the provider creates the offering, its listing, plans and pricing, enables IAM
with its redirect URIs, exports catalog.json for the broker, registers, deploys and validates
it, limits visibility to a tester; the tester creates and deletes an instance (`osbill
instance create --wait`, `instance delete`, `reclamation reclaim`), which is step 5's
evidence; the provider requests publication, the operator asks for changes, the provider
answers and asks again, the operator approves. After launch: a scheduled price change, a
plan added and approved, a plan deprecated, the tester disallowed, plans undeployed, the
broker deleted; a draft deleted. The README's synopsis names every `osbill offering`
subcommand."""

import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from harness import Broker, Platform

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "..", "..", "README.md")
REGION = "us-south"

# Every subcommand of src/cli/offering.c.
SUBCOMMANDS = ("create", "list", "get", "steps", "update", "delete", "iam", "redirect-uris",
               "visibility", "allow", "disallow", "allowlist", "listing", "publication",
               "reviews", "catalog-json", "search", "plan-create", "plans", "plan-update",
               "plan-delete", "plan-deprecate", "plan-approve", "pricing", "broker-register",
               "brokers", "broker-delete", "deployments", "deploy", "undeploy", "validate",
               "scorecards", "scorecard")

OFFERING = {
    "short_description": "A key-value store, from the command line.",
    "long_description": "Namespaces as a service, onboarded with osbill offering.",
    "tags": ["kv", "cli-walk"],
    "icon_url": "https://walk.example.com/icon.svg",
    "documentation_url": "https://walk.example.com/docs",
    "terms_url": "https://walk.example.com/terms",
    "support": {"url": "https://walk.example.com/support", "hours": "24x7",
                "severity_targets": {"1": 60, "2": 120, "3": 480, "4": 1440}},
    "listing": {"bullets": [{"title": "Namespaces", "description": "One per instance."}],
                "media": [{"type": "image", "url": "https://walk.example.com/shot.png",
                           "caption": "The dashboard"}]},
}
API_CALLS = {"id": "API_CALLS", "display_name": "API calls", "unit": "call",
             "metering_model": "standard_add", "charge_unit_quantity": "1000"}


def linear(price):
    return {"model": "linear", "tiers": [{"up_to": None, "price": price}]}


def month_after(months):
    now = datetime.datetime.now(datetime.timezone.utc)
    m = now.year * 12 + now.month - 1 + months
    return "%04d-%02d" % (m // 12, m % 12 + 1)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class CLIOfferingWalkTest(unittest.TestCase):
    def setUp(self):
        self.p = Platform().start()
        self.addCleanup(self.p.cleanup)
        self.addCleanup(self.p.stop)
        self.tmp = tempfile.mkdtemp(prefix="osbill-cli-walk-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.homes = {}
        self.login("operator", self.p.init["api_key"])

    # ------------------------------------------------------------ helpers

    def run_cli(self, who, *args, env=None):
        e = dict(os.environ, OSBILL_HOME=self.homes[who])
        e.update(env or {})
        return subprocess.run([self.p.bin] + list(args), capture_output=True, text=True,
                              timeout=120, env=e)

    def osbill(self, who, *args, code=0, env=None):
        out = self.run_cli(who, *args, env=env)
        if code is not None:
            self.assertEqual(out.returncode, code, (who, args, out.stdout, out.stderr))
        return out

    def j(self, who, *args, env=None):
        """A command with --output json that succeeds: its JSON answer (None when empty)."""
        out = self.osbill(who, *(list(args) + ["--output", "json"]), env=env)
        return json.loads(out.stdout) if out.stdout.strip() else None

    def refused(self, who, *args, message=None, code=1):
        """A command the platform refuses: exit 1, nothing on stdout, why on stderr."""
        out = self.osbill(who, *(list(args) + ["--output", "json"]), code=code)
        self.assertEqual(out.stdout.strip(), "", (args, out.stdout))
        if message:
            self.assertIn(message, out.stderr, (args, out.stderr))
        return out.stderr

    def login(self, who, apikey):
        self.homes[who] = os.path.join(self.tmp, who)
        os.makedirs(self.homes[who], exist_ok=True)
        self.osbill(who, "login", "--endpoint", self.p.url, "--apikey", apikey)

    def account(self, name, kind):
        acct = self.j("operator", "account", "create", "--name", name, "--kind", kind,
                      "--owner-email", "%s@example.com" % name, "--owner-name", name.title(),
                      "--owner-password", "password-%s" % name)
        key = self.j("operator", "apikey", "create", "--name", "owner", "--iam-id",
                     acct["owner_iam_id"], "--account", acct["id"])
        self.login(name, key["apikey"])
        return acct

    def file(self, name, doc):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            json.dump(doc, f)
        return path

    def gates(self, oid):
        """What `publication request` still misses: the targets on stderr."""
        err = self.refused("kvcorp", "offering", "publication", oid, "request")
        return re.findall(r"\[([^\]]+)\]", err)

    def until(self, pred, what, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = pred()
            if v:
                return v
            time.sleep(0.2)
        self.fail("not reached: " + what)

    # ------------------------------------------------------------ the walk

    def test_draft_to_public_and_after_launch(self):
        provider = self.account("kvcorp", "provider")
        tester = self.account("tester", "consumer")
        self.account("outsider", "consumer")
        P = "kvcorp"

        # 1-2. The offering with its metadata and listing; the steps name what is missing.
        o = self.j(P, "offering", "create", "--name", "walk-kv", "--display-name", "Walk KV",
                   "--file", self.file("offering.json", OFFERING))
        oid = o["id"]
        self.assertEqual((o["visibility"], o["account_id"]), ("draft", provider["id"]))
        self.assertEqual(o["steps"][0]["missing"], ["listing_review"])
        self.assertEqual(o["steps"][1]["missing"], ["plans", "iam"])
        human = self.osbill(P, "offering", "steps", oid).stdout
        self.assertIn("[ ] 1. Documentation and marketing listing", human)
        self.assertIn("missing: listing_review", human)
        g = self.gates(oid)
        for t in ("listing_review", "plans", "iam", "broker", "sso.redirect_uris",
                  "visibility.limited", "evidence.instance_lifecycle"):
            self.assertIn(t, g)
        r = self.j(P, "offering", "listing", oid, "submit")
        self.assertEqual(r["listing_review"]["state"], "in_review")
        self.refused(P, "offering", "listing", oid, "approve", message="403")
        r = self.j("operator", "offering", "listing", oid, "approve")
        self.assertEqual(r["listing_review"]["state"], "approved")
        self.assertTrue(r["steps"][0]["complete"], r["steps"][0])

        # Plans: lite, and a metered plan whose pricing comes after (its gate stays closed).
        lite = self.j(P, "offering", "plan-create", oid, "--file", self.file("lite.json", {
            "name": "lite", "kind": "lite", "display_name": "Lite", "description": "Free."}))
        std = self.j(P, "offering", "plan-create", oid, "--file", self.file("standard.json", {
            "name": "standard", "kind": "metered", "display_name": "Standard",
            "description": "Pay per call.", "metrics": [API_CALLS]}),
            "--set", "plan_updateable=true")
        self.assertTrue(std["plan_updateable"])
        self.assertIn("plans.standard.pricing", self.gates(oid))
        bad = self.file("bad-pricing.json", {"API_CALLS": {"USD": linear("-1")}})
        self.refused(P, "offering", "pricing", oid, std["id"], "--file", bad,
                     message="[pricing.API_CALLS.USD.tiers[0].price]")
        first = {"API_CALLS": {"USD": {"model": "graduated_tier", "tiers": [
            {"up_to": "1000", "price": "0.12"}, {"up_to": None, "price": "0.08"}]}}}
        pr = self.j(P, "offering", "pricing", oid, std["id"], "--file",
                    self.file("pricing.json", first))
        self.assertEqual(pr["current"], first)
        self.assertEqual([v["effective_month"] for v in pr["versions"]], ["0000-00"])
        # Before publication a price change is a draft: no effective month.
        self.refused(P, "offering", "pricing", oid, std["id"], "--file",
                     self.file("pricing.json", first), "--effective-month", month_after(1),
                     message="[effective_month]")
        self.assertEqual(self.j(P, "offering", "pricing", oid, std["id"]), pr)
        plans = self.j(P, "offering", "plans", oid)["plans"]
        self.assertEqual(sorted(p["name"] for p in plans), ["lite", "standard"])
        self.assertNotIn("plans.standard.pricing", self.gates(oid))

        # IAM: the service ID, its API key and the dashboard client, secrets shown once.
        port = free_port()
        broker_url = "http://127.0.0.1:%d" % port
        iam = self.j(P, "offering", "iam", oid)
        self.assertTrue(iam["apikey"]["apikey"] and iam["client"]["client_secret"], iam)
        self.refused(P, "offering", "iam", oid, message="409")
        self.assertIn("sso.redirect_uris", self.gates(oid))
        o = self.j(P, "offering", "redirect-uris", oid, "--uri", broker_url + "/sso/callback")
        self.assertTrue(o["steps"][3]["complete"], o["steps"][3])
        self.assertTrue(o["steps"][1]["complete"], o["steps"][1])

        # 3. The broker on the platform's catalog.json, registered, deployed, validated.
        exported = os.path.join(self.tmp, "catalog.json")

        def export():
            """catalog.json for the broker; the export has no dashboard client (its secret
            was shown once): the provider adds it from its own configuration."""
            self.assertEqual(self.osbill(P, "offering", "catalog-json", oid, "--out",
                                         exported).stdout.strip(), "wrote " + exported)
            with open(exported) as f:
                cat = json.load(f)
            self.assertNotIn("dashboard_client", cat["services"][0])
            cat["services"][0]["dashboard_client"] = {
                "id": iam["client"]["client_id"], "secret": iam["client"]["client_secret"],
                "redirect_uri": broker_url + "/sso/callback"}
            with open(exported, "w") as f:
                json.dump(cat, f)
            return cat["services"][0]

        self.assertEqual(sorted(p["id"] for p in export()["plans"]),
                         sorted([lite["id"], std["id"]]))
        broker = Broker(extra=["--catalog", exported, "--platform", self.p.url],
                        async_seconds=1)
        broker.argv[broker.argv.index("127.0.0.1:0")] = "127.0.0.1:%d" % port
        broker.env = {"OSB_SSO_CLIENT_ID": iam["client"]["client_id"],
                      "OSB_SSO_CLIENT_SECRET": iam["client"]["client_secret"]}
        broker.start()
        self.addCleanup(broker.cleanup)
        self.addCleanup(broker.stop)
        out = self.osbill(P, "offering", "broker-register", oid, "--region", REGION, "--url",
                          broker_url, "--user", broker.user, code=2,
                          env={"OSB_BROKER_PASSWORD": ""})
        self.assertIn("OSB_BROKER_PASSWORD", out.stderr)
        b = self.j(P, "offering", "broker-register", oid, "--region", REGION, "--url",
                   broker_url, "--user", broker.user,
                   env={"OSB_BROKER_PASSWORD": broker.password})
        self.assertEqual((b["region"], b["url"], b["auth"]),
                         (REGION, broker_url, {"type": "basic", "username": broker.user}))
        self.assertEqual([x["id"] for x in self.j(P, "offering", "brokers", oid)["brokers"]],
                         [b["id"]])
        for plan in (lite, std):
            d = self.j(P, "offering", "deploy", oid, plan["id"], REGION)
            self.assertEqual((d["plan_id"], d["region"], d["broker_id"]),
                             (plan["id"], REGION, b["id"]))
        deps = self.j(P, "offering", "deployments", oid)["deployments"]
        self.assertEqual([(x["plan_name"], x["region"]) for x in deps],
                         [("lite", REGION), ("standard", REGION)])
        self.assertIn("scorecard", self.gates(oid))
        sc = self.j(P, "offering", "validate", oid, "--broker", b["id"], "--timeout", "10",
                    "--wait", "50")
        self.assertEqual(sc["state"], "passed", json.dumps(sc, indent=1))
        self.assertEqual((sc["broker_id"], sc["summary"]["failed"]), (b["id"], 0))
        checks = {c["name"]: c for c in sc["checks"]}
        self.assertTrue(checks["lifecycle.provision"]["passed"])
        self.assertNotIn("skipped", checks["catalog.dashboard_client"]["actual"])
        self.assertNotIn(iam["client"]["client_secret"], json.dumps(sc))
        self.assertEqual(self.j(P, "offering", "scorecard", oid, sc["id"]), sc)
        human = self.osbill(P, "offering", "scorecard", oid, sc["id"]).stdout
        self.assertIn("scorecard %s: passed" % sc["id"], human.splitlines()[0])
        self.assertEqual([x["id"] for x in self.j(P, "offering", "scorecards", oid)["scorecards"]],
                         [sc["id"]])
        self.assertTrue(self.j(P, "offering", "get", oid)["steps"][2]["complete"])

        # 5. Limited visibility: the tester (allowlisted) creates and deletes an instance; the
        # outsider sees nothing of it.
        o = self.j(P, "offering", "visibility", oid, "limited")
        self.assertEqual(o["visibility"], "limited")
        self.j(P, "offering", "allow", oid, tester["id"])
        self.assertEqual([a["account_id"] for a in
                          self.j(P, "offering", "allowlist", oid)["accounts"]], [tester["id"]])
        self.assertEqual(self.gates(oid), ["evidence.instance_lifecycle", "evidence.usage"])
        self.refused("outsider", "offering", "get", oid, message="404")
        self.assertNotIn(oid, [x["id"] for x in
                               self.j("outsider", "offering", "search")["offerings"]])
        self.assertIn(oid, [x["id"] for x in self.j("tester", "offering", "search", "--tag",
                                                    "cli-walk")["offerings"]])
        self.refused("outsider", "instance", "create", "--name", "nope", "--plan", lite["id"],
                     "--region", REGION)
        inst = self.j("tester", "instance", "create", "--name", "walk-test", "--plan",
                      std["id"], "--region", REGION, "--wait", "--timeout", "60")
        self.assertEqual((inst["state"], inst["resource_plan_id"], inst["target"]),
                         ("active", std["id"], REGION), inst)
        # The provider meters the tester's calls: accepted usage is step 5's other evidence.
        time.sleep(0.01)
        end = int(time.time() * 1000)
        records = self.file("usage.json", [{
            "resource_instance_id": inst["crn"], "plan_id": std["id"], "start": end - 10,
            "end": end, "measured_usage": [{"measure": "API_CALLS", "quantity": 1200}]}])
        self.refused("tester", "usage", "submit", "--offering", oid, "-f", records,
                     message="403")
        r = self.j(P, "usage", "submit", "--offering", oid, "-f", records)
        self.assertEqual(r["resources"], [{"status": 201}], r)
        out = self.osbill(P, "usage", "submit", "--offering", oid, "-f", records, code=0)
        self.assertIn("409\tduplicate", out.stdout)
        # Both sides read the record: the tester as the consumer, the provider as its seller.
        for who in ("tester", P):
            got = self.j(who, "usage", "list", "--instance", inst["crn"])["resources"]
            self.assertEqual([(x["resource_instance_id"], x["measured_usage"]) for x in got],
                             [(inst["guid"], [{"measure": "API_CALLS", "quantity": "1200"}])],
                             (who, got))
        self.assertEqual(self.j("outsider", "usage", "list", "--instance",
                                inst["guid"])["resources"], [])
        out = self.osbill(P, "usage", "list", "--offering", oid, "--limit", "1")
        self.assertRegex(out.stdout, r"(?m)^id +instance +plan +month +start +end +usage$")
        self.assertIn("API_CALLS=1200", out.stdout)
        self.refused(P, "usage", "list", "--month", "2026-13", message="month")
        self.assertEqual(self.gates(oid), ["evidence.instance_lifecycle"])
        gone = self.j("tester", "instance", "delete", inst["guid"])
        self.assertEqual(gone["state"], "pending_reclamation", gone)
        recl = self.j("tester", "reclamation", "list", "--instance", inst["guid"])["resources"]
        self.assertEqual([x["state"] for x in recl], ["SCHEDULED"], recl)
        self.assertEqual(self.j("tester", "reclamation", "reclaim", recl[0]["id"])["id"],
                         recl[0]["id"])
        self.until(lambda: self.j("tester", "instance", "get", inst["guid"])["state"]
                   == "removed", "the tester's instance removed")
        o = self.until(lambda: (lambda x: x if x["steps"][4]["complete"] else None)(
            self.j(P, "offering", "get", oid)), "step 5's evidence")
        self.assertEqual(o["steps"][4]["missing"], [])

        # 6. Publication: requested; the operator asks for changes; the provider answers and
        # asks again; only the operator approves.
        o = self.j(P, "offering", "publication", oid, "request")
        self.assertEqual((o["publication"], o["visibility"]), ("requested", "limited"))
        self.refused(P, "offering", "publication", oid, "request", message="under review")
        self.refused(P, "offering", "publication", oid, "approve", message="403")
        self.refused("operator", "offering", "publication", oid, "request-changes",
                     message="[comment]")
        o = self.j("operator", "offering", "publication", oid, "request_changes", "--comment",
                   "Add a support email address.")
        self.assertEqual((o["publication"], o["visibility"]), ("changes_requested", "limited"))
        self.refused("operator", "offering", "publication", oid, "approve",
                     message="not requested")
        o = self.j(P, "offering", "update", oid, "--set",
                   'support={"url": "https://walk.example.com/support", "email": '
                   '"support@walk.example.com", "hours": "24x7", "severity_targets": '
                   '{"1": 60, "2": 120, "3": 480, "4": 1440}}')
        self.assertEqual(o["support"]["email"], "support@walk.example.com")
        self.j(P, "offering", "publication", oid, "comment", "--comment", "Added, thanks.")
        self.j(P, "offering", "publication", oid, "request")
        o = self.j("operator", "offering", "publication", oid, "approve")
        self.assertEqual((o["visibility"], o["publication"]), ("public", "approved"))
        self.assertTrue(all(s["complete"] for s in o["steps"]), o["steps"])
        reviews = self.j(P, "offering", "reviews", oid)["reviews"]
        pub = [(x["action"], x["comment"] or None, x["account_id"] == provider["id"])
               for x in reviews]
        self.assertEqual(pub, [("request", None, True),
                               ("request_changes", "Add a support email address.", False),
                               ("comment", "Added, thanks.", True), ("request", None, True),
                               ("approve", None, False)], reviews)
        self.refused(P, "offering", "visibility", oid, "limited", message="409")
        found = self.j("outsider", "offering", "search", "--query", "walk KV")["offerings"]
        self.assertEqual([x["id"] for x in found], [oid])
        self.assertEqual(sorted(p["name"] for p in found[0]["plans"]), ["lite", "standard"])

        # After launch: a price change scheduled for a future month; today's prices stay.
        new = {"API_CALLS": {"USD": linear("0.07")}}
        self.refused(P, "offering", "pricing", oid, std["id"], "--file",
                     self.file("new.json", new), message="[effective_month]")
        self.refused(P, "offering", "pricing", oid, std["id"], "--file",
                     self.file("new.json", new), "--effective-month", month_after(0),
                     message="[effective_month]")
        nxt = month_after(1)
        pr = self.j(P, "offering", "pricing", oid, std["id"], "--file",
                    self.file("new.json", new), "--effective-month", nxt)
        self.assertEqual(pr["current"], first)
        self.assertEqual([v["effective_month"] for v in pr["versions"]], ["0000-00", nxt])
        self.assertEqual(pr["versions"][1]["pricing"], new)
        self.assertEqual(self.j("outsider", "offering", "search", "--query", "walk-kv")
                         ["offerings"][0]["plans"][1]["name"], "standard")

        # A plan added after launch waits for the operator's approval.
        prem = self.j(P, "offering", "plan-create", oid, "--file", self.file("premium.json", {
            "name": "premium", "kind": "subscription", "display_name": "Premium",
            "description": "Flat monthly fee.",
            "pricing": {"MONTHLY_FEE": {"USD": linear("25")}}}))
        self.assertFalse(prem["published"])
        # The broker learns the new plan from a fresh export, as it is.
        self.assertEqual({p["name"]: bool(p["metadata"].get("deprecated"))
                          for p in export()["plans"]},
                         {"lite": False, "standard": False, "premium": False})
        broker.restart()
        self.j(P, "offering", "deploy", oid, prem["id"], REGION)
        self.refused(P, "offering", "plan-approve", oid, prem["id"], message="403")
        self.assertNotIn("premium", [p["name"] for p in self.j(
            "outsider", "offering", "search", "--query", "walk-kv")["offerings"][0]["plans"]])
        prem = self.j("operator", "offering", "plan-approve", oid, prem["id"])
        self.assertTrue(prem["published"])
        self.refused("operator", "offering", "plan-approve", oid, prem["id"],
                     message="published already")
        self.assertEqual(sorted(p["name"] for p in self.j(
            "outsider", "offering", "search", "--query", "walk-kv")["offerings"][0]["plans"]),
            ["lite", "premium", "standard"])

        # Deprecated: no new instances of the plan.
        dep = self.j(P, "offering", "plan-deprecate", oid, lite["id"])
        self.assertEqual((dep["state"], dep["published"]), ("deprecated", True))
        # The global catalog keeps it, flagged (its instances still run); the consumer's plan
        # list drops it, and no instance of it is created any more.
        shown = {p["name"]: p for p in self.j("outsider", "offering", "search", "--query",
                                              "walk-kv")["offerings"][0]["plans"]}
        self.assertTrue(shown["lite"]["metadata"].get("deprecated"), shown["lite"])
        self.assertNotIn("deprecated", shown["standard"]["metadata"])
        self.assertEqual(sorted(p["name"] for p in self.j("outsider", "offering", "plans", oid)
                                ["plans"]), ["premium", "standard"])
        self.refused("tester", "instance", "create", "--name", "late", "--plan", lite["id"],
                     "--region", REGION)
        late = self.j("tester", "instance", "create", "--name", "late-std", "--plan",
                      std["id"], "--region", REGION, "--wait", "--timeout", "60")
        self.assertEqual(late["state"], "active", late)
        self.refused(P, "offering", "plan-delete", oid, std["id"], message="deprecate it")

        # The tester leaves the allowlist (the offering is public: it still sees it).
        self.assertIsNone(self.j(P, "offering", "disallow", oid, tester["id"]))
        self.assertEqual(self.j(P, "offering", "allowlist", oid)["accounts"], [])
        self.assertIsNone(self.j(P, "offering", "disallow", oid, tester["id"]))  # idempotent
        self.refused(P, "offering", "disallow", oid, "no-such-account", message="[account_id]")

        # A second region's broker (the same starter broker), validated, deployed, undeployed
        # and deleted: a broker goes only once no plan is deployed through it, and its
        # scorecards go with it.
        pw = {"OSB_BROKER_PASSWORD": broker.password}
        b2 = self.j(P, "offering", "broker-register", oid, "--region", "eu-de", "--url",
                    broker_url, "--user", broker.user, "--api-version", "2.16", env=pw)
        self.assertEqual((b2["region"], b2["api_version"]), ("eu-de", "2.16"))
        sc2 = self.j(P, "offering", "validate", oid, "--broker", b2["id"], "--wait", "50")
        self.assertEqual(sc2["state"], "passed", json.dumps(sc2, indent=1))
        self.assertEqual(self.j(P, "offering", "deploy", oid, prem["id"], "eu-de")["broker_id"],
                         b2["id"])
        self.refused(P, "offering", "deploy", oid, lite["id"], "eu-de", message="deprecated")
        self.refused(P, "offering", "broker-delete", oid, b2["id"], message="deployment")
        self.assertIsNone(self.j(P, "offering", "undeploy", oid, prem["id"], "eu-de"))
        self.refused(P, "offering", "undeploy", oid, prem["id"], "eu-de", message="404")
        self.assertIsNone(self.j(P, "offering", "broker-delete", oid, b2["id"]))
        self.refused(P, "offering", "scorecard", oid, sc2["id"], message="404")
        self.refused(P, "offering", "broker-delete", oid, b2["id"], message="404")
        self.assertEqual([x["id"] for x in self.j(P, "offering", "brokers", oid)["brokers"]],
                         [b["id"]])

        # The first region's broker serves instances: undeployed, it still stays while they
        # run, and afterwards for their records (a 409 that says so, not a store failure).
        self.refused(P, "offering", "broker-delete", oid, b["id"], message="deployment")
        for plan in (lite, std, prem):
            self.assertIsNone(self.j(P, "offering", "undeploy", oid, plan["id"], REGION))
        self.assertEqual(self.j(P, "offering", "deployments", oid)["deployments"], [])
        self.refused(P, "offering", "broker-delete", oid, b["id"],
                     message="1 instance of the offering is served by this broker")
        self.assertEqual(self.j("tester", "instance", "delete", late["guid"])["state"],
                         "pending_reclamation")
        recl = self.j("tester", "reclamation", "list", "--instance", late["guid"])["resources"]
        self.j("tester", "reclamation", "reclaim", recl[0]["id"])
        self.until(lambda: self.j("tester", "instance", "get", late["guid"])["state"]
                   == "removed", "the second instance removed")
        self.refused(P, "offering", "broker-delete", oid, b["id"], message="kept on record")
        self.assertEqual(self.j(P, "offering", "scorecard", oid, sc["id"])["state"], "passed")

        # A public offering is not deleted; a draft is.
        self.refused(P, "offering", "delete", oid, message="409")
        draft = self.j(P, "offering", "create", "--name", "walk-draft", "--display-name",
                       "Draft")
        self.refused("outsider", "offering", "delete", draft["id"], message="404")
        self.assertIsNone(self.j(P, "offering", "delete", draft["id"]))
        self.refused(P, "offering", "get", draft["id"], message="404")
        self.assertNotIn(draft["id"], [x["id"] for x in
                                       self.j(P, "offering", "list")["offerings"]])
        self.assertEqual(self.j(P, "offering", "get", oid)["visibility"], "public")

    def test_readme_and_help_name_every_subcommand(self):
        with open(README) as f:
            text = f.read()
        m = re.search(r"^osbill offering (.*?)\[--output json\]", text, re.M | re.S)
        self.assertTrue(m, "no `osbill offering` line in README.md's synopsis")
        listed = set(re.split(r"[|\s]+", m.group(1).strip()))
        self.assertEqual(listed, set(SUBCOMMANDS))
        self.homes["nobody"] = os.path.join(self.tmp, "nobody")
        helptext = self.osbill("nobody", "offering", "--help").stdout
        for sub in SUBCOMMANDS:
            self.assertRegex(helptext, r"(^|\s|\|)%s(\s|$)" % re.escape(sub), sub)


if __name__ == "__main__":
    unittest.main()
