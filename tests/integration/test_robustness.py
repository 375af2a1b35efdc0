"""Robustness of the starter broker (libosb over the http server) against bad input over real
HTTP: every malformed request gets the documented 4xx, nothing crashes or stalls the server,
and the broker still serves its catalog afterwards and stops cleanly (tearDownClass)."""

import base64
import http.client
import json
import re
import socket
import threading
import time
import unittest
import urllib.parse

from harness import (LITE, PREMIUM, SERVICE_ID, STANDARD, Broker, BrokerTest, basic)

try:
    import resource
except ImportError:  # pragma: no cover - not on POSIX
    resource = None

JSON = {"Content-Type": "application/json"}
MAX_BODY = 1 << 20


def q(s):
    return urllib.parse.quote(s, safe="")


def b64(data):
    return base64.b64encode(data).decode()


def provision_body(plan=LITE, **extra):
    body = {"service_id": SERVICE_ID, "plan_id": plan, "organization_guid": "org-1",
            "space_guid": "space-1", "context": {"platform": "osbill", "account_id": "acct-1"}}
    body.update(extra)
    return body


# ---------------------------------------------------------------- raw HTTP over a socket

def parse_response(buf):
    """(status, headers, body) of the first complete response in buf, or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", head[0])
    if not m:
        return 0, {}, buf  # not HTTP at all
    headers = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    body = buf[end + 4:]
    n = int(headers.get("content-length", "0") or 0)
    if len(body) < n:
        return None
    return int(m.group(1)), headers, body


class RawResult:
    def __init__(self, data, closed, timed_out, error=None):
        self.data, self.closed, self.timed_out, self.error = data, closed, timed_out, error
        parsed = parse_response(data) if data else None
        self.status, self.headers, self.body = parsed if parsed else (None, {}, b"")

    def __repr__(self):
        return "<raw status=%s closed=%s timed_out=%s error=%r data=%r>" % (
            self.status, self.closed, self.timed_out, self.error, self.data[:300])


def raw_exchange(port, data, timeout=5.0, until_close=False, body_sender=None):
    """Sends data (and, from a second thread, whatever body_sender writes) and reads until one
    complete response arrived, the server closed, or timeout passed."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    buf = b""
    closed = timed_out = False
    error = None
    sender = None
    try:
        try:
            s.sendall(data)
        except OSError as e:
            error = e
        if body_sender is not None:
            sender = threading.Thread(target=body_sender, args=(s,), daemon=True)
            sender.start()
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                timed_out = True
                break
            s.settimeout(left)
            try:
                d = s.recv(65536)
            except socket.timeout:
                timed_out = True
                break
            except OSError as e:
                error, closed = e, True
                break
            if not d:
                closed = True
                break
            buf += d
            if not until_close and parse_response(buf) is not None:
                break
    finally:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
        if sender is not None:
            sender.join(10)
    return RawResult(buf, closed, timed_out, error)


class RobustnessBase(BrokerTest):
    """Each test checks the broker is still alive and serving afterwards."""

    def setUp(self):
        super().setUp()
        self.auth = basic(self.broker.user, self.broker.password)

    def tearDown(self):
        try:
            self.assertTrue(self.broker.alive(), "the broker died:\n" + self.broker.log()[-4000:])
        finally:
            super().tearDown()

    def assertAlive(self):
        self.assertTrue(self.broker.alive(), "the broker died:\n" + self.broker.log()[-4000:])
        c = self.broker.client()
        try:
            r = c.call("GET", "/v2/catalog")
        finally:
            c.close()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["services"][0]["id"], SERVICE_ID)

    def assertAbsent(self, iid):
        r = self.osb.call("GET", "/v2/service_instances/" + q(iid))
        self.assertError(r, 404)

    def put_raw(self, path, data, headers=None, **kw):
        h = dict(JSON)
        h.update(headers or {})
        return self.osb.call("PUT", path, raw=data, headers=h, **kw)

    def req_head(self, method, path, extra=b""):
        return (("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\n"
                 "X-Broker-API-Version: 2.17\r\n" % (method, path, self.auth)).encode() + extra)


# ---------------------------------------------------------------- JSON bodies

