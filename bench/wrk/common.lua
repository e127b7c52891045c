-- Shared by the scenario scripts: thread numbering, reading data files, and done(), which
-- prints one JSON line (prefixed BENCH_JSON) that bench/loadbench/wrk.py parses.
local common = {}

local next_id = 0

-- Every connection gets its own thread (wrk -t N -c N), so a thread id names a connection.
function common.setup(thread)
   next_id = next_id + 1
   thread:set("id", next_id)
end

function common.lines(path)
   local out = {}
   local f = assert(io.open(path, "r"), "cannot open " .. path)
   for line in f:lines() do
      if line ~= "" then
         out[#out + 1] = line
      end
   end
   f:close()
   assert(#out > 0, path .. " is empty")
   return out
end

function common.split(line)
   local a, b = line:match("^(%S+)%s+(%S+)$")
   return a, b
end

function common.headers(key, json)
   local h = { ["Authorization"] = "Bearer " .. key }
   if json then
      h["Content-Type"] = "application/json"
   end
   return h
end

function common.done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"latency_us": {"mean": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d, "p999": %d}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9)))
end

return common
