"""The platform credential: one operator token from the settings.

Only its SHA-256 is kept in memory, and a presented token is hashed and compared in constant
time, so neither the comparison's timing nor a memory dump of the process gives the token
away. Unset, the platform API is closed (503 `platform-api-disabled`).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from flowdesk.errors import PlatformDisabled, Unauthorized

_platform_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="PlatformToken",
    description="The platform operator's token (FLOWDESK_PLATFORM_TOKEN), not a tenant key.",
)


class PlatformGuard:
    def __init__(self, token: SecretStr | None) -> None:
        secret = token.get_secret_value() if token is not None else ""
        self._digest = hashlib.sha256(secret.encode()).digest() if secret else None

    def check(self, credentials: HTTPAuthorizationCredentials | None) -> None:
        if self._digest is None:
            raise PlatformDisabled(
                "The platform API is not configured on this server (set FLOWDESK_PLATFORM_TOKEN)."
            )
        presented = credentials.credentials if credentials is not None else ""
        digest = hashlib.sha256(presented.encode()).digest()
        if not presented or not hmac.compare_digest(digest, self._digest):
            raise Unauthorized("A valid platform token is required.")


async def _operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_platform_bearer)],
) -> str:
    guard: PlatformGuard = request.app.state.platform_guard
    guard.check(credentials)
    return "platform-api"


# The value is the actor name written to the licence log.
PlatformOperator = Annotated[str, Depends(_operator)]
