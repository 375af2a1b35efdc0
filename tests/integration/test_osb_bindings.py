"""Service bindings through the OSB API: bind, fetch, unbind, idempotency, the fixed error
codes, rotation, and credentials that stay the same on identical requests."""

import unittest

from harness import BrokerTest, Client, LITE, PREMIUM, SERVICE_ID, STANDARD


class BindingTest(BrokerTest):
    def instance(self, plan=STANDARD):
        iid = self.uid("inst")
        r = self.osb.provision(iid, plan=plan)
        self.assertEqual(r.status, 201, r)
        return iid

    def test_bind_identical_conflict_fetch_unbind(self):
        iid, bid = self.instance(), self.uid("bind")
        r = self.osb.bind(iid, bid, params={"role": "reader"})
        self.assertEqual(r.status, 201, r)
        creds = r.json["credentials"]
        self.assertEqual(set(creds), {"url", "apikey", "role"})
        self.assertEqual(creds["role"], "reader")
        self.assertTrue(creds["url"].endswith("/kv/" + iid))
        self.assertEqual(len(creds["apikey"]), 64)
        # Identical: 200 with the very same credentials.
        r = self.osb.bind(iid, bid, params={"role": "reader"})
        self.assertEqual((r.status, r.json["credentials"]), (200, creds))
        # Same id, different parameters: 409.
        r = self.osb.bind(iid, bid, params={"role": "writer"})
        self.assertError(r, 409)
        r = self.osb.call("GET", "/v2/service_instances/%s/service_bindings/%s" % (iid, bid))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["credentials"], creds)
        self.assertEqual(r.json["parameters"], {"role": "reader"})
        r = self.osb.unbind(iid, bid)
        self.assertEqual((r.status, r.json), (200, {}))
        r = self.osb.unbind(iid, bid)
        self.assertEqual((r.status, r.json), (410, {}))
        r = self.osb.call("GET", "/v2/service_instances/%s/service_bindings/%s" % (iid, bid))
        self.assertError(r, 404)
        # The key no longer opens the data API.
        kv = Client(self.broker.port)
        r = kv.request("GET", "/kv/%s" % iid, headers={"X-Api-Key": creds["apikey"]})
        self.assertEqual(r.status, 401)
        kv.close()

    def test_two_bindings_get_different_keys(self):
        iid = self.instance()
        a = self.osb.bind(iid, self.uid()).json["credentials"]["apikey"]
        b = self.osb.bind(iid, self.uid()).json["credentials"]["apikey"]
        self.assertNotEqual(a, b)

    def test_requires_app(self):
        iid = self.instance()
        r = self.osb.bind(iid, self.uid(), params={"scope": "app"})
        self.assertError(r, 422, "RequiresApp")
        r = self.osb.bind(iid, self.uid(), params={"scope": "app"},
                          body_extra={"bind_resource": {"app_guid": "app-1"}})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["credentials"]["app_guid"], "app-1")

    def test_bind_errors(self):
        iid = self.instance()
        self.assertError(self.osb.bind(self.uid(), self.uid()), 404)
        self.assertError(self.osb.bind(iid, self.uid(), plan=LITE), 400)  # not the instance's plan
        self.assertError(self.osb.bind(iid, self.uid(), params={"role": "admin"}), 400)
        self.assertError(self.osb.bind(iid, self.uid(), params={"role": 1}), 400)
        r = self.osb.call("PUT", "/v2/service_instances/%s/service_bindings/x" % iid,
                          body={"plan_id": STANDARD})
        self.assertError(r, 400)
        r = self.osb.bind(iid, self.uid(), body_extra={"bind_resource": "app"})
        self.assertError(r, 400)

    def test_unbind_errors(self):
        iid = self.instance()
        bid = self.uid()
        self.assertEqual(self.osb.bind(iid, bid).status, 201)
        r = self.osb.call("DELETE", "/v2/service_instances/%s/service_bindings/%s" % (iid, bid))
        self.assertError(r, 400)
        r = self.osb.call("DELETE", "/v2/service_instances/%s/service_bindings/%s" % (iid, bid),
                          query={"service_id": SERVICE_ID})
        self.assertError(r, 400)
        self.assertEqual(self.osb.unbind(iid, self.uid()).status, 410)
        self.assertEqual(self.osb.unbind(self.uid(), self.uid()).status, 410)
        self.assertEqual(self.osb.unbind(iid, bid).status, 200)

    def test_binding_last_operation(self):
        iid = self.instance()
        bid = self.uid()
        self.assertEqual(self.osb.bind(iid, bid).status, 201)
        r = self.osb.call("GET", "/v2/service_instances/%s/service_bindings/%s/last_operation"
                          % (iid, bid))
        self.assertEqual((r.status, r.json["state"]), (200, "succeeded"))
        r = self.osb.call("GET", "/v2/service_instances/%s/service_bindings/%s/last_operation"
                          % (iid, self.uid()))
        self.assertError(r, 404)

    def test_deprovision_removes_bindings(self):
        iid = self.instance()
        bid = self.uid()
        creds = self.osb.bind(iid, bid).json["credentials"]
        self.assertEqual(self.osb.deprovision(iid).status, 200)
        self.assertEqual(self.osb.unbind(iid, bid).status, 410)
        kv = Client(self.broker.port)
        self.assertEqual(kv.request("GET", "/kv/" + iid, headers={"X-Api-Key": creds["apikey"]}).status, 401)
        kv.close()


class RotationTest(BrokerTest):
    broker_kwargs = {"async_seconds": 0.3}

    def test_rotate_premium_binding(self):
        iid = self.uid()
        self.assertEqual(self.osb.provision(iid, plan=PREMIUM, incomplete=True).status, 202)
        self.assertEqual(self.osb.wait_op(iid).json["state"], "succeeded")
        old = self.uid()
        r = self.osb.bind(iid, old, plan=PREMIUM)
        self.assertEqual(r.status, 201, r)
        new = self.uid()
        r = self.osb.bind(iid, new, plan=PREMIUM, body_extra={"predecessor_binding_id": old})
        self.assertEqual(r.status, 201, r)
        r = self.osb.bind(iid, self.uid(), plan=PREMIUM,
                          body_extra={"predecessor_binding_id": "no-such-binding"})
        self.assertError(r, 400)

    def test_rotation_needs_a_rotatable_plan(self):
        iid = self.uid()
        self.assertEqual(self.osb.provision(iid).status, 201)
        old = self.uid()
        self.assertEqual(self.osb.bind(iid, old).status, 201)
        r = self.osb.bind(iid, self.uid(), body_extra={"predecessor_binding_id": old})
        self.assertError(r, 400)


if __name__ == "__main__":
    unittest.main()
