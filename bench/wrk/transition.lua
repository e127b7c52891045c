-- POST /v1/tickets/{id}/transitions, alternating resolve and reopen per ticket.
-- Arguments: TICKETS_FILE PER_CONNECTION. The file has "KEY TICKET_ID" lines of tickets that
-- are in_progress; connection i (one per wrk thread) owns lines (i-1)*P+1 .. i*P, so no two
-- connections ever move the same ticket (a 409 would mean the harness is wrong).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local resolve = '{"action": "resolve"}'
local reopen = '{"action": "reopen"}'
local tickets = {}
local turn = 0
-- wrk (4.x) calls request() once on the first thread's state right after init() to check
-- the request it builds, and never sends that one; it must not count as a visit.
local verifying = false

setup = common.setup
done = common.done

function init(args)
   local lines = common.lines(args[1])
   local per = tonumber(args[2])
   local first = ((id or 1) - 1) * per
   for j = 1, per do
      local key, ticket = common.split(lines[(first + j - 1) % #lines + 1])
      local path = "/v1/tickets/" .. ticket .. "/transitions"
      tickets[j] = {
         wrk.format("POST", path, common.headers(key, true), resolve),
         wrk.format("POST", path, common.headers(key, true), reopen),
      }
   end
   verifying = (id == 1)
end

-- Round robin over the connection's tickets; each ticket's visits alternate resolve, reopen.
function request()
   if verifying then
      verifying = false
      return tickets[1][1]
   end
   local n = #tickets
   local j = turn % n + 1
   local parity = math.floor(turn / n) % 2 + 1
   turn = turn + 1
   return tickets[j][parity]
end
