-- POST /v1/tickets. Arguments: KEYS_FILE MODE; MODE "one" files every ticket in the tenant of
-- the file's first key (the hot tenant), "spread" picks a random tenant's key per request.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local body = '{"title": "Printer on fire", ' ..
   '"description": "The printer on the third floor is on fire again.", ' ..
   '"catalog_item": "itsm_incident"}'
local requests = {}

setup = common.setup
done = common.done

function init(args)
   local keys = common.lines(args[1])
   if args[2] == "one" then
      keys = { keys[1] }
   end
   for i, key in ipairs(keys) do
      requests[i] = wrk.format("POST", "/v1/tickets", common.headers(key, true), body)
   end
   math.randomseed(os.time() * 1000 + (id or 0))
end

function request()
   return requests[math.random(#requests)]
end
