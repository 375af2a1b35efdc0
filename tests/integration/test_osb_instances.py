"""Service instances through the OSB API: provision, fetch, update, deprovision and
last_operation, sync and async, with each status code of spec/osb.md."""

import threading
import time
import unittest

from harness import BrokerTest, LITE, PREMIUM, SERVICE_ID, STANDARD


class ProvisionTest(BrokerTest):
    def test_created_then_identical_then_conflict(self):
        iid = self.uid()
        r = self.osb.provision(iid, params={"max_keys": 10})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json, {})
        r = self.osb.provision(iid, params={"max_keys": 10})
        self.assertEqual(r.status, 200, r)
        r = self.osb.provision(iid, params={"max_keys": 11})
        self.assertError(r, 409)
        r = self.osb.provision(iid, plan=LITE, params={"max_keys": 10})
        self.assertError(r, 409)
        r = self.osb.provision(iid, params={"max_keys": 10}, body_extra={"space_guid": "other"})
        self.assertError(r, 409)

    def test_required_fields(self):
        iid = self.uid()
        for body in ({"plan_id": STANDARD, "context": {}},
                     {"service_id": SERVICE_ID, "context": {}},
                     {"service_id": "", "plan_id": STANDARD, "context": {}},
                     {"service_id": SERVICE_ID, "plan_id": 7, "context": {}},
                     {"service_id": SERVICE_ID, "plan_id": STANDARD},
                     {"service_id": SERVICE_ID, "plan_id": STANDARD, "organization_guid": "o"},
                     {"service_id": SERVICE_ID, "plan_id": STANDARD, "context": "x"},
                     {"service_id": "unknown", "plan_id": STANDARD, "context": {}},
                     {"service_id": SERVICE_ID, "plan_id": "unknown", "context": {}}):
            r = self.osb.call("PUT", "/v2/service_instances/" + iid, body=body)
            self.assertError(r, 400)
        # organization_guid and space_guid are enough without a context (2.12/2.13 platforms).
        r = self.osb.call("PUT", "/v2/service_instances/" + iid,
                          body={"service_id": SERVICE_ID, "plan_id": STANDARD,
                                "organization_guid": "o", "space_guid": "s"})
        self.assertEqual(r.status, 201, r)

    def test_parameters_are_checked_against_the_plan_schema(self):
        iid = self.uid()
        for params in ({"max_keys": 0}, {"max_keys": "ten"}, {"max_keys": 100001},
                       {"unknown": 1}, ["not", "an", "object"]):
            r = self.osb.provision(iid, params=params)
            self.assertError(r, 400)
        r = self.osb.provision(iid, params={"max_keys": 100000})
        self.assertEqual(r.status, 201)
        r = self.osb.provision(self.uid(), plan=LITE, params={"max_keys": 101})
        self.assertError(r, 400)
        self.assertIn("max_keys", r.json["description"])

    def test_async_required(self):
        iid = self.uid()
        r = self.osb.provision(iid, plan=PREMIUM)
        self.assertError(r, 422, "AsyncRequired")
        r = self.osb.provision(iid, plan=PREMIUM, query=None) if False else r
        r = self.osb.call("GET", "/v2/service_instances/" + iid)
        self.assertEqual(r.status, 404, "a 4xx leaves nothing behind")

    def test_maintenance_info(self):
        r = self.osb.provision(self.uid(), plan=PREMIUM, incomplete=True,
                               body_extra={"maintenance_info": {"version": "1.1.0"}})
        self.assertError(r, 422, "MaintenanceInfoConflict")
        r = self.osb.provision(self.uid(), plan=STANDARD,
                               body_extra={"maintenance_info": {"version": "1.2.0"}})
        self.assertError(r, 422, "MaintenanceInfoConflict")
        r = self.osb.provision(self.uid(), plan=PREMIUM, incomplete=True,
                               body_extra={"maintenance_info": {"version": "1.2.0"}})
        self.assertEqual(r.status, 202, r)

    def test_bad_accepts_incomplete(self):
        r = self.osb.call("PUT", "/v2/service_instances/" + self.uid(),
                          body={"service_id": SERVICE_ID, "plan_id": STANDARD, "context": {}},
                          query={"accepts_incomplete": "yes"})
        self.assertError(r, 400)

    def test_fetch(self):
        iid = self.uid()
        self.assertEqual(self.osb.provision(iid, params={"max_keys": 5}).status, 201)
        r = self.osb.call("GET", "/v2/service_instances/" + iid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["service_id"], SERVICE_ID)
        self.assertEqual(r.json["plan_id"], STANDARD)
        self.assertEqual(r.json["parameters"], {"max_keys": 5})
        r = self.osb.call("GET", "/v2/service_instances/" + self.uid())
        self.assertError(r, 404)
        r = self.osb.call("GET", "/v2/service_instances/" + iid, query={"service_id": ""})
        self.assertError(r, 400)

    def test_crn_ids_are_decoded(self):
        crn = "crn:v1:osbill:public:starter-kv:us-south:a/acct-1:%s::" % self.uid()
        r = self.osb.provision(crn)
        self.assertEqual(r.status, 201, r)
        r = self.osb.call("GET", "/v2/service_instances/" + self.osb.q(crn))
        self.assertEqual(r.status, 200, r)
        r = self.osb.deprovision(crn)
        self.assertEqual(r.status, 200, r)


