-- Shared by the search-* scenarios (bench/search): common.lua plus a fixed random seed per thread
-- and a second pool.
--
-- Arguments after `--` on the wrk command line: <pool file> <seed> [<second pool file>].
-- The first pool is `ids` (random_id()), the second `values` (random_value()). Thread t of a run
-- draws from math.randomseed(seed * 1000003 + t * 7919): the same seed gives the same requests.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

values = {}
local common_init = init

function init(args)
  common_init(args)
  local seed = tonumber(args[2]) or 1
  math.randomseed(seed * 1000003 + (tid or 0) * 7919)
  for _ = 1, 10 do math.random() end
  if args[3] ~= nil and args[3] ~= "-" then
    local f = assert(io.open(args[3], "r"))
    for line in f:lines() do
      if line ~= "" then values[#values + 1] = line end
    end
    f:close()
    if #values == 0 then error("the pool " .. args[3] .. " is empty") end
  end
end

function random_value()
  return values[math.random(#values)]
end

search_headers = { ["Accept"] = "application/fhir+json" }
