"""A deliberately wrong Open Service Broker, for the tests of the platform's broker validation.

In mode "good" it is a small but correct OSB 2.17 broker (with IBM Cloud's enable/disable
extension) serving one service made from the offering it is told about; every other mode
breaks one thing the way real brokers get it wrong, so a test can check that the platform's
scorecard names exactly that failure:

  bad_json         GET /v2/catalog answers 200 with a body that is not JSON
  missing_service  the catalog lists another service, not the offering's
  plan_mismatch    the first plan is renamed, the second has bindable flipped, the last is absent
  wrong_codes      200 instead of 410 on unbind and deprovision of what is gone; no 412 without
                   X-Broker-API-Version; any credentials accepted; 201 for an unknown plan
  errors_500       provisioning answers 500 (everything else stays correct)
  hang             GET /v2/catalog answers only after hang_s seconds
  async            provision and deprovision answer 202 and finish after a few polls, with
                   Retry-After
  dashboard        the catalog declares the dashboard_client it is given

Modes for the platform's side (the resource controller), each breaking provisioning, binding or
deprovisioning in one way (everything else stays correct):

  provision_hang           PUT of an instance keeps it, then answers 201 only after hang_s
  provision_200_garbage    PUT keeps the instance and answers 200 with a body that is not JSON
  provision_201_garbage    the same with 201
  provision_201_empty      PUT keeps the instance and answers 201 with an empty body
  provision_202_nonobject  PUT keeps the instance and answers 202 with a JSON array
  provision_204            PUT keeps the instance and answers 204 (a 2xx OSB does not define)
  provision_408            PUT answers 408 (and keeps nothing)
  provision_400            PUT answers 400 (and keeps nothing)
  provision_422            PUT answers 422 ConcurrencyError (and keeps nothing)
  async_retry_after        PUT answers 202; the first last_operation answers "in progress" with
                           Retry-After: retry_after_s, the next one "succeeded"
  async_garbage_poll       PUT answers 202; last_operation answers a body that is not JSON
                           garbage_polls times, then "succeeded"
  async_failed             PUT answers 202; last_operation answers "failed" (and drops it)
  bind_500                 PUT of a binding keeps it and answers 500
  bind_400                 PUT of a binding answers 400 (and keeps nothing)
  deprovision_500          DELETE of an instance answers 500 fail_deletes times, then 200

A broker can also break one way per plan: plan_modes {plan_id: mode} picks the mode of the
requests naming that plan (the others follow mode).

Used in-process by tests (BadBroker(...).start()), or alone:
  python3 bad_broker.py --mode wrong_codes --port 8099 --service-id ID --service-name NAME \
      --plan ID:NAME[:MODE] [--plan ...]
Every request is kept in .requests (method, path, headers, time) for the tests to inspect."""

import argparse
import base64
import http.server
import json
import threading
import time
import urllib.parse

MODES = ("good", "bad_json", "missing_service", "plan_mismatch", "wrong_codes", "errors_500",
         "hang", "async", "dashboard",
         "provision_hang", "provision_200_garbage", "provision_201_garbage", "provision_201_empty",
         "provision_202_nonobject", "provision_204", "provision_408", "provision_400",
         "provision_422", "async_retry_after", "async_garbage_poll", "async_failed", "bind_500",
         "bind_400", "deprovision_500")

GARBAGE = b"<html><body>502 Bad Gateway</body></html>"
# provisions answered "successfully" but wrongly: status, raw body (the instance is kept)
BROKEN_PROVISION = {"provision_200_garbage": (200, GARBAGE),
                    "provision_201_garbage": (201, GARBAGE),
                    "provision_201_empty": (201, b""),
                    "provision_202_nonobject": (202, b'["provision"]'),
                    "provision_204": (204, b"")}
# provisions refused: status, OSB error body (nothing is kept)
REFUSED_PROVISION = {"provision_408": (408, {"description": "The request timed out."}),
                     "provision_400": (400, {"description": "The parameters are wrong."}),
                     "provision_422": (422, {"error": "ConcurrencyError",
                                             "description": "Another operation is running."})}
NEW_ASYNC = ("async_retry_after", "async_garbage_poll", "async_failed")


