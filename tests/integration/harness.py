"""Integration test harness: starts real processes (the starter broker now, osbill serve
later) on ephemeral loopback ports with their own data directories, and talks to them over
HTTP. A process is stopped with SIGTERM and must exit 0 with no sanitizer report: under the
ASan/UBSan build that turns every leak or undefined behaviour into a failed test."""

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid

SERVICE_ID = "b98be605-e947-4476-8e9c-a62c55ffcb87"
LITE = "4b794e00-7040-4b83-b421-f699fb59eda5"
STANDARD = "7ae16b40-822a-486e-af2e-55cdc138c742"
PREMIUM = "538e30dd-9b3f-4196-9d3e-51f21c858cbe"
STARTER_CATALOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                               "examples", "starter-broker", "catalog.json")

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "UndefinedBehaviorSanitizer")


def binary(env_name, default_rel):
    path = os.environ.get(env_name)
    if path:
        return path
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "..", "..", "build", default_rel)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.raw = body
        self.json = None
        if body:
            try:
                self.json = json.loads(body)
            except ValueError:
                self.json = None

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "<%d %r>" % (self.status, self.raw[:300])


class Client:
    """A keep-alive HTTP/1.1 client for one server."""

    def __init__(self, port, host="127.0.0.1", timeout=30):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = None

    def request(self, method, path, body=None, headers=None, raw=None):
        hdrs = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                r = self.conn.getresponse()
                payload = r.read()
                resp = Response(r.status, r.getheaders(), payload)
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Process:
    """A server process started with a command line, whose listening port it prints."""

    port_re = re.compile(r"listening on http://[^:]+:(\d+)")

    def __init__(self, argv, env=None, name="server"):
        self.argv, self.env, self.name = argv, env, name
        self.proc = None
        self.port = None
        self.log_path = None
        self._log = None
        self.lines = []

    def start(self, timeout=15):
        fd, self.log_path = tempfile.mkstemp(prefix=self.name + "-", suffix=".log")
        os.close(fd)
        self._log = open(self.log_path, "w")
        env = dict(os.environ)
        env.update(self.env or {})
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self._log,
                                     env=env, text=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            m = self.port_re.search(line)
            if m:
                self.port = int(m.group(1))
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        self.proc.kill()
        raise AssertionError("%s did not start: %s %s" % (self.name, "".join(self.lines), self.log()))

    def _drain(self):
        try:
            for line in self.proc.stdout:
                self.lines.append(line)
        except (OSError, ValueError):
            pass  # closed by stop() or kill()

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def stop(self, timeout=20):
        """SIGTERM; the process must exit 0 and its log must hold no sanitizer report."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("%s did not stop on SIGTERM within %ss" % (self.name, timeout))
        self._close_files()
        text = self.log()
        for mark in SANITIZER_MARKS:
            if mark in text:
                raise AssertionError("%s: sanitizer report:\n%s" % (self.name, text[-8000:]))
        if rc != 0:
            raise AssertionError("%s exited %d:\n%s" % (self.name, rc, text[-4000:]))
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_files()

    def _close_files(self):
        if self._log:
            self._log.close()
        if self.proc and self.proc.stdout:
            try:
                self.proc.stdout.close()
            except (OSError, ValueError):
                pass

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Broker(Process):
    """The starter broker, on its own data directory."""

    def __init__(self, data=None, user="broker-user", password="broker-secret-pw",
                 async_seconds=1.0, extra=None):
        self.data = data or tempfile.mkdtemp(prefix="broker-")
        self.user, self.password = user, password
        argv = [binary("STARTER_BROKER", "examples/starter-broker/starter-broker"),
                "--listen", "127.0.0.1:0", "--data", self.data, "--user", user,
                "--password", password, "--async-seconds", str(async_seconds)]
        argv += extra or []
        super().__init__(argv, name="starter-broker")
        self.async_seconds = async_seconds

    def client(self):
        return OSB(self.port, self.user, self.password)

    def restart(self, kill=False):
        if kill:
            self.kill()
        else:
            self.stop()
        self.lines = []
        return self.start()

    def cleanup(self):
        shutil.rmtree(self.data, ignore_errors=True)


def postgres_database():
    """A fresh database on the server of tests/pg/with-postgres ($OSBILL_TEST_PG); its URL."""
    base = os.environ["OSBILL_TEST_PG"]
    name = "osbill_%s" % uuid.uuid4().hex[:12]
    out = subprocess.run(["psql", base, "-qAtc", "CREATE DATABASE %s" % name],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError("cannot create a PostgreSQL database: %s" % out.stderr)
    head, sep, query = base.partition("?")
    return head.rsplit("/", 1)[0] + "/" + name + sep + query


class Platform(Process):
    """osbill serve on its own data directory, initialised with an operator account."""

    databases = {}  # data directory -> PostgreSQL URL, for tools that open the database

    def __init__(self, data=None, extra=None, env=None):
        self.data = data or tempfile.mkdtemp(prefix="osbill-")
        self.bin = binary("OSBILL", "src/cli/osbill")
        self.init = None
        # Under tests/pg/with-postgres every platform has a PostgreSQL database of its own.
        self.db = None
        if os.environ.get("OSBILL_TEST_PG"):
            self.db = Platform.databases.get(self.data) or postgres_database()
        if self.db:
            Platform.databases[self.data] = self.db
        db = ["--db", self.db] if self.db else []
        argv = [self.bin, "serve", "--data", self.data, "--listen", "127.0.0.1:0"] + db
        argv += extra or []
        super().__init__(argv, env=env, name="osbill")

    def start(self, timeout=15):
        marker = "secret.key" if self.db else "osbill.db"
        if self.init is None and not os.path.exists(os.path.join(self.data, marker)):
            db = ["--db", self.db] if self.db else []
            out = subprocess.run([self.bin, "init", "--data", self.data, "--email",
                                  "operator@example.com", "--password", "operator-pw-1",
                                  "--output", "json"] + db, capture_output=True, text=True,
                                 timeout=60)
            if out.returncode != 0:
                raise AssertionError("osbill init failed: %s %s" % (out.stdout, out.stderr))
            self.init = json.loads(out.stdout)
        return super().start(timeout)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def client(self):
        return API(self.port)

    def restart(self, kill=False):
        if kill:
            self.kill()
        else:
            self.stop()
        self.lines = []
        return self.start()

    def cleanup(self):
        shutil.rmtree(self.data, ignore_errors=True)

    # The platform's database, for what a test checks or arranges beside the API: SQLite's
    # file or the platform's PostgreSQL database. Queries are written with SQLite's '?'.

    def _pg(self):
        import psycopg2
        return psycopg2.connect(self.db)

    def sql(self, query, params=()):
        """Runs one statement and commits; its rows (bytea and blobs as bytes)."""
        return self.sql_all([(query, params)])

    def sql_all(self, statements):
        """Runs [(query, params)] in one transaction; the rows of the last."""
        rows = []
        if not self.db:
            import sqlite3
            db = sqlite3.connect(os.path.join(self.data, "osbill.db"), timeout=30)
            try:
                with db:
                    for query, params in statements:
                        rows = db.execute(query, params).fetchall()
            finally:
                db.close()
            return rows
        db = self._pg()
        try:
            with db, db.cursor() as cur:
                for query, params in statements:
                    cur.execute(query.replace("%", "%%").replace("?", "%s"), tuple(params))
                    rows = cur.fetchall() if cur.description else []
        finally:
            db.close()
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]

    def write_lock(self):
        """A context holding the store's write lock, as another writer would."""
        import contextlib

        @contextlib.contextmanager
        def held():
            if not self.db:
                import sqlite3
                db = sqlite3.connect(os.path.join(self.data, "osbill.db"), timeout=10,
                                     isolation_level=None)
                db.execute("BEGIN IMMEDIATE")
                rollback = db.execute
            else:
                db = self._pg()
                db.cursor().execute("SELECT pg_advisory_xact_lock(7207317)")

                def rollback(_):
                    db.rollback()
            try:
                yield
            finally:
                rollback("ROLLBACK")
                db.close()
        return held()

    def stored_bytes(self):
        """Everything the platform has stored, as bytes: a test looks for secrets in clear."""
        if not self.db:
            out = b""
            for name in sorted(os.listdir(self.data)):
                if name.startswith("osbill.db"):
                    with open(os.path.join(self.data, name), "rb") as f:
                        out += f.read()
            return out
        out = subprocess.run(["pg_dump", "--data-only", self.db], capture_output=True,
                             timeout=60)
        if out.returncode != 0:
            raise AssertionError("pg_dump failed: %s" % out.stderr.decode(errors="replace"))
        return out.stdout


