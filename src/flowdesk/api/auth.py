"""FastAPI dependencies for authentication and authorisation, as Annotated aliases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from flowdesk.auth.channels import ensure_channel
from flowdesk.auth.principal import Principal
from flowdesk.errors import Forbidden
from flowdesk.runtime import runtime_of
from flowdesk.vocabulary import ADMIN, TICKETS_READ, TICKETS_WRITE

# The bearer scheme is declared once for the whole OpenAPI document (flowdesk.app), not as a
# per-endpoint security dependency: on the hot path every dependency level costs time, and
# the docs say the same either way.
BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key: `Authorization: Bearer fdk_…`",
}


async def current_principal(request: Request) -> Principal:
    """The caller, from the request's API key (401 problem without a valid one, 403 for a key
    issued for the other API)."""
    # The usage middleware may have resolved this request's key already.
    known = getattr(request.state, "principal", None)
    if isinstance(known, Principal):
        principal = known
    else:
        principal = await runtime_of(request).authenticator.authenticate(
            request.headers.get("authorization"),
            request.client.host if request.client else None,
        )
        request.state.principal = principal
    # A key works only on the API it was issued for (403 on the other).
    ensure_channel(principal, request.scope["path"])
    return principal


def require_permission(permission: str) -> Callable[[Request], Awaitable[Principal]]:
    async def check(request: Request) -> Principal:
        principal = await current_principal(request)
        if not principal.can(permission):
            raise Forbidden(
                f"This needs the '{permission}' permission, granted to the user by a group "
                "and allowed by the key's scopes.",
                extra={"required_permission": permission},
            )
        return principal

    return check


def ensure_scope(principal: Principal, scope: str) -> None:
    if scope not in principal.scopes:
        raise Forbidden(f"This API key lacks the '{scope}' scope.", extra={"required_scope": scope})


def require_scope(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    async def check(request: Request) -> Principal:
        principal = await current_principal(request)
        ensure_scope(principal, scope)
        return principal

    return check


Authenticated = Annotated[Principal, Depends(current_principal)]
AdminPrincipal = Annotated[Principal, Depends(require_permission(ADMIN))]
TicketsRead = Annotated[Principal, Depends(require_scope(TICKETS_READ))]
TicketsWrite = Annotated[Principal, Depends(require_scope(TICKETS_WRITE))]
