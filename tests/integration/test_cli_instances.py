"""`osbill instance|key|reclamation` and `osbill account suspend|reactivate` against a real
osbill serve and a real starter broker: a consumer logged in with `osbill login` creates
instances (sync lite, async premium with --wait), lists, reads, renames and reconfigures them,
makes resource keys whose credentials it sees, deletes an instance into its reclamation and
restores or reclaims it; the operator suspends and reactivates an account. Human output and
--output json both, and the errors a user sees, with the exit codes of `osbill offering`
(0 done, 1 refused by the platform, 2 usage or a bad flag caught locally).

The broker takes 3 s for premium, longer than the 2 s a request waits for it, so a premium
create answers 202 and --wait has to poll."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from harness import (LITE, PREMIUM, SERVICE_ID, STANDARD, Broker, Platform, make_accounts,
                     starter_offering)

REGION = "us-south"


class CLIInstancesTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.p = Platform().start()
        cls.broker = Broker(async_seconds=3).start()
        cls.homes = []
        try:
            cls._setup()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _setup(cls):
        """Accounts, the offering with its plans, broker, deployments and allowlist through the
        HTTP API (as test_controller_lifecycle.py does), then a saved login per account."""
        c = cls.p.client()
        op_token = c.apikey_token(cls.p.init["api_key"])
        cls.accounts = make_accounts(
            c, op_token, (("kvcorp", "provider"),
                          ("hooli", "consumer"),
                          ("piedpiper", "consumer")), email_prefix="cli-")
        tok = cls.accounts["kvcorp"]["token"]
        starter_offering(c, tok, cls.broker, REGION,
                         allow=[cls.accounts[who]["id"] for who in ("hooli", "piedpiper")])
        c.close()

        # The saved logins, each in its own OSBILL_HOME.
        cls.home = {}
        for who, key in (("operator", cls.p.init["api_key"]),
                         ("hooli", cls.accounts["hooli"]["apikey"]),
                         ("piedpiper", cls.accounts["piedpiper"]["apikey"])):
            cls.home[who] = tempfile.mkdtemp(prefix="osbill-cli-%s-" % who)
            cls.homes.append(cls.home[who])
            out = cls.run_cli(cls.home[who], "login", "--endpoint", cls.p.url, "--apikey", key)
            assert out.returncode == 0, out

    @classmethod
    def tearDownClass(cls):
        for h in cls.homes:
            shutil.rmtree(h, ignore_errors=True)
        try:
            cls.broker.stop()
            cls.p.stop()
        finally:
            cls.broker.cleanup()
            cls.p.cleanup()

    # ------------------------------------------------------------ helpers

    @classmethod
    def run_cli(cls, home, *args):
        env = dict(os.environ, OSBILL_HOME=home)
        return subprocess.run([cls.p.bin] + list(args), capture_output=True, text=True,
                              timeout=120, env=env)

    def osbill(self, *args, who="hooli", code=0):
        out = self.run_cli(self.home[who], *args)
        if code is not None:
            self.assertEqual(out.returncode, code, (args, out.stdout, out.stderr))
        return out

    def j(self, *args, who="hooli"):
        out = self.osbill(*(list(args) + ["--output", "json"]), who=who)
        return json.loads(out.stdout) if out.stdout.strip() else None

    def fails(self, *args, who="hooli", code=1, message=None):
        """A refused command: its exit code, nothing on stdout, the reason on stderr."""
        out = self.osbill(*args, who=who, code=code)
        self.assertEqual(out.stdout, "", (args, out.stdout))
        if message:
            self.assertIn(message, out.stderr, args)
        return out

    def create(self, plan=LITE, *extra, who="hooli"):
        name = "cli-%s" % os.urandom(3).hex()
        inst = self.j("instance", "create", "--name", name, "--plan", plan, "--region", REGION,
                      *extra, who=who)
        self.assertEqual(inst["name"], name, inst)
        return inst

    def until(self, pred, what, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = pred()
            if v:
                return v
            time.sleep(0.2)
        self.fail("not reached: " + what)

    def reclamations(self, guid, who="hooli"):
        return self.j("reclamation", "list", "--instance", guid, who=who)["resources"]

    # ------------------------------------------------------------ instances

    def test_create_list_get_update(self):
        inst = self.create(LITE, "--parameters", '{"max_keys": 5}')
        self.assertEqual((inst["state"], inst["parameters"], inst["resource_plan_id"],
                          inst["target"]), ("active", {"max_keys": 5}, LITE, REGION), inst)
        self.assertEqual(inst["last_operation"]["state"], "succeeded", inst)

        # human output: key: value lines
        name = "cli-human-%s" % os.urandom(3).hex()
        human = self.osbill("instance", "create", "--name", name, "--plan", LITE, "--region",
                            REGION).stdout
        lines = dict(l.split(":", 1) for l in human.splitlines() if ":" in l)
        self.assertEqual(lines["name"].strip(), name, human)
        self.assertEqual(lines["state"].strip(), "active", human)
        self.assertEqual(lines["plan"].strip(), LITE, human)

        # list: json, filtered, and as a table
        listed = self.j("instance", "list")
        self.assertEqual(listed["rows_count"], len(listed["resources"]))
        self.assertIn(inst["guid"], [r["guid"] for r in listed["resources"]])
        by_state = self.j("instance", "list", "--state", "active", "--plan", LITE)
        self.assertTrue(all(r["state"] == "active" and r["resource_plan_id"] == LITE
                            for r in by_state["resources"]), by_state)
        table = self.osbill("instance", "list").stdout.splitlines()
        self.assertEqual(table[0].split(), ["NAME", "STATE", "REGION", "PLAN", "GUID"], table)
        row = [l for l in table if inst["guid"] in l]
        self.assertEqual(row[0].split(), [inst["name"], "active", REGION, LITE, inst["guid"]])
        page = self.j("instance", "list", "--limit", "1")
        self.assertEqual(len(page["resources"]), 1)
        self.assertTrue(page["next_url"], page)
        self.assertIn("more: osbill instance list --start ",
                      self.osbill("instance", "list", "--limit", "1").stdout)
        # another account sees none of them
        self.assertNotIn(inst["guid"], [r["guid"] for r in
                                        self.j("instance", "list", who="piedpiper")["resources"]])
        self.assertIn("no instances", self.osbill("instance", "list", "--state", "removing",
                                                  who="piedpiper").stdout)

        # get by guid or CRN
        for ident in (inst["guid"], inst["crn"]):
            got = self.j("instance", "get", ident)
            self.assertEqual((got["guid"], got["name"]), (inst["guid"], inst["name"]))
        self.assertIn("crn:", self.osbill("instance", "get", inst["guid"]).stdout)

        # update: a rename, then parameters (to the broker), by CRN
        renamed = self.j("instance", "update", inst["guid"], "--name", "renamed-by-cli")
        self.assertEqual((renamed["name"], renamed["parameters"]),
                         ("renamed-by-cli", {"max_keys": 5}), renamed)
        upd = self.j("instance", "update", inst["crn"], "--parameters", '{"max_keys": 7}')
        self.assertEqual((upd["name"], upd["parameters"], upd["last_operation"]["type"]),
                         ("renamed-by-cli", {"max_keys": 7}, "update"), upd)
        b = self.broker.client()
        try:
            r = b.call("GET", "/v2/service_instances/" + urllib.parse.quote(inst["crn"], safe=""))
            self.assertEqual(r.json["parameters"]["max_keys"], 7, r)
        finally:
            b.close()
        human = self.osbill("instance", "update", inst["guid"], "--name", "again",
                            "--parameters", '{"max_keys": 8}', "--wait").stdout
        self.assertIn("again", human)
        self.assertEqual(self.j("instance", "get", inst["guid"])["parameters"], {"max_keys": 8})
        # parameters from a file
        path = os.path.join(self.home["hooli"], "params.json")
        with open(path, "w") as f:
            json.dump({"max_keys": 9}, f)
        self.assertEqual(self.j("instance", "update", inst["guid"], "--parameters",
                                "@" + path)["parameters"], {"max_keys": 9})

    def test_premium_create_waits_for_the_broker(self):
        t0 = time.time()
        inst = self.create(PREMIUM, "--wait", "--timeout", "60")
        self.assertEqual((inst["state"], inst["last_operation"]["state"]),
                         ("active", "succeeded"), inst)
        self.assertGreater(time.time() - t0, 2.5)

        # without --wait: 202, provisioning, and a hint; then osbill instance wait
        name = "cli-async-%s" % os.urandom(3).hex()
        out = self.osbill("instance", "create", "--name", name, "--plan", PREMIUM, "--region",
                          REGION).stdout
        self.assertIn("provisioning", out)
        hint = [l for l in out.splitlines() if l.startswith("in progress: osbill instance wait")]
        self.assertEqual(len(hint), 1, out)
        guid = hint[0].split()[-1]
        waited = self.osbill("instance", "wait", guid, "--timeout", "60")
        self.assertIn("active", waited.stdout)
        self.assertIn("waiting for instance", waited.stderr)

        # --wait that runs out of time: exit 1, the instance as it stands
        out = self.osbill("instance", "create", "--name", "cli-slow", "--plan", PREMIUM,
                          "--region", REGION, "--wait", "--timeout", "1", "--output", "json",
                          code=1)
        self.assertIn("timed out after 1s", out.stderr)
        slow = json.loads(out.stdout)
        self.assertEqual(slow["state"], "provisioning", slow)
        done = self.j("instance", "wait", slow["guid"], "--timeout", "60")
        self.assertEqual(done["state"], "active", done)

    def test_delete_restore_and_reclaim(self):
        inst = self.create(LITE)
        gone = self.j("instance", "delete", inst["guid"])
        self.assertEqual(gone["state"], "pending_reclamation", gone)
        again = self.fails("instance", "delete", inst["guid"], message="reclamation")
        self.assertIn("409", again.stderr)
        recl = self.reclamations(inst["guid"])
        self.assertEqual(len(recl), 1, recl)
        self.assertEqual((recl[0]["state"], recl[0]["resource_instance_crn"]),
                         ("SCHEDULED", inst["crn"]), recl)
        table = self.osbill("reclamation", "list", "--instance", inst["guid"]).stdout
        self.assertEqual(table.splitlines()[0].split(), ["ID", "STATE", "RECLAIM", "AT",
                                                          "INSTANCE"], table)
        self.assertIn(recl[0]["id"], table)
        self.assertEqual(self.reclamations(inst["guid"], who="piedpiper"), [])
        self.fails("reclamation", "restore", recl[0]["id"], who="piedpiper",
                   message="No such reclamation.")

        human = self.osbill("reclamation", "restore", recl[0]["id"]).stdout
        self.assertIn("RESTOR", human)  # RESTORING until the broker has enabled it
        self.assertEqual(self.j("instance", "get", inst["guid"])["state"], "active")
        self.fails("reclamation", "reclaim", recl[0]["id"], message="already")

        # deleted again, from the human command, then reclaimed at once
        human = self.osbill("instance", "delete", inst["guid"]).stdout
        self.assertIn("pending_reclamation", human)
        self.assertIn("osbill reclamation restore", human)
        recl = [r for r in self.reclamations(inst["guid"]) if r["state"] == "SCHEDULED"]
        self.assertEqual(len(recl), 1, recl)
        r = self.j("reclamation", "reclaim", recl[0]["id"])
        self.assertEqual(r["id"], recl[0]["id"], r)
        self.until(lambda: self.j("instance", "get", inst["guid"])["state"] == "removed",
                   "removed")
        self.until(lambda: any(x["state"] == "RECLAIMED" for x in
                               self.reclamations(inst["guid"])), "RECLAIMED")
        self.fails("instance", "delete", inst["guid"], message="deleted")

    # ------------------------------------------------------------ keys

    def test_keys(self):
        inst = self.create(LITE)
        k = self.j("key", "create", "--name", "cli-key", "--instance", inst["guid"], "--role",
                   "Writer")
        self.assertEqual((k["state"], k["role"], k["source_crn"]), ("active", "Writer",
                                                                    inst["crn"]), k)
        creds = k["credentials"]
        self.assertTrue(creds["apikey"] and creds["url"], creds)
        # human output shows the credentials too; by CRN with parameters
        human = self.osbill("key", "create", "--name", "cli-key-2", "--instance", inst["crn"],
                            "--role", "Reader", "--parameters", '{"role": "reader"}').stdout
        self.assertIn("credentials:", human)
        self.assertIn("  apikey: ", human)
        self.assertIn("Reader", human)

        listed = self.j("key", "list", "--instance", inst["guid"])["resources"]
        self.assertEqual(sorted(x["name"] for x in listed), ["cli-key", "cli-key-2"])
        self.assertTrue(all("credentials" not in x for x in listed), listed)
        table = self.osbill("key", "list", "--instance", inst["guid"]).stdout.splitlines()
        self.assertEqual(table[0].split(), ["NAME", "STATE", "ROLE", "CREATED", "GUID"])
        self.assertEqual(len(table), 3, table)
        self.assertEqual(self.j("key", "list", who="piedpiper")["resources"], [])

        got = self.j("key", "get", k["guid"])
        self.assertEqual(got["credentials"], creds)
        self.assertEqual(self.j("key", "get", k["crn"])["guid"], k["guid"])
        self.assertIn("apikey: " + creds["apikey"], self.osbill("key", "get", k["guid"]).stdout)
        self.fails("key", "get", k["guid"], who="piedpiper", message="No such key.")

        # an instance with keys is deleted only recursively
        self.fails("instance", "delete", inst["guid"], message="resource keys")
        out = self.osbill("key", "delete", k["guid"])
        self.assertEqual(out.stdout.strip(), "deleted key " + k["guid"])
        self.assertEqual(self.j("key", "get", k["guid"])["state"], "removed")
        self.fails("key", "delete", k["guid"], message="410")
        gone = self.j("instance", "delete", inst["guid"], "--recursive")
        self.assertEqual(gone["state"], "pending_reclamation", gone)

    # ------------------------------------------------------------ accounts

    def test_account_suspend_and_reactivate(self):
        acct = self.accounts["piedpiper"]["id"]
        inst = self.create(LITE, who="piedpiper")
        self.fails("account", "suspend", acct, who="hooli",
                   message="Only the platform's operator")
        self.fails("account", "suspend", acct, who="piedpiper", message="403")
        r = self.j("account", "suspend", acct, who="operator")
        self.assertEqual((r["account_id"], r["state"]), (acct, "suspended"), r)
        try:
            self.until(lambda: self.j("instance", "get", inst["guid"], who="operator")["state"]
                       == "inactive", "inactive")
            self.fails("instance", "create", "--name", "no", "--plan", LITE, "--region", REGION,
                       who="piedpiper", message="suspended")
        finally:
            out = self.osbill("account", "reactivate", acct, who="operator").stdout
            self.assertEqual(out.strip().split(":")[0], "account " + acct)
            self.assertIn(": active (", out)
        self.until(lambda: self.j("instance", "get", inst["guid"], who="operator")["state"]
                   == "active", "active")
        self.fails("account", "reactivate", "no-such-account", who="operator",
                   message="No such account.")
        self.fails("account", "suspend", who="operator", code=2)

    # ------------------------------------------------------------ errors

    def test_errors_are_clear_and_exit_non_zero(self):
        inst = self.create(LITE)
        # --parameters checked locally: exit 2, the flag named, no call made
        for bad, why in (('{"max_keys": 5', "not valid JSON"), ("[1, 2]", "JSON object"),
                         ("5", "JSON object"), ('{"a": 1, "a": 2}', "not valid JSON"),
                         ("@/no/such/file.json", "--parameters @/no/such/file.json")):
            for args in (("instance", "create", "--name", "x", "--plan", LITE, "--region",
                          REGION),
                         ("instance", "update", inst["guid"]),
                         ("key", "create", "--name", "k", "--instance", inst["guid"])):
                out = self.fails(*args, "--parameters", bad, code=2, message=why)
                self.assertIn("--parameters", out.stderr)
        self.assertEqual(self.j("key", "list", "--instance", inst["guid"])["resources"], [])
        # checked by the platform against the plan's schema: exit 1, the field named
        self.fails("instance", "create", "--name", "x", "--plan", LITE, "--region", REGION,
                   "--parameters", '{"max_keys": "many"}', message="[parameters]")
        self.fails("instance", "update", inst["guid"], "--parameters", '{"colour": "red"}',
                   message="[parameters]")
        self.fails("instance", "create", "--name", "x", "--plan", LITE, "--region", "mars",
                   message="[target]")
        self.fails("key", "create", "--name", "k", "--instance", inst["guid"], "--role", "Owner",
                   message="[role]")
        # unknown ids, and another account's
        for args, msg in ((("instance", "get", "no-such-instance"), "No such instance."),
                          (("instance", "update", "no-such-instance", "--name", "n"),
                           "No such instance."),
                          (("instance", "delete", "no-such-instance"), "No such instance."),
                          (("instance", "wait", "no-such-instance"), "No such instance."),
                          (("instance", "get", inst["guid"]), "No such instance."),
                          (("key", "get", "no-such-key"), "No such key."),
                          (("key", "delete", "no-such-key"), "No such key."),
                          (("key", "create", "--name", "k", "--instance", "nope"),
                           "400: No such instance. [source]"),
                          (("reclamation", "restore", "no-such-reclamation"),
                           "No such reclamation."),
                          (("reclamation", "reclaim", "no-such-reclamation"),
                           "No such reclamation.")):
            who = "piedpiper" if inst["guid"] in args else "hooli"
            out = self.fails(*args, who=who, message=msg)
            self.assertIn("400" if "[source]" in msg else "404", out.stderr)
            self.fails(*(list(args) + ["--output", "json"]), who=who, message=msg)
        # usage: exit 2
        for args in (("instance",), ("instance", "bogus"), ("instance", "get"),
                     ("instance", "create", "--name", "x"), ("instance", "update", inst["guid"]),
                     ("instance", "wait", inst["guid"], "--timeout", "soon"),
                     ("key", "create", "--name", "k"), ("key", "get"),
                     ("reclamation", "restore"), ("reclamation", "burn", "x")):
            self.fails(*args, code=2)
        self.assertIn("instance create", self.osbill("instance", "--help").stdout)
        # not logged in
        nologin = tempfile.mkdtemp(prefix="osbill-cli-nologin-")
        self.addCleanup(shutil.rmtree, nologin, True)
        out = self.run_cli(nologin, "instance", "list")
        self.assertEqual(out.returncode, 1, out)
        self.assertIn("not logged in", out.stderr)


if __name__ == "__main__":
    unittest.main()