class API(Client):
    """The platform API: JSON bodies, bearer tokens, forms for /identity."""

    def call(self, method, path, body=None, token=None, query=None, headers=None):
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = "Bearer " + token
        if query:
            path = path + "?" + urllib.parse.urlencode(query)
        return self.request(method, path, body=body, headers=hdrs)

    def form(self, path, fields, headers=None):
        hdrs = {"Content-Type": "application/x-www-form-urlencoded"}
        hdrs.update(headers or {})
        return self.request("POST", path, raw=urllib.parse.urlencode(fields).encode(),
                            headers=hdrs)

    def apikey_token(self, apikey):
        r = self.form("/identity/token", {"grant_type": "urn:ibm:params:oauth:grant-type:apikey",
                                          "apikey": apikey})
        if r.status != 200:
            raise AssertionError("apikey grant failed: %r" % r)
        return r.json["access_token"]


def make_accounts(c, op_token, specs, email_prefix=""):
    """Creates accounts [(name, kind)] with an owner each and the owner's API key; returns
    {name: {"id", "apikey", "token"}}."""
    accounts = {}
    for name, kind in specs:
        r = c.call("POST", "/v1/accounts", token=op_token,
                   body={"name": name, "kind": kind,
                         "owner": {"email": "%s%s@example.com" % (email_prefix, name),
                                   "name": name.title(), "password": "password-%s" % name}})
        assert r.status == 201, r
        k = c.call("POST", "/v1/apikeys", token=op_token,
                   body={"name": "owner", "iam_id": r.json["owner_iam_id"],
                         "account_id": r.json["id"]})
        assert k.status == 201, k
        accounts[name] = {"id": r.json["id"], "apikey": k.json["apikey"],
                          "token": c.apikey_token(k.json["apikey"])}
    return accounts


