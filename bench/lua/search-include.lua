-- search-include: GET Observation?patient=<id>&_include=Observation:subject&_count=100
-- Pool: Patient ids.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "search-common.lua")

function request()
  return wrk.format("GET", "/fhir/R4/Observation?patient=" .. random_id() ..
    "&_include=Observation:subject&_count=100", search_headers)
end
