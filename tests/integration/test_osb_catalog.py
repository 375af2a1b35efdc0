"""GET /v2/catalog and the checks every OSB request passes: authentication, API version,
originating and request identities."""

import base64
import json
import unittest

from harness import BrokerTest, SERVICE_ID, STANDARD, basic


class CatalogTest(BrokerTest):
    def test_catalog_is_the_shipped_file(self):
        r = self.osb.call("GET", "/v2/catalog")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "application/json")
        with open("../../examples/starter-broker/catalog.json") as f:
            shipped = json.load(f)
        self.assertEqual(r.json, shipped)
        svc = r.json["services"][0]
        self.assertEqual(svc["id"], SERVICE_ID)
        self.assertEqual([p["name"] for p in svc["plans"]], ["lite", "standard", "premium"])

    def test_versions_2_12_to_2_17_accepted(self):
        for minor in range(12, 18):
            r = self.osb.call("GET", "/v2/catalog", headers={"X-Broker-API-Version": "2.%d" % minor})
            self.assertEqual(r.status, 200, (minor, r))

    def test_bad_versions_are_412(self):
        for v in ("1.0", "3.0", "2.11", "2", "abc", "2.x", "", "2.17.1"):
            r = self.osb.call("GET", "/v2/catalog", headers={"X-Broker-API-Version": v})
            self.assertError(r, 412)
        r = self.osb.call("GET", "/v2/catalog", version=False)
        self.assertError(r, 412)
        self.assertIn("X-Broker-API-Version", r.json["description"])

    def test_authentication(self):
        r = self.osb.call("GET", "/v2/catalog", auth=False)
        self.assertError(r, 401)
        self.assertTrue(r.header("WWW-Authenticate").startswith("Basic"))
        for bad in (basic(self.broker.user, "wrong"), basic("someone", self.broker.password),
                    basic(self.broker.user, self.broker.password + "x"),
                    "Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(),
                    "Bearer abc.def.ghi", "Digest foo"):
            r = self.osb.call("GET", "/v2/catalog", auth=False, headers={"Authorization": bad})
            self.assertError(r, 401)
        # Unauthenticated requests learn nothing, not even about the version.
        r = self.osb.call("GET", "/v2/catalog", auth=False, version=False)
        self.assertEqual(r.status, 401)

    def test_request_identity_is_echoed(self):
        r = self.osb.call("GET", "/v2/catalog",
                          headers={"X-Broker-API-Request-Identity": "e26cea4a-ec6d-4b4e-8c6b-4a2fd1b1b1f3"})
        self.assertEqual(r.header("X-Broker-API-Request-Identity"),
                         "e26cea4a-ec6d-4b4e-8c6b-4a2fd1b1b1f3")
        # Echoed on errors too, so a platform can match its logs.
        r = self.osb.call("GET", "/v2/service_instances/nope",
                          headers={"X-Broker-API-Request-Identity": "rid-404"})
        self.assertEqual(r.status, 404)
        self.assertEqual(r.header("X-Broker-API-Request-Identity"), "rid-404")

    def test_originating_identity(self):
        good = "osbill " + base64.b64encode(json.dumps({"iam_id": "osbill-123"}).encode()).decode()
        r = self.osb.call("GET", "/v2/catalog", headers={"X-Broker-API-Originating-Identity": good})
        self.assertEqual(r.status, 200, r)
        for bad in ("osbill", "osbill !!!", " " + good.split(" ")[1],
                    "osbill " + base64.b64encode(b"[1,2]").decode(),
                    "osbill " + base64.b64encode(b"{not json").decode()):
            r = self.osb.call("GET", "/v2/catalog", headers={"X-Broker-API-Originating-Identity": bad})
            self.assertError(r, 400)
        iid = self.uid()
        r = self.osb.provision(iid, headers={"X-Broker-API-Originating-Identity": "osbill !!"})
        self.assertError(r, 400)
        r = self.osb.call("GET", "/v2/service_instances/" + iid)
        self.assertEqual(r.status, 404, "a rejected request must leave nothing behind")

    def test_unknown_routes_and_methods(self):
        r = self.osb.call("GET", "/v2/nothing")
        self.assertError(r, 404)
        r = self.osb.call("POST", "/v2/catalog", body={})
        self.assertError(r, 405)
        self.assertIn("GET", r.header("Allow"))

    def test_errors_use_the_osb_shape(self):
        r = self.osb.call("GET", "/v2/catalog", version=False)
        self.assertEqual(set(r.json), {"description"})
        r = self.osb.provision(self.uid(), plan="no-such-plan")
        self.assertError(r, 400)
        self.assertNotIn("errors", r.json)


if __name__ == "__main__":
    unittest.main()