class MalformedBodyTest(RobustnessBase):

    def check_rejected(self, data, iid=None, what=""):
        iid = iid or self.uid("bad")
        r = self.put_raw("/v2/service_instances/" + q(iid), data)
        self.assertError(r, 400)
        self.assertNotIn("error", r.json, "400s carry no fixed error code: %r" % r)
        self.assertAbsent(iid)
        return r

    def test_truncated_json(self):
        full = json.dumps(provision_body()).encode()
        for cut in (1, 2, 10, len(full) // 2, len(full) - 1):
            with self.subTest(cut=cut):
                r = self.check_rejected(full[:cut])
                self.assertIn("not valid JSON", r.json["description"])
        self.assertAlive()

    def test_trailing_garbage(self):
        full = json.dumps(provision_body()).encode()
        for tail in (b"x", b"}", b"{}", b",", b" 1", b"\x00", b"\xff\xfe"):
            with self.subTest(tail=tail):
                self.check_rejected(full + tail)
        self.assertAlive()

    def test_invalid_utf8(self):
        good = json.dumps(provision_body()).encode()
        for bad in (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80",
                    b"\xe2\x82"):
            with self.subTest(bad=bad):
                data = good[:-1] + b', "note": "a' + bad + b'b"}'
                self.check_rejected(data)
                # In a key too.
                self.check_rejected(good[:-1] + b', "' + bad + b'": 1}')
        self.assertAlive()

    def test_nul_bytes(self):
        good = json.dumps(provision_body()).encode()
        for data in (good[:-1] + b', "note": "a\x00b"}',      # raw NUL inside a string
                     good[:-1] + b', "note": "a\\u0000b"}',    # escaped NUL
                     good + b"\x00",                            # NUL after the document
                     b"\x00" + good,                            # NUL before it
                     b"\x00" * 64):
            with self.subTest(data=data[-24:]):
                self.check_rejected(data)
        self.assertAlive()

    def test_duplicate_keys(self):
        for data in (b'{"service_id":"%s","service_id":"%s","plan_id":"%s","context":{}}'
                     % (SERVICE_ID.encode(), SERVICE_ID.encode(), LITE.encode()),
                     b'{"service_id":"%s","plan_id":"%s","plan_id":"%s","context":{}}'
                     % (SERVICE_ID.encode(), LITE.encode(), STANDARD.encode()),
                     b'{"service_id":"%s","plan_id":"%s","context":{"a":1,"a":2}}'
                     % (SERVICE_ID.encode(), LITE.encode())):
            with self.subTest(data=data):
                self.check_rejected(data)
        self.assertAlive()

    def test_invalid_tokens_and_numbers(self):
        for data in (b"{'service_id': 1}", b'{"a":1,}', b'{"a":NaN}', b'{"a":Infinity}',
                     b'{"a": 99999999999999999999999999}', b'{"a": 1e999}',
                     b'{"a": "\\ud800"}', b'{"a": "\\x41"}', b'\xef\xbb\xbf{}', b"{", b"}",
                     b" ", b"\r\n", b"undefined", b'{"a" 1}', b'{"a":"unterminated}'):
            with self.subTest(data=data):
                self.check_rejected(data)
        self.assertAlive()

    def test_empty_body(self):
        iid = self.uid("empty")
        r = self.put_raw("/v2/service_instances/" + iid, b"")
        self.assertError(r, 400)
        self.assertAbsent(iid)
        self.assertAlive()

    def test_non_object_bodies(self):
        iid = self.uid("inst")
        self.assertEqual(self.osb.provision(iid, plan=LITE).status, 201)
        for data in (b"[]", b'[{"service_id":"x"}]', b'"a string"', b"42", b"-1.5", b"null",
                     b"true", b"false"):
            with self.subTest(data=data):
                self.check_rejected(data)
                r = self.osb.call("PATCH", "/v2/service_instances/" + iid, raw=data,
                                  headers=JSON)
                self.assertError(r, 400)
                r = self.put_raw("/v2/service_instances/%s/service_bindings/%s"
                                 % (iid, self.uid("b")), data)
                self.assertError(r, 400)
                r = self.put_raw("/bluemix_v1/service_instances/" + iid, data)
                self.assertError(r, 400)
        # Nothing changed: the instance is the lite one, enabled, with no binding.
        r = self.osb.call("GET", "/v2/service_instances/" + iid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["plan_id"], LITE)
        r = self.osb.call("GET", "/bluemix_v1/service_instances/" + iid)
        self.assertEqual(r.status, 200, r)
        self.assertIs(r.json["enabled"], True)
        self.assertAlive()

    def test_wrong_types_on_provision(self):
        cases = [("service_id", 1), ("service_id", None), ("service_id", ""),
                 ("service_id", [SERVICE_ID]), ("service_id", {"id": SERVICE_ID}),
                 ("service_id", True), ("plan_id", 2), ("plan_id", None), ("plan_id", ""),
                 ("plan_id", [LITE]), ("plan_id", {}), ("parameters", "x"), ("parameters", 5),
                 ("parameters", [1]), ("parameters", True), ("context", "x"), ("context", 1),
                 ("context", [1]), ("context", True), ("organization_guid", 5),
                 ("space_guid", []), ("maintenance_info", "1.2.0")]
        for key, value in cases:
            with self.subTest(key=key, value=value):
                iid = self.uid("wt")
                body = provision_body()
                body[key] = value
                r = self.osb.call("PUT", "/v2/service_instances/" + iid, body=body)
                self.assertError(r, 400)
                self.assertAbsent(iid)
        for key in ("service_id", "plan_id"):
            with self.subTest(missing=key):
                iid = self.uid("miss")
                body = provision_body()
                del body[key]
                self.assertError(self.osb.call("PUT", "/v2/service_instances/" + iid, body=body),
                                 400)
                self.assertAbsent(iid)
        # Unknown ids are 400 too: the catalog does not have them.
        for key in ("service_id", "plan_id"):
            with self.subTest(unknown=key):
                iid = self.uid("unk")
                body = provision_body(**{key: "not-in-the-catalog"})
                self.assertError(self.osb.call("PUT", "/v2/service_instances/" + iid, body=body),
                                 400)
                self.assertAbsent(iid)
        self.assertAlive()

    def test_wrong_types_on_update(self):
        iid = self.uid("upd")
        self.assertEqual(self.osb.provision(iid, plan=LITE).status, 201)
        cases = [("service_id", 1), ("service_id", None), ("plan_id", 2), ("plan_id", ""),
                 ("plan_id", [STANDARD]), ("parameters", "x"), ("parameters", [1]),
                 ("context", "x"), ("context", 7), ("previous_values", "x")]
        for key, value in cases:
            with self.subTest(key=key, value=value):
                body = {"service_id": SERVICE_ID, "plan_id": STANDARD}
                body[key] = value
                r = self.osb.call("PATCH", "/v2/service_instances/" + iid, body=body)
                self.assertError(r, 400)
        r = self.osb.call("GET", "/v2/service_instances/" + iid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["plan_id"], LITE, "a 400 update must change nothing")
        self.assertAlive()

    def test_wrong_types_on_bind(self):
        iid = self.uid("bnd")
        self.assertEqual(self.osb.provision(iid, plan=LITE).status, 201)
        cases = [("service_id", 1), ("service_id", None), ("plan_id", 2), ("plan_id", {}),
                 ("parameters", "x"), ("parameters", [1]), ("parameters", {"role": "admin"}),
                 ("parameters", {"role": 1}), ("bind_resource", "x"), ("bind_resource", [1]),
                 ("context", "x"), ("context", 3)]
        for key, value in cases:
            with self.subTest(key=key, value=value):
                bid = self.uid("b")
                body = {"service_id": SERVICE_ID, "plan_id": LITE}
                body[key] = value
                r = self.osb.call("PUT", "/v2/service_instances/%s/service_bindings/%s"
                                  % (iid, bid), body=body)
                self.assertError(r, 400)
                r = self.osb.call("GET", "/v2/service_instances/%s/service_bindings/%s"
                                  % (iid, bid))
                self.assertError(r, 404)
        self.assertAlive()

    def test_deep_nesting(self):
        for data in (b"[" * 10000 + b"]" * 10000,
                     b'{"a":' * 10000 + b"1" + b"}" * 10000,
                     b"[" * 10000,                                   # unterminated as well
                     b'{"service_id":"%s","plan_id":"%s","context":{},"parameters":%s}'
                     % (SERVICE_ID.encode(), LITE.encode(),
                        b'{"a":' * 10000 + b"1" + b"}" * 10000)):
            with self.subTest(size=len(data)):
                r = self.check_rejected(data)
                self.assertIn("nested", r.json["description"])
        self.assertAlive()

    def test_nesting_at_the_limit(self):
        # 1 (body) + 63 nested arrays = 64 levels: accepted, the unknown field is ignored.
        iid = self.uid("deep")
        body = provision_body()
        data = json.dumps(body)[:-1] + ', "x": ' + "[" * 63 + "]" * 63 + "}"
        r = self.put_raw("/v2/service_instances/" + iid, data.encode())
        self.assertEqual(r.status, 201, r)
        # One more level is refused.
        iid2 = self.uid("deeper")
        data = json.dumps(body)[:-1] + ', "x": ' + "[" * 64 + "]" * 64 + "}"
        self.check_rejected(data.encode(), iid=iid2)
        # Brackets inside strings do not count.
        iid3 = self.uid("str")
        data = json.dumps(provision_body(note="[" * 5000 + "{" * 5000))
        self.assertEqual(self.put_raw("/v2/service_instances/" + iid3, data.encode()).status,
                         201)
        self.assertAlive()

    def test_content_type(self):
        data = json.dumps(provision_body()).encode()
        for ct in (None, "", "text/plain", "application/jsonx", "application/x-www-form-urlencoded",
                   "multipart/form-data; boundary=x", "json", "application/xml",
                   "text/json"):
            with self.subTest(ct=ct):
                iid = self.uid("ct")
                headers = {} if ct is None else {"Content-Type": ct}
                r = self.osb.call("PUT", "/v2/service_instances/" + iid, raw=data,
                                  headers=headers)
                self.assertError(r, 400)
                self.assertIn("Content-Type", r.json["description"])
                self.assertAbsent(iid)
        iid = self.uid("ctok")
        self.assertEqual(self.osb.provision(iid, plan=LITE).status, 201)
        for ct in (None, "text/plain"):
            with self.subTest(patch_ct=ct):
                headers = {} if ct is None else {"Content-Type": ct}
                r = self.osb.call("PATCH", "/v2/service_instances/" + iid,
                                  raw=json.dumps({"service_id": SERVICE_ID,
                                                  "plan_id": STANDARD}).encode(),
                                  headers=headers)
                self.assertError(r, 400)
        self.assertEqual(self.osb.call("GET", "/v2/service_instances/" + iid).json["plan_id"],
                         LITE)
        for ct in ("application/json; charset=utf-8", "Application/JSON"):
            with self.subTest(accepted=ct):
                r = self.osb.call("PUT", "/v2/service_instances/" + self.uid("ct"), raw=data,
                                  headers={"Content-Type": ct})
                self.assertEqual(r.status, 201, r)
        self.assertAlive()


# ---------------------------------------------------------------- body size

class OversizedBodyTest(RobustnessBase):

    def send_big(self, iid, size, chunked):
        head = self.req_head("PUT", "/v2/service_instances/" + iid,
                             b"Content-Type: application/json\r\n")
        head += (b"Transfer-Encoding: chunked\r\n\r\n" if chunked
                 else b"Content-Length: %d\r\n\r\n" % size)
        body = b'{"pad": "' + b"x" * (size - 11) + b'"}'
        assert len(body) == size

        def sender(s):
            try:
                if chunked:
                    for i in range(0, size, 65536):
                        part = body[i:i + 65536]
                        s.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
                    s.sendall(b"0\r\n\r\n")
                else:
                    s.sendall(body)
            except OSError:
                pass  # the server may stop reading once it has answered

        return raw_exchange(self.broker.port, head, timeout=10, body_sender=sender)

    def test_2mib_body_with_content_length_gets_413(self):
        iid = self.uid("big")
        r = self.send_big(iid, 2 << 20, chunked=False)
        self.assertEqual(r.status, 413, "a 2 MiB body with Content-Length must be answered 413, "
                         "got %r" % r)
        self.assertIsInstance(json.loads(r.body).get("description"), str)
        self.assertAbsent(iid)
        self.assertAlive()

    def test_2mib_chunked_body_gets_413(self):
        iid = self.uid("bigc")
        r = self.send_big(iid, 2 << 20, chunked=True)
        self.assertEqual(r.status, 413, "a 2 MiB chunked body must be answered 413, got %r" % r)
        self.assertIsInstance(json.loads(r.body).get("description"), str)
        self.assertAbsent(iid)
        self.assertAlive()

    def test_one_byte_over_the_limit_gets_413(self):
        for chunked in (False, True):
            with self.subTest(chunked=chunked):
                iid = self.uid("over")
                r = self.send_big(iid, MAX_BODY + 1, chunked=chunked)
                self.assertEqual(r.status, 413, r)
                self.assertAbsent(iid)
        self.assertAlive()

    def test_body_at_the_limit_is_accepted(self):
        # Exactly 1 MiB of valid JSON (an unknown padding field) is parsed and provisions.
        base = json.dumps(provision_body(pad=""))
        pad = MAX_BODY - len(base)
        data = json.dumps(provision_body(pad="p" * pad)).encode()
        self.assertEqual(len(data), MAX_BODY)
        iid = self.uid("limit")
        r = self.put_raw("/v2/service_instances/" + iid, data)
        self.assertEqual(r.status, 201, r)
        r = self.send_big(self.uid("limitc"), MAX_BODY, chunked=True)
        self.assertEqual(r.status, 400, "1 MiB chunked without service_id: parsed, then 400: %r"
                         % r)
        self.assertAlive()


# ---------------------------------------------------------------- routes and ids

class RoutesAndIdsTest(RobustnessBase):

    Q = {"service_id": SERVICE_ID, "plan_id": LITE}

    def test_unknown_instance_on_every_route(self):
        iid = self.uid("nope")
        o = self.osb
        base = "/v2/service_instances/" + iid
        self.assertError(o.call("GET", base), 404)
        self.assertError(o.call("PATCH", base, body={"service_id": SERVICE_ID,
                                                     "plan_id": STANDARD}), 404)
        r = o.call("DELETE", base, query=self.Q)
        self.assertEqual((r.status, r.json), (410, {}), r)
        self.assertError(o.call("GET", base + "/last_operation", query={"service_id": SERVICE_ID}),
                         404)
        self.assertError(o.bind(iid, "b1", plan=LITE), 404)
        self.assertError(o.call("GET", base + "/service_bindings/b1"), 404)
        r = o.call("DELETE", base + "/service_bindings/b1", query=self.Q)
        self.assertEqual((r.status, r.json), (410, {}), r)
        self.assertError(o.call("GET", base + "/service_bindings/b1/last_operation"), 404)
        self.assertError(o.call("GET", "/bluemix_v1/service_instances/" + iid), 404)
        self.assertError(o.call("PUT", "/bluemix_v1/service_instances/" + iid,
                                body={"enabled": False, "initiator_id": "x",
                                      "reason_code": "IBMCLOUD_ACCT_SUSPEND"}), 404)
        # None of that created anything.
        self.assertAbsent(iid)
        self.assertAlive()

    def test_unknown_binding_on_every_route(self):
        iid = self.uid("inst")
        self.assertEqual(self.osb.provision(iid, plan=LITE).status, 201)
        base = "/v2/service_instances/%s/service_bindings/nope" % iid
        self.assertError(self.osb.call("GET", base), 404)
        r = self.osb.call("DELETE", base, query=self.Q)
        self.assertEqual((r.status, r.json), (410, {}), r)
        self.assertError(self.osb.call("GET", base + "/last_operation"), 404)
        self.assertAlive()

    def test_deleted_instance_and_binding(self):
        iid = self.uid("gone")
        self.assertEqual(self.osb.provision(iid, plan=LITE).status, 201)
        self.assertEqual(self.osb.bind(iid, "b", plan=LITE).status, 201)
        r = self.osb.unbind(iid, "b", plan=LITE)
        self.assertEqual((r.status, r.json), (200, {}), r)
        r = self.osb.unbind(iid, "b", plan=LITE)
        self.assertEqual((r.status, r.json), (410, {}), r)
        self.assertError(self.osb.call("GET", "/v2/service_instances/%s/service_bindings/b"
                                       % iid), 404)
        r = self.osb.deprovision(iid, plan=LITE)
        self.assertEqual((r.status, r.json), (200, {}), r)
        r = self.osb.deprovision(iid, plan=LITE)
        self.assertEqual((r.status, r.json), (410, {}), r)
        self.assertError(self.osb.call("GET", "/v2/service_instances/" + iid), 404)
        # A synchronous delete leaves no operation: 410 is only for async deletes.
        self.assertError(self.osb.last_op(iid), 404)
        self.assertError(self.osb.call("PATCH", "/v2/service_instances/" + iid,
                                       body={"service_id": SERVICE_ID}), 404)
        self.assertError(self.osb.bind(iid, "b2", plan=LITE), 404)
        self.assertError(self.osb.call("GET", "/bluemix_v1/service_instances/" + iid), 404)
        self.assertAlive()

    def test_missing_query_parameters_on_delete(self):
        iid = self.uid("q")
        self.assertEqual(self.osb.provision(iid, plan=LITE).status, 201)
        self.assertEqual(self.osb.bind(iid, "b", plan=LITE).status, 201)
        for path in ("/v2/service_instances/" + iid,
                     "/v2/service_instances/%s/service_bindings/b" % iid):
            for query in (None, {"service_id": SERVICE_ID}, {"plan_id": LITE},
                          {"service_id": "", "plan_id": LITE},
                          {"service_id": SERVICE_ID, "plan_id": ""}):
                with self.subTest(path=path, query=query):
                    r = self.osb.call("DELETE", path, query=query)
                    self.assertError(r, 400)
        # Still there.
        self.assertEqual(self.osb.call("GET", "/v2/service_instances/" + iid).status, 200)
        self.assertEqual(self.osb.call("GET", "/v2/service_instances/%s/service_bindings/b"
                                       % iid).status, 200)
        self.assertAlive()

    def test_bad_accepts_incomplete(self):
        iid = self.uid("ai")
        self.assertEqual(self.osb.provision(iid, plan=LITE).status, 201)
        for value in ("yes", "1", "maybe", ""):
            with self.subTest(value=value):
                new = self.uid("ai-new")
                r = self.osb.call("PUT", "/v2/service_instances/" + new,
                                  body=provision_body(plan=PREMIUM),
                                  query={"accepts_incomplete": value})
                self.assertError(r, 400)
                self.assertAbsent(new)
                r = self.osb.call("PATCH", "/v2/service_instances/" + iid,
                                  body={"service_id": SERVICE_ID, "plan_id": STANDARD},
                                  query={"accepts_incomplete": value})
                self.assertError(r, 400)
                r = self.osb.call("DELETE", "/v2/service_instances/" + iid,
                                  query=dict(self.Q, accepts_incomplete=value))
                self.assertError(r, 400)
                r = self.osb.call("PUT", "/v2/service_instances/%s/service_bindings/b" % iid,
                                  body={"service_id": SERVICE_ID, "plan_id": LITE},
                                  query={"accepts_incomplete": value})
                self.assertError(r, 400)
        r = self.osb.call("GET", "/v2/service_instances/" + iid)
        self.assertEqual((r.status, r.json["plan_id"]), (200, LITE), r)
        self.assertError(self.osb.call("GET", "/v2/service_instances/%s/service_bindings/b"
                                       % iid), 404)
        self.assertAlive()

    def test_encoded_slash_in_instance_id_is_one_id(self):
        iid = "crn:v1:a/b"
        r = self.osb.provision(iid, plan=LITE)
        self.assertEqual(r.status, 201, r)
        r = self.osb.call("GET", "/v2/service_instances/" + q(iid))
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["service_id"], r.json["plan_id"]), (SERVICE_ID, LITE))
        # Lower-case escapes name the same id.
        r = self.osb.call("GET", "/v2/service_instances/crn%3av1%3aa%2fb")
        self.assertEqual(r.status, 200, r)
        # The unencoded path has one segment more: it is not this instance.
        r = self.osb.call("GET", "/v2/service_instances/crn:v1:a/b")
        self.assertError(r, 404)
        # An id "crn:v1:a" does not exist either.
        self.assertError(self.osb.call("GET", "/v2/service_instances/" + q("crn:v1:a")), 404)
        r = self.osb.last_op(iid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["state"], "succeeded")
        r = self.osb.call("GET", "/bluemix_v1/service_instances/" + q(iid))
        self.assertEqual(r.status, 200, r)
        r = self.osb.deprovision(iid, plan=LITE)
        self.assertEqual((r.status, r.json), (200, {}), r)
        self.assertAbsent(iid)
        self.assertAlive()

    def test_encoded_slash_in_binding_id_is_one_id(self):
        iid = "crn:v1:bluemix:public:starter-kv:us-south:a/acct::" + self.uid("i")
        bid = "crn:v1:bluemix:public:starter-kv:us-south:a/acct:%s:resource-key:b/1" % iid[-8:]
        self.assertEqual(self.osb.provision(iid, plan=LITE).status, 201)
        r = self.osb.bind(iid, bid, plan=LITE)
        self.assertEqual(r.status, 201, r)
        creds = r.json["credentials"]
        r = self.osb.call("GET", "/v2/service_instances/%s/service_bindings/%s"
                          % (q(iid), q(bid)))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["credentials"], creds)
        r = self.osb.bind(iid, bid, plan=LITE)
        self.assertEqual((r.status, r.json["credentials"]), (200, creds), r)
        r = self.osb.unbind(iid, bid, plan=LITE)
        self.assertEqual((r.status, r.json), (200, {}), r)
        self.assertAlive()

    def test_path_traversal_ids(self):
        # Encoded dot segments are data, not navigation.
        r = self.osb.call("GET", "/v2/service_instances/" + q("../../v2/catalog"))
        self.assertError(r, 404)
        self.assertNotIn("services", r.json)
        r = self.osb.call("GET", "/v2/service_instances/%2E%2E/last_operation")
        self.assertError(r, 404)
        for iid in ("../../escape", "..", ".", "..\\..\\win", "a/../../b", "/etc/passwd",
                    "id with spaces", "\u00e9t\u00e9-\u2603"):
            with self.subTest(iid=iid):
                r = self.osb.provision(iid, plan=LITE)
                self.assertEqual(r.status, 201, r)
                r = self.osb.call("GET", "/v2/service_instances/" + q(iid))
                self.assertEqual((r.status, r.json.get("plan_id")), (200, LITE), r)
                r = self.osb.deprovision(iid, plan=LITE)
                self.assertEqual(r.status, 200, r)
        self.assertAlive()

    def test_invalid_percent_encoding(self):
        for path in ("/v2/service_instances/a%zz", "/v2/service_instances/a%",
                     "/v2/service_instances/a%4", "/v2/service_instances/a%00b",
                     "/v2/service_instances/%00", "/v2/service_instances/a%2"):
            with self.subTest(path=path):
                r = self.osb.call("GET", path)
                self.assertIn(r.status, (400, 404), r)
                r = self.osb.call("PUT", path, body=provision_body())
                self.assertIn(r.status, (400, 404), r)
        self.assertAlive()

    def test_very_long_id(self):
        iid = "x" * 20000
        r = self.osb.call("GET", "/v2/service_instances/" + iid)
        self.assertError(r, 404)
        self.assertAlive()

    def test_unrouted_paths_and_methods(self):
        self.assertError(self.osb.call("GET", "/v2/nothing-here"), 404)
        self.assertError(self.osb.call("GET", "/" + "a/" * 100), 404)
        r = self.osb.call("POST", "/v2/catalog", body={})
        self.assertError(r, 405)
        self.assertIn("GET", r.header("Allow") or "")
        self.assertAlive()


