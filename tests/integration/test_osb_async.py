"""libosb's asynchronous paths over real HTTP, against tests/tools/async_broker (a broker on
libosb's public API whose every operation is asynchronous): async update, bind and unbind,
their polling, the 422s and 410s around them, and failed operations with instance_usable /
update_repeatable, each with the exact status and error code of spec/osb.md."""

import os
import shutil
import sqlite3
import tempfile
import unittest

from harness import OSB, BrokerTest, Process, binary

SERVICE = "0f3c5a0e-7d1b-4c2e-9a57-a5e1d3b7c901"
ASYNC = "5d2e8f4a-1b3c-4e6f-8a9b-0c1d2e3f4a51"
FAIL = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c62"
POLLS = 2  # an operation is "in progress" on its first poll and final on its second


class AsyncBroker(Process):
    """tests/tools/async_broker on its own data directory."""

    def __init__(self, polls=POLLS, user="async-user", password="async-secret-pw"):
        self.data = tempfile.mkdtemp(prefix="async-broker-")
        self.user, self.password = user, password
        argv = [binary("ASYNC_BROKER", "tests/tools/async_broker"), "--listen", "127.0.0.1:0",
                "--data", self.data, "--user", user, "--password", password,
                "--polls", str(polls)]
        super().__init__(argv, name="async-broker")

    def client(self):
        return OSB(self.port, self.user, self.password)

    def cleanup(self):
        shutil.rmtree(self.data, ignore_errors=True)


class AsyncTest(BrokerTest):
    broker_class = AsyncBroker

    # ---- the OSB routes for this broker's service
    @staticmethod
    def _q(incomplete, **extra):
        q = dict(extra)
        if incomplete is not None:
            q["accepts_incomplete"] = "true" if incomplete else "false"
        return q or None

    def ipath(self, iid):
        return "/v2/service_instances/" + OSB.q(iid)

    def bpath(self, iid, bid):
        return "%s/service_bindings/%s" % (self.ipath(iid), OSB.q(bid))

    def provision(self, iid, plan=ASYNC, params=None, incomplete=True):
        body = {"service_id": SERVICE, "plan_id": plan,
                "context": {"platform": "osbill", "account_id": "acct-1"}}
        if params is not None:
            body["parameters"] = params
        return self.osb.call("PUT", self.ipath(iid), body=body, query=self._q(incomplete))

    def patch(self, iid, body, incomplete=True):
        return self.osb.call("PATCH", self.ipath(iid), body=dict(body, service_id=SERVICE),
                             query=self._q(incomplete))

    def deprovision(self, iid, plan=ASYNC, incomplete=True):
        return self.osb.call("DELETE", self.ipath(iid),
                             query=self._q(incomplete, service_id=SERVICE, plan_id=plan))

    def get(self, path):
        return self.osb.call("GET", path)

    def last_op(self, iid, **query):
        return self.osb.call("GET", self.ipath(iid) + "/last_operation", query=query or None)

    def bind(self, iid, bid, plan=ASYNC, params=None, incomplete=True):
        body = {"service_id": SERVICE, "plan_id": plan,
                "bind_resource": {"app_guid": "app-1"}}
        if params is not None:
            body["parameters"] = params
        return self.osb.call("PUT", self.bpath(iid, bid), body=body, query=self._q(incomplete))

    def unbind(self, iid, bid, plan=ASYNC, incomplete=True):
        return self.osb.call("DELETE", self.bpath(iid, bid),
                             query=self._q(incomplete, service_id=SERVICE, plan_id=plan))

    def binding_last_op(self, iid, bid, **query):
        return self.osb.call("GET", self.bpath(iid, bid) + "/last_operation",
                             query=query or None)

    def poll(self, fn, op, final):
        """Polls an operation the broker finishes on its POLLS-th poll: in progress (with
        Retry-After) until then, final afterwards."""
        for _ in range(POLLS - 1):
            r = fn(operation=op)
            self.assertEqual((r.status, r.json["state"]), (200, "in progress"), r)
            self.assertTrue(r.header("Retry-After"), r)
            self.assertIn("description", r.json)
        r = fn(operation=op)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["state"], final, r)
        self.assertIsNone(r.header("Retry-After"))
        return r

    def accepted(self, r):
        self.assertEqual(r.status, 202, r)
        op = r.json.get("operation")
        self.assertTrue(op, r)
        return op

    def instance(self, plan=ASYNC, params=None):
        iid = self.uid("inst")
        op = self.accepted(self.provision(iid, plan=plan, params=params))
        self.poll(lambda **q: self.last_op(iid, **q), op, "succeeded")
        return iid

    def binding(self, iid, plan=ASYNC, params=None):
        bid = self.uid("bind")
        op = self.accepted(self.bind(iid, bid, plan=plan, params=params))
        self.poll(lambda **q: self.binding_last_op(iid, bid, **q), op, "succeeded")
        return bid


