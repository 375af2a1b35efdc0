"""The starter broker as a service: IBM Cloud's /bluemix_v1 enable/disable extension, the
key-value data API its bindings grant, and the usage it meters for billing."""

import os
import sqlite3
import time
import unittest
import urllib.parse

from harness import (LITE, PREMIUM, SERVICE_ID, STANDARD, BrokerTest, Client, basic)

ENABLE_CODES = ("IBMCLOUD_ACCT_ACTIVATE", "IBMCLOUD_RECLAMATION_RESTORE",
                "IBMCLOUD_SERVICE_INSTANCE_BELOW_CAP", "IBMCLOUD_ADMIN_REQUEST")
DISABLE_CODES = ("IBMCLOUD_ACCT_SUSPEND", "IBMCLOUD_RECLAMATION_SCHEDULE",
                 "IBMCLOUD_SERVICE_INSTANCE_ABOVE_CAP", "IBMCLOUD_ADMIN_REQUEST")
ENABLE_ONLY = tuple(c for c in ENABLE_CODES if c not in DISABLE_CODES)
DISABLE_ONLY = tuple(c for c in DISABLE_CODES if c not in ENABLE_CODES)

HOUR_MS = 3600 * 1000


def q(s):
    return urllib.parse.quote(s, safe="")


def now_hour():
    return int(time.time() * 1000) // HOUR_MS * HOUR_MS


class KV:
    """A client of the data API with the credentials of one binding."""

    def __init__(self, port, creds):
        self.creds = creds
        url = urllib.parse.urlparse(creds["url"])
        self.base = url.path
        self.key = creds["apikey"]
        self.http = Client(port)

    def call(self, method, name=None, value=None, key=None, headers=None):
        path = self.base if name is None else self.base + "/" + q(name)
        h = {"X-Api-Key": self.key if key is None else key}
        if key is False:
            h = {}
        h.update(headers or {})
        return self.http.request(method, path, raw=value, headers=h)

    def put(self, name, value, **kw):
        return self.call("PUT", name, value, **kw)

    def get(self, name, **kw):
        return self.call("GET", name, **kw)

    def delete(self, name, **kw):
        return self.call("DELETE", name, **kw)

    def list(self, **kw):
        return self.call("GET", None, **kw)

    def close(self):
        self.http.close()


class KVTestBase(BrokerTest):

    def setUp(self):
        super().setUp()
        self.kvs = []

    def tearDown(self):
        for k in self.kvs:
            k.close()
        super().tearDown()

    def instance(self, plan=LITE, params=None, iid=None):
        iid = iid or self.uid("kv")
        if plan == PREMIUM:
            r = self.osb.provision(iid, plan=plan, params=params, incomplete=True)
            self.assertEqual(r.status, 202, r)
            r = self.osb.wait_op(iid, operation=r.json["operation"])
            self.assertEqual((r.status, r.json["state"]), (200, "succeeded"), r)
        else:
            r = self.osb.provision(iid, plan=plan, params=params)
            self.assertEqual(r.status, 201, r)
        return iid

    def bind(self, iid, plan=LITE, role=None, bid=None):
        bid = bid or self.uid("key")
        params = {"role": role} if role else None
        r = self.osb.bind(iid, bid, plan=plan, params=params)
        self.assertEqual(r.status, 201, r)
        creds = r.json["credentials"]
        self.assertEqual(set(creds), {"url", "apikey", "role"}, creds)
        self.assertEqual(creds["role"], role or "writer")
        url = urllib.parse.urlparse(creds["url"])
        self.assertEqual((url.scheme, url.hostname, url.port),
                         ("http", "127.0.0.1", self.broker.port), creds["url"])
        self.assertEqual(urllib.parse.unquote(url.path), "/kv/" + iid)
        kv = KV(self.broker.port, creds)
        kv.binding_id = bid
        self.kvs.append(kv)
        return kv

    def assertDataError(self, r, status, error=None):
        self.assertEqual(r.status, status, r)
        self.assertIsInstance(r.json, dict, r)
        self.assertIsInstance(r.json.get("description"), str, r)
        if error is not None:
            self.assertEqual(r.json.get("error"), error, r)

    def assertUnauthorized(self, r):
        self.assertDataError(r, 401, "Unauthorized")
        self.assertEqual(r.header("WWW-Authenticate"), "Bearer", r.headers)


