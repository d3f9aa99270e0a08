-- read-anonymous: `read` without credentials, for the cost of authentication: only a server
-- built with the bench-anonymous feature answers it (as the super admin), and bench/run builds
-- one when this scenario is asked for. Compare with `read` in the same run.
anonymous = true
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "read.lua")
