-- Shared by every scenario script: thread bookkeeping, the id pool, non-2xx counting and a
-- machine-readable summary line. A scenario script sets `path_for`/`make_request` and dofile()s
-- this file first.
--
-- Arguments after `--` on the wrk command line: <pool ids file or "-"> <label>.

-- The bearer token the harness signed in with (bench/lib/bench.py sign_in): every request
-- carries it, also those whose script passes its own headers; not those of a script that sets
-- `anonymous` (it authenticates otherwise, or not at all).
local token = os.getenv("OXMED_BENCH_TOKEN")
if token ~= nil and token ~= "" and not anonymous then
  local format = wrk.format
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.format = function(method, path, headers, body)
    local h = {}
    for k, v in pairs(wrk.headers) do h[k] = v end
    for k, v in pairs(headers or {}) do h[k] = v end
    return format(method, path, h, body)
  end
end

local threads = {}
local thread_count = 0

-- Runs in the main Lua state once per thread, before that thread's init().
function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
  table.insert(threads, thread)
end

ids = {}
non2xx = 0
statuses = ""   -- "status:count," pairs of non-2xx statuses seen by this thread
first_error = "" -- the first non-2xx response (status and body head) seen by this thread
counter = 0
local status_counts = {}

-- Runs in each thread's own Lua state.
function init(args)
  local file = args[1]
  if file ~= nil and file ~= "-" then
    local f = assert(io.open(file, "r"))
    for line in f:lines() do
      if line ~= "" then ids[#ids + 1] = line end
    end
    f:close()
    if #ids == 0 then error("the id pool " .. file .. " is empty") end
  end
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
  -- LuaJIT's first numbers after seeding are poorly mixed.
  for _ = 1, 10 do math.random() end
end

function random_id()
  return ids[math.random(#ids)]
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    status_counts[status] = (status_counts[status] or 0) + 1
    local parts = {}
    for s, n in pairs(status_counts) do parts[#parts + 1] = s .. ":" .. n end
    statuses = table.concat(parts, ",")
    if first_error == "" then
      first_error = status .. " " .. string.sub(body or "", 1, 300)
    end
  end
end

local function json_string(s)
  s = string.gsub(s, '[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

-- Runs in the main state after the run: one line that bench/lib/bench.py parses.
function done(summary, latency, requests)
  local bad, all_statuses, first = 0, {}, ""
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non2xx") or 0)
    local s = t:get("statuses") or ""
    if s ~= "" then all_statuses[#all_statuses + 1] = s end
    local fe = t:get("first_error") or ""
    if first == "" and fe ~= "" then first = fe end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"non2xx":%d,"non2xx_statuses":%s,"first_error":%s,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_timeout":%d,"errors_status":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    bad, json_string(table.concat(all_statuses, ",")), json_string(first),
    e.connect, e.read, e.write, e.timeout, e.status))
end
