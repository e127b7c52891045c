"""A tenant's ITSM controls (licence, flags, quotas, rate-limit policy) as the request path
sees them, with a short in-process cache.

Every ticket request and every rate-limited request needs them, so they are trusted from
memory for `licence_cache_seconds` (default 5): a change made by the platform API on this
worker clears the entry at once (after the commit), one made on another worker or by the CLI
takes effect within those seconds. Same pattern as the API-key cache (flowdesk.auth.service).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from flowdesk.config import Settings
from flowdesk.itsm.repository import ControlsRow, fetch_controls
from flowdesk.itsm.vocabulary import resolved_flags, resolved_quotas

_MAX_CACHED_TENANTS = 10_000


@dataclass(frozen=True, slots=True)
class RatePolicy:
    requests: int
    window_seconds: int


def default_policy(settings: Settings) -> RatePolicy:
    return RatePolicy(settings.rate_limit_requests, settings.rate_limit_window_seconds)


@dataclass(frozen=True, slots=True)
class TenantControls:
    licence_active: bool
    flags: dict[str, bool]
    quotas: dict[str, int | None]
    rate_policy: RatePolicy

    def enabled(self, flag: str) -> bool:
        return self.licence_active and self.flags.get(flag, False)


class ControlsCache:
    def __init__(self, engine: AsyncEngine, *, ttl: float, default_policy: RatePolicy) -> None:
        self._engine = engine
        self._ttl = ttl
        self._default_policy = default_policy
        self._entries: dict[uuid.UUID, tuple[float, TenantControls]] = {}

    def invalidate(self, tenant_id: uuid.UUID | None = None) -> None:
        if tenant_id is None:
            self._entries.clear()
        else:
            self._entries.pop(tenant_id, None)

    async def get(self, tenant_id: uuid.UUID) -> TenantControls:
        now = time.monotonic()
        entry = self._entries.get(tenant_id)
        if entry is not None and now - entry[0] <= self._ttl:
            return entry[1]
        async with self._engine.connect() as conn:
            row = await fetch_controls(conn, tenant_id)
        controls = self._build(row)
        if len(self._entries) >= _MAX_CACHED_TENANTS:
            self._entries.clear()
        self._entries[tenant_id] = (now, controls)
        return controls

    def _build(self, row: ControlsRow | None) -> TenantControls:
        if row is None:  # a tenant that vanished: nothing is licensed
            return TenantControls(
                False, resolved_flags({}), resolved_quotas({}), self._default_policy
            )
        policy = self._default_policy
        if row.rate_limit_requests and row.rate_limit_window_seconds:
            policy = RatePolicy(row.rate_limit_requests, row.rate_limit_window_seconds)
        return TenantControls(
            row.licence_active, resolved_flags(row.flags), resolved_quotas(row.quotas), policy
        )