# ---------------------------------------------------------------- headers

class HeadersTest(RobustnessBase):

    def test_version_header_rejected(self):
        for value in (None, "3.0", "2.11", "abc", "2", "", "1.17", "2.", ".17", "2.x", "-2.17",
                      "2.17.1", "x2.17"):
            with self.subTest(version=value):
                headers = {} if value is None else {"X-Broker-API-Version": value}
                r = self.osb.call("GET", "/v2/catalog", version=False, headers=headers)
                self.assertError(r, 412)
                iid = self.uid("ver")
                r = self.osb.provision(iid, plan=LITE, version=False, headers=headers)
                self.assertError(r, 412)
                self.assertAbsent(iid)
                r = self.osb.call("DELETE", "/v2/service_instances/" + iid, version=False,
                                  headers=headers,
                                  query={"service_id": SERVICE_ID, "plan_id": LITE})
                self.assertError(r, 412)
        self.assertAlive()

    def test_supported_versions_accepted(self):
        for minor in range(12, 18):
            with self.subTest(minor=minor):
                r = self.osb.call("GET", "/v2/catalog", version=False,
                                  headers={"X-Broker-API-Version": "2.%d" % minor})
                self.assertEqual(r.status, 200, r)
        self.assertAlive()

    def test_bad_credentials(self):
        u, p = self.broker.user, self.broker.password
        for value in (None, basic(u, "wrong"), basic("wrong", p), basic(u, p + "x"), basic(u, ""),
                      basic("", ""), "Basic", "Basic ", "Basic !!!not-base64!!!",
                      "Basic " + b64(b"no-colon-here"), "Basic " + b64(u.encode()),
                      "Basic " + b64(b"u:" + b"p" * 5000), "Bearer", "Bearer ",
                      "Bearer not.a.jwt", "Digest username=\"%s\"" % u, "NTLM abc",
                      b64(("%s:%s" % (u, p)).encode()), "Basic\t" + b64(b"a:b")):
            with self.subTest(auth=value):
                headers = {} if value is None else {"Authorization": value}
                r = self.osb.call("GET", "/v2/catalog", auth=False, headers=headers)
                self.assertError(r, 401)
                self.assertTrue((r.header("WWW-Authenticate") or "").startswith("Basic"), r.headers)
                iid = self.uid("auth")
                r = self.osb.provision(iid, plan=LITE, auth=False, headers=headers)
                self.assertError(r, 401)
                self.assertIsNotNone(r.header("WWW-Authenticate"))
                self.assertAbsent(iid)
        # The scheme is case-insensitive.
        r = self.osb.call("GET", "/v2/catalog", auth=False,
                          headers={"Authorization": "basic " + b64(("%s:%s" % (u, p)).encode())})
        self.assertEqual(r.status, 200, r)
        self.assertAlive()

    def test_malformed_originating_identity(self):
        for value in ("osbill", "osbill" + b64(b'{"iam_id":"u"}'), "osbill !!!not-base64!!!",
                      "osbill " + b64(b"[1,2]"), "osbill " + b64(b'"a string"'),
                      "osbill " + b64(b"42"), "osbill " + b64(b"null"),
                      "osbill " + b64(b"{not json"), "osbill " + b64(b"\xff\xfe"),
                      " " + b64(b'{"iam_id":"u"}'), "osbill  ", "osbill " + "A" * 9000):
            with self.subTest(identity=value[:40]):
                iid = self.uid("oi")
                r = self.osb.provision(iid, plan=LITE,
                                       headers={"X-Broker-API-Originating-Identity": value})
                self.assertError(r, 400)
                self.assertAbsent(iid)
        self.assertAlive()

    def test_valid_originating_identity(self):
        value = "osbill " + b64(json.dumps({"iam_id": "IBMid-0001"}).encode())
        h = {"X-Broker-API-Originating-Identity": value}
        iid = self.uid("oi-ok")
        r = self.osb.provision(iid, plan=LITE, headers=h)
        self.assertEqual(r.status, 201, r)
        r = self.osb.call("GET", "/v2/catalog", headers=h)
        self.assertEqual(r.status, 200, r)
        r = self.osb.bind(iid, "b", plan=LITE, headers=h)
        self.assertEqual(r.status, 201, r)
        # Other platforms' values, and unpadded base64 seen in the wild.
        for value in ("cloudfoundry " + b64(b'{"user_id":"683ea748"}'),
                      "kubernetes " + b64(b'{"username":"duke","groups":["admin"]}'),
                      "osbill " + base64.urlsafe_b64encode(b'{"iam_id":"u>?"}').decode().rstrip("=")):
            with self.subTest(value=value):
                r = self.osb.call("GET", "/v2/catalog",
                                  headers={"X-Broker-API-Originating-Identity": value})
                self.assertEqual(r.status, 200, r)
        self.assertAlive()

    def test_request_identity_echoed(self):
        rid = "e26cde16-ab85-4c8b-a4b3-1c6cbf4b4c54"
        h = {"X-Broker-API-Request-Identity": rid}
        iid = self.uid("rid")
        cases = [
            (200, self.osb.call("GET", "/v2/catalog", headers=h)),
            (201, self.osb.provision(iid, plan=LITE, headers=h)),
            (200, self.osb.provision(iid, plan=LITE, headers=h)),
            (401, self.osb.call("GET", "/v2/catalog", auth=False, headers=h)),
            (412, self.osb.call("GET", "/v2/catalog", version=False, headers=h)),
            (400, self.osb.call("PUT", "/v2/service_instances/x", raw=b"{", headers=dict(h, **JSON))),
            (404, self.osb.call("GET", "/v2/service_instances/nope", headers=h)),
            (410, self.osb.deprovision("nope", headers=h)),
            (200, self.osb.deprovision(iid, plan=LITE, headers=h)),
        ]
        for status, r in cases:
            with self.subTest(status=status):
                self.assertEqual(r.status, status, r)
                self.assertEqual(r.header("X-Broker-API-Request-Identity"), rid, r.headers)
        r = self.osb.call("GET", "/v2/catalog")
        self.assertIsNone(r.header("X-Broker-API-Request-Identity"))
        self.assertAlive()


