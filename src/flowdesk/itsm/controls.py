"""A tenant's ITSM controls (licence, flags, quotas, rate-limit policy) as the request path
sees them, with an in-process cache.

Every ticket request and every rate-limited request needs them, so they are trusted from
memory for as long as the TTL policy says (flowdesk.db.listener): minutes while the process
hears PostgreSQL's access-change notifications, which make a change made anywhere (the
platform API on any worker, the CLI, SQL) forget the tenant's entry within milliseconds of its
commit; `licence_cache_seconds` while it does not. Same pattern as the API-key cache
(flowdesk.auth.service).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from flowdesk.config import Settings
from flowdesk.db.cache import TenantCache
from flowdesk.db.listener import TtlPolicy
from flowdesk.db.pool import Database
from flowdesk.itsm.repository import ControlsRow, fetch_controls
from flowdesk.itsm.vocabulary import resolved_flags, resolved_quotas

_MAX_CACHED_TENANTS = 10_000


@dataclass(frozen=True, slots=True)
class RatePolicy:
    requests: int
    window_seconds: int


def default_policy(settings: Settings) -> RatePolicy:
    """A public key's budget unless its tenant's licence sets one."""
    return RatePolicy(settings.rate_limit_requests, settings.rate_limit_window_seconds)


def first_party_policy(settings: Settings) -> RatePolicy:
    """Every first-party key's budget (the deployment's; no licence sets it)."""
    return RatePolicy(
        settings.first_party_rate_limit_requests, settings.first_party_rate_limit_window_seconds
    )


def rate_policy(requests: int | None, window: int | None, default: RatePolicy) -> RatePolicy:
    """A tenant's policy: its own when the operator set both figures, else the service's."""
    return RatePolicy(requests, window) if requests and window else default


@dataclass(frozen=True, slots=True)
class TenantControls:
    licence_active: bool
    flags: dict[str, bool]
    quotas: dict[str, int | None]
    rate_policy: RatePolicy

    def enabled(self, flag: str) -> bool:
        return self.licence_active and self.flags.get(flag, False)


class ControlsCache:
    def __init__(self, db: Database, *, ttl: TtlPolicy, default_policy: RatePolicy) -> None:
        self._db = db
        self._default_policy = default_policy
        self._cache: TenantCache[uuid.UUID, TenantControls] = TenantCache(
            ttl=ttl, max_entries=_MAX_CACHED_TENANTS
        )

    def forget_all(self) -> None:
        self._cache.forget_all()

    def forget_tenant(self, tenant_id: uuid.UUID) -> None:
        self._cache.forget_tenant(tenant_id)

    async def get(self, tenant_id: uuid.UUID) -> TenantControls:
        cached = self._cache.get(tenant_id)
        if cached is not None:
            return cached
        load = self._cache.loading()
        async with self._db.connection() as conn:
            row = await fetch_controls(conn, tenant_id)
        controls = self._build(row)
        self._cache.put(tenant_id, controls, tenant_id, load)
        return controls

    def _build(self, row: ControlsRow | None) -> TenantControls:
        if row is None:  # a tenant that vanished: nothing is licensed
            return TenantControls(
                False, resolved_flags({}), resolved_quotas({}), self._default_policy
            )
        return TenantControls(
            row["licence_active"],
            resolved_flags(row["flags"]),
            resolved_quotas(row["quotas"]),
            rate_policy(
                row["rate_limit_requests"], row["rate_limit_window_seconds"], self._default_policy
            ),
        )
