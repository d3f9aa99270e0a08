-- update: PUT Patient/{id} on a random pool Patient, with a phone number and identifier that
-- change every time, so that each request writes a real new version. No If-Match.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")
dofile(dir .. "patient.lua")

local headers = {
  ["Content-Type"] = "application/fhir+json",
  ["Accept"] = "application/fhir+json",
}
local run = os.time()

function request()
  counter = counter + 1
  local id = random_id()
  local tag = run .. "-" .. tid .. "-" .. counter
  return wrk.format("PUT", "/fhir/R4/Patient/" .. id, headers, patient_json(id, tag, counter))
end
