-- read-observation: GET Observation/{id}, id drawn at random from the pool (bench/search's
-- policy scenarios: the Observations the policy client may see).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local headers = { ["Accept"] = "application/fhir+json" }

function request()
  return wrk.format("GET", "/fhir/R4/Observation/" .. random_id(), headers)
end
