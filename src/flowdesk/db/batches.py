"""Deleting many rows without a long lock: in bounded batches, each its own short statement.

A purge statement deletes at most `batch` rows (a CTE that picks them with LIMIT … FOR UPDATE
SKIP LOCKED, then the DELETE joined to it on the key): each batch commits on its own, holds its
row locks for milliseconds, never waits for a row another process holds, and leaves dead
tuples that autovacuum reclaims as it goes (bench/purge.py measures it on a million rows).
"""

from __future__ import annotations

from typing import Any

from flowdesk.db.pool import Database
from flowdesk.db.query import Query, execute

DEFAULT_BATCH = 1000


async def delete_in_batches(
    db: Database, statement: Query, /, batch: int = DEFAULT_BATCH, **values: Any
) -> int:
    """Run `statement` (which takes a `batch` parameter) until a batch deletes fewer rows than
    `batch`; the number of rows deleted."""
    total = 0
    while True:
        async with db.connection() as conn:
            deleted = await execute(conn, statement, batch=batch, **values)
        total += deleted
        if deleted < batch:
            return total