# ---------------------------------------------------------------- the wire itself

class RawProtocolTest(RobustnessBase):

    def assertNoSuccess(self, r):
        """No answer at all (closed or still waiting) or a 4xx: never a 2xx or 5xx."""
        if r.status is not None:
            self.assertTrue(400 <= r.status < 500, r)

    def test_huge_header(self):
        for extra in (b"X-Big: " + b"a" * 65536 + b"\r\n",
                      b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 40) for i in range(1600)),
                      b"Cookie: " + b"c=1; " * 20000 + b"\r\n"):
            with self.subTest(size=len(extra)):
                r = raw_exchange(self.broker.port,
                                 self.req_head("GET", "/v2/catalog", extra) + b"\r\n")
                self.assertFalse(r.timed_out, r)
                self.assertTrue(r.closed or r.status is not None, r)
                self.assertNoSuccess(r)
        # A huge request line as well.
        r = raw_exchange(self.broker.port,
                         b"GET /v2/service_instances/" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")
        self.assertFalse(r.timed_out, r)
        self.assertNoSuccess(r)
        self.assertAlive()

    def test_garbage_bytes(self):
        garbage = bytes((i * 131 + 7) % 256 for i in range(4096))
        for data in (garbage + b"\r\n\r\n",
                     b"\r\n" * 2000,
                     b"\x00" * 4096 + b"\r\n\r\n",
                     b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(32)) + b"\r\n\r\n",
                     b"GET\r\n\r\n",
                     b"GET / HTTP/1.1\r\nHost\r\n\r\n",
                     b"GET / HTTP/1.1\r\n: no-name\r\n\r\n",
                     b"GET / HTTP/1.1\r\n\x01\x02: \x03\r\n\r\n"):
            with self.subTest(data=data[:24]):
                r = raw_exchange(self.broker.port, data, timeout=3)
                self.assertNoSuccess(r)
        # Garbage that never ends a line: the server waits, nothing breaks.
        r = raw_exchange(self.broker.port, garbage.replace(b"\n", b" "), timeout=1)
        self.assertNoSuccess(r)
        self.assertAlive()

    def test_absurd_methods(self):
        for method in (b"X" * 5000, b"G\x01T", b"get", b"FROBNICATE", b"CONNECT", b"TRACE",
                       b"PUT\x00"):
            with self.subTest(method=method[:16]):
                data = method + b" /v2/catalog HTTP/1.1\r\nHost: x\r\nAuthorization: " + \
                    self.auth.encode() + b"\r\nX-Broker-API-Version: 2.17\r\n\r\n"
                r = raw_exchange(self.broker.port, data, timeout=3)
                self.assertIsNotNone(r.status, r)
                self.assertTrue(400 <= r.status < 500, r)
        self.assertAlive()

    BAD_CONTENT_LENGTHS = (b"abc", b"-1", b"1 2", b"99999999999999999999999")

    def bad_content_length(self, cl):
        data = self.req_head("PUT", "/v2/service_instances/x",
                             b"Content-Type: application/json\r\nContent-Length: " + cl +
                             b"\r\n\r\n{}")
        return raw_exchange(self.broker.port, data, timeout=3, until_close=True)

    def test_bad_content_length_is_refused(self):
        for cl in self.BAD_CONTENT_LENGTHS:
            with self.subTest(cl=cl):
                r = self.bad_content_length(cl)
                self.assertIsNotNone(r.status, r)
                self.assertTrue(400 <= r.status < 500, r)
        self.assertAbsent("x")
        self.assertAlive()

    # libmicrohttpd 0.9.75 (Debian bookworm) answers a malformed Content-Length itself, before
    # any handler runs, and writes its status line and headers twice. The request is refused
    # and nothing changes (above); this test tracks the library's defect and starts failing
    # as an unexpected success once a fixed library is installed.
    @unittest.expectedFailure
    def test_bad_content_length_response_is_well_formed(self):
        for cl in self.BAD_CONTENT_LENGTHS:
            r = self.bad_content_length(cl)
            # One well-formed response: the body is Content-Length bytes, not a second
            # status line and header block.
            self.assertEqual(len(r.body), int(r.headers.get("content-length", "0")), r)
            self.assertFalse(r.body.startswith(b"HTTP/"), "response headers sent twice: %r"
                             % r.data)

    def test_many_query_parameters_get_an_answer(self):
        # About 10 KiB of request line, well under the 32 KiB header limit: answered at once
        # (400 or 410 for an unknown instance), not left hanging until the idle timeout.
        query = "&".join("p%d=%d" % (i, i) for i in range(1000))
        data = self.req_head("DELETE", "/v2/service_instances/nope?" + query) + b"\r\n"
        r = raw_exchange(self.broker.port, data, timeout=5)
        self.assertFalse(r.timed_out, "no answer within 5 s to a request with 1000 query "
                         "parameters: %r" % r)
        self.assertIsNotNone(r.status, r)
        self.assertTrue(400 <= r.status < 500, r)
        self.assertAlive()

    def test_bad_chunked_encoding(self):
        for chunks in (b"zz\r\n{}\r\n0\r\n\r\n", b"ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",
                       b"2\r\n{}XX0\r\n\r\n", b"-2\r\n{}\r\n0\r\n\r\n"):
            with self.subTest(chunks=chunks):
                data = self.req_head("PUT", "/v2/service_instances/chunky",
                                     b"Content-Type: application/json\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\n") + chunks
                r = raw_exchange(self.broker.port, data, timeout=3)
                self.assertNoSuccess(r)
        self.assertAbsent("chunky")
        self.assertAlive()

    def test_pipelined_requests(self):
        one = self.req_head("GET", "/v2/catalog") + b"\r\n"
        r = raw_exchange(self.broker.port, one * 20 + self.req_head(
            "GET", "/v2/catalog", b"Connection: close\r\n") + b"\r\n", timeout=10,
            until_close=True)
        self.assertFalse(r.timed_out, r)
        self.assertEqual(len(re.findall(rb"HTTP/1\.1 200 ", r.data)), 21, r.data[:200])
        self.assertAlive()


