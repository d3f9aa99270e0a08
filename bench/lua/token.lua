-- token: POST /oauth2/token, grant_type=client_credentials, the client authenticated with HTTP
-- Basic (OXMED_BENCH_CLIENT: base64 of id:secret, set by bench/run). Each answer is an access
-- and an ID token, freshly signed.
anonymous = true
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local client = os.getenv("OXMED_BENCH_CLIENT")
if client == nil or client == "" then error("OXMED_BENCH_CLIENT is not set") end
local headers = {
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Authorization"] = "Basic " .. client,
}
local body = "grant_type=client_credentials&scope=openid"

function request()
  return wrk.format("POST", "/oauth2/token", headers, body)
end
