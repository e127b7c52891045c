"""The asyncpg connection under a pooled SQLAlchemy connection, for the hot paths.

Outside an explicit transaction every statement commits on its own, so a write that is one
statement (a CTE) costs one round trip: no BEGIN, no COMMIT, and row locks held for the
statement only. SQLAlchemy's pool still owns the connection (sizes, timeouts, recycling) and
the codecs it installs (jsonb in as a JSON string, out as Python objects) apply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

# Failures that mean the connection itself is gone: it must not go back to the pool.
_BROKEN = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    OSError,
)


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[Any]:
    async with engine.connect() as conn:
        fairy = await conn.get_raw_connection()
        try:
            yield fairy.driver_connection
        except _BROKEN:
            await conn.invalidate()
            raise


async def _connection(request: Request) -> AsyncIterator[Any]:
    async with driver_connection(request.app.state.engine) as conn:
        yield conn


# The connection is returned to the pool when the endpoint returns, before the response is
# written (scope "function").
RawConnection = Annotated[asyncpg.Connection, Depends(_connection, scope="function")]
