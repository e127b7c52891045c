"""Who may reach the ticket endpoints at all, before any ticket is looked at.

This is the one place where tenant-level gates on ticket access live (the ITSM licence and
feature flags hook in here), so that /v1/tickets and /public/v1/tickets share them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from flowdesk.auth.dependencies import require_scope
from flowdesk.auth.principal import Principal


async def _reader(
    principal: Annotated[Principal, Depends(require_scope("tickets:read"))],
) -> Principal:
    return principal


async def _writer(
    principal: Annotated[Principal, Depends(require_scope("tickets:write"))],
) -> Principal:
    return principal


TicketReader = Annotated[Principal, Depends(_reader)]
TicketWriter = Annotated[Principal, Depends(_writer)]
