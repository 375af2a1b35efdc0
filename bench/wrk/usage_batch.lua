-- Usage ingestion: each request is a batch of 100 new usage records (spec/billing.md,
-- "Submitting usage") for the instances of the bench's env file, each with its own signature
-- (consumer_id carries the run and a number unique to the thread and request). Counts the records
-- answered 201 and any other per-record status.
-- env file (ENV_FILE, JSON): {"token", "plan", "svc", "t0", "guids": [...]}
counter = 0
created, other, bad_requests = 0, 0, 0
local threads = {}

setup = function(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

init = function(args)
  local f = assert(io.open(os.getenv("ENV_FILE")))
  local s = f:read("*a")
  f:close()
  env = {
    token = s:match('"token": "([^"]+)"'),
    plan = s:match('"plan": "([^"]+)"'),
    svc = s:match('"svc": "([^"]+)"'),
    t0 = tonumber(s:match('"t0": (%d+)')),
    guids = {},
    run = os.getenv("RUN_ID") or "r",  -- each wrk run sends records of its own
    -- "mixed" (default): a request's 100 records are 4 each of 25 instances at one time;
    -- "distinct": 100 records of 100 instances, so no record shares its instance lookup
    distinct = os.getenv("SPREAD") == "distinct",
  }
  for g in s:match('"guids": %[([^%]]*)%]'):gmatch('"([^"]+)"') do table.insert(env.guids, g) end
  wrk.method = "POST"
  wrk.path = "/v4/metering/resources/" .. env.svc .. "/usage"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. env.token
end

request = function()
  counter = counter + 1
  local parts = {}
  for i = 0, 99 do
    local n = (counter * 100 + i) * 64 + tid
    local g = env.guids[((env.distinct and counter * 100 + i or n) % #env.guids) + 1]
    parts[#parts + 1] = string.format(
      '{"resource_instance_id":"%s","plan_id":"%s","consumer_id":"%s-c%d","start":%d,"end":%d,' ..
      '"measured_usage":[{"measure":"API_CALLS","quantity":%d}]}',
      g, env.plan, env.run, n, env.t0, env.t0 + 1, i + 1)
  end
  return wrk.format(nil, nil, nil, "[" .. table.concat(parts, ",") .. "]")
end

response = function(status, headers, body)
  if status ~= 202 then
    bad_requests = bad_requests + 1
    return
  end
  local _, n201 = body:gsub('"status":201', "")
  created = created + n201
  other = other + (100 - n201)
  if n201 < 100 and not first_refusal then
    first_refusal = body:match('{"status":[^2][^}]*}')
  end
end

done = function(summary, latency, requests)
  local c, o, b = 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created")
    o = o + t:get("other")
    b = b + t:get("bad_requests")
    local f = t:get("first_refusal")
    if f then io.write("REFUSED " .. f .. "\n") end
  end
  io.write(string.format("RESULT created=%d other=%d bad_requests=%d requests=%d p50_us=%d p99_us=%d\n",
    c, o, b, summary.requests, latency:percentile(50), latency:percentile(99)))
end
