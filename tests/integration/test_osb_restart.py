"""The broker's state is durable: a restart, or a crash, in the middle of an asynchronous
operation forgets nothing, and the operation then completes."""

import unittest

from harness import Broker, Client, PREMIUM, STANDARD


class RestartTest(unittest.TestCase):
    def setUp(self):
        self.broker = Broker(async_seconds=1.5).start()

    def tearDown(self):
        try:
            self.broker.stop()
        finally:
            self.broker.cleanup()

    def check_survives(self, kill):
        osb = self.broker.client()
        sync_id, async_id, bid = "sync-inst", "async-inst", "bind-1"
        self.assertEqual(osb.provision(sync_id, params={"max_keys": 7}).status, 201)
        creds = osb.bind(sync_id, bid).json["credentials"]
        kv = Client(self.broker.port)
        self.assertEqual(kv.request("PUT", "/kv/%s/k" % sync_id, raw=b"kept",
                                    headers={"X-Api-Key": creds["apikey"]}).status, 204)
        kv.close()
        r = osb.provision(async_id, plan=PREMIUM, incomplete=True)
        self.assertEqual(r.status, 202)
        op = r.json["operation"]
        self.assertEqual(osb.last_op(async_id).json["state"], "in progress")
        osb.close()

        self.broker.restart(kill=kill)
        osb = self.broker.client()
        # The in-flight operation is still known and completes after the restart.
        r = osb.provision(async_id, plan=PREMIUM, incomplete=True)
        self.assertEqual((r.status, r.json.get("operation")), (202, op))
        r = osb.wait_op(async_id, operation=op)
        self.assertEqual((r.status, r.json["state"]), (200, "succeeded"), r)
        # Instances, parameters, bindings and their credentials survived.
        r = osb.call("GET", "/v2/service_instances/" + sync_id)
        self.assertEqual((r.status, r.json["parameters"]), (200, {"max_keys": 7}))
        r = osb.bind(sync_id, bid)
        self.assertEqual((r.status, r.json["credentials"]), (200, creds))
        kv = Client(self.broker.port)
        r = kv.request("GET", "/kv/%s/k" % sync_id, headers={"X-Api-Key": creds["apikey"]})
        self.assertEqual((r.status, r.raw), (200, b"kept"))
        kv.close()
        # An async delete interrupted by a restart completes too.
        r = osb.deprovision(async_id, plan=PREMIUM, incomplete=True)
        self.assertEqual(r.status, 202)
        osb.close()
        self.broker.restart(kill=kill)
        osb = self.broker.client()
        r = osb.wait_op(async_id)
        self.assertIn(r.status, (200, 410))
        self.assertEqual(osb.last_op(async_id).status, 410)
        self.assertEqual(osb.deprovision(sync_id).status, 200)
        osb.close()

    def test_restart_with_sigterm(self):
        self.check_survives(kill=False)

    def test_crash_with_sigkill(self):
        self.check_survives(kill=True)


if __name__ == "__main__":
    unittest.main()
