"""All SQL of the ITSM controls: agent counts, quota alerts, the licence log, and the
tenant-level reads the licence cache and the platform API need."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Text, cast, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from flowdesk.itsm.vocabulary import AGENT_GRANTING_PERMISSIONS
from flowdesk.models import Group, GroupMember, LicenceEvent, QuotaAlert, Tenant, User

_AGENT_PERMS = cast(array(list(AGENT_GRANTING_PERMISSIONS)), ARRAY(Text))


def _agents_of(tenant_id: Any) -> Any:
    """The distinct live users of a tenant holding tickets:manage or admin through a group."""
    return (
        select(func.count(func.distinct(GroupMember.user_id)))
        .select_from(GroupMember)
        .join(
            Group, (Group.tenant_id == GroupMember.tenant_id) & (Group.id == GroupMember.group_id)
        )
        .join(User, (User.tenant_id == GroupMember.tenant_id) & (User.id == GroupMember.user_id))
        .where(
            GroupMember.tenant_id == tenant_id,
            Group.permissions.op("&&")(_AGENT_PERMS),
            User.deleted_at.is_(None),
        )
    )


async def count_agents(session: AsyncSession | AsyncConnection, tenant_id: uuid.UUID) -> int:
    return int((await session.execute(_agents_of(tenant_id))).scalar_one())


async def lock_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant | None:
    """The tenant row, locked: changes that may grant an agent seat are serialised per tenant,
    so two concurrent grants cannot both squeeze under the quota.

    FOR NO KEY UPDATE (key_share=True), not FOR UPDATE: inserting a row that references the
    tenant (a quota alert written on a side connection) takes FOR KEY SHARE, which this does
    not block."""
    stmt = select(Tenant).where(Tenant.id == tenant_id).with_for_update(key_share=True)
    return (await session.execute(stmt)).scalar()


async def add_licence_event(
    session: AsyncSession, tenant_id: uuid.UUID, actor: str, changes: dict[str, Any]
) -> None:
    session.add(LicenceEvent(tenant_id=tenant_id, actor=actor, changes=changes))
    await session.flush()


async def licence_events(
    session: AsyncSession, tenant_id: uuid.UUID, limit: int, before: int | None
) -> Sequence[LicenceEvent]:
    stmt = select(LicenceEvent).where(LicenceEvent.tenant_id == tenant_id)
    if before is not None:
        stmt = stmt.where(LicenceEvent.id < before)
    stmt = stmt.order_by(LicenceEvent.id.desc()).limit(limit + 1)
    return (await session.execute(stmt)).scalars().all()


# --- quota alerts --------------------------------------------------------------------------


async def record_refusal(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    quota: str,
    limit: int,
    current: int,
    detail: dict[str, Any],
) -> None:
    """A refused overrun attempt: closed at once (it never happened), kept for the operator."""
    await conn.execute(
        pg_insert(QuotaAlert).values(
            tenant_id=tenant_id,
            quota=quota,
            kind="refused",
            quota_limit=limit,
            current_use=current,
            detail=detail,
            resolved_at=func.now(),
        )
    )


async def open_over_quota_alert(
    conn: AsyncConnection | AsyncSession,
    tenant_id: uuid.UUID,
    quota: str,
    limit: int,
    current: int,
) -> None:
    """Idempotent: at most one open alert per tenant and quota (a partial unique index); a
    repeat sighting refreshes its figures and last_seen_at."""
    stmt = pg_insert(QuotaAlert).values(
        tenant_id=tenant_id,
        quota=quota,
        kind="over_quota",
        quota_limit=limit,
        current_use=current,
        detail={},
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[QuotaAlert.tenant_id, QuotaAlert.quota],
        index_where=QuotaAlert.resolved_at.is_(None),
        set_={
            "quota_limit": stmt.excluded.quota_limit,
            "current_use": stmt.excluded.current_use,
            "last_seen_at": func.now(),
        },
    )
    await conn.execute(stmt)


async def resolve_open_alert(
    conn: AsyncConnection | AsyncSession, tenant_id: uuid.UUID, quota: str, current: int
) -> None:
    await conn.execute(
        update(QuotaAlert)
        .where(
            QuotaAlert.tenant_id == tenant_id,
            QuotaAlert.quota == quota,
            QuotaAlert.resolved_at.is_(None),
        )
        .values(resolved_at=func.now(), current_use=current, last_seen_at=func.now())
    )


@dataclass(frozen=True, slots=True)
class AlertFilter:
    tenant_id: uuid.UUID | None = None
    kind: str | None = None
    open_only: bool = False


async def alerts_page(
    session: AsyncSession, flt: AlertFilter, limit: int, before: int | None
) -> Sequence[tuple[QuotaAlert, str]]:
    """Newest first, with each alert's tenant slug."""
    stmt = select(QuotaAlert, Tenant.slug).join(Tenant, Tenant.id == QuotaAlert.tenant_id)
    if flt.tenant_id is not None:
        stmt = stmt.where(QuotaAlert.tenant_id == flt.tenant_id)
    if flt.kind is not None:
        stmt = stmt.where(QuotaAlert.kind == flt.kind)
    if flt.open_only:
        stmt = stmt.where(QuotaAlert.resolved_at.is_(None))
    if before is not None:
        stmt = stmt.where(QuotaAlert.id < before)
    stmt = stmt.order_by(QuotaAlert.id.desc()).limit(limit + 1)
    return [(row[0], row[1]) for row in (await session.execute(stmt)).all()]


async def agent_use_over_limits(conn: AsyncConnection) -> Sequence[tuple[uuid.UUID, int, int]]:
    """(tenant, max_agents, agents in use) for every tenant with a max_agents quota."""
    limit = cast(Tenant.quotas["max_agents"].astext, Integer)
    stmt = (
        select(Tenant.id, limit, _agents_of(Tenant.id).scalar_subquery())
        .where(func.jsonb_typeof(Tenant.quotas["max_agents"]) == "number")
        .order_by(Tenant.id)
    )
    return [(row[0], int(row[1]), int(row[2])) for row in (await conn.execute(stmt)).all()]


# --- tenants -------------------------------------------------------------------------------


async def tenants_page(
    session: AsyncSession, limit: int, after: str | None
) -> Sequence[tuple[Tenant, int]]:
    """Tenants by slug, each with its current agent count."""
    stmt = select(Tenant, _agents_of(Tenant.id).scalar_subquery())
    if after is not None:
        stmt = stmt.where(Tenant.slug > after)
    stmt = stmt.order_by(Tenant.slug).limit(limit + 1)
    return [(row[0], int(row[1])) for row in (await session.execute(stmt)).all()]


@dataclass(frozen=True, slots=True)
class ControlsRow:
    licence_active: bool
    flags: dict[str, Any]
    quotas: dict[str, Any]
    rate_limit_requests: int | None
    rate_limit_window_seconds: int | None


async def fetch_controls(conn: AsyncConnection, tenant_id: uuid.UUID) -> ControlsRow | None:
    stmt = select(
        Tenant.licence_active,
        Tenant.flags,
        Tenant.quotas,
        Tenant.rate_limit_requests,
        Tenant.rate_limit_window_seconds,
    ).where(Tenant.id == tenant_id)
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    return ControlsRow(bool(row[0]), dict(row[1] or {}), dict(row[2] or {}), row[3], row[4])