# ---------------------------------------------------------------- many connections

class ConnectionsTest(RobustnessBase):

    IDLE = 1000

    @classmethod
    def setUpClass(cls):
        cls.old_nofile = None
        if resource is not None:
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            want = cls.IDLE + 512
            if soft != resource.RLIM_INFINITY and soft < want:
                new = want if hard == resource.RLIM_INFINITY else min(want, hard)
                resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
                cls.old_nofile = (soft, hard)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            if cls.old_nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, cls.old_nofile)

    def test_idle_connections_do_not_starve_others(self):
        if resource is not None:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            if soft != resource.RLIM_INFINITY and soft < self.IDLE + 128:
                self.fail("RLIMIT_NOFILE %d is too low to hold %d connections" % (soft, self.IDLE))
        idle = []
        try:
            for i in range(self.IDLE):
                s = socket.create_connection(("127.0.0.1", self.broker.port), timeout=5)
                idle.append(s)
                if i % 3 == 0:
                    s.sendall(b"GET /v2/cat")  # some half a request line, too
            start = time.time()
            worst = 0.0
            c = self.broker.client()
            try:
                for i in range(200):
                    t = time.time()
                    if i % 10 == 0:
                        c.close()  # a fresh connection now and then: accept() keeps working
                    r = c.call("GET", "/v2/catalog")
                    worst = max(worst, time.time() - t)
                    self.assertEqual(r.status, 200, r)
            finally:
                c.close()
            total = time.time() - start
            self.assertLess(worst, 2.0, "one request took %.2fs with %d idle connections"
                            % (worst, self.IDLE))
            self.assertLess(total, 20.0, "200 requests took %.2fs" % total)
            # The idle ones are still open and usable.
            s = idle[1]
            s.sendall(self.req_head("GET", "/healthz") + b"\r\n")
            s.settimeout(5)
            data = b""
            while parse_response(data) is None:
                d = s.recv(4096)
                if not d:
                    break
                data += d
            self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:100])
        finally:
            for s in idle:
                s.close()
        self.assertAlive()

    def test_slowloris_does_not_block_others(self):
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        results = {}

        def slow(n):
            try:
                s = socket.create_connection(("127.0.0.1", self.broker.port), timeout=10)
                for ch in request:
                    s.sendall(bytes([ch]))
                    time.sleep(0.1)
                data = b""
                s.settimeout(10)
                while parse_response(data) is None:
                    d = s.recv(4096)
                    if not d:
                        break
                    data += d
                s.close()
                results[n] = data
            except OSError as e:
                results[n] = e

        threads = [threading.Thread(target=slow, args=(n,), daemon=True) for n in range(6)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        c = self.broker.client()
        served = 0
        worst = 0.0
        try:
            while any(t.is_alive() for t in threads):
                t0 = time.time()
                c.close()  # new connections too, not only a kept-alive one
                r = c.call("GET", "/v2/catalog")
                worst = max(worst, time.time() - t0)
                self.assertEqual(r.status, 200, r)
                served += 1
                time.sleep(0.02)
        finally:
            c.close()
        for t in threads:
            t.join(15)
        self.assertGreater(served, 20)
        self.assertLess(worst, 1.0, "a request took %.2fs while slow clients trickled" % worst)
        for n in range(6):
            data = results.get(n)
            self.assertIsInstance(data, bytes, data)
            self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:100])
            self.assertEqual(json.loads(parse_response(data)[2]), {"status": "ok"})
        self.assertAlive()


