"""Who a ticket can be assigned to: the tenant's agents, for an assignee picker.

An agent is a live user whose groups grant tickets:manage (admin implies it): the same
statement fragment decides whether a PATCH may assign a ticket to someone
(flowdesk.tickets.statements, `IS_AGENT` and `AGENTS`), so everyone listed can be assigned and
no one else can.

Only agents may read the list. It shows e-mail addresses, which are how colleagues reach each
other but which a requester has no business collecting: a desk user sees a name on their
ticket, never the staff directory.
"""

from __future__ import annotations

import uuid

from flowdesk.auth.principal import Principal
from flowdesk.db.like import contains
from flowdesk.db.query import Connection
from flowdesk.errors import Forbidden
from flowdesk.pagination import Page, next_cursor
from flowdesk.tickets.repository import TicketRepository
from flowdesk.tickets.schemas import AgentOut
from flowdesk.vocabulary import TICKETS_MANAGE


async def list_agents(
    conn: Connection,
    principal: Principal,
    q: str | None,
    after: tuple[str, uuid.UUID] | None,
    limit: int,
) -> Page[AgentOut]:
    """A page of the tenant's agents by name, those whose name or e-mail contains `q` (in any
    case; `%` and `_` are literal) when it is given."""
    if not principal.is_agent:
        raise Forbidden(
            f"The list of agents is for agents (users holding '{TICKETS_MANAGE}').",
            extra={"required_permission": TICKETS_MANAGE},
        )
    repo = TicketRepository(conn, principal.tenant_id, requester_only=None)
    found = await repo.agents(contains(q) if q else None, after, limit)
    return Page[AgentOut](
        items=[AgentOut.model_validate(dict(r)) for r in found[:limit]],
        next_cursor=next_cursor(found, limit, lambda r: [r["name"], r["id"]]),
    )
