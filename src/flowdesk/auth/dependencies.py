"""FastAPI dependencies for authentication and authorisation, as Annotated aliases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flowdesk.auth.principal import Principal
from flowdesk.errors import Forbidden

# auto_error=False: a missing header is answered by our own 401 problem, not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer fdk_…`")


async def _principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # The usage middleware may have resolved this request's key already.
    known = getattr(request.state, "principal", None)
    if isinstance(known, Principal):
        return known
    principal: Principal = await request.app.state.authenticator.authenticate(
        request.headers.get("authorization")
    )
    request.state.principal = principal
    return principal


def require_permission(permission: str) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        if not principal.can(permission):
            raise Forbidden(
                f"This needs the '{permission}' permission, granted to the user by a group "
                "and allowed by the key's scopes.",
                extra={"required_permission": permission},
            )
        return principal

    return check


def require_scope(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        if scope not in principal.scopes:
            raise Forbidden(
                f"This API key lacks the '{scope}' scope.", extra={"required_scope": scope}
            )
        return principal

    return check


Authenticated = Annotated[Principal, Depends(_principal)]
AdminPrincipal = Annotated[Principal, Depends(require_permission("admin"))]
TicketsRead = Annotated[Principal, Depends(require_scope("tickets:read"))]
TicketsWrite = Annotated[Principal, Depends(require_scope("tickets:write"))]
