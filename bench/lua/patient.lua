-- A realistic small Patient (about 600 bytes of JSON), varied by `n` so that no two bodies are alike.

local families = { "Chalmers", "Nguyen", "Garcia", "Okafor", "Schmidt", "Tanaka", "Rossi", "Kowalski" }
local givens = { "Peter", "Amina", "Lucia", "Kenji", "Sofia", "Jonas", "Priya", "Mateo" }
local cities = { "PleasantVille", "Springfield", "Riverside", "Fairview", "Lakeside" }

-- `id` is nil for a create. `tag` makes the identifier and phone number unique.
function patient_json(id, tag, n)
  local fam = families[(n % #families) + 1]
  local giv = givens[(math.floor(n / 8) % #givens) + 1]
  local city = cities[(n % #cities) + 1]
  local idpart = ""
  if id then idpart = '"id":"' .. id .. '",' end
  return '{"resourceType":"Patient",' .. idpart ..
    '"identifier":[{"system":"http://hospital.example.org/mrn","value":"MRN-' .. tag .. '"}],' ..
    '"active":true,' ..
    '"name":[{"use":"official","family":"' .. fam .. '","given":["' .. giv .. '","James"]}],' ..
    '"telecom":[{"system":"phone","value":"+1 555 ' .. tag .. '","use":"home"},' ..
    '{"system":"email","value":"' .. string.lower(giv) .. '.' .. string.lower(fam) .. '@example.org"}],' ..
    '"gender":"' .. ((n % 2 == 0) and "female" or "male") .. '",' ..
    string.format('"birthDate":"%04d-%02d-%02d",', 1930 + n % 90, 1 + n % 12, 1 + n % 28) ..
    '"address":[{"use":"home","line":["' .. (1 + n % 900) .. ' Erewhon St"],"city":"' .. city ..
    '","state":"Vic","postalCode":"' .. (3000 + n % 999) .. '","country":"AU"}]}'
end
