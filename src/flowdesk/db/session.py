"""The unit of work: one AsyncSession and one transaction per request.

The dependency commits when the endpoint returns and rolls back when it raises. Its scope is
"function" so that the commit happens before the response is sent: a failed commit becomes an
error response, never a success the database does not hold.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


def after_commit(request: Request, callback: Callable[[], None]) -> None:
    """Run `callback` once this request's transaction has committed (never on rollback)."""
    callbacks: list[Callable[[], None]] = request.state.__dict__.setdefault("after_commit", [])
    callbacks.append(callback)


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        async with session.begin():
            yield session
        for callback in request.state.__dict__.get("after_commit", ()):
            callback()


DbSession = Annotated[AsyncSession, Depends(_session, scope="function")]