def deploy_limited(c, token, broker, region, plan_ids, allow=()):
    """The starter-kv offering's broker registered in region with Basic auth, the plans of
    plan_ids deployed there, limited visibility with the account ids of allow on its
    allowlist."""
    def ok(r):
        assert r.status in (200, 201, 204), r

    ok(c.call("POST", "/v1/offerings/%s/brokers" % SERVICE_ID, token=token,
              body={"region": region, "url": "http://127.0.0.1:%d" % broker.port,
                    "auth": {"type": "basic", "username": broker.user,
                             "password": broker.password}}))
    for pid in plan_ids:
        ok(c.call("PUT", "/v1/offerings/%s/plans/%s/deployments/%s" % (SERVICE_ID, pid, region),
                  token=token))
    ok(c.call("POST", "/v1/offerings/%s/visibility" % SERVICE_ID, token=token,
              body={"visibility": "limited"}))
    for account in allow:
        ok(c.call("PUT", "/v1/offerings/%s/allowlist/%s" % (SERVICE_ID, account), token=token))


def starter_offering(c, token, broker, region, allow=()):
    """The provider's starter-kv offering as the starter broker's catalog.json describes it
    (its three plans, plan_updateable, with their parameter schemas), the broker registered
    in region with Basic auth, every plan deployed there, limited visibility with the account
    ids of allow on its allowlist."""
    def ok(r):
        assert r.status in (200, 201, 204), r
        return r.json

    with open(STARTER_CATALOG) as f:
        plans = {p["id"]: p for p in json.load(f)["services"][0]["plans"]}
    ok(c.call("POST", "/v1/offerings", token=token,
              body={"id": SERVICE_ID, "name": "starter-kv", "display_name": "Starter KV"}))
    for name, pid in (("lite", LITE), ("standard", STANDARD), ("premium", PREMIUM)):
        body = {"id": pid, "name": name, "display_name": name.title(),
                "kind": "lite" if name == "lite" else "subscription",
                "description": "The %s plan." % name, "plan_updateable": True}
        if plans[pid].get("schemas"):
            body["schemas"] = plans[pid]["schemas"]
        ok(c.call("POST", "/v1/offerings/%s/plans" % SERVICE_ID, token=token, body=body))
    deploy_limited(c, token, broker, region, (LITE, STANDARD, PREMIUM), allow)


# A metered plan's metric of the starter broker's service: calls, summed over the month.
API_CALLS_METRIC = {"id": "API_CALLS", "display_name": "API calls", "unit": "call",
                    "metering_model": "standard_add"}


def metered_offering(c, token, broker, region, plans, allow=()):
    """The starter-kv offering (the starter broker's service id) with metered plans
    {plan_id: (name, metrics)}, plan_updateable, the broker registered in region with Basic
    auth, every plan deployed there, limited visibility with the account ids of allow on its
    allowlist."""
    def ok(r):
        assert r.status in (200, 201, 204), r
        return r.json

    ok(c.call("POST", "/v1/offerings", token=token,
              body={"id": SERVICE_ID, "name": "starter-kv", "display_name": "Starter KV"}))
    for pid, (name, metrics) in plans.items():
        ok(c.call("POST", "/v1/offerings/%s/plans" % SERVICE_ID, token=token,
                  body={"id": pid, "name": name, "display_name": name.title(),
                        "kind": "metered", "description": "The %s plan." % name,
                        "plan_updateable": True, "metrics": metrics}))
    deploy_limited(c, token, broker, region, plans, allow)


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