# ---------------------------------------------------------------- /bluemix_v1

class IBMExtensionTest(KVTestBase):

    def ibm_put(self, iid, enabled, reason=None, initiator="user-1", **kw):
        body = {"enabled": enabled, "initiator_id": initiator}
        if reason is not None:
            body["reason_code"] = reason
        return self.osb.call("PUT", "/bluemix_v1/service_instances/" + q(iid), body=body, **kw)

    def ibm_get(self, iid, **kw):
        return self.osb.call("GET", "/bluemix_v1/service_instances/" + q(iid), **kw)

    def assertState(self, iid, enabled, active):
        r = self.ibm_get(iid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(set(r.json), {"enabled", "active", "last_active"}, r)
        self.assertIs(r.json["enabled"], enabled, r)
        self.assertIs(r.json["active"], active, r)
        self.assertIsInstance(r.json["last_active"], int, r)
        self.assertGreater(r.json["last_active"], 0, r)
        return r.json

    def assertNoContent(self, r):
        self.assertEqual((r.status, r.raw), (204, b""), r)

    def test_disable_then_get(self):
        iid = self.instance()
        self.assertState(iid, True, True)
        r = self.osb.call("PUT", "/bluemix_v1/service_instances/" + iid,
                          body={"enabled": False, "initiator_id": "x",
                                "reason_code": "IBMCLOUD_ACCT_SUSPEND"})
        self.assertNoContent(r)
        self.assertState(iid, False, False)
        # Disabling is not deleting: the OSB view is unchanged.
        r = self.osb.call("GET", "/v2/service_instances/" + iid)
        self.assertEqual((r.status, r.json["plan_id"]), (200, LITE), r)
        # Disabling twice is fine.
        self.assertNoContent(self.ibm_put(iid, False, "IBMCLOUD_ACCT_SUSPEND"))
        self.assertState(iid, False, False)

    def test_each_enable_reason_code(self):
        iid = self.instance()
        for i, code in enumerate(ENABLE_CODES):
            with self.subTest(code=code):
                self.assertNoContent(self.ibm_put(iid, False, DISABLE_CODES[i % len(DISABLE_CODES)]))
                self.assertState(iid, False, False)
                self.assertNoContent(self.ibm_put(iid, True, code))
                self.assertState(iid, True, True)

    def test_each_disable_reason_code(self):
        iid = self.instance()
        for code in DISABLE_CODES:
            with self.subTest(code=code):
                self.assertNoContent(self.ibm_put(iid, False, code))
                self.assertState(iid, False, False)
                self.assertNoContent(self.ibm_put(iid, True, "IBMCLOUD_ACCT_ACTIVATE"))
                self.assertState(iid, True, True)

    def test_reason_code_of_the_other_direction(self):
        iid = self.instance()
        self.assertNoContent(self.ibm_put(iid, False, "IBMCLOUD_ACCT_SUSPEND"))
        for code in DISABLE_ONLY:
            with self.subTest(enable_with=code):
                self.assertError(self.ibm_put(iid, True, code), 400)
                self.assertState(iid, False, False)
        self.assertNoContent(self.ibm_put(iid, True, "IBMCLOUD_RECLAMATION_RESTORE"))
        for code in ENABLE_ONLY:
            with self.subTest(disable_with=code):
                self.assertError(self.ibm_put(iid, False, code), 400)
                self.assertState(iid, True, True)

    def test_unknown_reason_code(self):
        iid = self.instance()
        for code in ("IBMCLOUD_BOGUS", "", "ibmcloud_acct_suspend", "IBMCLOUD_ACCT_SUSPEND ",
                     "X" * 5000):
            for enabled in (False, True):
                with self.subTest(code=code[:40], enabled=enabled):
                    self.assertError(self.ibm_put(iid, enabled, code), 400)
                    self.assertState(iid, True, True)

    def test_malformed_bodies(self):
        iid = self.instance()
        self.assertNoContent(self.ibm_put(iid, False, "IBMCLOUD_ACCT_SUSPEND"))
        for body in ({"enabled": "true", "reason_code": "IBMCLOUD_ACCT_ACTIVATE"},
                     {"enabled": "false"}, {"enabled": 1}, {"enabled": 0}, {"enabled": None},
                     {"enabled": [True]}, {"enabled": {}}, {"reason_code": "IBMCLOUD_ACCT_ACTIVATE"},
                     {}, {"enabled": True, "initiator_id": 5},
                     {"enabled": True, "reason_code": 7},
                     {"enabled": True, "reason_code": ["IBMCLOUD_ACCT_ACTIVATE"]}):
            with self.subTest(body=body):
                r = self.osb.call("PUT", "/bluemix_v1/service_instances/" + iid, body=body)
                self.assertError(r, 400)
                self.assertState(iid, False, False)
        for raw in (b"[]", b"true", b"{", b'{"enabled":true,"enabled":false}'):
            with self.subTest(raw=raw):
                r = self.osb.call("PUT", "/bluemix_v1/service_instances/" + iid, raw=raw,
                                  headers={"Content-Type": "application/json"})
                self.assertError(r, 400)
                self.assertState(iid, False, False)
        r = self.osb.call("PUT", "/bluemix_v1/service_instances/" + iid,
                          raw=b'{"enabled":true}', headers={"Content-Type": "text/plain"})
        self.assertError(r, 400)
        self.assertState(iid, False, False)

    def test_unknown_instance(self):
        iid = self.uid("nope")
        self.assertError(self.ibm_put(iid, False, "IBMCLOUD_ACCT_SUSPEND"), 404)
        self.assertError(self.ibm_put(iid, True, "IBMCLOUD_ACCT_ACTIVATE"), 404)
        self.assertError(self.ibm_get(iid), 404)
        self.assertError(self.osb.call("GET", "/v2/service_instances/" + iid), 404)
        # A deprovisioned one is unknown as well.
        gone = self.instance()
        self.assertEqual(self.osb.deprovision(gone, plan=LITE).status, 200)
        self.assertError(self.ibm_get(gone), 404)
        self.assertError(self.ibm_put(gone, True, "IBMCLOUD_ACCT_ACTIVATE"), 404)

    def test_authentication_required(self):
        iid = self.instance()
        for headers in ({}, {"Authorization": basic(self.broker.user, "wrong")},
                        {"Authorization": "Bearer whatever"}):
            with self.subTest(headers=headers):
                r = self.ibm_put(iid, False, "IBMCLOUD_ACCT_SUSPEND", auth=False,
                                 headers=headers)
                self.assertError(r, 401)
                self.assertIsNotNone(r.header("WWW-Authenticate"), r.headers)
                r = self.ibm_get(iid, auth=False, headers=headers)
                self.assertError(r, 401)
                self.assertIsNotNone(r.header("WWW-Authenticate"), r.headers)
                self.assertState(iid, True, True)

    def test_disabled_instance_refuses_data_api_and_bind(self):
        iid = self.instance(plan=STANDARD)
        writer = self.bind(iid, plan=STANDARD, role="writer")
        reader = self.bind(iid, plan=STANDARD, role="reader")
        self.assertEqual(writer.put("greeting", b"hello").status, 204)
        self.assertNoContent(self.ibm_put(iid, False, "IBMCLOUD_SERVICE_INSTANCE_ABOVE_CAP"))

        for label, r in (("get", writer.get("greeting")), ("put", writer.put("other", b"x")),
                         ("delete", writer.delete("greeting")), ("list", writer.list()),
                         ("reader get", reader.get("greeting"))):
            with self.subTest(call=label):
                self.assertDataError(r, 403, "InstanceDisabled")
        bid = self.uid("late")
        r = self.osb.bind(iid, bid, plan=STANDARD)
        self.assertTrue(400 <= r.status < 500, r)
        self.assertIsInstance(r.json.get("description"), str, r)
        self.assertNotIn("credentials", r.json)
        self.assertError(self.osb.call("GET", "/v2/service_instances/%s/service_bindings/%s"
                                       % (iid, bid)), 404)

        self.assertNoContent(self.ibm_put(iid, True, "IBMCLOUD_SERVICE_INSTANCE_BELOW_CAP"))
        r = writer.get("greeting")
        self.assertEqual((r.status, r.raw), (200, b"hello"), r)
        self.assertEqual(writer.put("other", b"x").status, 204)
        self.assertEqual(reader.get("other").raw, b"x")
        late = self.bind(iid, plan=STANDARD, bid=bid)
        self.assertEqual(late.get("greeting").raw, b"hello")

    def test_disabled_state_survives_restart(self):
        iid = self.instance()
        kv = self.bind(iid)
        self.assertEqual(kv.put("k", b"v").status, 204)
        self.assertNoContent(self.ibm_put(iid, False, "IBMCLOUD_RECLAMATION_SCHEDULE"))
        self.osb.close()
        kv.close()
        self.broker.restart()
        self.osb = self.broker.client()
        kv.http.port = self.broker.port
        self.assertState(iid, False, False)
        self.assertDataError(kv.get("k"), 403, "InstanceDisabled")
        self.assertNoContent(self.ibm_put(iid, True, "IBMCLOUD_RECLAMATION_RESTORE"))
        self.assertEqual(kv.get("k").raw, b"v")

    def test_last_active_is_never_in_the_future(self):
        lite = self.instance()
        prem = self.uid("prem")
        self.assertEqual(self.osb.provision(prem, plan=PREMIUM, incomplete=True).status, 202)
        for iid in (lite, prem):
            with self.subTest(iid=iid):
                state = self.assertState(iid, True, iid == lite)
                now = int(time.time() * 1000)
                self.assertLessEqual(state["last_active"], now,
                                     "last_active is %d ms in the future" %
                                     (state["last_active"] - now))
        self.assertEqual(self.osb.wait_op(prem).json["state"], "succeeded")

    def test_data_api_use_updates_last_active(self):
        iid = self.instance()
        kv = self.bind(iid)
        before = self.assertState(iid, True, True)["last_active"]
        time.sleep(0.05)
        t0 = int(time.time() * 1000)
        self.assertEqual(kv.put("k", b"v").status, 204)
        after = self.assertState(iid, True, True)["last_active"]
        self.assertGreaterEqual(after, t0, (before, after))
        self.assertLessEqual(after, int(time.time() * 1000))

    def test_premium_is_inactive_until_provisioned(self):
        iid = self.uid("prem")
        r = self.osb.provision(iid, plan=PREMIUM, incomplete=True)
        self.assertEqual(r.status, 202, r)
        self.assertState(iid, True, False)
        r = self.osb.wait_op(iid)
        self.assertEqual(r.json["state"], "succeeded", r)
        self.assertState(iid, True, True)


# ---------------------------------------------------------------- the data API

class DataAPITest(KVTestBase):

    def test_writer_and_reader_keys(self):
        iid = self.instance(plan=STANDARD)
        w = self.bind(iid, plan=STANDARD, role="writer")
        r_ = self.bind(iid, plan=STANDARD, role="reader")
        self.assertNotEqual(w.key, r_.key)
        self.assertEqual((w.put("b", b"two").status, w.put("a", b"one").status), (204, 204))
        r = r_.get("a")
        self.assertEqual((r.status, r.raw), (200, b"one"), r)
        self.assertEqual(r.header("Content-Type"), "application/octet-stream")
        self.assertEqual(w.get("b").raw, b"two")
        r = r_.list()
        self.assertEqual((r.status, r.json), (200, ["a", "b"]), r)
        self.assertEqual(w.put("a", b"uno").status, 204)       # overwrite
        self.assertEqual(r_.get("a").raw, b"uno")
        self.assertEqual(w.put("empty", b"").status, 204)
        r = r_.get("empty")
        self.assertEqual((r.status, r.raw), (200, b""), r)
        self.assertEqual(w.delete("a").status, 204)
        self.assertDataError(r_.get("a"), 404, "NotFound")
        self.assertDataError(w.delete("a"), 404, "NotFound")
        self.assertEqual(r_.list().json, ["b", "empty"])
        binary = bytes(range(256)) * 4
        self.assertEqual(w.put("bin", binary).status, 204)
        self.assertEqual(r_.get("bin").raw, binary)

    def test_bearer_header(self):
        iid = self.instance()
        w = self.bind(iid)
        self.assertEqual(w.put("k", b"v", key=False,
                               headers={"Authorization": "Bearer " + w.key}).status, 204)
        r = w.get("k", key=False, headers={"Authorization": "Bearer " + w.key})
        self.assertEqual((r.status, r.raw), (200, b"v"), r)

    def test_reader_cannot_write(self):
        iid = self.instance()
        w = self.bind(iid, role="writer")
        rd = self.bind(iid, role="reader")
        self.assertEqual(w.put("k", b"v").status, 204)
        self.assertDataError(rd.put("k", b"changed"), 403, "Forbidden")
        self.assertDataError(rd.put("new", b"x"), 403, "Forbidden")
        self.assertDataError(rd.delete("k"), 403, "Forbidden")
        self.assertEqual(rd.get("k").raw, b"v")
        self.assertEqual(rd.list().json, ["k"])

    def test_key_of_another_instance_is_refused(self):
        a, b = self.instance(), self.instance()
        ka, kb = self.bind(a), self.bind(b)
        self.assertEqual(kb.put("secret", b"b-data").status, 204)
        self.assertEqual(ka.put("mine", b"a-data").status, 204)
        # A's key on B's paths.
        self.assertUnauthorized(kb.get("secret", key=ka.key))
        self.assertUnauthorized(kb.put("secret", b"overwritten", key=ka.key))
        self.assertUnauthorized(kb.delete("secret", key=ka.key))
        self.assertUnauthorized(kb.list(key=ka.key))
        self.assertEqual(kb.get("secret").raw, b"b-data")
        self.assertEqual(kb.list().json, ["secret"])
        self.assertEqual(ka.list().json, ["mine"])

    def test_missing_or_bad_key(self):
        iid = self.instance()
        w = self.bind(iid)
        self.assertEqual(w.put("k", b"v").status, 204)
        for label, kw in (("none", {"key": False}), ("empty", {"key": ""}),
                          ("random", {"key": os.urandom(32).hex()}),
                          ("truncated", {"key": w.key[:-1]}),
                          ("upper", {"key": w.key.upper()}),
                          ("bearer empty", {"key": False, "headers": {"Authorization": "Bearer "}}),
                          ("broker basic", {"key": False, "headers": {
                              "Authorization": basic(self.broker.user, self.broker.password)}})):
            with self.subTest(key=label):
                self.assertUnauthorized(w.get("k", **kw))
                self.assertUnauthorized(w.list(**kw))
                self.assertUnauthorized(w.put("k", b"x", **kw))
        self.assertEqual(w.get("k").raw, b"v")

    def test_unbind_revokes_the_key(self):
        iid = self.instance()
        w1, w2 = self.bind(iid), self.bind(iid)
        self.assertEqual(w1.put("k", b"v").status, 204)
        r = self.osb.unbind(iid, w1.binding_id, plan=LITE)
        self.assertEqual((r.status, r.json), (200, {}), r)
        self.assertUnauthorized(w1.get("k"))
        self.assertUnauthorized(w1.put("k", b"x"))
        self.assertUnauthorized(w1.list())
        self.assertEqual(w2.get("k").raw, b"v", "the other binding's key still works")

    def test_deprovision_revokes_keys(self):
        iid = self.instance()
        w = self.bind(iid)
        self.assertEqual(w.put("k", b"v").status, 204)
        self.assertEqual(self.osb.deprovision(iid, plan=LITE).status, 200)
        self.assertUnauthorized(w.get("k"))
        # A new instance with the same id starts empty, and the old key stays dead.
        self.instance(iid=iid)
        w2 = self.bind(iid)
        self.assertUnauthorized(w.get("k"))
        self.assertDataError(w2.get("k"), 404, "NotFound")
        self.assertEqual(w2.list().json, [])

    def test_an_older_kv_db_is_moved_into_broker_db(self):
        iid = self.instance()
        kv = self.bind(iid)
        self.assertEqual(kv.put("k", b"kept").status, 204)
        self.osb.close()
        kv.close()
        self.broker.stop()
        # The layout of earlier versions: the key-value tables in kv.db beside broker.db.
        data = self.broker.data
        new = sqlite3.connect(os.path.join(data, "broker.db"))
        old = sqlite3.connect(os.path.join(data, "kv.db"))
        for table in ("namespaces", "kv", "apikeys", "usage"):
            old.execute(new.execute("SELECT sql FROM sqlite_master WHERE name = ?",
                                    (table,)).fetchone()[0])
            rows = new.execute("SELECT * FROM %s" % table).fetchall()
            if rows:
                marks = ", ".join("?" * len(rows[0]))
                old.executemany("INSERT INTO %s VALUES (%s)" % (table, marks), rows)
            new.execute("DROP TABLE %s" % table)
        old.commit()
        new.commit()
        old.close()
        new.close()
        self.broker.lines = []
        self.broker.start()
        self.osb = self.broker.client()
        kv.http.port = self.broker.port
        self.assertEqual(kv.get("k").raw, b"kept")
        self.assertEqual(kv.put("k2", b"new").status, 204)
        self.assertFalse(os.path.exists(os.path.join(data, "kv.db")))
        self.assertTrue(os.path.exists(os.path.join(data, "kv.db.moved")))
        self.assertEqual(self.osb.deprovision(iid, plan=LITE).status, 200)
        self.assertUnauthorized(kv.get("k"))

    def test_lite_value_size_limit(self):
        iid = self.instance()
        w = self.bind(iid)
        self.assertEqual(w.put("k", b"a" * 1024).status, 204)
        r = w.put("k", b"b" * 1025)
        self.assertDataError(r, 413, "ValueTooLarge")
        self.assertIn("1024", r.json["description"])
        self.assertEqual(w.get("k").raw, b"a" * 1024)
        self.assertDataError(w.put("new", b"c" * 4096), 413, "ValueTooLarge")
        self.assertDataError(w.get("new"), 404, "NotFound")

    def test_standard_value_size_limit(self):
        iid = self.instance(plan=STANDARD)
        w = self.bind(iid, plan=STANDARD)
        self.assertEqual(w.put("k", b"a" * 65536).status, 204)
        self.assertDataError(w.put("k", b"b" * 65537), 413, "ValueTooLarge")
        self.assertEqual(len(w.get("k").raw), 65536)

    def test_lite_key_quota(self):
        iid = self.instance()
        w = self.bind(iid)
        for i in range(100):
            r = w.put("key-%03d" % i, b"v%d" % i)
            self.assertEqual(r.status, 204, (i, r))
        r = w.put("key-100", b"one too many")
        self.assertDataError(r, 507, "QuotaExceeded")
        self.assertDataError(w.get("key-100"), 404, "NotFound")
        self.assertEqual(len(w.list().json), 100)
        # Overwriting at the quota is fine; deleting frees a slot.
        self.assertEqual(w.put("key-000", b"again").status, 204)
        self.assertEqual(w.delete("key-001").status, 204)
        self.assertEqual(w.put("key-100", b"fits now").status, 204)
        self.assertDataError(w.put("key-101", b"full again"), 507, "QuotaExceeded")
        self.assertEqual(w.get("key-000").raw, b"again")

    def test_max_keys_parameter(self):
        iid = self.instance(params={"max_keys": 3})
        w = self.bind(iid)
        for i in range(3):
            self.assertEqual(w.put("k%d" % i, b"v").status, 204)
        self.assertDataError(w.put("k3", b"v"), 507, "QuotaExceeded")

    def test_key_names(self):
        iid = self.instance()
        w = self.bind(iid)
        names = ["a/b", "with space", "\u00fcn\u00efc\u00f6de", "?&=#", "k" * 512, ".."]
        for n in names:
            with self.subTest(name=n[:20]):
                self.assertEqual(w.put(n, n.encode()).status, 204)
                self.assertEqual(w.get(n).raw, n.encode())
        self.assertEqual(sorted(w.list().json), sorted(names))
        self.assertDataError(w.put("k" * 513, b"v"), 400, "BadKey")
        # An unencoded slash is another route altogether.
        r = w.http.request("GET", w.base + "/a/b", headers={"X-Api-Key": w.key})
        self.assertEqual(r.status, 404, r)

    def test_premium_data_api_only_after_async_provisioning(self):
        iid = self.uid("prem")
        r = self.osb.provision(iid, plan=PREMIUM, incomplete=True)
        self.assertEqual(r.status, 202, r)
        op = r.json["operation"]
        # No key can be had while the dedicated storage is being created.
        r = self.osb.bind(iid, "early", plan=PREMIUM)
        self.assertError(r, 422, "ConcurrencyError")
        # Another instance's key does not open it either.
        other = self.bind(self.instance())
        stranger = KV(self.broker.port, {"url": "http://127.0.0.1:%d/kv/%s"
                                         % (self.broker.port, q(iid)), "apikey": other.key})
        self.kvs.append(stranger)
        self.assertUnauthorized(stranger.get("k"))
        r = self.osb.last_op(iid, op)
        self.assertEqual((r.status, r.json["state"]), (200, "in progress"), r)
        r = self.osb.wait_op(iid, operation=op)
        self.assertEqual((r.status, r.json["state"]), (200, "succeeded"), r)
        w = self.bind(iid, plan=PREMIUM)
        big = os.urandom(100 * 1024)  # over standard's 64 KiB, within premium's 1 MiB
        self.assertEqual(w.put("big", big).status, 204)
        self.assertEqual(w.get("big").raw, big)

    def test_premium_async_deprovision_stops_the_data_api(self):
        iid = self.instance(plan=PREMIUM)
        w = self.bind(iid, plan=PREMIUM)
        self.assertEqual(w.put("k", b"v").status, 204)
        r = self.osb.deprovision(iid, plan=PREMIUM, incomplete=True)
        self.assertEqual(r.status, 202, r)
        self.assertDataError(w.get("k"), 409, "InstanceNotReady")
        self.assertDataError(w.put("k", b"x"), 409, "InstanceNotReady")
        r = self.osb.wait_op(iid, operation=r.json["operation"])
        self.assertEqual((r.status, r.json["state"]), (200, "succeeded"), r)
        self.assertUnauthorized(w.get("k"))

    def test_long_crn_instance_id(self):
        # IBM instance ids are CRNs; a long one must work end to end, data API included.
        iid = ("crn:v1:bluemix:public:starter-kv:us-south:a/" + "0123456789abcdef" * 2 + ":"
               + "f" * 200 + "::")
        self.assertGreater(len(iid), 255)
        self.instance(iid=iid)
        w = self.bind(iid)
        r = w.put("k", b"v")
        self.assertEqual(r.status, 204, "data API refuses the key of an instance with a %d-char "
                         "id: %r" % (len(iid), r))
        self.assertEqual(w.get("k").raw, b"v")


# ---------------------------------------------------------------- metering

class UsageTest(KVTestBase):

    def usage(self, iid):
        r = self.osb.call("GET", "/usage/" + q(iid), version=False)
        self.assertEqual(r.status, 200, r)
        self.assertIsInstance(r.json, list, r)
        hours = {self.hour0, now_hour()}
        for row in r.json:
            self.assertEqual(set(row), {"plan_id", "measure", "hour", "quantity"}, row)
            self.assertIn(row["measure"], ("API_CALLS", "STORAGE_BYTES"), row)
            self.assertIn(row["hour"], hours, "usage outside the test's hour: %r" % row)
        return r.json

    def total(self, rows, measure, plan=None):
        return sum(x["quantity"] for x in rows
                   if x["measure"] == measure and (plan is None or x["plan_id"] == plan))

    def peak(self, rows, plan=None):
        vals = [x["quantity"] for x in rows
                if x["measure"] == "STORAGE_BYTES" and (plan is None or x["plan_id"] == plan)]
        return max(vals) if vals else None

    def setUp(self):
        super().setUp()
        self.hour0 = now_hour()

    def test_usage_requires_broker_credentials(self):
        iid = self.instance(plan=STANDARD)
        w = self.bind(iid, plan=STANDARD)
        self.assertEqual(w.put("k", b"v").status, 204)
        for headers in ({}, {"Authorization": basic(self.broker.user, "nope")},
                        {"Authorization": "Bearer " + w.key}, {"X-Api-Key": w.key}):
            with self.subTest(headers=list(headers)):
                r = self.osb.call("GET", "/usage/" + iid, auth=False, headers=headers)
                self.assertEqual(r.status, 401, r)
                self.assertIsNotNone(r.header("WWW-Authenticate"), r.headers)
                self.assertNotIn(b"API_CALLS", r.raw)
        self.assertEqual(self.total(self.usage(iid), "API_CALLS"), 1)

    def test_api_calls_counted(self):
        iid = self.instance(plan=STANDARD)
        w = self.bind(iid, plan=STANDARD)
        rd = self.bind(iid, plan=STANDARD, role="reader")
        self.assertEqual(self.usage(iid), [], "nothing is metered before the first call")
        calls = [lambda: w.put("a", b"x" * 10), lambda: w.put("b", b"y" * 20),
                 lambda: rd.get("a"), lambda: rd.list(), lambda: w.get("b"),
                 lambda: w.delete("a"), lambda: rd.get("b"), lambda: w.list(),
                 lambda: w.put("c", b"z")]
        for call in calls:
            self.assertLess(call().status, 300)
        rows = self.usage(iid)
        self.assertEqual(self.total(rows, "API_CALLS"), len(calls), rows)
        for row in rows:
            self.assertEqual(row["hour"] % HOUR_MS, 0, row)
        # Another instance's usage is its own.
        other = self.instance(plan=STANDARD)
        self.assertEqual(self.usage(other), [])

    def test_storage_peak_when_the_last_call_writes(self):
        iid = self.instance(plan=STANDARD)
        w = self.bind(iid, plan=STANDARD)
        self.assertEqual(w.put("a", b"x" * 100).status, 204)
        self.assertEqual(w.put("b", b"y" * 250).status, 204)  # 350 bytes stored now
        rows = self.usage(iid)
        self.assertEqual(self.total(rows, "API_CALLS"), 2, rows)
        self.assertEqual(self.peak(rows), 350, "STORAGE_BYTES must be the peak stored (350), "
                         "including the last write: %r" % rows)

    def test_storage_peak_after_deletes(self):
        iid = self.instance(plan=STANDARD)
        w = self.bind(iid, plan=STANDARD)
        self.assertEqual(w.put("a", b"x" * 300).status, 204)
        self.assertEqual(w.put("b", b"y" * 200).status, 204)  # peak: 500
        self.assertEqual(w.put("a", b"x" * 50).status, 204)   # 250
        self.assertEqual(w.delete("b").status, 204)           # 50
        self.assertEqual(w.list().json, ["a"])
        rows = self.usage(iid)
        self.assertEqual(self.total(rows, "API_CALLS"), 5, rows)
        self.assertEqual(self.peak(rows), 500, rows)

    def test_usage_rows_carry_the_plan_id(self):
        iid = self.instance(plan=STANDARD)
        w = self.bind(iid, plan=STANDARD)
        self.assertEqual(w.put("a", b"x").status, 204)
        self.assertEqual(w.get("a").status, 200)
        rows = self.usage(iid)
        self.assertEqual(len(rows), 2, rows)
        self.assertEqual({x["plan_id"] for x in rows}, {STANDARD}, rows)

    def test_plan_change_lite_to_standard(self):
        iid = self.instance(plan=LITE)
        w = self.bind(iid, plan=LITE)
        self.assertEqual(w.put("small", b"s" * 10).status, 204)
        self.assertEqual(w.get("small").status, 200)
        r = self.osb.call("PATCH", "/v2/service_instances/" + iid,
                          body={"service_id": SERVICE_ID, "plan_id": STANDARD,
                                "previous_values": {"plan_id": LITE}})
        self.assertEqual((r.status, r.json), (200, {}), r)
        r = self.osb.call("GET", "/v2/service_instances/" + iid)
        self.assertEqual(r.json["plan_id"], STANDARD, r)
        # Standard's limits apply now, to the keys bound before the change too.
        self.assertEqual(w.put("big", b"b" * 2000).status, 204)
        self.assertEqual(w.get("big").status, 200)
        rows = self.usage(iid)
        self.assertEqual(self.total(rows, "API_CALLS", STANDARD), 2, rows)
        self.assertEqual(self.peak(rows, STANDARD), 2010, rows)
        self.assertEqual(self.total(rows, "API_CALLS"), 4, rows)
        self.assertEqual({x["plan_id"] for x in rows}, {LITE, STANDARD},
                         "rows before the change carry the lite plan: %r" % rows)
        self.assertEqual(self.total(rows, "API_CALLS", LITE), 2, rows)
        self.assertEqual(self.peak(rows, LITE), 10, rows)


if __name__ == "__main__":
    unittest.main()
