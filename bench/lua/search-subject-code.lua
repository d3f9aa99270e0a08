-- search-subject-code: GET Observation?subject=Patient/<id>&code=http://loinc.org|<code>
-- Pools: Patient ids, LOINC codes.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "search-common.lua")

function request()
  return wrk.format("GET", "/fhir/R4/Observation?subject=Patient/" .. random_id() ..
    "&code=http://loinc.org%7C" .. random_value(), search_headers)
end
