-- GET one path (query string included) again and again, as the tenant of the file's first key.
-- Arguments: KEYS_FILE PATH. make bench's list (/v1/tickets?limit=50) and the growth benchmark's
-- list shapes (bench/growthbench/shapes.py).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local req

setup = common.setup
done = common.done

function init(args)
   local key = common.lines(args[1])[1]
   req = wrk.format("GET", args[2], common.headers(key, false))
end

function request()
   return req
end