class InstanceTest(AsyncTest):
    def test_provision_without_accepts_incomplete_is_async_required(self):
        iid = self.uid()
        for incomplete in (None, False):
            self.assertError(self.provision(iid, incomplete=incomplete), 422, "AsyncRequired")
        self.assertError(self.get(self.ipath(iid)), 404)
        self.assertError(self.last_op(iid), 404)

    def test_async_provision_with_polling(self):
        iid = self.uid()
        op = self.accepted(self.provision(iid))
        r = self.provision(iid)
        self.assertEqual((r.status, r.json.get("operation")), (202, op), "repeated PUT")
        self.assertError(self.provision(iid, incomplete=False), 422, "AsyncRequired")
        self.assertError(self.get(self.ipath(iid)), 404)  # still provisioning
        self.assertError(self.bind(iid, self.uid()), 422, "ConcurrencyError")
        self.assertError(self.patch(iid, {"parameters": {"x": 1}}), 422, "ConcurrencyError")
        self.poll(lambda **q: self.last_op(iid, **q), op, "succeeded")
        self.assertEqual(self.provision(iid).status, 200)
        r = self.get(self.ipath(iid))
        self.assertEqual((r.status, r.json["plan_id"]), (200, ASYNC), r)

    def test_provider_write_is_recorded_with_the_call_or_not_at_all(self):
        good, bad = self.uid(), self.uid()
        self.accepted(self.provision(good))
        self.assertError(self.provision(bad, params={"fail_write": True}), 500)
        self.assertError(self.last_op(bad), 404)  # libosb recorded nothing of the failed call
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.broker.data, "broker.db"),
                             uri=True)
        try:
            rows = dict(db.execute("SELECT instance_id, operation FROM provider_ledger"))
            self.assertEqual(rows.get(good), "provision")
            self.assertNotIn(bad, rows)
            self.assertEqual(db.execute("SELECT count(*) FROM instances WHERE id = ?",
                                        (bad,)).fetchone()[0], 0)
        finally:
            db.close()
        op = self.accepted(self.provision(bad))  # tried again without the failure: created
        self.poll(lambda **q: self.last_op(bad, **q), op, "succeeded")

    def test_async_update_concurrency_errors_then_polling(self):
        iid = self.instance(params={"size": 1})
        self.assertError(self.patch(iid, {"parameters": {"size": 2}}, incomplete=False), 422,
                         "AsyncRequired")
        op = self.accepted(self.patch(iid, {"parameters": {"size": 2}}))
        # While the update runs: GET, another PATCH, DELETE and PUT are ConcurrencyErrors.
        self.assertError(self.get(self.ipath(iid)), 422, "ConcurrencyError")
        self.assertError(self.patch(iid, {"parameters": {"size": 3}}), 422, "ConcurrencyError")
        self.assertError(self.deprovision(iid), 422, "ConcurrencyError")
        self.assertError(self.deprovision(iid, incomplete=False), 422, "ConcurrencyError")
        self.assertError(self.provision(iid, params={"size": 1}), 422, "ConcurrencyError")
        self.assertError(self.last_op(iid, operation="not-this-one"), 400)
        r = self.poll(lambda **q: self.last_op(iid, **q), op, "succeeded")
        self.assertNotIn("instance_usable", r.json)
        self.assertNotIn("update_repeatable", r.json)
        r = self.get(self.ipath(iid))
        self.assertEqual((r.status, r.json["parameters"]), (200, {"size": 2}), r)
        # A PATCH that changes nothing answers 200 {} at once, without an operation.
        r = self.patch(iid, {"parameters": {"size": 2}})
        self.assertEqual((r.status, r.json), (200, {}), r)

    def test_async_deprovision_then_410(self):
        iid = self.instance()
        self.assertError(self.deprovision(iid, incomplete=False), 422, "AsyncRequired")
        self.assertEqual(self.get(self.ipath(iid)).status, 200, "a 4xx changes nothing")
        op = self.accepted(self.deprovision(iid))
        r = self.deprovision(iid)
        self.assertEqual((r.status, r.json.get("operation")), (202, op), "repeated DELETE")
        self.assertError(self.deprovision(iid, incomplete=False), 422, "AsyncRequired")
        self.assertError(self.bind(iid, self.uid()), 422, "ConcurrencyError")
        self.assertError(self.patch(iid, {"parameters": {"x": 1}}), 422, "ConcurrencyError")
        self.poll(lambda **q: self.last_op(iid, **q), op, "succeeded")
        r = self.last_op(iid)
        self.assertEqual((r.status, r.json), (410, {}), r)
        r = self.last_op(iid, operation=op)
        self.assertEqual(r.status, 410, r)
        self.assertEqual(self.deprovision(iid).status, 410)
        self.assertError(self.get(self.ipath(iid)), 404)

    def test_delete_during_async_create_halts_it(self):
        iid = self.uid()
        self.accepted(self.provision(iid))
        r = self.deprovision(iid)
        self.assertEqual((r.status, r.json), (200, {}), r)
        self.assertError(self.last_op(iid), 404)
        self.assertError(self.get(self.ipath(iid)), 404)