class OSB(Client):
    """An OSB platform talking to a broker: the headers every request needs."""

    def __init__(self, port, user, password, version="2.17"):
        super().__init__(port)
        self.auth = basic(user, password)
        self.version = version

    def call(self, method, path, body=None, query=None, headers=None, version=True, auth=True,
             raw=None):
        hdrs = {}
        if auth:
            hdrs["Authorization"] = self.auth
        if version:
            hdrs["X-Broker-API-Version"] = self.version
        hdrs.update(headers or {})
        if query:
            path = path + "?" + urllib.parse.urlencode(query)
        return self.request(method, path, body=body, headers=hdrs, raw=raw)

    # Shorthands for the OSB routes; ids are URL-encoded as platforms do for CRNs.
    @staticmethod
    def q(s):
        return urllib.parse.quote(s, safe="")

    def provision(self, iid, plan=STANDARD, params=None, incomplete=None, body_extra=None,
                  **kw):
        body = {"service_id": SERVICE_ID, "plan_id": plan,
                "organization_guid": "org-1", "space_guid": "space-1",
                "context": {"platform": "osbill", "account_id": "acct-1"}}
        if params is not None:
            body["parameters"] = params
        body.update(body_extra or {})
        query = {"accepts_incomplete": "true"} if incomplete else None
        return self.call("PUT", "/v2/service_instances/" + self.q(iid), body=body, query=query,
                         **kw)

    def deprovision(self, iid, plan=STANDARD, incomplete=None, **kw):
        query = {"service_id": SERVICE_ID, "plan_id": plan}
        if incomplete:
            query["accepts_incomplete"] = "true"
        return self.call("DELETE", "/v2/service_instances/" + self.q(iid), query=query, **kw)

    def last_op(self, iid, operation=None):
        query = {"service_id": SERVICE_ID}
        if operation:
            query["operation"] = operation
        return self.call("GET", "/v2/service_instances/%s/last_operation" % self.q(iid),
                         query=query)

    def bind(self, iid, bid, plan=STANDARD, params=None, body_extra=None, **kw):
        body = {"service_id": SERVICE_ID, "plan_id": plan}
        if params is not None:
            body["parameters"] = params
        body.update(body_extra or {})
        return self.call("PUT", "/v2/service_instances/%s/service_bindings/%s"
                         % (self.q(iid), self.q(bid)), body=body, **kw)

    def unbind(self, iid, bid, plan=STANDARD, **kw):
        return self.call("DELETE", "/v2/service_instances/%s/service_bindings/%s"
                         % (self.q(iid), self.q(bid)),
                         query={"service_id": SERVICE_ID, "plan_id": plan}, **kw)

    def wait_op(self, iid, timeout=30, operation=None):
        """Polls last_operation until the state is final, honouring Retry-After."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.last_op(iid, operation)
            if r.status != 200 or r.json.get("state") != "in progress":
                return r
            ra = r.header("Retry-After")
            time.sleep(min(float(ra) if ra else 0.2, 0.5))
        raise AssertionError("operation on %s still in progress after %ss" % (iid, timeout))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class AccountsTest(unittest.TestCase):
    """Tests against one platform (cls.p) with the operator's token (cls.op_token) and the
    accounts of make_accounts (cls.accounts): each test gets a fresh client, self.c, and
    self.call(who, ...) calls the API as "operator" or as a named account."""

    def setUp(self):
        self.c = self.p.client()

    def tearDown(self):
        self.c.close()

    def call(self, who, method, path, body=None, **kw):
        tok = self.op_token if who == "operator" else self.accounts[who]["token"]
        return self.c.call(method, path, body=body, token=tok, **kw)


class BrokerTest(unittest.TestCase):
    """One broker per test class (broker_class, with broker_kwargs); each test gets a fresh
    client."""

    broker_class = None  # Broker, the starter broker, unless a class names another
    broker_kwargs = {}

    @classmethod
    def setUpClass(cls):
        cls.broker = (cls.broker_class or Broker)(**cls.broker_kwargs).start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.broker.stop()
        finally:
            cls.broker.cleanup()

    def setUp(self):
        self.osb = self.broker.client()

    def tearDown(self):
        self.osb.close()

    def uid(self, prefix="id"):
        return "%s-%s" % (prefix, os.urandom(6).hex())

    def assertError(self, r, status, error=None):
        self.assertEqual(r.status, status, r)
        self.assertIsInstance(r.json, dict, r)
        self.assertIsInstance(r.json.get("description"), str, r)
        if error is not None:
            self.assertEqual(r.json.get("error"), error, r)
