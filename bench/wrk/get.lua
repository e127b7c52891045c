-- GET /v1/tickets/{id} of a random ticket. Arguments: TICKETS_FILE ("KEY TICKET_ID" lines).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local requests = {}

setup = common.setup
done = common.done

function init(args)
   for i, line in ipairs(common.lines(args[1])) do
      local key, ticket = common.split(line)
      requests[i] = wrk.format("GET", "/v1/tickets/" .. ticket, common.headers(key, false))
   end
   math.randomseed(os.time() * 1000 + (id or 0))
end

function request()
   return requests[math.random(#requests)]
end