class BindingTest(AsyncTest):
    def test_bind_without_accepts_incomplete_is_async_required(self):
        iid = self.instance()
        bid = self.uid()
        for incomplete in (None, False):
            self.assertError(self.bind(iid, bid, incomplete=incomplete), 422, "AsyncRequired")
        self.assertError(self.get(self.bpath(iid, bid)), 404)
        self.assertError(self.binding_last_op(iid, bid), 404)

    def test_async_bind_with_polling(self):
        iid = self.instance()
        bid = self.uid()
        r = self.bind(iid, bid)
        op = self.accepted(r)
        self.assertNotIn("credentials", r.json, "a 202 carries no credentials")
        r = self.bind(iid, bid)
        self.assertEqual((r.status, r.json), (202, {"operation": op}), "repeated PUT")
        self.assertError(self.bind(iid, bid, incomplete=False), 422, "AsyncRequired")
        self.assertError(self.bind(iid, bid, params={"other": 1}), 409)
        self.assertError(self.get(self.bpath(iid, bid)), 404)  # still being created
        self.poll(lambda **q: self.binding_last_op(iid, bid, **q), op, "succeeded")
        r = self.get(self.bpath(iid, bid))
        self.assertEqual(r.status, 200, r)
        creds = r.json["credentials"]
        self.assertEqual(creds, {"username": bid, "password": "async-secret"})
        r = self.bind(iid, bid)
        self.assertEqual((r.status, r.json["credentials"]), (200, creds), "identical PUT")
        r = self.binding_last_op(iid, bid)
        self.assertEqual((r.status, r.json["state"]), (200, "succeeded"))

    def test_async_unbind_then_410(self):
        iid = self.instance()
        bid = self.binding(iid)
        self.assertError(self.unbind(iid, bid, incomplete=False), 422, "AsyncRequired")
        self.assertEqual(self.get(self.bpath(iid, bid)).status, 200, "a 4xx changes nothing")
        r = self.unbind(iid, bid)
        op = self.accepted(r)
        self.assertEqual(r.json, {"operation": op})
        r = self.unbind(iid, bid)
        self.assertEqual((r.status, r.json), (202, {"operation": op}), "repeated DELETE")
        self.assertError(self.unbind(iid, bid, incomplete=False), 422, "AsyncRequired")
        self.assertError(self.bind(iid, bid), 422, "ConcurrencyError")
        self.poll(lambda **q: self.binding_last_op(iid, bid, **q), op, "succeeded")
        r = self.binding_last_op(iid, bid)
        self.assertEqual((r.status, r.json), (410, {}), r)
        self.assertEqual(self.binding_last_op(iid, bid, operation=op).status, 410)
        r = self.unbind(iid, bid)
        self.assertEqual((r.status, r.json), (410, {}), r)
        self.assertError(self.get(self.bpath(iid, bid)), 404)
        # The id is free again.
        self.accepted(self.bind(iid, bid))

    def test_unbind_during_async_bind_halts_it(self):
        iid = self.instance()
        bid = self.uid()
        self.accepted(self.bind(iid, bid))
        r = self.unbind(iid, bid)
        self.assertEqual((r.status, r.json), (200, {}), r)
        self.assertError(self.get(self.bpath(iid, bid)), 404)
        self.assertEqual(self.unbind(iid, bid).status, 410)

    def test_binding_last_operation_errors(self):
        iid = self.instance()
        bid = self.uid()
        op = self.accepted(self.bind(iid, bid))
        for query in ({"service_id": ""}, {"plan_id": ""}, {"operation": ""},
                      {"operation": "not-this-one"}, {"operation": op + "x"}):
            self.assertError(self.binding_last_op(iid, bid, **query), 400)
        self.assertError(self.binding_last_op(iid, self.uid()), 404)
        self.assertError(self.binding_last_op(self.uid(), bid), 404)
        # The 400s were not polls: the operation still needs all of its own.
        self.poll(lambda **q: self.binding_last_op(iid, bid, service_id=SERVICE,
                                                   plan_id=ASYNC, **q), op, "succeeded")


