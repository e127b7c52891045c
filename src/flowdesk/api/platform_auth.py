"""The platform operator's credential as a FastAPI dependency (flowdesk.auth.platform)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flowdesk.runtime import runtime_of

_platform_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="PlatformToken",
    description="The platform operator's token (FLOWDESK_PLATFORM_TOKEN), not a tenant key.",
)


async def _operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_platform_bearer)],
) -> str:
    runtime_of(request).platform_guard.check(
        credentials.credentials if credentials is not None else None
    )
    return "platform-api"


# The value is the actor name written to the licence log.
PlatformOperator = Annotated[str, Depends(_operator)]
