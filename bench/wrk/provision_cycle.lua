-- wrk -s bench/wrk/provision_cycle.lua http://127.0.0.1:PORT
--
-- Provision/deprovision cycle on the standard plan (synchronous):
--   PUT    /v2/service_instances/<id>?accepts_incomplete=true            -> 201
--   DELETE /v2/service_instances/<id>?service_id=...&plan_id=...          -> 200
-- An id is deleted only after its PUT has completed with a 2xx, and ids are never reused:
-- <run>-t<thread>-<counter>, where <run> comes from BENCH_RUN_ID (or the clock), so that a
-- warm-up run and the measured run against the same broker process do not collide.
--
-- wrk's request()/response() hooks do not say which connection they serve, and with several
-- connections per thread the responses of different connections can complete in any order.
-- So every request carries X-Request-Id: p.<id> (PUT) or d.<id> (DELETE), which both brokers
-- echo, and response() uses the echoed id to queue exactly that instance for deletion; the
-- next request() of the thread (in practice the same connection's next one) deletes it.
-- A broker that does not echo X-Request-Id falls back to first-in-first-out pairing, which
-- is counted ("unpaired") and printed in done().

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local bench = dofile(dir .. "common.lua")

local SERVICE_ID = "b98be605-e947-4476-8e9c-a62c55ffcb87"
local PLAN_ID = "7ae16b40-822a-486e-af2e-55cdc138c742"  -- standard: synchronous
local BODY = '{"service_id":"' .. SERVICE_ID .. '","plan_id":"' .. PLAN_ID .. '",' ..
   '"organization_guid":"bench-org","space_guid":"bench-space","context":{"platform":"osbill"}}'
local DELETE_QUERY = "?service_id=" .. SERVICE_ID .. "&plan_id=" .. PLAN_ID

local run_id = os.getenv("BENCH_RUN_ID") or tostring(os.time())

function setup(thread)
   bench.setup(thread)
end

-- Per-thread state (each wrk thread has its own Lua state).
local prefix
local counter = 0
local ready = {}                 -- ids whose PUT completed, FIFO, to be deleted next
local ready_head, ready_tail = 1, 0
local inflight = {}              -- id -> true while its PUT is outstanding
local inflight_order = {}        -- PUT ids in issue order, for the no-echo fallback
local order_head, order_tail = 1, 0
puts, deletes, unpaired = 0, 0, 0

local put_headers, delete_headers = {}, {}

-- wrk 4 calls request() once on the first thread's state right after init(), to learn the
-- request's shape (pipeline depth), and never sends that request. Answer that call with a
-- PUT whose id is not tracked, so it does not count as a PUT in flight.
local verify_pending = false

function init(args)
   prefix = "b" .. run_id .. "-t" .. tostring(tid or 0) .. "-"
   verify_pending = (tid == 1)
   for name, value in pairs(wrk.headers) do
      put_headers[name] = value
      delete_headers[name] = value
   end
   put_headers["Authorization"] = bench.authorization
   put_headers["X-Broker-API-Version"] = bench.api_version
   put_headers["Content-Type"] = "application/json"
   delete_headers["Authorization"] = bench.authorization
   delete_headers["X-Broker-API-Version"] = bench.api_version
end

local function push_ready(id)
   ready_tail = ready_tail + 1
   ready[ready_tail] = id
end

local function pop_ready()
   if ready_head > ready_tail then
      return nil
   end
   local id = ready[ready_head]
   ready[ready_head] = nil
   ready_head = ready_head + 1
   return id
end

-- Drop ids at the head of inflight_order whose PUT has been answered.
local function trim_order()
   while order_head <= order_tail and not inflight[inflight_order[order_head]] do
      inflight_order[order_head] = nil
      order_head = order_head + 1
   end
end

local function oldest_inflight()
   while order_head <= order_tail do
      local id = inflight_order[order_head]
      inflight_order[order_head] = nil
      order_head = order_head + 1
      if inflight[id] then
         return id
      end
   end
   return nil
end

function request()
   if verify_pending then
      verify_pending = false
      put_headers["X-Request-Id"] = "v." .. prefix .. "0"
      return wrk.format("PUT", "/v2/service_instances/" .. prefix .. "0?accepts_incomplete=true",
                        put_headers, BODY)
   end
   local id = pop_ready()
   if id then
      deletes = deletes + 1
      delete_headers["X-Request-Id"] = "d." .. id
      return wrk.format("DELETE", "/v2/service_instances/" .. id .. DELETE_QUERY, delete_headers)
   end
   counter = counter + 1
   id = prefix .. counter
   inflight[id] = true
   order_tail = order_tail + 1
   inflight_order[order_tail] = id
   puts = puts + 1
   put_headers["X-Request-Id"] = "p." .. id
   return wrk.format("PUT", "/v2/service_instances/" .. id .. "?accepts_incomplete=true",
                     put_headers, BODY)
end

local function request_id(headers)
   local v = headers["X-Request-Id"] or headers["x-request-id"]
   if v then
      return v
   end
   for name, value in pairs(headers) do
      if name:lower() == "x-request-id" then
         return value
      end
   end
   return nil
end

function response(status, headers, body)
   bench.count(status)
   local rid = request_id(headers)
   local kind, id
   if rid then
      kind, id = rid:match("^([pd])%.(.+)$")
   end
   if kind == "p" then
      if inflight[id] then
         inflight[id] = nil
         if status >= 200 and status <= 299 then
            push_ready(id)
         end
         trim_order()
      end
   elseif kind == nil and status == 201 then
      -- no usable echo: assume the oldest outstanding PUT is the one that completed
      id = oldest_inflight()
      if id then
         inflight[id] = nil
         unpaired = unpaired + 1
         push_ready(id)
      end
   end
end

function done(summary, latency, requests)
   bench.done(summary, latency, requests, function(threads)
      local p, d, u = 0, 0, 0
      for _, thread in ipairs(threads) do
         p = p + (thread:get("puts") or 0)
         d = d + (thread:get("deletes") or 0)
         u = u + (thread:get("unpaired") or 0)
      end
      io.write(string.format("PUT sent: %d, DELETE sent: %d, paired without X-Request-Id echo: %d\n",
                             p, d, u))
      return string.format(" puts=%d deletes=%d unpaired=%d", p, d, u)
   end)
end
