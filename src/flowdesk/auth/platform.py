"""The platform credential: one operator token from the settings.

Only its SHA-256 is kept in memory, and a presented token is hashed and compared in constant
time, so neither the comparison's timing nor a memory dump of the process gives the token
away. Unset, the platform API is closed (503 `platform-api-disabled`).
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

from flowdesk.errors import PlatformDisabled, Unauthorized


class PlatformGuard:
    def __init__(self, token: SecretStr | None) -> None:
        secret = token.get_secret_value() if token is not None else ""
        self._digest = hashlib.sha256(secret.encode()).digest() if secret else None

    def check(self, presented: str | None) -> None:
        if self._digest is None:
            raise PlatformDisabled(
                "The platform API is not configured on this server (set FLOWDESK_PLATFORM_TOKEN)."
            )
        presented = presented or ""
        digest = hashlib.sha256(presented.encode()).digest()
        if not presented or not hmac.compare_digest(digest, self._digest):
            raise Unauthorized("A valid platform token is required.")
