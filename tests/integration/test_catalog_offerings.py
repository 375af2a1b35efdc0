"""Catalog offerings over HTTP against a real osbill serve: creating and editing an offering
with every field's validation, the onboarding steps and what each misses, IAM integration,
visibility and the allowlist, the listing's review, the publication gates and review, the
global catalog with its search, the catalog.json export, and who may do what."""

import os
import time
import unittest

from harness import Platform, basic

APIKEY_GRANT = "urn:ibm:params:oauth:grant-type:apikey"
FULL = {
    "display_name": "Acme Queue",
    "short_description": "A managed message queue.",
    "long_description": "Queues with at-least-once delivery.\nMetered by messages.",
    "tags": ["messaging", "queue"],
    "icon_url": "https://acme.example.com/icon.svg",
    "documentation_url": "https://acme.example.com/docs",
    "instructions_url": "https://acme.example.com/start",
    "terms_url": "https://acme.example.com/terms",
    "support": {"url": "https://acme.example.com/support", "email": "support@acme.example.com",
                "hours": "24x7", "severity_targets": {"1": 60, "2": 240, "3": 1440, "4": 2880}},
}


class CatalogOfferingsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Platform().start()
        c = cls.p.client()
        cls.op_token = c.apikey_token(cls.p.init["api_key"])
        cls.accounts = {}
        for name, kind in (("acme", "provider"), ("globex", "provider"), ("initech", "consumer"),
                           ("hooli", "consumer")):
            r = c.call("POST", "/v1/accounts", token=cls.op_token,
                       body={"name": name, "kind": kind,
                             "owner": {"email": "%s@example.com" % name, "name": name.title(),
                                       "password": "password-%s" % name}})
            assert r.status == 201, r
            k = c.call("POST", "/v1/apikeys", token=cls.op_token,
                       body={"name": "owner", "iam_id": r.json["owner_iam_id"],
                             "account_id": r.json["id"]})
            assert k.status == 201, k
            cls.accounts[name] = {"id": r.json["id"], "token": c.apikey_token(k.json["apikey"])}
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

    def tok(self, who):
        return self.op_token if who == "operator" else self.accounts[who]["token"]

    def call(self, who, method, path, body=None, **kw):
        return self.c.call(method, path, body=body, token=self.tok(who), **kw)

    def create(self, name, who="acme", **fields):
        body = {"name": name, "display_name": "Offering %s" % name}
        body.update(fields)
        r = self.call(who, "POST", "/v1/offerings", body)
        self.assertEqual(r.status, 201, r)
        return r.json

    def assertField(self, r, target, status=400):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.json["errors"][0]["target"], target, r)
        self.assertTrue(r.json["errors"][0]["message"], r)
        self.assertIn("trace", r.json)

    def missing(self, offering, step):
        return offering["steps"][step - 1]["missing"]

    # ------------------------------------------------------------ create, read, change

    def test_create_and_read(self):
        o = self.create("acme-queue", **FULL)
        self.assertEqual(o["visibility"], "draft")
        self.assertEqual(o["revenue_share"], "0.87")
        self.assertEqual(o["account_id"], self.accounts["acme"]["id"])
        self.assertEqual([s["step"] for s in o["steps"]], [1, 2, 3, 4, 5, 6])
        self.assertFalse(any(s["complete"] for s in o["steps"]))
        # Step 1 misses the listing and its review; step 2 plans and IAM, not the metadata.
        self.assertEqual(self.missing(o, 1), ["listing.bullets", "listing_review"])
        self.assertEqual(self.missing(o, 2), ["plans", "iam"])
        r = self.call("acme", "GET", "/v1/offerings/" + o["id"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["support"], FULL["support"])
        lst = self.call("acme", "GET", "/v1/offerings").json
        self.assertIn(o["id"], [x["id"] for x in lst["offerings"]])

    def test_bare_offering_names_every_missing_field(self):
        o = self.create("acme-bare")
        self.assertEqual(self.missing(o, 1), ["documentation_url", "listing.bullets",
                                              "listing_review"])
        self.assertEqual(self.missing(o, 2), ["short_description", "long_description",
                                              "icon_url", "terms_url", "support.url",
                                              "support.hours", "support.severity_targets",
                                              "plans", "iam"])
        self.assertEqual(self.missing(o, 4), ["iam", "sso.redirect_uris"])
        self.assertEqual(self.missing(o, 5), ["visibility.limited", "evidence.instance_lifecycle"])
        self.assertEqual(self.missing(o, 6), ["publication"])

    def test_given_osb_id_and_uniqueness(self):
        o = self.create("acme-given", id="b98be605-e947-4476-8e9c-000000000001")
        self.assertEqual(o["id"], "b98be605-e947-4476-8e9c-000000000001")
        self.assertField(self.call("acme", "POST", "/v1/offerings",
                                   {"name": "acme-given-2", "display_name": "x",
                                    "id": "b98be605-e947-4476-8e9c-000000000001"}), "id", 409)
        self.assertField(self.call("globex", "POST", "/v1/offerings",
                                   {"name": "acme-given", "display_name": "x"}), "name", 409)
        for bad in ("", "a b", "x" * 65, "-lead", "with/slash", 7):
            self.assertField(self.call("acme", "POST", "/v1/offerings",
                                       {"name": "acme-idbad", "display_name": "x", "id": bad}),
                             "id")

    def test_service_name_rules(self):
        for bad in ("", "Upper", "has space", "-lead", "trail-", "double--hyphen", "1digit",
                    "x" * 32, "under_score", "dot.ted", None, 12):
            body = {"display_name": "x"}
            if bad is not None:
                body["name"] = bad
            self.assertField(self.call("acme", "POST", "/v1/offerings", body), "name")
        self.create("a" * 31)
        self.create("a1-b2")

    def test_every_field_is_validated(self):
        cases = [
            ("display_name", ""), ("display_name", "x" * 101), ("display_name", 5),
            ("display_name", "line\nbreak"),
            ("short_description", "x" * 201), ("short_description", ["x"]),
            ("long_description", "x" * 20001), ("long_description", ""),
            ("tags", "messaging"), ("tags", ["UPPER"]), ("tags", ["x" * 33]),
            ("tags", ["ok"] * 21), ("tags", [1]),
            ("icon_url", "ftp://x.example/i.png"), ("icon_url", "https://"),
            ("icon_url", "https://x.example/a b"), ("icon_url", "/relative"),
            ("documentation_url", "javascript:alert(1)"), ("instructions_url", 3),
            ("terms_url", "https://x.example/" + "a" * 2100),
            ("revenue_share", "1.5"), ("revenue_share", "-0.1"), ("revenue_share", 0.87),
            ("revenue_share", "0.87654"), ("revenue_share", "abc"), ("revenue_share", None),
            ("unknown_field", "x"),
        ]
        for field, value in cases:
            r = self.call("acme", "POST", "/v1/offerings",
                          {"name": "acme-invalid", "display_name": "ok", field: value})
            self.assertField(r, field)
        nested = [
            ({"listing": "text"}, "listing"),
            ({"listing": {"bullets": "x"}}, "listing.bullets"),
            ({"listing": {"bullets": [{"title": "t"}]}}, "listing.bullets[0].description"),
            ({"listing": {"bullets": [{"title": "", "description": "d"}]}},
             "listing.bullets[0].title"),
            ({"listing": {"bullets": [{"title": "t", "description": "d"}] * 11}}, "listing.bullets"),
            ({"listing": {"bullets": [{"title": "t", "description": "d", "x": 1}]}},
             "listing.bullets[0].x"),
            ({"listing": {"media": [{"type": "gif", "url": "https://x.example/a"}]}},
             "listing.media[0].type"),
            ({"listing": {"media": [{"type": "image", "url": "nope"}]}}, "listing.media[0].url"),
            ({"listing": {"other": []}}, "listing.other"),
            ({"listing": {"bullets": ["Fast"]}}, "listing.bullets[0]"),
            ({"listing": {"bullets": [{"title": "t", "description": "d"}, None]}},
             "listing.bullets[1]"),
            ({"listing": {"media": "https://x.example/a.png"}}, "listing.media"),
            ({"listing": {"media": ["https://x.example/a.png"]}}, "listing.media[0]"),
            ({"listing": {"media": [{"type": "image", "url": "https://x.example/a.png"}, 3]}},
             "listing.media[1]"),
            ({"listing": {"media": [{"type": "image", "url": "https://x.example/a.png",
                                     "caption": ""}]}}, "listing.media[0].caption"),
            ({"listing": {"media": [{"type": "video", "url": "https://x.example/v.mp4",
                                     "caption": 5}]}}, "listing.media[0].caption"),
            ({"listing": {"media": [{"type": "image", "url": "https://x.example/a.png"},
                                    {"type": "image", "url": "https://x.example/b.png",
                                     "caption": "x" * 201}]}}, "listing.media[1].caption"),
            ({"listing": {"media": [{"type": "image", "url": "https://x.example/a.png",
                                     "caption": "two\nlines"}]}}, "listing.media[0].caption"),
            ({"listing": {"media": [{"type": "image", "url": "https://x.example/a.png"},
                                    {"type": "image", "url": "https://x.example/b.png",
                                     "alt": "x"}]}}, "listing.media[1].alt"),
            ({"listing": {"bullets": [{"title": "t", "description": "d"},
                                      {"title": "t", "description": "d", "x": 1}]}},
             "listing.bullets[1].x"),
            ({"support": []}, "support"),
            ({"support": {"url": "mailto:x@y.z"}}, "support.url"),
            ({"support": {"email": "not-an-email"}}, "support.email"),
            ({"support": {"email": "a@b"}}, "support.email"),
            ({"support": {"hours": ""}}, "support.hours"),
            ({"support": {"severity_targets": {"1": 0, "2": 1, "3": 1, "4": 1}}},
             "support.severity_targets.1"),
            ({"support": {"severity_targets": {"1": 60, "2": 30, "3": 90, "4": 90}}},
             "support.severity_targets.2"),
            ({"support": {"severity_targets": {"1": 60, "2": 60, "3": 60}}},
             "support.severity_targets.4"),
            ({"support": {"severity_targets": {"5": 60}}}, "support.severity_targets.5"),
            ({"support": {"phone": "123"}}, "support.phone"),
        ]
        for body, target in nested:
            body = dict(body, name="acme-invalid", display_name="ok")
            self.assertField(self.call("acme", "POST", "/v1/offerings", body), target)
        # The message names the field and where it is not one.
        r = self.call("acme", "POST", "/v1/offerings", {
            "name": "acme-invalid", "display_name": "ok",
            "listing": {"media": [{"type": "image", "url": "https://x.example/a.png"},
                                  {"type": "image", "url": "https://x.example/b.png", "alt": 1}]}})
        self.assertEqual(r.json["errors"][0]["message"],
                         "'listing.media[1].alt' is not a field of listing.media[1].")
        # Nothing was created by any of them.
        names = [o["name"] for o in self.call("acme", "GET", "/v1/offerings").json["offerings"]]
        self.assertNotIn("acme-invalid", names)

    def test_patch(self):
        o = self.create("acme-patch", **FULL)
        r = self.call("acme", "PATCH", "/v1/offerings/" + o["id"],
                      {"short_description": "Changed.", "tags": None, "name": "acme-patched"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["short_description"], "Changed.")
        self.assertNotIn("tags", r.json)
        self.assertEqual(r.json["name"], "acme-patched")
        self.assertEqual(r.json["revision"], o["revision"] + 1)
        self.assertField(self.call("acme", "PATCH", "/v1/offerings/" + o["id"],
                                   {"display_name": None}), "display_name")
        self.assertField(self.call("acme", "PATCH", "/v1/offerings/" + o["id"],
                                   {"account_id": self.accounts["globex"]["id"]}), "account_id")
        self.assertField(self.call("acme", "PATCH", "/v1/offerings/" + o["id"],
                                   {"icon_url": "nope"}), "icon_url")
        # A stale If-Match is refused and changes nothing.
        r = self.call("acme", "PATCH", "/v1/offerings/" + o["id"], {"short_description": "Stale."},
                      headers={"If-Match": str(o["revision"])})
        self.assertEqual(r.status, 412, r)
        cur = self.call("acme", "GET", "/v1/offerings/" + o["id"]).json
        self.assertEqual(cur["short_description"], "Changed.")
        r = self.call("acme", "PATCH", "/v1/offerings/" + o["id"], {"short_description": "Fresh."},
                      headers={"If-Match": str(cur["revision"])})
        self.assertEqual(r.status, 200, r)
        # Malformed bodies.
        r = self.c.request("PATCH", "/v1/offerings/" + o["id"], raw=b"{not json",
                           headers={"Authorization": "Bearer " + self.tok("acme"),
                                    "Content-Type": "application/json"})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(self.call("acme", "PATCH", "/v1/offerings/" + o["id"], [1, 2]).status, 400)

    def test_fixed_fields_and_operator_terms(self):
        o = self.create("acme-terms")
        self.assertField(self.call("acme", "PATCH", "/v1/offerings/" + o["id"], {"id": "other"}),
                         "id")
        # The revenue share is the operator's term: a provider cannot set or change it.
        r = self.call("acme", "POST", "/v1/offerings", {"name": "acme-greedy", "display_name": "x",
                                                        "revenue_share": "1"})
        self.assertField(r, "revenue_share", 403)
        self.assertField(self.call("acme", "PATCH", "/v1/offerings/" + o["id"],
                                   {"revenue_share": "0.95"}), "revenue_share", 403)
        # Sending the current value back (a console saving the whole form) is fine.
        self.assertEqual(self.call("acme", "PATCH", "/v1/offerings/" + o["id"],
                                   {"revenue_share": "0.87"}).status, 200)
        r = self.call("operator", "PATCH", "/v1/offerings/" + o["id"], {"revenue_share": "0.8"})
        self.assertEqual((r.status, r.json["revenue_share"]), (200, "0.8"), r)
        # Limits count characters, not bytes.
        r = self.call("acme", "PATCH", "/v1/offerings/" + o["id"], {"display_name": "\u5b57" * 100})
        self.assertEqual(r.status, 200, r)
        self.assertField(self.call("acme", "PATCH", "/v1/offerings/" + o["id"],
                                   {"display_name": "\u5b57" * 101}), "display_name")

    def test_delete_only_drafts(self):
        o = self.create("acme-delete")
        self.assertEqual(self.call("globex", "DELETE", "/v1/offerings/" + o["id"]).status, 404)
        self.assertEqual(self.call("acme", "DELETE", "/v1/offerings/" + o["id"]).status, 204)
        self.assertEqual(self.call("acme", "GET", "/v1/offerings/" + o["id"]).status, 404)
        o = self.create("acme-undeletable")
        self.assertEqual(self.call("acme", "POST", "/v1/offerings/%s/visibility" % o["id"],
                                   {"visibility": "limited"}).status, 200)
        self.assertEqual(self.call("acme", "DELETE", "/v1/offerings/" + o["id"]).status, 409)

    # ------------------------------------------------------------ who may do what

    def test_isolation_between_accounts(self):
        o = self.create("acme-private")
        for method, path, body in (("GET", "", None), ("PATCH", "", {"short_description": "x"}),
                                   ("DELETE", "", None), ("POST", "/iam", None),
                                   ("POST", "/visibility", {"visibility": "limited"}),
                                   ("GET", "/allowlist", None), ("GET", "/reviews", None),
                                   ("GET", "/catalog.json", None)):
            for who in ("globex", "initech"):
                r = self.call(who, method, "/v1/offerings/" + o["id"] + path, body)
                self.assertEqual(r.status, 404, (who, method, path, r))
        # A consumer account cannot offer services; nobody creates in another account.
        r = self.call("initech", "POST", "/v1/offerings", {"name": "initech-svc",
                                                           "display_name": "x"})
        self.assertEqual(r.status, 403, r)
        r = self.call("globex", "POST", "/v1/offerings",
                      {"name": "globex-in-acme", "display_name": "x",
                       "account_id": self.accounts["acme"]["id"]})
        self.assertEqual(r.status, 404, r)
        self.assertEqual(self.call("globex", "GET", "/v1/offerings",
                                   query={"account_id": self.accounts["acme"]["id"]}).status, 404)
        # The operator may act for a provider.
        r = self.call("operator", "POST", "/v1/offerings",
                      {"name": "made-by-operator", "display_name": "x",
                       "account_id": self.accounts["globex"]["id"]})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["account_id"], self.accounts["globex"]["id"])
        # No token, a bad token.
        self.assertEqual(self.c.call("GET", "/v1/offerings/" + o["id"]).status, 401)
        self.assertEqual(self.c.call("GET", "/v1/catalog", token="x.y.z").status, 401)

    # ------------------------------------------------------------ IAM integration and SSO

    def test_enable_iam(self):
        o = self.create("acme-iam", **FULL)
        r = self.call("acme", "POST", "/v1/offerings/%s/iam" % o["id"])
        self.assertEqual(r.status, 201, r)
        j = r.json
        self.assertTrue(j["apikey"]["apikey"] and j["client"]["client_secret"])
        self.assertEqual(self.call("acme", "POST", "/v1/offerings/%s/iam" % o["id"]).status, 409)
        # The service ID logs in with its key; the client authenticates with its secret.
        tok = self.c.form("/identity/token", {"grant_type": APIKEY_GRANT,
                                              "apikey": j["apikey"]["apikey"]})
        self.assertEqual(tok.status, 200, tok)
        cc = self.c.form("/identity/token", {"grant_type": "client_credentials"},
                         headers={"Authorization": basic(j["client"]["client_id"],
                                                         j["client"]["client_secret"])})
        self.assertEqual(cc.status, 200, cc)
        cur = self.call("acme", "GET", "/v1/offerings/" + o["id"]).json
        self.assertEqual(cur["iam"], {"service_id": j["service_id"]["iam_id"],
                                      "client_id": j["client"]["client_id"]})
        self.assertNotIn("iam", self.missing(cur, 2))
        self.assertEqual(self.missing(cur, 4), ["sso.redirect_uris"])
        self.assertField(self.call("acme", "PATCH", "/v1/offerings/%s/iam" % o["id"],
                                   {"redirect_uris": ["https://x.example/cb#frag"]}),
                         "redirect_uris")
        r = self.call("acme", "PATCH", "/v1/offerings/%s/iam" % o["id"],
                      {"redirect_uris": ["https://acme.example.com/sso/callback"]})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.json["steps"][3]["complete"], r.json["steps"][3])
        # The name is fixed now: the service ID's policy and the client are bound to it.
        self.assertField(self.call("acme", "PATCH", "/v1/offerings/" + o["id"],
                                   {"name": "acme-iam-renamed"}), "name")
        # Deleting the draft takes its service ID, API key and client with it.
        self.assertEqual(self.call("acme", "DELETE", "/v1/offerings/" + o["id"]).status, 204)
        gone = self.c.form("/identity/token", {"grant_type": APIKEY_GRANT,
                                               "apikey": j["apikey"]["apikey"]})
        self.assertEqual((gone.status, gone.json["error"]), (400, "invalid_grant"))
        cc = self.c.form("/identity/token", {"grant_type": "client_credentials"},
                         headers={"Authorization": basic(j["client"]["client_id"],
                                                         j["client"]["client_secret"])})
        self.assertEqual(cc.status, 401, cc)
        # The secrets are not kept in clear.
        data = self.p.stored_bytes()
        self.assertNotIn(j["apikey"]["apikey"].encode(), data)
        self.assertNotIn(j["client"]["client_secret"].encode(), data)

    # ------------------------------------------------------------ listing review

    def test_listing_review(self):
        o = self.create("acme-listing", **FULL)
        path = "/v1/offerings/%s/listing/review" % o["id"]
        self.assertField(self.call("acme", "POST", path, {"action": "submit"}), "listing.bullets")
        listing = {"bullets": [{"title": "Fast", "description": "Millions of messages."}],
                   "media": [{"type": "image", "url": "https://acme.example.com/shot.png",
                              "caption": "The console"}]}
        self.assertEqual(self.call("acme", "PATCH", "/v1/offerings/" + o["id"],
                                   {"listing": listing}).status, 200)
        self.assertEqual(self.call("operator", "POST", path, {"action": "approve"}).status, 409)
        r = self.call("acme", "POST", path, {"action": "submit"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["listing_review"]["state"], "in_review")
        self.assertEqual(self.call("acme", "POST", path, {"action": "approve"}).status, 403)
        self.assertEqual(self.call("initech", "POST", path, {"action": "approve"}).status, 404)
        self.assertField(self.call("operator", "POST", path, {"action": "request_changes"}),
                         "comment")
        r = self.call("operator", "POST", path, {"action": "request_changes",
                                                 "comment": "Add a screenshot caption."})
        self.assertEqual(r.json["listing_review"]["state"], "changes_requested")
        self.assertEqual(self.call("acme", "POST", path, {"action": "submit"}).status, 200)
        r = self.call("operator", "POST", path, {"action": "approve"})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.json["steps"][0]["complete"], r.json["steps"][0])
        # Editing the listing sends it back to review.
        listing["bullets"].append({"title": "Cheap", "description": "Pay per message."})
        r = self.call("acme", "PATCH", "/v1/offerings/" + o["id"], {"listing": listing})
        self.assertEqual(r.json["listing_review"]["state"], "draft")
        self.assertIn("listing_review", self.missing(r.json, 1))
        self.assertField(self.call("acme", "POST", path, {"action": "publish"}), "action")

    # ------------------------------------------------------------ visibility and catalog

    def test_visibility_and_allowlist(self):
        o = self.create("acme-limited", **FULL)
        path = "/v1/offerings/" + o["id"]
        # Draft: only the provider (and the operator) see it.
        for who in ("initech", "hooli", "globex"):
            self.assertEqual(self.call(who, "GET", path).status, 404)
            self.assertNotIn(o["id"], [x["id"] for x in
                                       self.call(who, "GET", "/v1/catalog").json["offerings"]])
        self.assertField(self.call("acme", "POST", path + "/visibility", {"visibility": "hidden"}),
                         "visibility")
        r = self.call("acme", "POST", path + "/visibility", {"visibility": "public"})
        self.assertEqual(r.status, 409, r)
        r = self.call("acme", "POST", path + "/visibility", {"visibility": "limited"})
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("visibility.limited", self.missing(r.json, 5))
        self.assertEqual(self.call("acme", "PUT", path + "/allowlist/no-such-account").status, 404)
        self.assertEqual(self.call("acme", "PUT", path + "/allowlist/" +
                                   self.accounts["initech"]["id"]).status, 204)
        self.assertEqual(self.call("initech", "PUT", path + "/allowlist/" +
                                   self.accounts["hooli"]["id"]).status, 403)
        allow = self.call("acme", "GET", path + "/allowlist").json["accounts"]
        self.assertEqual([a["account_id"] for a in allow], [self.accounts["initech"]["id"]])
        plan = self.call("acme", "POST", path + "/plans", {"name": "lite", "kind": "lite",
                                                          "display_name": "Lite",
                                                          "description": "Free."})
        self.assertEqual(plan.status, 201, plan)
        # Allowlisted: sees it, in the catalog and in full, with the plans under test (not
        # published yet); others still do not.
        plans = self.call("initech", "GET", path + "/plans")
        self.assertEqual([x["name"] for x in plans.json["plans"]], ["lite"], plans)
        entry = [x for x in self.call("initech", "GET", "/v1/catalog").json["offerings"]
                 if x["id"] == o["id"]]
        self.assertEqual([x["name"] for x in entry[0]["plans"]], ["lite"])
        r = self.call("initech", "GET", path)
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("steps", r.json)
        self.assertNotIn("revenue_share", r.json)
        ids = [x["id"] for x in self.call("initech", "GET", "/v1/catalog").json["offerings"]]
        self.assertIn(o["id"], ids)
        for who in ("hooli", "globex"):
            self.assertEqual(self.call(who, "GET", path).status, 404)
            ids = [x["id"] for x in self.call(who, "GET", "/v1/catalog").json["offerings"]]
            self.assertNotIn(o["id"], ids)
        self.assertEqual(self.call("initech", "PATCH", path, {"short_description": "x"}).status,
                         403)
        # Removed from the allowlist: gone again.
        self.assertEqual(self.call("acme", "DELETE", path + "/allowlist/" +
                                   self.accounts["initech"]["id"]).status, 204)
        self.assertEqual(self.call("initech", "GET", path).status, 404)

    def test_catalog_search(self):
        a = self.create("acme-search-db", **dict(FULL, tags=["database", "sql"],
                                                 short_description="Postgres as a service."))
        b = self.create("acme-search-cache", **dict(FULL, tags=["cache"],
                                                    short_description="An in-memory cache."))
        for o in (a, b):
            self.call("acme", "POST", "/v1/offerings/%s/visibility" % o["id"],
                      {"visibility": "limited"})
        def ids(**query):
            r = self.call("acme", "GET", "/v1/catalog", query=query)
            self.assertEqual(r.status, 200, r)
            return [x["id"] for x in r.json["offerings"]]
        self.assertIn(a["id"], ids(tag="database"))
        self.assertNotIn(b["id"], ids(tag="database"))
        self.assertIn(b["id"], ids(q="IN-MEMORY"))
        self.assertNotIn(a["id"], ids(q="in-memory"))
        self.assertIn(a["id"], ids(q="postgres", tag="sql"))
        self.assertEqual(ids(q="no such words anywhere"), [])
        page = self.call("acme", "GET", "/v1/catalog", query={"limit": 1}).json
        self.assertEqual(len(page["offerings"]), 1)
        self.assertGreaterEqual(page["total_count"], 2)
        for q, target in (({"limit": 0}, "limit"), ({"limit": "x"}, "limit"),
                          ({"limit": 501}, "limit"), ({"limit": ""}, "limit"),
                          ({"limit": "5x"}, "limit"), ({"limit": "-1"}, "limit"),
                          ({"limit": "99999999999999999999"}, "limit"),
                          ({"offset": -1}, "offset"), ({"offset": "x"}, "offset"),
                          ({"offset": ""}, "offset"), ({"offset": "1.5"}, "offset"),
                          ({"offset": "99999999999999999999"}, "offset"),
                          ({"q": "x" * 201}, "q"), ({"q": "x" * 201, "limit": 1}, "q")):
            with self.subTest(query=q):
                self.assertField(self.call("acme", "GET", "/v1/catalog", query=q), target)
        # The largest offset is fine: an empty page, not an overflow.
        big = self.call("acme", "GET", "/v1/catalog", query={"offset": 2 ** 63 - 1, "limit": 500})
        self.assertEqual(big.status, 200, big)
        self.assertEqual(big.json["offerings"], [])
        self.assertGreaterEqual(big.json["total_count"], 2)
        self.assertEqual(len(self.call("acme", "GET", "/v1/catalog", query={"limit": 500})
                             .json["offerings"]), big.json["total_count"])

    # ------------------------------------------------------------ publication

    def test_publication_gates_and_review(self):
        o = self.create("acme-publish", **FULL)
        path = "/v1/offerings/%s/publication" % o["id"]
        r = self.call("acme", "POST", path, {"action": "request"})
        self.assertEqual(r.status, 409, r)
        targets = [e["target"] for e in r.json["errors"]]
        # Each gate names what is missing: the listing, plans and pricing, the broker's
        # scorecard, single sign-on, limited testing.
        for t in ("listing.bullets", "plans", "iam", "scorecard", "sso.redirect_uris",
                  "visibility.limited", "evidence.instance_lifecycle"):
            self.assertIn(t, targets)
        self.assertTrue(all(e["code"] == "step_incomplete" for e in r.json["errors"]))
        # Enabling IAM and SSO takes those gates away, not the others.
        self.call("acme", "POST", "/v1/offerings/%s/iam" % o["id"])
        self.call("acme", "PATCH", "/v1/offerings/%s/iam" % o["id"],
                  {"redirect_uris": ["https://acme.example.com/cb"]})
        targets = [e["target"] for e in self.call("acme", "POST", path,
                                                  {"action": "request"}).json["errors"]]
        self.assertNotIn("sso.redirect_uris", targets)
        self.assertNotIn("iam", targets)
        self.assertIn("scorecard", targets)
        # Only the operator approves; there is nothing to approve yet.
        self.assertEqual(self.call("acme", "POST", path, {"action": "approve"}).status, 403)
        self.assertEqual(self.call("operator", "POST", path, {"action": "approve"}).status, 409)
        self.assertField(self.call("acme", "POST", path, {"action": "comment"}), "comment")
        r = self.call("acme", "POST", path, {"action": "comment", "comment": "Question: SLA?"})
        self.assertEqual(r.status, 200, r)
        rv = self.call("acme", "GET", "/v1/offerings/%s/reviews" % o["id"]).json
        self.assertEqual([(x["action"], x["comment"]) for x in rv["reviews"]],
                         [("comment", "Question: SLA?")])
        self.assertField(self.call("acme", "POST", path, {"action": "sneak"}), "action")
        self.assertEqual(self.call("globex", "POST", path, {"action": "request"}).status, 404)

    def test_review_flow_once_ready(self):
        # Steps 3 and 5 need a validated broker and a tested instance, which other tests and
        # modules provide; here the review itself is walked with that readiness set up in the
        # store the way they leave it.
        o = self.create("acme-ready", **FULL)
        oid = o["id"]
        self.call("acme", "POST", "/v1/offerings/%s/iam" % oid)
        self.call("acme", "PATCH", "/v1/offerings/%s/iam" % oid,
                  {"redirect_uris": ["https://acme.example.com/cb"]})
        self.call("acme", "PATCH", "/v1/offerings/" + oid,
                  {"listing": {"bullets": [{"title": "t", "description": "d"}]}})
        self.call("acme", "POST", "/v1/offerings/%s/listing/review" % oid, {"action": "submit"})
        self.call("operator", "POST", "/v1/offerings/%s/listing/review" % oid,
                  {"action": "approve"})
        self.call("acme", "POST", "/v1/offerings/%s/visibility" % oid, {"visibility": "limited"})
        plan = self.call("acme", "POST", "/v1/offerings/%s/plans" % oid,
                         {"name": "lite", "kind": "lite", "display_name": "Lite",
                          "description": "Free."})
        self.assertEqual(plan.status, 201, plan)
        now = int(time.time() * 1000) + 1000
        self.p.sql_all([
            ("INSERT INTO brokers (id, offering_id, region, url, auth, created_ms, updated_ms)"
             " VALUES (?, ?, 'us-south', 'http://127.0.0.1:9', 'bearer', 0, 0)",
             ("broker-" + oid, oid)),
            ("INSERT INTO deployments (plan_id, region, broker_id, created_ms)"
             " VALUES (?, 'us-south', ?, 0)", (plan.json["id"], "broker-" + oid)),
            ("INSERT INTO scorecards (id, offering_id, broker_id, state, started_ms,"
             " finished_ms) VALUES (?, ?, ?, 'passed', ?, ?)",
             ("sc-" + oid, oid, "broker-" + oid, now, now)),
            ("INSERT INTO offering_evidence (offering_id, kind, created_ms)"
             " VALUES (?, 'instance_lifecycle', 0)", (oid,))])
        cur = self.call("acme", "GET", "/v1/offerings/" + oid).json
        self.assertEqual([s["complete"] for s in cur["steps"]], [True] * 5 + [False],
                         cur["steps"])
        path = "/v1/offerings/%s/publication" % oid
        r = self.call("acme", "POST", path, {"action": "request"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["publication"], "requested")
        self.assertEqual(self.call("acme", "POST", path, {"action": "request"}).status, 409)
        self.assertEqual(self.call("acme", "POST", "/v1/offerings/%s/visibility" % oid,
                                   {"visibility": "draft"}).status, 409)
        r = self.call("operator", "POST", path, {"action": "request_changes",
                                                 "comment": "Terms link is broken."})
        self.assertEqual(r.json["publication"], "changes_requested")
        self.call("acme", "POST", path, {"action": "comment", "comment": "Fixed."})
        self.assertEqual(self.call("acme", "POST", path, {"action": "request"}).status, 200)
        self.assertEqual(self.call("hooli", "GET", "/v1/offerings/" + oid).status, 404)
        r = self.call("operator", "POST", path, {"action": "approve"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["visibility"], r.json["publication"]), ("public", "approved"))
        self.assertTrue(all(s["complete"] for s in r.json["steps"]), r.json["steps"])
        # Public: every account sees it; it cannot go back to draft.
        self.assertEqual(self.call("hooli", "GET", "/v1/offerings/" + oid).status, 200)
        self.assertIn(oid, [x["id"] for x in self.call("hooli", "GET", "/v1/catalog").json["offerings"]])
        self.assertEqual(self.call("acme", "POST", "/v1/offerings/%s/visibility" % oid,
                                   {"visibility": "limited"}).status, 409)
        rv = self.call("operator", "GET", "/v1/offerings/%s/reviews" % oid).json["reviews"]
        self.assertEqual([x["action"] for x in rv],
                         ["request", "request_changes", "comment", "request", "approve"])
        self.assertEqual(self.call("hooli", "GET", "/v1/offerings/%s/reviews" % oid).status, 404)

    # ------------------------------------------------------------ export

    def test_catalog_json_export(self):
        o = self.create("acme-export", **FULL)
        r = self.call("acme", "GET", "/v1/offerings/%s/catalog.json" % o["id"])
        self.assertEqual(r.status, 200, r)
        svc = r.json["services"][0]
        self.assertEqual((svc["id"], svc["name"]), (o["id"], "acme-export"))
        self.assertEqual(svc["description"], FULL["short_description"])
        self.assertEqual(svc["metadata"]["displayName"], FULL["display_name"])
        self.assertEqual(svc["metadata"]["documentationUrl"], FULL["documentation_url"])
        self.assertEqual(svc["tags"], FULL["tags"])
        self.assertIsInstance(svc["plans"], list)
        self.assertNotIn("dashboard_client", svc)


if __name__ == "__main__":
    unittest.main()
