"""The readiness probe's own way to the database: one dedicated connection, not the pool's.

A saturated request pool (every connection busy, requests waiting out their acquire deadline)
is load, not a fault: the process can still serve, and taking it out of the balancer would
move the load to the other replicas and make it worse. And probes arriving every few seconds
from several checkers must not take connections from requests. So /readyz asks PostgreSQL over
a connection of its own, opened when first needed and again after it broke, with a short
deadline; concurrent probes share one check, and a result is reused for `cache_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg
from asyncpg import Record


class ReadinessProbe:
    def __init__(self, dsn: str, *, timeout: float = 2.0, cache_seconds: float = 1.0) -> None:
        self._dsn = dsn
        self._timeout = timeout
        self._cache_seconds = cache_seconds
        self._conn: asyncpg.Connection[Record] | None = None
        self._lock = asyncio.Lock()
        self._checked_at = float("-inf")
        self._ready = False
        self.checks = 0  # how many times the database was asked (tests, metrics)

    async def ready(self) -> bool:
        """Whether PostgreSQL answers, as of at most `cache_seconds` ago."""
        if time.monotonic() - self._checked_at < self._cache_seconds:
            return self._ready
        async with self._lock:
            # Another probe may have checked while this one waited for the lock.
            if time.monotonic() - self._checked_at >= self._cache_seconds:
                self._ready = await self._check()
                self._checked_at = time.monotonic()
            return self._ready

    async def _check(self) -> bool:
        self.checks += 1
        try:
            async with asyncio.timeout(self._timeout):
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(
                        self._dsn,
                        timeout=self._timeout,
                        server_settings={"application_name": "flowdesk-readiness"},
                    )
                await self._conn.fetchval("SELECT 1")
            return True
        except Exception:  # whatever the failure, the answer is "not ready", never a 500
            await self._drop()
            return False

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and not conn.is_closed():
                # Not wait_for: on 3.11 it drops a cancel landing as the close ends (gh-86296).
                with contextlib.suppress(Exception):
                    await conn.close(timeout=self._timeout)
