-- history: GET Patient/{id}/_history, id drawn at random from the pool.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local headers = { ["Accept"] = "application/fhir+json" }

function request()
  return wrk.format("GET", "/fhir/R4/Patient/" .. random_id() .. "/_history", headers)
end
