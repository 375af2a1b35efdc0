-- Shared by token_apikey.lua and token_client_credentials.lua: URL encoding, and a check that
-- every 2xx answer carries an access token (counted as "no_token" when it does not). The
-- non-2xx bookkeeping and the BENCH summary line come from common.lua.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local bench = dofile(dir .. "common.lua")

function bench.urlencode(s)
   return (s:gsub("[^%w%-%._~]", function(c)
      return string.format("%%%02X", c:byte())
   end))
end

-- Per-thread counter, read back in done().
no_token = 0

function bench.count_token(status, body)
   bench.count(status)
   if status >= 200 and status <= 299 and not (body and body:find('"access_token"', 1, true)) then
      no_token = no_token + 1
   end
end

function bench.token_done(summary, latency, requests)
   bench.done(summary, latency, requests, function(threads)
      local n = 0
      for _, thread in ipairs(threads) do
         n = n + (thread:get("no_token") or 0)
      end
      io.write(string.format("2xx responses without an access_token: %d\n", n))
      return string.format(" no_token=%d", n)
   end)
end

return bench
