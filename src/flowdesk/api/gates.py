"""Who may reach the ticket endpoints at all, before any ticket is looked at.

This is the one place where tenant-level gates on ticket access live, so that /v1/tickets and
/public/v1/tickets share them. In order:

1. the ITSM licence: without an active one every ticket endpoint answers 403
   `licence-inactive` (the rest of the tenant works as before);
2. the channel's feature flag: on /v1 an agent (a user holding tickets:manage) needs
   `agent_portal` and anyone else (a desk user) `end_user_portal`; on /public/v1 the tenant
   needs `public_api`. A disabled flag is 403 `feature-disabled` naming it;
3. the key's scope: tickets:read to read, tickets:write to write.

The licence state comes from a per-process cache of a few seconds (flowdesk.itsm.controls),
so the gate costs no query on a warm worker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeAlias

from fastapi import Depends, Request

from flowdesk.api.auth import current_principal, ensure_scope
from flowdesk.api.licence import controls_of, ensure_flag
from flowdesk.auth.principal import Principal
from flowdesk.itsm.controls import TenantControls
from flowdesk.tickets.facts import AssetLinks
from flowdesk.vocabulary import TICKETS_READ, TICKETS_WRITE


def portal_flag(principal: Principal) -> str:
    """The flag the first-party ticket endpoints need for this caller."""
    return "agent_portal" if principal.is_agent else "end_user_portal"


async def _gate(request: Request, scope: str, flag: str | None) -> Principal:
    """One flat dependency per endpoint (no nested Depends): the hot path pays for one."""
    principal = await current_principal(request)
    controls = await controls_of(request, principal)
    ensure_flag(controls, flag or portal_flag(principal))
    ensure_scope(principal, scope)
    request.state.controls = controls
    return principal


def asset_links(request: Request) -> AssetLinks:
    """Which asset links the tenant's flags store and show, from the gate's controls."""
    controls = getattr(request.state, "controls", None)
    if not isinstance(controls, TenantControls):
        return AssetLinks()
    return AssetLinks(
        assets=controls.enabled("asset_integration"), movements=controls.enabled("movement_link")
    )


Gate: TypeAlias = Callable[[Request], Awaitable[Principal]]


async def read_gate(request: Request) -> Principal:
    return await _gate(request, TICKETS_READ, None)


async def write_gate(request: Request) -> Principal:
    return await _gate(request, TICKETS_WRITE, None)


async def public_read_gate(request: Request) -> Principal:
    return await _gate(request, TICKETS_READ, "public_api")


async def public_write_gate(request: Request) -> Principal:
    return await _gate(request, TICKETS_WRITE, "public_api")


TicketReader = Annotated[Principal, Depends(read_gate)]
TicketWriter = Annotated[Principal, Depends(write_gate)]
