"""Usage metering without a database write per request.

Each process counts requests in memory per (tenant, API key, UTC day, endpoint family, status
class) and adds them to PostgreSQL in one upsert every `usage_flush_seconds` and at shutdown.
A failed flush keeps its counts for the next one (up to a bound, so a long outage cannot grow
memory without limit). What a crash loses is at most one interval of one process's counts:
metering is for reporting and billing tiers, not for enforcement (that is the rate limiter).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from datetime import UTC, datetime

from asyncpg.exceptions import IntegrityConstraintViolationError

from flowdesk.db.pool import Database
from flowdesk.periodic import Periodic
from flowdesk.usage.repository import UsageKey, add_counts

logger = logging.getLogger(__name__)

# Distinct (tenant, key, day, family, class) combinations held while the database is away.
_MAX_PENDING_KEYS = 100_000


class UsageMeter:
    def __init__(self, db: Database, flush_seconds: float) -> None:
        self._db = db
        self._counts: Counter[UsageKey] = Counter()
        self._lock = asyncio.Lock()
        # Flushes on a steady beat (no jitter: each process only writes its own counts).
        self._periodic = Periodic("usage-meter", flush_seconds, self.flush, jitter=0)

    def record(self, tenant_id: uuid.UUID, key_id: uuid.UUID, family: str, status: int) -> None:
        day = datetime.now(UTC).date()
        key = (tenant_id, key_id, day, family, status // 100)
        if key not in self._counts and len(self._counts) >= _MAX_PENDING_KEYS:
            return  # the bound: see the module's docstring
        self._counts[key] += 1

    @property
    def pending(self) -> int:
        return sum(self._counts.values())

    async def flush(self) -> int:
        """Write what has been counted; returns the number of requests written."""
        async with self._lock:
            batch, self._counts = self._counts, Counter()
            if not batch:
                return 0
            try:
                async with self._db.connection() as conn:
                    await add_counts(conn, dict(batch))
            except IntegrityConstraintViolationError:
                # A key or tenant deleted since it was counted: write the rest one by one.
                await self._flush_each(batch)
            except Exception:
                logger.warning("usage meter: flush failed; keeping the counts", exc_info=True)
                for key, count in batch.items():
                    if key in self._counts or len(self._counts) < _MAX_PENDING_KEYS:
                        self._counts[key] += count
                return 0
            return sum(batch.values())

    async def _flush_each(self, batch: Counter[UsageKey]) -> None:
        for key, count in batch.items():
            try:
                async with self._db.connection() as conn:
                    await add_counts(conn, {key: count})
            except IntegrityConstraintViolationError:
                logger.info("usage meter: dropped counts of a vanished key %s", key[1])

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
        await self.flush()
