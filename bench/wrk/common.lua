-- Shared by catalog.lua and provision_cycle.lua: Basic auth, OSB headers, per-thread
-- bookkeeping of non-2xx responses, and a machine-readable summary line in done().
--
-- Environment: OSB_BROKER_USER, OSB_BROKER_PASSWORD (defaults: bench / bench-secret-pw).

local bench = {}

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

function bench.base64(s)
   local out = {}
   for i = 1, #s, 3 do
      local a, b, c = s:byte(i, i + 2)
      local n = a * 65536 + (b or 0) * 256 + (c or 0)
      local c1 = math.floor(n / 262144) % 64
      local c2 = math.floor(n / 4096) % 64
      local c3 = math.floor(n / 64) % 64
      local c4 = n % 64
      out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1) ..
         (b and b64chars:sub(c3 + 1, c3 + 1) or "=") .. (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
   end
   return table.concat(out)
end

bench.user = os.getenv("OSB_BROKER_USER") or "bench"
bench.password = os.getenv("OSB_BROKER_PASSWORD") or "bench-secret-pw"
bench.authorization = "Basic " .. bench.base64(bench.user .. ":" .. bench.password)
bench.api_version = "2.17"

-- setup() runs in the main Lua state once per wrk thread; done() reads the threads' globals.
local threads = {}

function bench.setup(thread)
   thread:set("tid", #threads + 1)
   threads[#threads + 1] = thread
end

-- Per-thread counters (globals of each thread's Lua state, read back with thread:get()).
non2xx = 0
by_status = {}

function bench.count(status)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      local key = tostring(status)
      by_status[key] = (by_status[key] or 0) + 1
   end
end

-- extra: optional function(thread) returning a string of " key=value" pairs to append.
function bench.done(summary, latency, requests, extra)
   local total, statuses, extras = 0, {}, ""
   for _, thread in ipairs(threads) do
      total = total + (thread:get("non2xx") or 0)
      local bs = thread:get("by_status") or {}
      for k, v in pairs(bs) do
         statuses[k] = (statuses[k] or 0) + v
      end
   end
   if extra then
      extras = extra(threads)
   end
   local parts = {}
   for k, v in pairs(statuses) do
      parts[#parts + 1] = k .. ":" .. v
   end
   table.sort(parts)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format("non-2xx responses: %d%s\n", total,
                          #parts > 0 and (" (" .. table.concat(parts, ", ") .. ")") or ""))
   io.write(string.format(
      "BENCH requests=%d duration_us=%d rps=%.2f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
      "non2xx=%d statuses=%s socket_connect=%d socket_read=%d socket_write=%d socket_timeout=%d%s\n",
      summary.requests, summary.duration, summary.requests / secs,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      total, #parts > 0 and table.concat(parts, ",") or "-",
      e.connect, e.read, e.write, e.timeout, extras))
end

return bench
