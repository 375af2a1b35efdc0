-- wrk -s bench/wrk/token_client_credentials.lua http://127.0.0.1:PORT
--
-- The OAuth 2.0 client credentials grant with client_secret_basic, as bench/oidc/server.mjs
-- (oidc-provider) serves it: POST /token with Authorization: Basic <id:secret> and
--   grant_type=client_credentials&scope=osbill
-- as application/x-www-form-urlencoded. Each answer is an RS256 JWT access token.
--
-- Environment: BENCH_CLIENT_ID, BENCH_CLIENT_SECRET (defaults: bench / bench-secret-pw),
-- TOKEN_PATH (default /token).

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local bench = dofile(dir .. "token_common.lua")

local id = os.getenv("BENCH_CLIENT_ID") or "bench"
local secret = os.getenv("BENCH_CLIENT_SECRET") or "bench-secret-pw"

wrk.method = "POST"
wrk.path = os.getenv("TOKEN_PATH") or "/token"
-- RFC 6749 2.3.1: id and secret are form-encoded before they are joined and base64'd.
wrk.headers["Authorization"] = "Basic " ..
   bench.base64(bench.urlencode(id) .. ":" .. bench.urlencode(secret))
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Accept"] = "application/json"
wrk.body = "grant_type=client_credentials&scope=osbill"

function setup(thread)
   bench.setup(thread)
end

function response(status, headers, body)
   bench.count_token(status, body)
end

function done(summary, latency, requests)
   bench.token_done(summary, latency, requests)
end
