-- search-name: GET Patient?name=<prefix>, a 3-letter prefix of a family name in the data.
-- Pool: the prefixes.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "search-common.lua")

function request()
  return wrk.format("GET", "/fhir/R4/Patient?name=" .. random_id(), search_headers)
end