class FailureTest(AsyncTest):
    def test_failed_provision(self):
        iid = self.uid()
        op = self.accepted(self.provision(iid, plan=FAIL))
        r = self.poll(lambda **q: self.last_op(iid, **q), op, "failed")
        self.assertTrue(r.json.get("description"), r)
        # instance_usable and update_repeatable belong to failed updates and deletions only.
        self.assertNotIn("instance_usable", r.json)
        self.assertNotIn("update_repeatable", r.json)
        r = self.last_op(iid)
        self.assertEqual((r.status, r.json["state"]), (200, "failed"), "the outcome stays")
        self.assertError(self.get(self.ipath(iid)), 404)
        self.assertError(self.bind(iid, self.uid(), plan=FAIL), 404)
        # An identical request may try again: a new operation.
        op2 = self.accepted(self.provision(iid, plan=FAIL))
        self.assertNotEqual(op2, op)
        self.poll(lambda **q: self.last_op(iid, **q), op2, "failed")

    def test_failed_update_reports_usable_and_not_repeatable(self):
        params = {"succeed": ["provision", "deprovision"]}
        iid = self.instance(plan=FAIL, params=params)
        op = self.accepted(self.patch(iid, {"parameters": {"succeed": ["provision"]}}))
        r = self.poll(lambda **q: self.last_op(iid, **q), op, "failed")
        self.assertIs(r.json.get("instance_usable"), True, r)
        self.assertIs(r.json.get("update_repeatable"), False, r)
        # Asked again, the answer is the same.
        r = self.last_op(iid, operation=op)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["state"], r.json.get("instance_usable"),
                          r.json.get("update_repeatable")), ("failed", True, False), r)
        # A failed update changes nothing; the instance serves and can be deleted.
        r = self.get(self.ipath(iid))
        self.assertEqual((r.status, r.json["parameters"]), (200, params), r)
        dop = self.accepted(self.deprovision(iid, plan=FAIL))
        self.poll(lambda **q: self.last_op(iid, **q), dop, "succeeded")
        self.assertEqual(self.last_op(iid).status, 410)

    def test_failed_deprovision_reports_instance_not_usable(self):
        iid = self.instance(plan=FAIL, params={"succeed": ["provision"]})
        op = self.accepted(self.deprovision(iid, plan=FAIL))
        r = self.poll(lambda **q: self.last_op(iid, **q), op, "failed")
        self.assertIs(r.json.get("instance_usable"), False, r)
        self.assertNotIn("update_repeatable", r.json, "only failed updates say that")
        r = self.last_op(iid)
        self.assertEqual((r.status, r.json["state"], r.json.get("instance_usable")),
                         (200, "failed", False), r)
        self.assertNotIn("update_repeatable", r.json)
        # The instance is still there (not 410) and the DELETE may be sent again.
        self.assertEqual(self.get(self.ipath(iid)).status, 200)
        op2 = self.accepted(self.deprovision(iid, plan=FAIL))
        self.assertNotEqual(op2, op)
        self.poll(lambda **q: self.last_op(iid, **q), op2, "failed")

    def test_failed_bind(self):
        iid = self.instance(plan=FAIL, params={"succeed": ["provision"]})
        bid = self.uid()
        op = self.accepted(self.bind(iid, bid, plan=FAIL))
        r = self.poll(lambda **q: self.binding_last_op(iid, bid, **q), op, "failed")
        self.assertTrue(r.json.get("description"), r)
        self.assertNotIn("instance_usable", r.json)
        r = self.binding_last_op(iid, bid)
        self.assertEqual((r.status, r.json["state"]), (200, "failed"), r)
        self.assertError(self.get(self.bpath(iid, bid)), 404)
        # A failed bind may be tried again.
        self.accepted(self.bind(iid, bid, plan=FAIL))

    def test_failed_unbind_keeps_the_binding(self):
        iid = self.instance(plan=FAIL, params={"succeed": ["provision"]})
        bid = self.binding(iid, plan=FAIL, params={"succeed": ["bind"]})
        op = self.accepted(self.unbind(iid, bid, plan=FAIL))
        r = self.poll(lambda **q: self.binding_last_op(iid, bid, **q), op, "failed")
        self.assertNotIn("instance_usable", r.json)
        r = self.binding_last_op(iid, bid)
        self.assertEqual((r.status, r.json["state"]), (200, "failed"), r)
        r = self.get(self.bpath(iid, bid))
        self.assertEqual((r.status, r.json["credentials"]["username"]), (200, bid), r)
        self.accepted(self.unbind(iid, bid, plan=FAIL))


if __name__ == "__main__":
    unittest.main()