class DeprovisionTest(BrokerTest):
    def test_delete_then_gone(self):
        iid = self.uid()
        self.assertEqual(self.osb.provision(iid).status, 201)
        r = self.osb.deprovision(iid)
        self.assertEqual((r.status, r.json), (200, {}))
        r = self.osb.deprovision(iid)
        self.assertEqual((r.status, r.json), (410, {}))
        r = self.osb.deprovision(self.uid())
        self.assertEqual(r.status, 410)

    def test_missing_query_is_400(self):
        iid = self.uid()
        self.assertEqual(self.osb.provision(iid).status, 201)
        for q in ({}, {"service_id": SERVICE_ID}, {"plan_id": STANDARD},
                  {"service_id": "", "plan_id": STANDARD}):
            r = self.osb.call("DELETE", "/v2/service_instances/" + iid, query=q or None)
            self.assertError(r, 400)
        r = self.osb.call("GET", "/v2/service_instances/" + iid)
        self.assertEqual(r.status, 200, "a 400 leaves the instance alone")

    def test_reprovision_after_delete(self):
        iid = self.uid()
        self.assertEqual(self.osb.provision(iid, plan=LITE).status, 201)
        self.assertEqual(self.osb.deprovision(iid, plan=LITE).status, 200)
        self.assertEqual(self.osb.provision(iid, plan=STANDARD).status, 201)