class BadBroker:
    def __init__(self, service_id, service_name, plans, mode="good", user="bad-user",
                 password="bad-broker-pw", hang_s=5.0, dashboard_client=None, port=0,
                 plan_modes=None, retry_after_s=4, garbage_polls=2, fail_deletes=2):
        """plans: [{"id", "name", "free": bool, "bindable": bool}]"""
        self.plan_modes = dict(plan_modes or {})
        for m in [mode] + list(self.plan_modes.values()):
            if m not in MODES:
                raise ValueError("unknown mode %r" % m)
        self.retry_after_s, self.garbage_polls = retry_after_s, garbage_polls
        self.fail_deletes = fail_deletes
        self.polls = {}            # instance id -> last_operation polls answered (new modes)
        self.delete_failures = {}  # instance id -> DELETEs answered 500 (deprovision_500)
        self.service_id, self.service_name = service_id, service_name
        self.plans = plans
        self.mode, self.user, self.password = mode, user, password
        self.hang_s = hang_s
        self.dashboard_client = dashboard_client
        self.instances = {}   # id -> {"service_id", "plan_id", "enabled", "bindings": {id: body}}
        self.operations = {}  # instance id -> polls left before "succeeded"
        self.gone = set()     # instances deleted asynchronously (last_operation answers 410)
        self.requests = []
        self.lock = threading.Lock()
        self._port = port
        self.server = None

    # ------------------------------------------------------------ lifecycle of the server

    def start(self):
        broker = self

        class Handler(BrokerHandler):
            pass

        Handler.broker = broker
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def port(self):
        return self.server.server_address[1]

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def mode_for(self, plan_id):
        """The mode of a request naming plan_id."""
        return self.plan_modes.get(plan_id, self.mode)

    def seen(self, method=None, prefix=""):
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r[0] == method) and r[1].startswith(prefix)]

    # ------------------------------------------------------------ the catalog it serves

    def catalog(self):
        plans = []
        for i, p in enumerate(self.plans):
            plan = {"id": p["id"], "name": p["name"], "description": "Plan %s." % p["name"],
                    "free": p.get("free", True), "bindable": p.get("bindable", True)}
            if self.mode == "plan_mismatch":
                if i == 0:
                    plan["name"] = p["name"] + "-renamed"
                elif i == 1:
                    plan["bindable"] = not plan["bindable"]
                if i == len(self.plans) - 1 and len(self.plans) > 2:
                    continue
            plans.append(plan)
        service = {"id": self.service_id, "name": self.service_name,
                   "description": "A service for validation tests.", "bindable": True,
                   "instances_retrievable": True, "bindings_retrievable": True,
                   "plan_updateable": False, "plans": plans}
        if self.mode == "missing_service":
            service["id"] = "00000000-0000-4000-8000-000000000000"
            service["name"] = "somebody-else"
        if self.mode == "dashboard" and self.dashboard_client:
            service["dashboard_client"] = self.dashboard_client
        return {"services": [service]}


def _error(description, code=None):
    body = {"description": description}
    if code:
        body["error"] = code
    return body


