"""Every tenant's allowed browser origins, in memory, for CORS (flowdesk.api.cors).

A preflight carries no credentials, so it is answered for any origin the deployment or some
tenant allows (`allows_any`); the actual request, once its caller is known, only for the
deployment's origins or the caller's tenant's (`allows`). Both are answered from memory: the
tenants with origins are read once, and a tenant is read again after the access listener
(flowdesk.db.listener) heard of a change to it (the tenants trigger fires on
`allowed_origins`), or everything after the listener was deaf. While it is deaf, what was read
is trusted for the short TTL only.

If the database cannot be reached, the origins last read are used (and the next call tries
again): CORS never turns an outage into something worse than the outage.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TypedDict

from sqlalchemy import ARRAY, Uuid, bindparam, func, select

from flowdesk.db.listener import TtlPolicy
from flowdesk.db.pool import Database
from flowdesk.db.query import Query, rows
from flowdesk.models import tenants

logger = logging.getLogger(__name__)

RETRY_SECONDS = 1.0


class _OriginsRow(TypedDict):
    id: uuid.UUID
    allowed_origins: list[str]


_ALL = Query(
    select(tenants.c.id, tenants.c.allowed_origins).where(
        func.cardinality(tenants.c.allowed_origins) > 0
    )
)
_SOME = Query(
    select(tenants.c.id, tenants.c.allowed_origins).where(
        tenants.c.id == func.any(bindparam("ids", type_=ARRAY(Uuid)))
    )
)


class OriginRegistry:
    """A subscriber of the access listener (forget_tenant, forget_all)."""

    def __init__(self, db: Database, *, ttl: TtlPolicy) -> None:
        self._db = db
        self._ttl = ttl
        self._by_tenant: dict[uuid.UUID, frozenset[str]] = {}
        self._any: frozenset[str] = frozenset()
        self._loaded_at: float | None = None  # None: read everything on the next call
        self._stale: set[uuid.UUID] = set()
        self._lock = asyncio.Lock()
        # After a failed read, the next is tried no sooner than this (monotonic): requests do
        # not each wait for an unreachable database.
        self._retry_at = 0.0
        self._generation = 0  # bumped by forget_all: a read in flight then is not trusted

    # --- the listener's side ---------------------------------------------------------------

    def forget_tenant(self, tenant_id: uuid.UUID) -> None:
        self._stale.add(tenant_id)

    def forget_all(self) -> None:
        self._loaded_at = None
        self._generation += 1

    # --- CORS's side -----------------------------------------------------------------------

    async def allows_any(self, origin: str) -> bool:
        """Whether some tenant allows `origin`."""
        await self._fresh()
        return origin in self._any

    async def allows(self, tenant_id: uuid.UUID, origin: str) -> bool:
        """Whether the tenant allows `origin`."""
        await self._fresh()
        return origin in self._by_tenant.get(tenant_id, ())

    async def _fresh(self) -> None:
        if not self._due():
            return
        async with self._lock:
            if not self._due():  # another call refreshed while this one waited
                return
            try:
                await self._refresh()
            except Exception as exc:
                logger.warning("CORS: tenant origins not refreshed (%s); using the last read", exc)

    def _due(self) -> bool:
        return (self._expired() or bool(self._stale)) and time.monotonic() >= self._retry_at

    def _expired(self) -> bool:
        loaded_at = self._loaded_at
        return loaded_at is None or time.monotonic() - loaded_at > self._ttl(loaded_at)

    async def _refresh(self) -> None:
        started, generation = time.monotonic(), self._generation
        everything = self._expired()
        # Taken before the read: a change heard during it is read again next time.
        stale, self._stale = self._stale, set()
        try:
            async with self._db.connection() as conn:
                if everything:
                    found = await rows(conn, _OriginsRow, _ALL)
                else:
                    found = await rows(conn, _OriginsRow, _SOME, ids=list(stale))
        except BaseException:
            self._stale |= stale
            self._retry_at = time.monotonic() + RETRY_SECONDS
            raise
        by_tenant = (
            {} if everything else {k: v for k, v in self._by_tenant.items() if k not in stale}
        )
        for r in found:
            if r["allowed_origins"]:
                by_tenant[r["id"]] = frozenset(r["allowed_origins"])
        self._by_tenant = by_tenant
        self._any = frozenset().union(*by_tenant.values())
        if everything and generation == self._generation:
            self._loaded_at = started
