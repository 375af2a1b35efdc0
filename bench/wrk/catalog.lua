-- wrk -s bench/wrk/catalog.lua http://127.0.0.1:PORT
-- GET /v2/catalog with Basic auth and X-Broker-API-Version: 2.17 on every request.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local bench = dofile(dir .. "common.lua")

wrk.method = "GET"
wrk.path = "/v2/catalog"
wrk.headers["Authorization"] = bench.authorization
wrk.headers["X-Broker-API-Version"] = bench.api_version

function setup(thread)
   bench.setup(thread)
end

function response(status, headers, body)
   bench.count(status)
end

function done(summary, latency, requests)
   bench.done(summary, latency, requests)
end