class AsyncTest(BrokerTest):
    broker_kwargs = {"async_seconds": 1.0}

    def test_async_provision_and_delete_with_polling(self):
        iid = self.uid()
        r = self.osb.provision(iid, plan=PREMIUM, incomplete=True)
        self.assertEqual(r.status, 202, r)
        op = r.json["operation"]
        self.assertTrue(op)
        # A repeated PUT answers 202 with the same operation until it is done.
        r = self.osb.provision(iid, plan=PREMIUM, incomplete=True)
        self.assertEqual((r.status, r.json.get("operation")), (202, op))
        # Still provisioning: not fetchable, not bindable, not updatable.
        self.assertEqual(self.osb.call("GET", "/v2/service_instances/" + iid).status, 404)
        r = self.osb.last_op(iid, operation=op)
        self.assertEqual((r.status, r.json["state"]), (200, "in progress"))
        self.assertIsNotNone(r.header("Retry-After"))
        r = self.osb.wait_op(iid, operation=op)
        self.assertEqual((r.status, r.json["state"]), (200, "succeeded"), r)
        r = self.osb.provision(iid, plan=PREMIUM, incomplete=True)
        self.assertEqual(r.status, 200, "identical PUT after completion")
        r = self.osb.call("GET", "/v2/service_instances/" + iid)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["maintenance_info"], {"version": "1.2.0"})

        r = self.osb.deprovision(iid, plan=PREMIUM)
        self.assertError(r, 422, "AsyncRequired")
        r = self.osb.deprovision(iid, plan=PREMIUM, incomplete=True)
        self.assertEqual(r.status, 202, r)
        dop = r.json["operation"]
        r = self.osb.deprovision(iid, plan=PREMIUM, incomplete=True)
        self.assertEqual((r.status, r.json["operation"]), (202, dop))
        r = self.osb.wait_op(iid)
        self.assertIn(r.status, (200, 410), r)
        if r.status == 200:
            self.assertEqual(r.json["state"], "succeeded")
        # Once deleted, last_operation says 410 Gone (the deletion succeeded).
        r = self.osb.last_op(iid)
        self.assertEqual(r.status, 410, r)
        self.assertEqual(self.osb.deprovision(iid, plan=PREMIUM, incomplete=True).status, 410)

    def test_delete_during_create_halts_it(self):
        iid = self.uid()
        self.assertEqual(self.osb.provision(iid, plan=PREMIUM, incomplete=True).status, 202)
        r = self.osb.deprovision(iid, plan=PREMIUM, incomplete=True)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.osb.last_op(iid).status, 404)
        self.assertEqual(self.osb.call("GET", "/v2/service_instances/" + iid).status, 404)

    def test_last_operation_errors(self):
        self.assertError(self.osb.last_op(self.uid()), 404)
        iid = self.uid()
        self.assertEqual(self.osb.provision(iid, plan=PREMIUM, incomplete=True).status, 202)
        self.assertError(self.osb.last_op(iid, operation="not-this-one"), 400)
        r = self.osb.call("GET", "/v2/service_instances/%s/last_operation" % iid,
                          query={"plan_id": ""})
        self.assertError(r, 400)
        self.osb.wait_op(iid)

    def test_concurrency_error_while_async_create(self):
        iid = self.uid()
        self.assertEqual(self.osb.provision(iid, plan=PREMIUM, incomplete=True).status, 202)
        r = self.osb.call("PATCH", "/v2/service_instances/" + iid,
                          body={"service_id": SERVICE_ID, "parameters": {"max_keys": 3}})
        self.assertError(r, 422, "ConcurrencyError")
        r = self.osb.bind(iid, self.uid(), plan=PREMIUM)
        self.assertError(r, 422, "ConcurrencyError")
        self.assertEqual(self.osb.wait_op(iid).json["state"], "succeeded")

    def test_parallel_requests_on_one_instance(self):
        iid = self.uid()
        self.assertEqual(self.osb.provision(iid).status, 201)
        results = []

        def patch(n):
            c = self.broker.client()
            r = c.call("PATCH", "/v2/service_instances/" + iid,
                       body={"service_id": SERVICE_ID, "parameters": {"max_keys": 100 + n}})
            results.append(r)
            c.close()
        threads = [threading.Thread(target=patch, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r in results:
            self.assertIn(r.status, (200, 422), r)
            if r.status == 422:
                self.assertEqual(r.json["error"], "ConcurrencyError")
        self.assertTrue(any(r.status == 200 for r in results))


class UpdateTest(BrokerTest):
    def patch(self, iid, body):
        return self.osb.call("PATCH", "/v2/service_instances/" + iid, body=body)

    def test_plan_change_and_parameters(self):
        iid = self.uid()
        self.assertEqual(self.osb.provision(iid, plan=LITE, params={"max_keys": 10}).status, 201)
        r = self.patch(iid, {"service_id": SERVICE_ID, "plan_id": STANDARD,
                             "previous_values": {"plan_id": LITE}})
        self.assertEqual((r.status, r.json), (200, {}), r)
        r = self.osb.call("GET", "/v2/service_instances/" + iid)
        self.assertEqual(r.json["plan_id"], STANDARD)
        r = self.patch(iid, {"service_id": SERVICE_ID, "parameters": {"max_keys": 50}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.osb.call("GET", "/v2/service_instances/" + iid).json["parameters"],
                         {"max_keys": 50})

    def test_missing_plan_and_parameters_change_nothing(self):
        iid = self.uid()
        self.assertEqual(self.osb.provision(iid, params={"max_keys": 9}).status, 201)
        r = self.patch(iid, {"service_id": SERVICE_ID})
        self.assertEqual((r.status, r.json), (200, {}))
        got = self.osb.call("GET", "/v2/service_instances/" + iid).json
        self.assertEqual((got["plan_id"], got["parameters"]), (STANDARD, {"max_keys": 9}))

    def test_update_errors(self):
        iid = self.uid()
        self.assertEqual(self.osb.provision(iid, plan=LITE).status, 201)
        self.assertError(self.patch(iid, {"plan_id": STANDARD}), 400)
        self.assertError(self.patch(iid, {"service_id": "other"}), 400)
        self.assertError(self.patch(iid, {"service_id": SERVICE_ID, "plan_id": "nope"}), 400)
        self.assertError(self.patch(iid, {"service_id": SERVICE_ID, "parameters": {"max_keys": 101}}), 400)
        self.assertError(self.patch(iid, {"service_id": SERVICE_ID, "parameters": "x"}), 400)
        self.assertError(self.patch(iid, {"service_id": SERVICE_ID,
                                          "maintenance_info": {"version": "9.9.9"}}), 422,
                         "MaintenanceInfoConflict")
        self.assertError(self.patch(self.uid(), {"service_id": SERVICE_ID}), 404)
        got = self.osb.call("GET", "/v2/service_instances/" + iid).json
        self.assertEqual(got["plan_id"], LITE, "failed updates change nothing")

    def test_provider_refusal_reports_failure_flags(self):
        iid = self.uid()
        self.assertEqual(self.osb.provision(iid, params={"max_keys": 5}).status, 201)
        b = self.osb.bind(iid, self.uid())
        self.assertEqual(b.status, 201, b)
        creds = b.json["credentials"]
        from harness import Client
        kv = Client(self.broker.port)
        for k in ("a", "b", "c"):
            r = kv.request("PUT", "/kv/%s/%s" % (iid, k), raw=b"v", headers={"X-Api-Key": creds["apikey"]})
            self.assertEqual(r.status, 204, r)
        kv.close()
        r = self.patch(iid, {"service_id": SERVICE_ID, "parameters": {"max_keys": 2}})
        self.assertEqual(r.status, 422, r)
        self.assertIs(r.json["instance_usable"], True)
        self.assertIs(r.json["update_repeatable"], False)


class AsyncUpdateTest(BrokerTest):
    broker_kwargs = {"async_seconds": 0.5}

    def test_plan_change_to_async_plan_is_synchronous_here(self):
        iid = self.uid()
        self.assertEqual(self.osb.provision(iid, plan=STANDARD).status, 201)
        r = self.osb.call("PATCH", "/v2/service_instances/" + iid,
                          body={"service_id": SERVICE_ID, "plan_id": PREMIUM,
                                "maintenance_info": {"version": "1.2.0"}})
        self.assertEqual(r.status, 200, r)
        got = self.osb.call("GET", "/v2/service_instances/" + iid).json
        self.assertEqual(got["plan_id"], PREMIUM)
        self.assertEqual(got["maintenance_info"], {"version": "1.2.0"})


if __name__ == "__main__":
    unittest.main()