# ---------------------------------------------------------------- concurrency

class ConcurrencyTest(RobustnessBase):

    def race(self, n, fn):
        barrier = threading.Barrier(n)
        out = [None] * n

        def run(i):
            c = self.broker.client()
            try:
                barrier.wait(10)
                out[i] = fn(c)
            except Exception as e:  # reported below
                out[i] = e
            finally:
                c.close()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for r in out:
            self.assertNotIsInstance(r, Exception, r)
        return out

    def test_concurrent_identical_provisions(self):
        for round_ in range(5):
            iid = self.uid("race")
            out = self.race(8, lambda c: c.provision(iid, plan=STANDARD))
            statuses = sorted(r.status for r in out)
            with self.subTest(round=round_, statuses=statuses):
                self.assertEqual(statuses.count(201), 1, out)
                for r in out:
                    self.assertLess(r.status, 500, r)
                    if r.status == 422:
                        self.assertEqual(r.json.get("error"), "ConcurrencyError", r)
                    else:
                        self.assertIn(r.status, (200, 201), r)
                r = self.osb.call("GET", "/v2/service_instances/" + iid)
                self.assertEqual((r.status, r.json["plan_id"]), (200, STANDARD), r)
                self.assertEqual(self.osb.provision(iid, plan=STANDARD).status, 200)
        self.assertAlive()

    def test_concurrent_identical_binds(self):
        iid = self.uid("brace")
        self.assertEqual(self.osb.provision(iid, plan=STANDARD).status, 201)
        out = self.race(8, lambda c: c.bind(iid, "b", plan=STANDARD))
        self.assertEqual([r.status for r in out].count(201), 1, out)
        creds = [r for r in out if r.status == 201][0].json["credentials"]
        for r in out:
            self.assertLess(r.status, 500, r)
            if r.status == 422:
                self.assertEqual(r.json.get("error"), "ConcurrencyError", r)
            else:
                self.assertIn(r.status, (200, 201), r)
                self.assertEqual(r.json["credentials"], creds, "an identical bind returns the "
                                 "same credentials")
        self.assertAlive()

    def test_concurrent_conflicting_provisions(self):
        iid = self.uid("conflict")
        plans = [LITE, STANDARD] * 4
        out = self.race(8, lambda c: c.provision(iid, plan=plans.pop()))
        self.assertEqual([r.status for r in out].count(201), 1, out)
        for r in out:
            self.assertIn(r.status, (200, 201, 409, 422), r)
        self.assertAlive()


