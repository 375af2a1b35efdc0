-- wrk -s bench/wrk/instance_cycle.lua http://127.0.0.1:PLATFORM_PORT
--
-- Resource instance create/delete cycle through the platform (osbill serve), which calls the
-- provider's broker for each:
--   POST   /v2/resource_instances   {"name":..., "target":REGION, "resource_plan_id":PLAN}
--                                    -> 201 with the instance JSON (its "guid")
--   DELETE /v2/resource_instances/<guid>                                    -> 204
-- with Authorization: Bearer <token> on both. The plan must provision synchronously, so that
-- the platform answers 201 once the broker has answered its PUT.
--
-- The guid comes from the POST's answer, so no pairing by connection is needed: every 201
-- queues its guid, and the thread's next request() deletes the oldest queued guid (in
-- practice on the connection that has just received the 201). A guid is deleted only after
-- its create has completed, and at most once.
--
-- Beside the non-2xx counts of common.lua, done() reports the 2xx answers that are not what
-- the cycle expects ("unexpected": a create other than 201 with a guid, e.g. 202 when the
-- broker took longer than the platform waits; a delete other than 204). A cycle is a DELETE
-- answered 204.
--
-- Environment: OSBILL_TOKEN (required), BENCH_REGION (default us-south), BENCH_PLAN
-- (default: the starter broker's lite plan), BENCH_RUN_ID (default: the clock).

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local bench = dofile(dir .. "common.lua")

local token = os.getenv("OSBILL_TOKEN")
if not token or token == "" then
   io.stderr:write("instance_cycle.lua: OSBILL_TOKEN is not set\n")
   os.exit(1)
end
local REGION = os.getenv("BENCH_REGION") or "us-south"
local PLAN = os.getenv("BENCH_PLAN") or "4b794e00-7040-4b83-b421-f699fb59eda5" -- lite: synchronous
local run_id = os.getenv("BENCH_RUN_ID") or tostring(os.time())

function setup(thread)
   bench.setup(thread)
end

-- Per-thread state (each wrk thread has its own Lua state).
local prefix
local counter = 0
local ready = {}                 -- guids whose create answered 201, FIFO, to be deleted next
local ready_head, ready_tail = 1, 0
creates, deletes = 0, 0          -- requests sent
created, deleted = 0, 0          -- 201 with a guid / 204
unexpected = 0                   -- 2xx answers other than those

local post_headers, delete_headers = {}, {}

-- wrk 4 calls request() once on the first thread's state right after init(), to learn the
-- request's shape, and never sends that request: it is not counted.
local verify_pending = false

function init(args)
   prefix = "bench-" .. run_id .. "-t" .. tostring(tid or 0) .. "-"
   verify_pending = (tid == 1)
   for name, value in pairs(wrk.headers) do
      post_headers[name] = value
      delete_headers[name] = value
   end
   post_headers["Authorization"] = "Bearer " .. token
   post_headers["Content-Type"] = "application/json"
   post_headers["Accept"] = "application/json"
   delete_headers["Authorization"] = "Bearer " .. token
   delete_headers["Accept"] = "application/json"
end

local function post(name)
   local body = '{"name":"' .. name .. '","target":"' .. REGION ..
      '","resource_plan_id":"' .. PLAN .. '"}'
   return wrk.format("POST", "/v2/resource_instances", post_headers, body)
end

function request()
   if verify_pending then
      verify_pending = false
      return post(prefix .. "0")
   end
   if ready_head <= ready_tail then
      local guid = ready[ready_head]
      ready[ready_head] = nil
      ready_head = ready_head + 1
      deletes = deletes + 1
      return wrk.format("DELETE", "/v2/resource_instances/" .. guid, delete_headers)
   end
   counter = counter + 1
   creates = creates + 1
   return post(prefix .. counter)
end

function response(status, headers, body)
   bench.count(status)
   if status < 200 or status > 299 then
      return
   end
   if status == 204 then
      deleted = deleted + 1
      return
   end
   local guid = status == 201 and body and body:match('"guid"%s*:%s*"([^"]+)"')
   if guid then
      created = created + 1
      ready_tail = ready_tail + 1
      ready[ready_tail] = guid
   else
      unexpected = unexpected + 1
   end
end

function done(summary, latency, requests)
   bench.done(summary, latency, requests, function(threads)
      local c, d, ok_c, ok_d, u = 0, 0, 0, 0, 0
      for _, thread in ipairs(threads) do
         c = c + (thread:get("creates") or 0)
         d = d + (thread:get("deletes") or 0)
         ok_c = ok_c + (thread:get("created") or 0)
         ok_d = ok_d + (thread:get("deleted") or 0)
         u = u + (thread:get("unexpected") or 0)
      end
      local secs = summary.duration / 1e6
      io.write(string.format("POST sent: %d (201 with a guid: %d), DELETE sent: %d (204: %d), " ..
                             "unexpected 2xx: %d, cycles/s: %.2f\n",
                             c, ok_c, d, ok_d, u, ok_d / secs))
      return string.format(" creates=%d created=%d deletes=%d deleted=%d unexpected=%d cps=%.2f",
                           c, ok_c, d, ok_d, u, ok_d / secs)
   end)
end
