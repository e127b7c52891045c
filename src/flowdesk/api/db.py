"""The database as the administrative endpoints take it: one transaction per request.

`Tx` commits when the endpoint returns and rolls back when it raises. Its scope is "function"
so that the commit happens before the response is sent: a failed commit becomes an error
response, never a success the database does not hold. `after_commit` runs a callback (a cache
to forget) once the commit is done, never on rollback.

The ticket endpoints, the hot paths, take `runtime_of(request).db.connection()` in the
endpoint instead (docs/adr/0005-flat-routes-and-headers.md).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from flowdesk.db.query import Connection
from flowdesk.runtime import runtime_of

logger = logging.getLogger(__name__)


def after_commit(request: Request, callback: Callable[[], None]) -> None:
    """Run `callback` once this request's transaction has committed (never on rollback)."""
    callbacks: list[Callable[[], None]] = request.state.__dict__.setdefault("after_commit", [])
    callbacks.append(callback)


def after_rollback(request: Request, callback: Callable[[], Awaitable[None]]) -> None:
    """Await `callback` if this request's transaction rolls back, its commit included (an
    Idempotency-Key claim to free); its own failure is logged, never raised."""
    callbacks: list[Callable[[], Awaitable[None]]] = request.state.__dict__.setdefault(
        "after_rollback", []
    )
    callbacks.append(callback)


async def _transaction(request: Request) -> AsyncIterator[Connection]:
    try:
        async with runtime_of(request).db.transaction() as conn:
            yield conn
    except BaseException:
        for undo in request.state.__dict__.get("after_rollback", ()):
            try:
                await undo()
            except Exception:
                logger.warning("a callback after a rollback failed", exc_info=True)
        raise
    for callback in request.state.__dict__.get("after_commit", ()):
        callback()


Tx = Annotated[Connection, Depends(_transaction, scope="function")]
