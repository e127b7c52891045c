"""FastAPI dependencies for the ITSM controls: the tenant's cached licence state, and gates
on the licence and on single feature flags (for the later issues' endpoints: asset links,
movement links, e-mail templates)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from flowdesk.api.auth import Authenticated
from flowdesk.auth.principal import Principal
from flowdesk.errors import FeatureDisabled, LicenceInactive
from flowdesk.itsm.controls import TenantControls
from flowdesk.runtime import runtime_of

FLAG_PURPOSE: dict[str, str] = {
    "agent_portal": "the agent endpoints (the queue, assignment, agent transitions)",
    "end_user_portal": "the desk endpoints (requesters filing and following their tickets)",
    "asset_integration": "asset links on tickets",
    "email_notifications": "e-mail on ticket events",
    "email_templates": "custom e-mail templates",
    "public_api": "the public API (/public/v1/tickets)",
    "movement_link": "links from tickets to asset movements",
}


async def controls_of(request: Request, principal: Principal) -> TenantControls:
    return await runtime_of(request).controls.get(principal.tenant_id)


def ensure_licensed(controls: TenantControls) -> None:
    if not controls.licence_active:
        raise LicenceInactive()


def ensure_flag(controls: TenantControls, flag: str) -> None:
    ensure_licensed(controls)
    if not controls.flags.get(flag, False):
        raise FeatureDisabled(
            flag,
            f"The '{flag}' feature ({FLAG_PURPOSE.get(flag, flag)}) is not enabled for this "
            "tenant's ITSM licence.",
        )


def require_feature(flag: str) -> Callable[[Request, Principal], Awaitable[Principal]]:
    async def check(request: Request, principal: Authenticated) -> Principal:
        ensure_flag(await controls_of(request, principal), flag)
        return principal

    return check


async def _licensed(request: Request, principal: Authenticated) -> Principal:
    ensure_licensed(await controls_of(request, principal))
    return principal


Licensed = Annotated[Principal, Depends(_licensed)]
