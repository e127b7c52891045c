"""Quota enforcement: `max_agents` at the door, and the background check that finds tenants
over a quota (e.g. after the operator lowered it).

Who is an agent: a live user holding `tickets:manage` through any group, or `admin` (which
implies every permission, so an admin can work the queue and takes a seat). Service accounts
count like people: a seat is a holder of the permission, whoever they are.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from flowdesk.db.pool import Database
from flowdesk.db.query import Connection
from flowdesk.errors import QuotaExceeded
from flowdesk.itsm import repository as repo
from flowdesk.itsm.vocabulary import AGENT_GRANTING_PERMISSIONS, resolved_quotas
from flowdesk.periodic import Periodic

logger = logging.getLogger(__name__)

# pg_try_advisory_xact_lock key of the background check: one process at a time runs it.
QUOTA_CHECK_LOCK_KEY = 0x666C6F71  # "floq"


def grants_agent_seat(permissions: Iterable[str]) -> bool:
    return any(p in AGENT_GRANTING_PERMISSIONS for p in permissions)


@dataclass(frozen=True, slots=True)
class SeatGuard:
    """Taken before a change that may grant agent seats; checked after it is written."""

    tenant_id: uuid.UUID
    limit: int | None
    before: int


async def guard_agent_seats(conn: Connection, tenant_id: uuid.UUID) -> SeatGuard:
    """Lock the tenant (grants are serialised per tenant) and count its seats before the
    change. Call inside the transaction that makes the change."""
    tenant = await repo.lock_tenant(conn, tenant_id)
    limit = resolved_quotas(tenant["quotas"] if tenant else {})["max_agents"]
    before = await repo.count_agents(conn, tenant_id) if limit is not None else 0
    return SeatGuard(tenant_id, limit, before)


class AgentSeatsExceeded(QuotaExceeded):
    """A change refused for adding agent seats beyond `max_agents`, recorded as a `refused`
    quota alert once its transaction has rolled back (flowdesk.db.pool.KeptOnRollback)."""

    def __init__(self, guard: SeatGuard, after: int, detail: dict[str, object]) -> None:
        assert guard.limit is not None
        super().__init__(
            "max_agents",
            guard.limit,
            guard.before,
            f"The tenant's ITSM licence allows {guard.limit} agents (users holding "
            f"tickets:manage or admin); {guard.before} are in use and this change would make "
            f"{after}.",
        )
        self._guard = guard
        self._detail = {**detail, "would_be": after}

    async def record(self, conn: Connection) -> None:
        guard = self._guard
        assert guard.limit is not None
        try:
            await repo.record_refusal(
                conn, guard.tenant_id, "max_agents", guard.limit, guard.before, self._detail
            )
        except Exception:  # the refusal stands even if it cannot be written down
            logger.warning("could not record a refused max_agents overrun", exc_info=True)


async def check_agent_seats(conn: Connection, guard: SeatGuard, detail: dict[str, object]) -> None:
    """Refuse the (written, uncommitted) change if it added seats beyond the quota.

    A change that adds no seat passes even when the tenant is already over (after the operator
    lowered the quota): only growth is refused. Call inside `Database.transaction()`, which
    records the refusal after rolling the change back.
    """
    if guard.limit is None:
        return
    after = await repo.count_agents(conn, guard.tenant_id)
    if after <= guard.before or after <= guard.limit:
        return
    raise AgentSeatsExceeded(guard, after, detail)


async def within_agent_seats(
    conn: Connection, tenant_id: uuid.UUID, grant: Callable[[], Awaitable[None]]
) -> bool:
    """Run `grant` (memberships added, e.g. by an identity provider's sign-in) in a savepoint
    and keep it only if it adds no agent seat beyond `max_agents`: False when it was rolled
    back, the refusal recorded as a `refused` alert. Call inside a transaction."""
    guard = await guard_agent_seats(conn, tenant_id)
    try:
        async with conn.transaction():
            await grant()
            await check_agent_seats(conn, guard, {"change": "sign-in"})
    except AgentSeatsExceeded as refused:
        await refused.record(conn)
        return False
    return True


async def reconcile_agent_alert(
    conn: Connection, tenant_id: uuid.UUID, limit: int | None, current: int
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
    over_quota: list[dict[str, object]] = field(default_factory=list)


async def run_quota_check(db: Database) -> QuotaCheckResult:
    """One pass over every tenant with a max_agents quota, in one transaction.

    Safe with any number of processes: a transaction-level advisory lock lets one run at a time
    (the others skip this round), and alerts are idempotent (one open per tenant and quota), so
    even back-to-back runs record nothing twice. `max_emails_month` is counted by the
    notification relay, which opens its alert when it drops a mail; this check closes it once
    the tenant may send again (a new month, a raised quota).
    """
    async with db.transaction() as conn:
        if not await repo.try_advisory_xact_lock(conn, QUOTA_CHECK_LOCK_KEY):
            return QuotaCheckResult(ran=False)
        uses = await repo.agent_use_over_limits(conn)
        result = QuotaCheckResult(ran=True, tenants_checked=len(uses))
        over: list[uuid.UUID] = []
        for use in uses:
            tenant_id, limit, current = use["tenant_id"], use["quota_limit"], use["agents"]
            if current > limit:
                await repo.open_over_quota_alert(conn, tenant_id, "max_agents", limit, current)
                over.append(tenant_id)
                result.over_quota.append(
                    {
                        "tenant_id": str(tenant_id),
                        "quota": "max_agents",
                        "limit": limit,
                        "current": current,
                    }
                )
        # Everyone else is within (or no longer has) the quota: close their open alerts at once.
        await repo.resolve_open_alerts_except(conn, "max_agents", over)
        # The relay opens max_emails_month alerts as it drops mail; they end here.
        await repo.resolve_email_alerts_within_quota(conn)
    if result.over_quota:
        logger.warning("quota check: %d tenant(s) over max_agents", len(result.over_quota))
    return result


def quota_check_job(db: Database, interval: float) -> Periodic:
    """The background check as a lifespan job: every `interval` seconds in each process (the
    advisory lock makes the processes take turns)."""
    return Periodic("quota-check", interval, lambda: run_quota_check(db))
