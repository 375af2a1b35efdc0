-- wrk -s bench/wrk/token_apikey.lua http://127.0.0.1:PORT
--
-- osbill's API key grant: POST /identity/token with
--   grant_type=urn:ibm:params:oauth:grant-type:apikey&apikey=<key>
-- as application/x-www-form-urlencoded, the same key on every request. Each answer is an
-- RS256 access token (plus a refresh token when the key belongs to a user).
--
-- Environment: OSBILL_APIKEY (required).

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local bench = dofile(dir .. "token_common.lua")

local apikey = os.getenv("OSBILL_APIKEY")
if not apikey or apikey == "" then
   io.stderr:write("token_apikey.lua: OSBILL_APIKEY is not set\n")
   os.exit(1)
end

wrk.method = "POST"
wrk.path = "/identity/token"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Accept"] = "application/json"
wrk.body = "grant_type=" .. bench.urlencode("urn:ibm:params:oauth:grant-type:apikey") ..
   "&apikey=" .. bench.urlencode(apikey)

function setup(thread)
   bench.setup(thread)
end

function response(status, headers, body)
   bench.count_token(status, body)
end

function done(summary, latency, requests)
   bench.token_done(summary, latency, requests)
end
