-- create: POST Patient with a new small Patient each time.
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
  local tag = run .. "-" .. tid .. "-" .. counter
  return wrk.format("POST", "/fhir/R4/Patient", headers, patient_json(nil, tag, counter))
end