# ---------------------------------------------------------------- stopping

class ShutdownTest(unittest.TestCase):
    """SIGTERM must end the broker cleanly (exit 0, no sanitizer report) whatever the clients
    are doing, and every request it acknowledged must be there after a restart."""

    def setUp(self):
        self.brokers = []

    def tearDown(self):
        for b in self.brokers:
            b.kill()
        if self.brokers:
            self.brokers[0].cleanup()

    def start(self, data=None):
        b = Broker(data=data).start()
        self.brokers.append(b)
        return b

    def stop_error(self, broker):
        try:
            broker.stop()
        except AssertionError as e:
            return str(e)
        return None

    def test_sigterm_while_requests_are_in_flight(self):
        broker = self.start()
        halt = threading.Event()
        acked = []
        lock = threading.Lock()

        def hammer(n):
            c = broker.client()
            c.timeout = 5
            i = 0
            while not halt.is_set():
                iid = "load-%d-%d" % (n, i)
                i += 1
                try:
                    r = c.provision(iid, plan=LITE)
                except (OSError, http.client.HTTPException):
                    c.close()
                    time.sleep(0.01)
                    continue
                if r.status == 201:
                    with lock:
                        acked.append(iid)
            c.close()

        threads = [threading.Thread(target=hammer, args=(n,), daemon=True) for n in range(8)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        self.assertTrue(broker.alive())
        error = self.stop_error(broker)
        halt.set()
        for t in threads:
            t.join(10)
        with lock:
            acked_now = list(acked)
        self.assertGreater(len(acked_now), 10)
        # Acknowledged means stored: all of them are there after a restart.
        again = self.start(data=broker.data)
        c = again.client()
        try:
            missing = [iid for iid in acked_now
                       if c.call("GET", "/v2/service_instances/" + iid).status != 200]
        finally:
            c.close()
        problems = []
        if error:
            problems.append("SIGTERM while OSB requests were in flight: " + error)
        if missing:
            problems.append("%d of %d acknowledged provisions lost over a restart: %s"
                            % (len(missing), len(acked_now), missing[:5]))
        error = self.stop_error(again)
        if error:
            problems.append("second stop: " + error)
        if problems:
            self.fail("\n".join(problems))

    def test_sigterm_with_idle_and_partial_connections(self):
        broker = self.start()
        socks = []
        try:
            for i in range(50):
                s = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
                if i % 2:
                    s.sendall(b"PUT /v2/service_instances/x HTTP/1.1\r\nHost: x\r\n"
                              b"Content-Length: 100\r\n\r\n{\"serv")
                socks.append(s)
            c = broker.client()
            self.assertEqual(c.call("GET", "/v2/catalog").status, 200)
            t0 = time.time()
            error = self.stop_error(broker)
            self.assertIsNone(error, error)
            self.assertLess(time.time() - t0, 10)
            c.close()
        finally:
            for s in socks:
                s.close()



if __name__ == "__main__":
    unittest.main()
