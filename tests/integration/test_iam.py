"""IAM over HTTP against a real osbill serve: init, the API key and refresh grants, client
credentials, JWKS and rotation, introspection and revocation, the /v1 APIs, access policies,
/v2/authz, and the cross-account rules of spec/iam.md."""

import base64
import json
import os
import time
import unittest

from harness import Platform, basic

APIKEY_GRANT = "urn:ibm:params:oauth:grant-type:apikey"


def b64json(seg):
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


class IAMTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Platform().start()
        c = cls.p.client()
        cls.op_token = c.apikey_token(cls.p.init["api_key"])
        cls.op_account = cls.p.init["account_id"]
        # Two tenants, each with an owner and an API key the operator makes for them.
        cls.tenants = {}
        for name, kind in (("acme", "provider"), ("globex", "consumer")):
            r = c.call("POST", "/v1/accounts", token=cls.op_token,
                       body={"name": name, "kind": kind,
                             "owner": {"email": "%s@example.com" % name, "name": name.title(),
                                       "password": "password-%s" % name}})
            assert r.status == 201, r
            acct = r.json
            r = c.call("POST", "/v1/apikeys", token=cls.op_token,
                       body={"name": "owner key", "iam_id": acct["owner_iam_id"],
                             "account_id": acct["id"]})
            assert r.status == 201, r
            cls.tenants[name] = {"account": acct["id"], "owner": acct["owner_iam_id"],
                                 "apikey": r.json["apikey"], "key_id": r.json["id"],
                                 "token": c.apikey_token(r.json["apikey"])}
        c.close()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.p.stop()
        finally:
            cls.p.cleanup()

    def setUp(self):
        self.c = self.p.client()

    def tearDown(self):
        self.c.close()

    def token_form(self, fields, headers=None):
        return self.c.form("/identity/token", fields, headers=headers)

    def assertOAuthError(self, r, status, error):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.json["error"], error, r)
        self.assertIsInstance(r.json["error_description"], str)
        self.assertEqual(r.header("Cache-Control"), "no-store")

    def assertPlatformError(self, r, status):
        self.assertEqual(r.status, status, r)
        self.assertIsInstance(r.json["errors"][0]["message"], str, r)
        self.assertTrue(r.json["trace"])

    # ------------------------------------------------------------ init, ops endpoints

    def test_init_output(self):
        for k in ("account_id", "user", "api_key", "iam_id"):
            self.assertIn(k, self.p.init)
        self.assertTrue(self.p.init["iam_id"].startswith("osbill-"))

    def test_health_ready_metrics(self):
        self.assertEqual(self.c.call("GET", "/healthz").status, 200)
        self.assertEqual(self.c.call("GET", "/readyz").status, 200)
        r = self.c.call("GET", "/metrics")
        self.assertEqual(r.status, 200)
        self.assertIn(b"osbill_http_requests_total", r.raw)
        self.assertIn(b"osbill_http_request_duration_seconds_bucket", r.raw)

    # ------------------------------------------------------------ the apikey grant

    def test_apikey_grant(self):
        r = self.token_form({"grant_type": APIKEY_GRANT, "apikey": self.tenants["acme"]["apikey"]})
        self.assertEqual(r.status, 200, r)
        j = r.json
        self.assertEqual(j["token_type"], "Bearer")
        self.assertEqual(j["expires_in"], 3600)
        self.assertAlmostEqual(j["expiration"], time.time() + 3600, delta=30)
        self.assertIn("refresh_token", j)
        header, claims, sig = j["access_token"].split(".")
        h = b64json(header)
        self.assertEqual((h["alg"], h["typ"]), ("RS256", "JWT"))
        c = b64json(claims)
        self.assertEqual(c["iss"], self.p.url + "/identity")
        self.assertEqual(c["iam_id"], self.tenants["acme"]["owner"])
        self.assertEqual(c["sub"], c["iam_id"])
        self.assertEqual(c["account"], {"bss": self.tenants["acme"]["account"]})
        self.assertEqual(c["grant_type"], APIKEY_GRANT)
        self.assertLessEqual(c["exp"] - c["iat"], 3600)
        self.assertTrue(c["jti"])
        keys = self.c.call("GET", "/identity/keys").json["keys"]
        self.assertIn(h["kid"], [k["kid"] for k in keys])

    def test_token_endpoint_errors(self):
        self.assertOAuthError(self.token_form({"grant_type": APIKEY_GRANT, "apikey": "nope"}), 400,
                              "invalid_grant")
        self.assertOAuthError(self.token_form({"grant_type": APIKEY_GRANT}), 400, "invalid_request")
        self.assertOAuthError(self.token_form({"apikey": "x"}), 400, "invalid_request")
        self.assertOAuthError(self.token_form({"grant_type": "password", "username": "a"}), 400,
                              "unsupported_grant_type")
        r = self.c.request("POST", "/identity/token",
                           raw=b"grant_type=refresh_token&grant_type=refresh_token&refresh_token=x",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertOAuthError(r, 400, "invalid_request")
        r = self.c.request("POST", "/identity/token", body={"grant_type": APIKEY_GRANT})
        self.assertOAuthError(r, 400, "invalid_request")
        r = self.c.request("POST", "/identity/token", raw=b"grant_type=%zz",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertOAuthError(r, 400, "invalid_request")
        self.assertOAuthError(self.token_form({"grant_type": "refresh_token",
                                               "refresh_token": "bogus"}), 400, "invalid_grant")
        self.assertOAuthError(self.token_form({"grant_type": "authorization_code", "code": "x",
                                               "redirect_uri": "https://x.example/cb",
                                               "client_id": "no-such-client"}), 401,
                              "invalid_client")

    def test_locked_key_is_refused_and_cannot_be_deleted(self):
        t = self.tenants["acme"]
        r = self.c.call("POST", "/v1/apikeys", token=t["token"],
                        body={"name": "temp", "iam_id": t["owner"]})
        self.assertEqual(r.status, 201, r)
        key, kid = r.json["apikey"], r.json["id"]
        self.assertEqual(self.c.call("POST", "/v1/apikeys/%s/lock" % kid, token=t["token"]).status, 204)
        self.assertOAuthError(self.token_form({"grant_type": APIKEY_GRANT, "apikey": key}), 400,
                              "invalid_grant")
        self.assertPlatformError(self.c.call("DELETE", "/v1/apikeys/" + kid, token=t["token"]), 409)
        self.assertEqual(self.c.call("DELETE", "/v1/apikeys/%s/lock" % kid, token=t["token"]).status, 204)
        self.assertEqual(self.token_form({"grant_type": APIKEY_GRANT, "apikey": key}).status, 200)
        self.assertEqual(self.c.call("DELETE", "/v1/apikeys/" + kid, token=t["token"]).status, 204)
        self.assertOAuthError(self.token_form({"grant_type": APIKEY_GRANT, "apikey": key}), 400,
                              "invalid_grant")

    def test_api_keys_are_shown_once_and_stored_hashed(self):
        t = self.tenants["acme"]
        r = self.c.call("POST", "/v1/apikeys", token=t["token"], body={"name": "once", "iam_id": t["owner"]})
        self.assertEqual(r.status, 201)
        key = r.json["apikey"]
        got = self.c.call("GET", "/v1/apikeys/" + r.json["id"], token=t["token"])
        self.assertEqual(got.status, 200)
        self.assertNotIn("apikey", got.json)
        listed = self.c.call("GET", "/v1/apikeys", token=t["token"], query={"iam_id": t["owner"]})
        self.assertNotIn(key.encode(), listed.raw)
        self.assertNotIn(key.encode(), self.p.stored_bytes(), "an API key in clear in the database")

    # ------------------------------------------------------------ refresh tokens

    def test_refresh_rotation_and_reuse_detection(self):
        first = self.token_form({"grant_type": APIKEY_GRANT, "apikey": self.tenants["acme"]["apikey"]}).json
        r1 = self.token_form({"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
        self.assertEqual(r1.status, 200, r1)
        second = r1.json["refresh_token"]
        self.assertNotEqual(second, first["refresh_token"])
        # Reusing the first (already used) token is refused and kills the family...
        self.assertOAuthError(self.token_form({"grant_type": "refresh_token",
                                               "refresh_token": first["refresh_token"]}), 400,
                              "invalid_grant")
        # ... so the second one, never used, is dead too.
        self.assertOAuthError(self.token_form({"grant_type": "refresh_token",
                                               "refresh_token": second}), 400, "invalid_grant")

    def test_refresh_token_tampering_is_refused(self):
        rt = self.token_form({"grant_type": APIKEY_GRANT,
                              "apikey": self.tenants["acme"]["apikey"]}).json["refresh_token"]
        raw = bytearray(base64.urlsafe_b64decode(rt + "=" * (-len(rt) % 4)))
        forged = []
        for i in (0, 1, 30, len(raw) // 2, len(raw) - 1):  # version, nonce, body, tag
            b = bytearray(raw)
            b[i] ^= 0x01
            forged.append(base64.urlsafe_b64encode(bytes(b)).rstrip(b"=").decode())
        forged += [rt[:-1], rt + "A", rt + "=", rt.replace(rt[5], "+" if rt[5] != "+" else "/", 1),
                   "A" * 3000, base64.urlsafe_b64encode(b"\x01" + b"\x00" * 60).decode().rstrip("=")]
        for f in forged:
            self.assertOAuthError(self.token_form({"grant_type": "refresh_token", "refresh_token": f}),
                                  400, "invalid_grant")
        # None of that harmed the real token.
        self.assertEqual(self.token_form({"grant_type": "refresh_token", "refresh_token": rt}).status, 200)

    def test_refresh_token_only_for_its_client(self):
        t = self.tenants["acme"]
        rt = self.token_form({"grant_type": APIKEY_GRANT, "apikey": t["apikey"]}).json["refresh_token"]
        cl = self.c.call("POST", "/v1/clients", token=t["token"],
                         body={"account_id": t["account"], "name": "other",
                               "redirect_uris": ["https://acme.example.com/cb"]})
        self.assertEqual(cl.status, 201, cl)
        self.assertOAuthError(self.token_form({"grant_type": "refresh_token", "refresh_token": rt},
                                              headers={"Authorization": basic(cl.json["client_id"],
                                                                              cl.json["client_secret"])}),
                              400, "invalid_grant")

    def test_concurrent_redemption_of_one_refresh_token(self):
        import threading
        rt = self.token_form({"grant_type": APIKEY_GRANT,
                              "apikey": self.tenants["acme"]["apikey"]}).json["refresh_token"]
        results = []

        def redeem():
            c = self.p.client()
            try:
                results.append(c.form("/identity/token", {"grant_type": "refresh_token",
                                                          "refresh_token": rt}))
            finally:
                c.close()
        threads = [threading.Thread(target=redeem) for _ in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        ok = [r for r in results if r.status == 200]
        self.assertEqual(len(ok), 1, [r.status for r in results])
        for r in results:
            if r.status != 200:
                self.assertEqual(r.json["error"], "invalid_grant")
        # The others were reuses: the winner's new token died with the family.
        self.assertOAuthError(self.token_form({"grant_type": "refresh_token",
                                               "refresh_token": ok[0].json["refresh_token"]}),
                              400, "invalid_grant")

    def test_refresh_stops_when_the_account_is_suspended(self):
        # No suspend API yet (the resource controller adds it): flip the state in the store
        # the way that API will, and check the refresh grant reads it.
        c = self.c
        r = c.call("POST", "/v1/accounts", token=self.op_token,
                   body={"name": "initech", "kind": "consumer",
                         "owner": {"email": "initech@example.com", "name": "Initech",
                                   "password": "password-initech"}})
        self.assertEqual(r.status, 201, r)
        acct = r.json
        k = c.call("POST", "/v1/apikeys", token=self.op_token,
                   body={"name": "k", "iam_id": acct["owner_iam_id"], "account_id": acct["id"]})
        rt = self.token_form({"grant_type": APIKEY_GRANT, "apikey": k.json["apikey"]}).json["refresh_token"]
        self.p.sql("UPDATE accounts SET state = 'suspended' WHERE id = ?", (acct["id"],))
        try:
            self.assertOAuthError(self.token_form({"grant_type": "refresh_token", "refresh_token": rt}),
                                  400, "invalid_grant")
        finally:
            self.p.sql("UPDATE accounts SET state = 'active' WHERE id = ?", (acct["id"],))
        # Refused, not consumed: the token works again once the account is back.
        self.assertEqual(self.token_form({"grant_type": "refresh_token", "refresh_token": rt}).status, 200)

    def test_store_unavailable_errors_and_nothing_lost(self):
        # Another process holds the database's write lock longer than the server waits for
        # it (5 s): writes fail with the RFC 6749 / RFC 7009 server errors, reads go on, and
        # the refused redemption did not use the refresh token up.
        import threading
        t = self.tenants["globex"]
        rt = self.token_form({"grant_type": APIKEY_GRANT, "apikey": t["apikey"]}).json["refresh_token"]
        access = self.token_form({"grant_type": APIKEY_GRANT, "apikey": t["apikey"]}).json["access_token"]
        results = {}

        def call(name, path, fields):
            c = self.p.client()
            try:
                results[name] = c.form(path, fields)
            finally:
                c.close()
        with self.p.write_lock():
            threads = [threading.Thread(target=call, args=a) for a in (
                ("refresh", "/identity/token", {"grant_type": "refresh_token", "refresh_token": rt}),
                ("revoke", "/identity/revoke", {"token": access, "client_id": "osbill"}))]
            for th in threads:
                th.start()
            # Reads are not blocked meanwhile.
            self.assertEqual(self.token_form({"grant_type": APIKEY_GRANT,
                                              "apikey": t["apikey"]}).status, 200)
            for th in threads:
                th.join(30)
        self.assertOAuthError(results["refresh"], 500, "server_error")
        self.assertOAuthError(results["revoke"], 503, "temporarily_unavailable")
        r = self.token_form({"grant_type": "refresh_token", "refresh_token": rt})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.c.call("GET", "/v1/accounts", token=access).status, 200)

    def test_refresh_tokens_are_not_stored(self):
        rt = self.token_form({"grant_type": APIKEY_GRANT,
                              "apikey": self.tenants["globex"]["apikey"]}).json["refresh_token"]
        r = self.token_form({"grant_type": "refresh_token", "refresh_token": rt})
        self.assertEqual(r.status, 200, r)
        data = self.p.stored_bytes()
        self.assertNotIn(rt.encode(), data)
        self.assertNotIn(r.json["refresh_token"].encode(), data)

    def test_service_id_keys_get_no_refresh_token(self):
        t = self.tenants["acme"]
        sid = self.c.call("POST", "/v1/serviceids", token=t["token"],
                          body={"account_id": t["account"], "name": "broker"}).json
        self.assertTrue(sid["iam_id"].startswith("iam-ServiceId-"))
        key = self.c.call("POST", "/v1/apikeys", token=t["token"],
                          body={"name": "k", "iam_id": sid["iam_id"]}).json["apikey"]
        r = self.token_form({"grant_type": APIKEY_GRANT, "apikey": key})
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("refresh_token", r.json)
        self.assertEqual(b64json(r.json["access_token"].split(".")[1])["sub_type"], "ServiceId")

    # ------------------------------------------------------------ clients

    def make_client(self, tenant="acme", public=False, service=None, uris=None):
        t = self.tenants[tenant]
        body = {"account_id": t["account"], "name": "dash", "public": public,
                "redirect_uris": uris or ["https://dash.example.com/callback"]}
        if service:
            body["service_name"] = service
        r = self.c.call("POST", "/v1/clients", token=t["token"], body=body)
        self.assertEqual(r.status, 201, r)
        return r.json

    def test_client_credentials(self):
        cl = self.make_client()
        r = self.token_form({"grant_type": "client_credentials"},
                            headers={"Authorization": basic(cl["client_id"], cl["client_secret"])})
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("refresh_token", r.json)
        claims = b64json(r.json["access_token"].split(".")[1])
        self.assertEqual(claims["client_id"], cl["client_id"])
        self.assertEqual(claims["grant_type"], "client_credentials")
        r = self.token_form({"grant_type": "client_credentials"},
                            headers={"Authorization": basic(cl["client_id"], "wrong")})
        self.assertOAuthError(r, 401, "invalid_client")
        self.assertTrue(r.header("WWW-Authenticate").startswith("Basic"))
        self.assertOAuthError(self.token_form({"grant_type": "client_credentials",
                                               "client_id": cl["client_id"]}), 401, "invalid_client")
        pub = self.make_client(public=True)
        self.assertNotIn("client_secret", pub)
        self.assertOAuthError(self.token_form({"grant_type": "client_credentials",
                                               "client_id": pub["client_id"]}), 401, "invalid_client")

    def test_client_redirect_uris_are_checked(self):
        t = self.tenants["acme"]
        for uris in (["not a uri"], ["https://x.example/cb#frag"], "https://x", [1]):
            r = self.c.call("POST", "/v1/clients", token=t["token"],
                            body={"account_id": t["account"], "name": "d", "redirect_uris": uris})
            self.assertPlatformError(r, 400)

    # ------------------------------------------------------------ keys, discovery, rotation

    def test_discovery(self):
        r = self.c.call("GET", "/identity/.well-known/openid-configuration")
        self.assertEqual(r.status, 200)
        j = r.json
        self.assertEqual(j["issuer"], self.p.url + "/identity")
        self.assertEqual(j["jwks_uri"], self.p.url + "/identity/keys")
        self.assertEqual(j["token_endpoint"], self.p.url + "/identity/token")
        self.assertIn("S256", j["code_challenge_methods_supported"])
        self.assertIn(APIKEY_GRANT, j["grant_types_supported"])

    def test_jwks_publishes_active_and_next(self):
        keys = self.c.call("GET", "/identity/keys").json["keys"]
        self.assertGreaterEqual(len(keys), 2)
        for k in keys:
            self.assertEqual((k["kty"], k["alg"], k["use"]), ("RSA", "RS256", "sig"))
            self.assertNotIn("d", k, "a private key part in the JWKS")

    def test_rotation_keeps_old_tokens_valid(self):
        before = self.token_form({"grant_type": APIKEY_GRANT, "apikey": self.p.init["api_key"]}).json["access_token"]
        old_kid = b64json(before.split(".")[0])["kid"]
        keys_before = [k["kid"] for k in self.c.call("GET", "/identity/keys").json["keys"]]
        # Only the operator rotates.
        self.assertPlatformError(self.c.call("POST", "/identity/keys/rotate",
                                             token=self.tenants["acme"]["token"]), 403)
        r = self.c.call("POST", "/identity/keys/rotate", token=before)
        self.assertEqual(r.status, 200, r)
        new_kid = r.json["active_kid"]
        self.assertNotEqual(new_kid, old_kid)
        self.assertIn(new_kid, keys_before, "the next key was published before it became active")
        after = self.token_form({"grant_type": APIKEY_GRANT, "apikey": self.p.init["api_key"]}).json["access_token"]
        self.assertEqual(b64json(after.split(".")[0])["kid"], new_kid)
        keys_after = [k["kid"] for k in self.c.call("GET", "/identity/keys").json["keys"]]
        self.assertIn(old_kid, keys_after, "the retired key stays until its tokens expire")
        self.assertEqual(len(keys_after), 3)
        # Tokens signed by the old key still work, and so do new ones.
        self.assertEqual(self.c.call("GET", "/v1/accounts", token=before).status, 200)
        self.assertEqual(self.c.call("GET", "/v1/accounts", token=after).status, 200)

    # ------------------------------------------------------------ introspect, revoke

    def test_introspect_and_revoke(self):
        cl = self.make_client()
        auth = {"Authorization": basic(cl["client_id"], cl["client_secret"])}
        tok = self.token_form({"grant_type": "client_credentials"}, headers=auth).json["access_token"]
        r = self.c.form("/identity/introspect", {"token": tok}, headers=auth)
        self.assertEqual(r.status, 200, r)
        self.assertIs(r.json["active"], True)
        self.assertEqual(r.json["client_id"], cl["client_id"])
        r = self.c.form("/identity/introspect", {"token": "garbage"}, headers=auth)
        self.assertEqual(r.json, {"active": False})
        self.assertOAuthError(self.c.form("/identity/introspect", {"token": tok}), 401,
                              "invalid_client")
        self.assertEqual(self.c.call("POST", "/v2/authz", token=tok, body=[]).status, 400)
        r = self.c.form("/identity/revoke", {"token": tok, "token_type_hint": "access_token"},
                        headers=auth)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.c.form("/identity/introspect", {"token": tok}, headers=auth).json,
                         {"active": False})
        self.assertPlatformError(self.c.call("POST", "/v2/authz", token=tok, body=[]), 401)
        # Unknown tokens: still 200 (RFC 7009).
        self.assertEqual(self.c.form("/identity/revoke", {"token": "unknown"}, headers=auth).status, 200)
        self.assertOAuthError(self.c.form("/identity/revoke", {"token": "x", "token_type_hint": "id"},
                                          headers=auth), 400, "unsupported_token_type")

    def test_revoke_refresh_token_with_the_public_cli_client(self):
        j = self.token_form({"grant_type": APIKEY_GRANT, "apikey": self.tenants["acme"]["apikey"]}).json
        r = self.c.form("/identity/revoke", {"token": j["refresh_token"], "client_id": "osbill"})
        self.assertEqual(r.status, 200, r)
        self.assertOAuthError(self.token_form({"grant_type": "refresh_token",
                                               "refresh_token": j["refresh_token"]}), 400,
                              "invalid_grant")

    # ------------------------------------------------------------ the API and its rules

    def test_bearer_required(self):
        self.assertPlatformError(self.c.call("GET", "/v1/accounts"), 401)
        self.assertPlatformError(self.c.call("GET", "/v1/accounts", token="x.y.z"), 401)
        r = self.c.call("GET", "/v1/accounts", headers={"Authorization": basic("a", "b")})
        self.assertPlatformError(r, 401)
        self.assertTrue(r.header("WWW-Authenticate").startswith("Bearer"))

    def test_accounts_visible_to_members_and_operator(self):
        acme = self.tenants["acme"]
        mine = self.c.call("GET", "/v1/accounts", token=acme["token"]).json["resources"]
        self.assertEqual([a["id"] for a in mine], [acme["account"]])
        everyone = self.c.call("GET", "/v1/accounts", token=self.op_token).json["resources"]
        self.assertGreaterEqual(len(everyone), 3)
        self.assertEqual(self.c.call("GET", "/v1/accounts/" + acme["account"], token=acme["token"]).status, 200)

    def test_only_the_operator_creates_accounts(self):
        r = self.c.call("POST", "/v1/accounts", token=self.tenants["acme"]["token"],
                        body={"name": "x", "kind": "consumer"})
        self.assertPlatformError(r, 403)
        for body in ({"name": "x"}, {"name": "x", "kind": "operator"}, {"name": "", "kind": "consumer"},
                     {"name": "x", "kind": "consumer", "currency": "dollars"},
                     {"name": "x", "kind": "consumer", "owner": {"email": "bad", "name": "n", "password": "longenough"}},
                     {"name": "x", "kind": "consumer", "owner": {"email": "a@b.co", "name": "n", "password": "short"}}):
            self.assertPlatformError(self.c.call("POST", "/v1/accounts", token=self.op_token, body=body), 400)
        self.assertPlatformError(self.c.call("POST", "/v1/accounts", token=self.op_token, body=[1]), 400)

    def test_cross_account_isolation(self):
        acme, globex = self.tenants["acme"], self.tenants["globex"]
        sid = self.c.call("POST", "/v1/serviceids", token=globex["token"],
                          body={"account_id": globex["account"], "name": "g-svc"}).json
        pol = self.c.call("GET", "/v1/policies", token=globex["token"],
                          query={"account_id": globex["account"]}).json["policies"][0]
        t = acme["token"]
        checks = [
            ("GET", "/v1/accounts/" + globex["account"], None, None),
            ("GET", "/v1/serviceids", None, {"account_id": globex["account"]}),
            ("GET", "/v1/serviceids/" + sid["id"], None, None),
            ("DELETE", "/v1/serviceids/" + sid["id"], None, None),
            ("POST", "/v1/serviceids", {"account_id": globex["account"], "name": "evil"}, None),
            ("GET", "/v1/users", None, {"account_id": globex["account"]}),
            ("POST", "/v1/users", {"account_id": globex["account"], "email": "e@x.io", "name": "e",
                                   "password": "password1"}, None),
            ("GET", "/v1/policies", None, {"account_id": globex["account"]}),
            ("DELETE", "/v1/policies/" + pol["id"], None, None),
            ("GET", "/v1/apikeys/" + globex["key_id"], None, None),
            ("POST", "/v1/apikeys/%s/lock" % globex["key_id"], None, None),
            ("DELETE", "/v1/apikeys/" + globex["key_id"], None, None),
            ("GET", "/v1/apikeys", None, {"account_id": globex["account"]}),
            ("POST", "/v1/clients", {"account_id": globex["account"], "name": "c"}, None),
        ]
        for method, path, body, query in checks:
            with self.subTest(method=method, path=path):
                r = self.c.call(method, path, token=t, body=body, query=query)
                self.assertPlatformError(r, 404)
        # A key for another account's service ID, or a policy naming another account's user.
        r = self.c.call("POST", "/v1/apikeys", token=t, body={"name": "k", "iam_id": sid["iam_id"]})
        self.assertIn(r.status, (403, 404), r)
        r = self.c.call("POST", "/v1/policies", token=t, body={
            "type": "access", "subjects": [{"attributes": [{"name": "iam_id", "value": globex["owner"]}]}],
            "roles": [{"role_id": "crn:v1:bluemix:public:iam::::role:Administrator"}],
            "resources": [{"attributes": [{"name": "accountId", "value": acme["account"]}]}]})
        self.assertPlatformError(r, 400)
        # Nothing of globex changed.
        self.assertEqual(self.c.call("GET", "/v1/serviceids/" + sid["id"], token=globex["token"]).status, 200)
        self.assertEqual(self.token_form({"grant_type": APIKEY_GRANT, "apikey": globex["apikey"]}).status, 200)

    def test_roles_limit_what_members_do(self):
        acme = self.tenants["acme"]
        r = self.c.call("POST", "/v1/users", token=acme["token"],
                        body={"account_id": acme["account"], "email": "viewer@acme.example",
                              "name": "Vi", "password": "viewer-pass"})
        self.assertEqual(r.status, 201, r)
        viewer = r.json["iam_id"]
        key = self.c.call("POST", "/v1/apikeys", token=acme["token"],
                          body={"name": "v", "iam_id": viewer}).json["apikey"]
        vt = self.c.apikey_token(key)
        # A Viewer reads, and makes keys for itself, but creates nothing else.
        self.assertEqual(self.c.call("GET", "/v1/serviceids", token=vt,
                                     query={"account_id": acme["account"]}).status, 200)
        self.assertPlatformError(self.c.call("POST", "/v1/serviceids", token=vt,
                                             body={"account_id": acme["account"], "name": "x"}), 403)
        self.assertEqual(self.c.call("POST", "/v1/apikeys", token=vt,
                                     body={"name": "mine", "iam_id": viewer}).status, 201)
        self.assertPlatformError(self.c.call("POST", "/v1/apikeys", token=vt,
                                             body={"name": "theirs", "iam_id": acme["owner"]}), 403)
        # The owner grants Editor; now the viewer can create.
        r = self.c.call("POST", "/v1/policies", token=acme["token"], body={
            "type": "access", "subjects": [{"attributes": [{"name": "iam_id", "value": viewer}]}],
            "roles": [{"role_id": "crn:v1:bluemix:public:iam::::role:Editor"}],
            "resources": [{"attributes": [{"name": "accountId", "value": acme["account"]}]}]})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.c.call("POST", "/v1/serviceids", token=vt,
                                     body={"account_id": acme["account"], "name": "x"}).status, 201)
        self.assertPlatformError(self.c.call("DELETE", "/v1/policies/" + r.json["id"], token=vt), 403)
        self.assertEqual(self.c.call("DELETE", "/v1/policies/" + r.json["id"], token=acme["token"]).status, 204)
        self.assertPlatformError(self.c.call("POST", "/v1/serviceids", token=vt,
                                             body={"account_id": acme["account"], "name": "y"}), 403)

    def test_authz_decisions(self):
        acme, globex = self.tenants["acme"], self.tenants["globex"]
        # globex's owner gets Reader on one starter-kv instance of globex.
        r = self.c.call("POST", "/v1/users", token=globex["token"],
                        body={"account_id": globex["account"], "email": "dev@globex.example",
                              "name": "Dev", "password": "dev-password"})
        dev = r.json["iam_id"]
        r = self.c.call("POST", "/v1/policies", token=globex["token"], body={
            "type": "access", "subjects": [{"attributes": [{"name": "iam_id", "value": dev}]}],
            "roles": [{"role_id": "crn:v1:bluemix:public:iam::::serviceRole:Reader"}],
            "resources": [{"attributes": [{"name": "accountId", "value": globex["account"]},
                                          {"name": "serviceName", "value": "starter-kv"},
                                          {"name": "serviceInstance", "value": "inst-1"}]}]})
        self.assertEqual(r.status, 201, r)

        def ask(token, subject, instance, action="starter-kv.dashboard.view", account=None):
            return self.c.call("POST", "/v2/authz", token=token, body=[{
                "requestId": "r1", "subject": {"attributes": {"id": subject}}, "action": action,
                "resource": {"attributes": {"accountId": account or globex["account"],
                                            "serviceName": "starter-kv",
                                            "serviceInstance": instance}}}])

        def decision(r):
            self.assertEqual(r.status, 200, r)
            return r.json["responses"][0].get("decision") or r.json["responses"][0]["status"]

        # The provider's dashboard client for starter-kv may ask about its service's actions.
        cl = self.make_client(tenant="acme", service="starter-kv")
        ct = self.token_form({"grant_type": "client_credentials"},
                             headers={"Authorization": basic(cl["client_id"], cl["client_secret"])}).json["access_token"]
        self.assertEqual(decision(ask(ct, dev, "inst-1")), "Permit")
        self.assertEqual(decision(ask(ct, dev, "inst-2")), "Deny")
        self.assertEqual(decision(ask(ct, dev, "inst-1", action="starter-kv.data.write")), "Deny")
        self.assertEqual(decision(ask(ct, acme["owner"], "inst-1")), "Deny")
        # ... but not about another service's actions, nor as a plain user of another account.
        self.assertEqual(decision(ask(ct, dev, "inst-1", action="other-svc.dashboard.view")), "403")
        self.assertEqual(decision(ask(acme["token"], dev, "inst-1")), "403")
        # Within its own account a member may ask.
        self.assertEqual(decision(ask(globex["token"], dev, "inst-1")), "Permit")
        r = self.c.call("POST", "/v2/authz", token=ct, body={"not": "an array"})
        self.assertPlatformError(r, 400)


if __name__ == "__main__":
    unittest.main()
