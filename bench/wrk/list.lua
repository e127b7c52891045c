-- GET /v1/tickets?limit=N, the first page of the hot tenant (which holds more than N tickets).
-- Arguments: KEYS_FILE LIMIT; the file's first key is used.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local req

setup = common.setup
done = common.done

function init(args)
   local key = common.lines(args[1])[1]
   req = wrk.format("GET", "/v1/tickets?limit=" .. (args[2] or "50"), common.headers(key, false))
end

function request()
   return req
end
