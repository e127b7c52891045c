"""Quota enforcement: `max_agents` at the door, and the background check that finds tenants
over a quota (e.g. after the operator lowered it).

Who is an agent: a live user holding `tickets:manage` through any group, or `admin` (which
implies every permission, so an admin can work the queue and takes a seat). Service accounts
count like people: a seat is a holder of the permission, whoever they are.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from flowdesk.errors import QuotaExceeded
from flowdesk.itsm import repository as repo
from flowdesk.itsm.vocabulary import AGENT_GRANTING_PERMISSIONS, resolved_quotas
from flowdesk.models import QuotaAlert
from flowdesk.periodic import Periodic

logger = logging.getLogger(__name__)

# pg_try_advisory_xact_lock key of the background check: one process at a time runs it.
QUOTA_CHECK_LOCK_KEY = 0x666C6F71  # "floq"


def grants_agent_seat(permissions: list[str] | tuple[str, ...] | set[str]) -> bool:
    return any(p in AGENT_GRANTING_PERMISSIONS for p in permissions)


@dataclass(frozen=True, slots=True)
class SeatGuard:
    """Taken before a change that may grant agent seats; checked after it is flushed."""

    tenant_id: uuid.UUID
    limit: int | None
    before: int


async def guard_agent_seats(session: AsyncSession, tenant_id: uuid.UUID) -> SeatGuard:
    tenant = await repo.lock_tenant(session, tenant_id)
    limit = resolved_quotas(tenant.quotas if tenant else {})["max_agents"]
    before = await repo.count_agents(session, tenant_id) if limit is not None else 0
    return SeatGuard(tenant_id, limit, before)


async def check_agent_seats(
    session: AsyncSession, guard: SeatGuard, detail: dict[str, Any]
) -> None:
    """Refuse the (flushed, uncommitted) change if it added seats beyond the quota.

    A change that adds no seat passes even when the tenant is already over (after the operator
    lowered the quota): only growth is refused. The refusal is recorded on a connection of its
    own, since the caller's transaction is about to be rolled back.
    """
    if guard.limit is None:
        return
    after = await repo.count_agents(session, guard.tenant_id)
    if after <= guard.before or after <= guard.limit:
        return
    engine = session.bind
    assert isinstance(engine, AsyncEngine)
    try:
        async with engine.begin() as conn:
            await repo.record_refusal(
                conn,
                guard.tenant_id,
                "max_agents",
                guard.limit,
                guard.before,
                {**detail, "would_be": after},
            )
    except Exception:  # the refusal stands even if it cannot be written down
        logger.warning("could not record a refused max_agents overrun", exc_info=True)
    raise QuotaExceeded(
        "max_agents",
        guard.limit,
        guard.before,
        f"The tenant's ITSM licence allows {guard.limit} agents (users holding tickets:manage "
        f"or admin); {guard.before} are in use and this change would make {after}.",
    )


async def reconcile_agent_alert(
    conn: AsyncConnection | AsyncSession, tenant_id: uuid.UUID, limit: int | None, current: int
) -> bool:
    """Open (or refresh) the tenant's max_agents alert when over, resolve it when not.
    True when the tenant is over."""
    if limit is not None and current > limit:
        await repo.open_over_quota_alert(conn, tenant_id, "max_agents", limit, current)
        return True
    await repo.resolve_open_alert(conn, tenant_id, "max_agents", current)
    return False


@dataclass(slots=True)
class QuotaCheckResult:
    ran: bool
    tenants_checked: int = 0
    over_quota: list[dict[str, Any]] = field(default_factory=list)


async def run_quota_check(engine: AsyncEngine) -> QuotaCheckResult:
    """One pass over every tenant with a max_agents quota, in one transaction.

    Safe with any number of processes: a transaction-level advisory lock lets one run at a time
    (the others skip this round), and alerts are idempotent (one open per tenant and quota), so
    even back-to-back runs record nothing twice. `max_emails_month` is counted by the
    notifications module, which raises its alerts through the same table.
    """
    async with engine.begin() as conn:
        got = (
            await conn.execute(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": QUOTA_CHECK_LOCK_KEY}
            )
        ).scalar()
        if not got:
            return QuotaCheckResult(ran=False)
        rows = await repo.agent_use_over_limits(conn)
        result = QuotaCheckResult(ran=True, tenants_checked=len(rows))
        over_ids: list[uuid.UUID] = []
        for tenant_id, limit, current in rows:
            if current > limit:
                await repo.open_over_quota_alert(conn, tenant_id, "max_agents", limit, current)
                over_ids.append(tenant_id)
                result.over_quota.append(
                    {
                        "tenant_id": str(tenant_id),
                        "quota": "max_agents",
                        "limit": limit,
                        "current": current,
                    }
                )
        # Everyone else is within (or no longer has) the quota: close their open alerts at once.
        stmt = update(QuotaAlert).where(
            QuotaAlert.quota == "max_agents", QuotaAlert.resolved_at.is_(None)
        )
        if over_ids:
            stmt = stmt.where(QuotaAlert.tenant_id.not_in(over_ids))
        await conn.execute(stmt.values(resolved_at=text("now()"), last_seen_at=text("now()")))
    if result.over_quota:
        logger.warning("quota check: %d tenant(s) over max_agents", len(result.over_quota))
    return result


class QuotaChecker(Periodic):
    """The background check as a lifespan task: every `interval` seconds in each process (the
    advisory lock makes the processes take turns)."""

    def __init__(self, engine: AsyncEngine, interval: float) -> None:
        super().__init__("quota-check", interval, lambda: run_quota_check(engine))