class BrokerHandler(http.server.BaseHTTPRequestHandler):
    broker = None  # set on the subclass made for each BadBroker
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    # ------------------------------------------------------------ plumbing

    def reply(self, status, body=None, raw=None, headers=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        try:
            self.send_response(status)
            if status != 204:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data) if status != 204 else 0))
            rid = self.headers.get("X-Broker-API-Request-Identity")
            if rid:
                self.send_header("X-Broker-API-Request-Identity", rid)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if status != 204:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the platform gave up on this call (its timeout)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def handle_any(self, method):
        b = self.broker
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        parts = [urllib.parse.unquote(s) for s in url.path.split("/") if s]
        with b.lock:
            b.requests.append((method, self.path, dict(self.headers.items()), time.time()))
        body = self.body() if method in ("PUT", "PATCH") else {}
        wrong = b.mode == "wrong_codes"
        if not self.headers.get("X-Broker-API-Version") and not wrong:
            return self.reply(412, _error("X-Broker-API-Version is required."))
        if not wrong and self.headers.get("Authorization") != "Basic " + base64.b64encode(
                ("%s:%s" % (b.user, b.password)).encode()).decode():
            return self.reply(401, _error("Unauthorized."))
        if body is None:
            return self.reply(400, _error("The body is not JSON."))
        if parts == ["v2", "catalog"] and method == "GET":
            if b.mode == "hang":
                time.sleep(b.hang_s)
            if b.mode == "bad_json":
                return self.reply(200, raw=b"{\"services\": [ this is not json")
            return self.reply(200, b.catalog())
        if len(parts) >= 3 and parts[:2] == ["v2", "service_instances"]:
            return self.instance_route(method, parts[2], parts[3:], q, body)
        if len(parts) == 3 and parts[:2] == ["bluemix_v1", "service_instances"]:
            return self.ibm_route(method, parts[2], body)
        return self.reply(404, _error("No such route."))

    def do_GET(self):
        self.handle_any("GET")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_DELETE(self):
        self.handle_any("DELETE")

    # ------------------------------------------------------------ OSB routes

    def plan_ids(self):
        return {p["id"] for p in self.broker.plans}

    def instance_route(self, method, iid, rest, q, body):
        b = self.broker
        wrong = b.mode == "wrong_codes"
        with b.lock:
            inst = b.instances.get(iid)
        plan = body.get("plan_id") if method in ("PUT", "PATCH") else q.get("plan_id")
        mode = b.mode_for(plan or (inst or {}).get("plan_id"))
        if not rest:
            if method == "PUT":
                if (body.get("service_id") != b.service_id
                        or not isinstance(body.get("context"), dict)):
                    return self.reply(400, _error("service_id and context are required."))
                if body.get("plan_id") not in self.plan_ids() and not wrong:
                    return self.reply(400, _error("Unknown plan_id."))
                if mode == "errors_500":
                    return self.reply(500, _error("Internal error while provisioning."))
                if mode in REFUSED_PROVISION:
                    status, err = REFUSED_PROVISION[mode]
                    return self.reply(status, err)
                if inst:
                    if inst["plan_id"] != body.get("plan_id"):
                        return self.reply(409, _error("Different attributes."))
                    with b.lock:
                        if b.operations.get(iid):
                            return self.reply(202, {"operation": "provision"})
                    return self.reply(200, {})
                with b.lock:
                    b.instances[iid] = {"service_id": body["service_id"],
                                        "plan_id": body.get("plan_id"), "enabled": True,
                                        "bindings": {}}
                    if mode == "async" and q.get("accepts_incomplete") == "true":
                        b.operations[iid] = 2
                        return self.reply(202, {"operation": "provision"})
                    if mode in NEW_ASYNC and q.get("accepts_incomplete") == "true":
                        b.polls[iid] = 0
                        return self.reply(202, {"operation": "provision-" + mode})
                if mode == "provision_hang":
                    time.sleep(b.hang_s)  # kept already: a DELETE meanwhile finds it
                if mode in BROKEN_PROVISION:
                    status, raw = BROKEN_PROVISION[mode]
                    return self.reply(status, raw=raw)
                return self.reply(201, {})
            if method == "GET":
                if not inst:
                    return self.reply(404, _error("No such instance."))
                return self.reply(200, {"service_id": inst["service_id"],
                                        "plan_id": inst["plan_id"], "parameters": {}})
            if method == "PATCH":
                if not inst:
                    return self.reply(404, _error("No such instance."))
                if body.get("service_id") != b.service_id:
                    return self.reply(400, _error("service_id is required."))
                return self.reply(200, {})
            if method == "DELETE":
                if not q.get("service_id") or not q.get("plan_id"):
                    return self.reply(400, _error("service_id and plan_id are required."))
                if not inst:
                    return self.reply(200 if wrong else 410, {})
                if mode == "deprovision_500":
                    with b.lock:
                        n = b.delete_failures.get(iid, 0)
                        b.delete_failures[iid] = n + 1
                    if n < b.fail_deletes:
                        return self.reply(500, _error("Internal error while deprovisioning."))
                with b.lock:
                    b.instances.pop(iid, None)
                    if mode == "async" and q.get("accepts_incomplete") == "true":
                        b.gone.add(iid)
                        return self.reply(202, {"operation": "deprovision"})
                return self.reply(200, {})
            return self.reply(405, _error("Method not allowed."))
        if rest == ["last_operation"] and method == "GET":
            if mode in NEW_ASYNC and inst and iid in b.polls:
                with b.lock:
                    n = b.polls[iid]
                    b.polls[iid] = n + 1
                    if mode == "async_failed":
                        del b.polls[iid]
                        b.instances.pop(iid, None)
                if mode == "async_failed":
                    return self.reply(200, {"state": "failed",
                                            "description": "The disk array is on fire."})
                if mode == "async_retry_after" and n == 0:
                    return self.reply(200, {"state": "in progress", "description": "Copying."},
                                      headers={"Retry-After": str(b.retry_after_s)})
                if mode == "async_garbage_poll" and n < b.garbage_polls:
                    return self.reply(200, raw=GARBAGE)
                with b.lock:
                    b.polls.pop(iid, None)
                return self.reply(200, {"state": "succeeded"})
            with b.lock:
                if iid in b.gone:
                    b.gone.discard(iid)
                    return self.reply(410, {})
                left = b.operations.get(iid)
                if left:
                    b.operations[iid] = left - 1
                    return self.reply(200, {"state": "in progress"}, headers={"Retry-After": "1"})
                if iid in b.operations:
                    del b.operations[iid]
            if not inst:
                return self.reply(404, _error("No such instance."))
            return self.reply(200, {"state": "succeeded"})
        if len(rest) == 2 and rest[0] == "service_bindings":
            bid = rest[1]
            if not inst:
                return self.reply(404, _error("No such instance."))
            binding = inst["bindings"].get(bid)
            if method == "PUT":
                if mode == "bind_400":
                    return self.reply(400, _error("The binding parameters are wrong."))
                if binding is not None:
                    return self.reply(200, {"credentials": binding})
                creds = {"uri": "bad://%s/%s" % (iid, bid), "password": "pw-" + bid[:8]}
                with b.lock:
                    inst["bindings"][bid] = creds
                if mode == "bind_500":
                    return self.reply(500, _error("Internal error while binding."))
                return self.reply(201, {"credentials": creds})
            if method == "GET":
                if binding is None:
                    return self.reply(404, _error("No such binding."))
                return self.reply(200, {"credentials": binding})
            if method == "DELETE":
                if not q.get("service_id") or not q.get("plan_id"):
                    return self.reply(400, _error("service_id and plan_id are required."))
                if binding is None:
                    return self.reply(200 if wrong else 410, {})
                with b.lock:
                    inst["bindings"].pop(bid, None)
                return self.reply(200, {})
        return self.reply(404, _error("No such route."))

    def ibm_route(self, method, iid, body):
        b = self.broker
        with b.lock:
            inst = b.instances.get(iid)
        if not inst:
            return self.reply(404, _error("No such instance."))
        if method == "PUT":
            if not isinstance(body.get("enabled"), bool):
                return self.reply(400, _error("enabled is required."))
            inst["enabled"] = body["enabled"]
            return self.reply(204)
        if method == "GET":
            return self.reply(200, {"enabled": inst["enabled"], "active": inst["enabled"],
                                    "last_active": int(time.time() * 1000)})
        return self.reply(405, _error("Method not allowed."))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=MODES, default="good")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--service-id", required=True)
    ap.add_argument("--service-name", required=True)
    ap.add_argument("--plan", action="append", default=[], help="ID:NAME[:MODE]")
    ap.add_argument("--user", default="bad-user")
    ap.add_argument("--password", default="bad-broker-pw")
    ap.add_argument("--hang-seconds", type=float, default=5.0)
    a = ap.parse_args()
    parts = [p.split(":", 2) for p in a.plan]
    plans = [{"id": p[0], "name": p[1]} for p in parts]
    plan_modes = {p[0]: p[2] for p in parts if len(p) == 3}
    b = BadBroker(a.service_id, a.service_name, plans, mode=a.mode, user=a.user,
                  password=a.password, hang_s=a.hang_seconds, port=a.port,
                  plan_modes=plan_modes).start()
    print("bad-broker listening on %s (mode %s)" % (b.url, a.mode), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        b.stop()


if __name__ == "__main__":
    main()
