"""All SQL of the ITSM controls: the licence columns of a tenant, agent counts, quota alerts,
the licence log, the "ITSM Agent" system group, and the tenant reads the licence cache and the
platform API need."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, TypedDict

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    Integer,
    ScalarSelect,
    Text,
    Uuid,
    all_,
    bindparam,
    cast,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.dialects.postgresql import insert as pg_insert

from flowdesk.db.constraints import unique
from flowdesk.db.query import Connection, Query, execute, row, rows, value
from flowdesk.itsm.vocabulary import AGENT_GRANTING_PERMISSIONS
from flowdesk.models import (
    email_usage,
    group_members,
    groups,
    licence_events,
    quota_alerts,
    tenants,
    users,
)

# --- tenants -------------------------------------------------------------------------------


class TenantRow(TypedDict):
    """A tenant as the licence use cases and views read it (every column of `tenants`)."""

    id: uuid.UUID
    slug: str
    name: str
    ticket_prefix: str
    flags: dict[str, object]
    quotas: dict[str, object]
    licence_active: bool
    licence_activated_at: datetime | None
    licence_deactivated_at: datetime | None
    rate_limit_requests: int | None
    rate_limit_window_seconds: int | None
    queue_email: str | None
    mail_from_name: str | None
    allowed_origins: list[str]
    created_at: datetime
    updated_at: datetime


class TenantAgentsRow(TenantRow):
    agents: int


class LicenceColumns(TypedDict, total=False):
    """The licence columns a change writes; those left out stay as they are."""

    licence_active: bool
    flags: dict[str, bool]
    quotas: dict[str, int]
    rate_limit_requests: int | None
    rate_limit_window_seconds: int | None


_AGENT_PERMS = cast(array(list(AGENT_GRANTING_PERMISSIONS)), ARRAY(Text))


def _agents_of(tenant_id: ColumnElement[Any]) -> ScalarSelect[int]:
    """The distinct live users of a tenant holding tickets:manage or admin through a group."""
    return (
        select(func.count(func.distinct(group_members.c.user_id)))
        .select_from(group_members)
        .join(
            groups,
            (groups.c.tenant_id == group_members.c.tenant_id)
            & (groups.c.id == group_members.c.group_id),
        )
        .join(
            users,
            (users.c.tenant_id == group_members.c.tenant_id)
            & (users.c.id == group_members.c.user_id),
        )
        .where(
            group_members.c.tenant_id == tenant_id,
            groups.c.permissions.overlap(_AGENT_PERMS),
            users.c.deleted_at.is_(None),
        )
        .scalar_subquery()
    )


_BY_SLUG = Query(select(tenants).where(tenants.c.slug == bindparam("slug")))
# FOR NO KEY UPDATE (key_share=True), not FOR UPDATE: inserting a row that references the
# tenant (a quota alert written on a side connection) takes FOR KEY SHARE, which this does not
# block.
_LOCK = Query(
    select(tenants).where(tenants.c.id == bindparam("tenant_id")).with_for_update(key_share=True)
)
_COUNT_AGENTS = Query(select(_agents_of(bindparam("tenant_id", type_=Uuid))))
# The calendar month (UTC) that mails count against.
_THIS_MONTH = cast(func.date_trunc("month", func.timezone("UTC", func.now())), Date)
_EMAILS_THIS_MONTH = Query(
    select(email_usage.c.sent).where(
        email_usage.c.tenant_id == bindparam("tenant_id", type_=Uuid),
        email_usage.c.month == _THIS_MONTH,
    )
)


async def tenant_by_slug(conn: Connection, slug: str) -> TenantRow | None:
    return await row(conn, TenantRow, _BY_SLUG, slug=slug)


async def lock_tenant(conn: Connection, tenant_id: uuid.UUID) -> TenantRow | None:
    """The tenant row, locked: changes that may grant an agent seat (and licence changes) are
    serialised per tenant, so two concurrent grants cannot both squeeze under the quota."""
    return await row(conn, TenantRow, _LOCK, tenant_id=tenant_id)


async def emails_this_month(conn: Connection, tenant_id: uuid.UUID) -> int:
    sent = await value(conn, _EMAILS_THIS_MONTH, tenant_id=tenant_id)
    return sent if isinstance(sent, int) else 0


async def count_agents(conn: Connection, tenant_id: uuid.UUID) -> int:
    count = await value(conn, _COUNT_AGENTS, tenant_id=tenant_id)
    assert isinstance(count, int)
    return count


async def update_licence_columns(
    conn: Connection, tenant_id: uuid.UUID, columns: LicenceColumns
) -> TenantRow:
    """Write the given licence columns (activation or deactivation stamps its time)."""
    values: dict[str, object] = {**columns, "updated_at": func.now()}
    if "licence_active" in columns:
        stamp = "licence_activated_at" if columns["licence_active"] else "licence_deactivated_at"
        values[stamp] = func.now()
    stmt = update(tenants).where(tenants.c.id == tenant_id).values(values).returning(*tenants.c)
    updated = await row(conn, TenantRow, stmt)
    assert updated is not None, "the caller holds the tenant's row lock"
    return updated


async def tenants_page(conn: Connection, limit: int, after: str | None) -> list[TenantAgentsRow]:
    """Tenants by slug, each with its current agent count; one more than `limit` when there
    is a next page."""
    stmt = select(tenants, _agents_of(tenants.c.id).label("agents"))
    if after is not None:
        stmt = stmt.where(tenants.c.slug > after)
    stmt = stmt.order_by(tenants.c.slug).limit(limit + 1)
    return await rows(conn, TenantAgentsRow, stmt)


# --- the licence cache ---------------------------------------------------------------------


class ControlsRow(TypedDict):
    licence_active: bool
    flags: dict[str, object]
    quotas: dict[str, object]
    rate_limit_requests: int | None
    rate_limit_window_seconds: int | None


_CONTROLS = Query(
    select(
        tenants.c.licence_active,
        tenants.c.flags,
        tenants.c.quotas,
        tenants.c.rate_limit_requests,
        tenants.c.rate_limit_window_seconds,
    ).where(tenants.c.id == bindparam("tenant_id"))
)


async def fetch_controls(conn: Connection, tenant_id: uuid.UUID) -> ControlsRow | None:
    return await row(conn, ControlsRow, _CONTROLS, tenant_id=tenant_id)


# --- the licence log -----------------------------------------------------------------------


class LicenceEventRow(TypedDict):
    id: int
    actor: str
    changes: dict[str, object]
    created_at: datetime


_ADD_EVENT = Query(
    insert(licence_events).values(
        tenant_id=bindparam("tenant_id"), actor=bindparam("actor"), changes=bindparam("changes")
    )
)


async def add_licence_event(
    conn: Connection, tenant_id: uuid.UUID, actor: str, changes: dict[str, object]
) -> None:
    await execute(conn, _ADD_EVENT, tenant_id=tenant_id, actor=actor, changes=changes)


async def licence_events_page(
    conn: Connection, tenant_id: uuid.UUID, limit: int, before: int | None
) -> list[LicenceEventRow]:
    """Newest first; one more than `limit` when there is a next page."""
    stmt = select(
        licence_events.c.id,
        licence_events.c.actor,
        licence_events.c.changes,
        licence_events.c.created_at,
    ).where(licence_events.c.tenant_id == tenant_id)
    if before is not None:
        stmt = stmt.where(licence_events.c.id < before)
    stmt = stmt.order_by(licence_events.c.id.desc()).limit(limit + 1)
    return await rows(conn, LicenceEventRow, stmt)


# --- the ITSM Agent system group -----------------------------------------------------------


class GroupRow(TypedDict):
    id: uuid.UUID
    name: str
    system: bool


_GROUP_BY_NAME = Query(
    select(groups.c.id, groups.c.name, groups.c.system).where(
        groups.c.tenant_id == bindparam("tenant_id"), groups.c.name == bindparam("name")
    )
)
_RENAME_GROUP = Query(
    update(groups)
    .where(groups.c.tenant_id == bindparam("tenant_id"), groups.c.id == bindparam("group_id"))
    .values(name=bindparam("name"), updated_at=func.now())
)
_ADD_SYSTEM_GROUP = Query(
    insert(groups)
    .values(
        tenant_id=bindparam("tenant_id"),
        name=bindparam("name"),
        permissions=bindparam("permissions"),
        system=True,
    )
    .returning(groups.c.id, groups.c.name, groups.c.system)
)


async def group_by_name(conn: Connection, tenant_id: uuid.UUID, name: str) -> GroupRow | None:
    return await row(conn, GroupRow, _GROUP_BY_NAME, tenant_id=tenant_id, name=name)


def _name_taken(name: str) -> AbstractContextManager[None]:
    return unique("uq_groups_tenant_id_name", f"A group named '{name}' already exists.")


async def rename_group(
    conn: Connection, tenant_id: uuid.UUID, group_id: uuid.UUID, name: str
) -> None:
    with _name_taken(name):
        await execute(conn, _RENAME_GROUP, tenant_id=tenant_id, group_id=group_id, name=name)


async def add_system_group(
    conn: Connection, tenant_id: uuid.UUID, name: str, permissions: Sequence[str]
) -> GroupRow:
    with _name_taken(name):
        added = await row(
            conn,
            GroupRow,
            _ADD_SYSTEM_GROUP,
            tenant_id=tenant_id,
            name=name,
            permissions=list(permissions),
        )
    assert added is not None
    return added


# --- quota alerts --------------------------------------------------------------------------


class AlertRow(TypedDict):
    id: int
    tenant_id: uuid.UUID
    tenant_slug: str
    quota: str
    kind: str
    quota_limit: int
    current_use: int
    detail: dict[str, object]
    created_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None


class AgentUseRow(TypedDict):
    tenant_id: uuid.UUID
    quota_limit: int
    agents: int


_RECORD_REFUSAL = Query(
    insert(quota_alerts).values(
        tenant_id=bindparam("tenant_id"),
        quota=bindparam("quota"),
        kind="refused",
        quota_limit=bindparam("limit"),
        current_use=bindparam("current"),
        detail=bindparam("detail"),
        resolved_at=func.now(),
    )
)


def _open_over_quota() -> Query:
    stmt = pg_insert(quota_alerts).values(
        tenant_id=bindparam("tenant_id"),
        quota=bindparam("quota"),
        kind="over_quota",
        quota_limit=bindparam("limit"),
        current_use=bindparam("current"),
        detail={},
    )
    return Query(
        stmt.on_conflict_do_update(
            index_elements=[quota_alerts.c.tenant_id, quota_alerts.c.quota],
            index_where=quota_alerts.c.resolved_at.is_(None),
            set_={
                "quota_limit": stmt.excluded.quota_limit,
                "current_use": stmt.excluded.current_use,
                "last_seen_at": func.now(),
            },
        )
    )


_OPEN_OVER_QUOTA = _open_over_quota()
_RESOLVE_OPEN = Query(
    update(quota_alerts)
    .where(
        quota_alerts.c.tenant_id == bindparam("tenant_id"),
        quota_alerts.c.quota == bindparam("quota"),
        quota_alerts.c.resolved_at.is_(None),
    )
    .values(resolved_at=func.now(), current_use=bindparam("current"), last_seen_at=func.now())
)
_RESOLVE_ALL_BUT = Query(
    update(quota_alerts)
    .where(
        quota_alerts.c.quota == bindparam("quota"),
        quota_alerts.c.resolved_at.is_(None),
        quota_alerts.c.tenant_id != all_(bindparam("over", type_=ARRAY(Uuid))),
    )
    .values(resolved_at=func.now(), last_seen_at=func.now())
)
_AGENT_USE = Query(
    select(
        tenants.c.id.label("tenant_id"),
        cast(tenants.c.quotas["max_agents"].astext, Integer).label("quota_limit"),
        _agents_of(tenants.c.id).label("agents"),
    )
    .where(func.jsonb_typeof(tenants.c.quotas["max_agents"]) == "number")
    .order_by(tenants.c.id)
)
# A tenant's max_emails_month alert ends when mail can flow again: a new month began, or the
# operator raised or lifted the quota.
_limit = cast(tenants.c.quotas["max_emails_month"].astext, Integer)
_RESOLVE_SPENT_EMAIL_QUOTAS = Query(
    update(quota_alerts)
    .where(
        quota_alerts.c.quota == "max_emails_month",
        quota_alerts.c.resolved_at.is_(None),
        ~select(tenants.c.id)
        .where(
            tenants.c.id == quota_alerts.c.tenant_id,
            func.jsonb_typeof(tenants.c.quotas["max_emails_month"]) == "number",
            func.coalesce(
                select(email_usage.c.sent)
                .where(email_usage.c.tenant_id == tenants.c.id, email_usage.c.month == _THIS_MONTH)
                .scalar_subquery(),
                0,
            )
            >= _limit,
        )
        .exists(),
    )
    .values(resolved_at=func.now(), last_seen_at=func.now())
)
_TRY_LOCK = Query(select(func.pg_try_advisory_xact_lock(bindparam("key", type_=BigInteger))))


async def record_refusal(
    conn: Connection,
    tenant_id: uuid.UUID,
    quota: str,
    limit: int,
    current: int,
    detail: dict[str, object],
) -> None:
    """A refused overrun attempt: closed at once (it never happened), kept for the operator."""
    await execute(
        conn,
        _RECORD_REFUSAL,
        tenant_id=tenant_id,
        quota=quota,
        limit=limit,
        current=current,
        detail=detail,
    )


async def open_over_quota_alert(
    conn: Connection, tenant_id: uuid.UUID, quota: str, limit: int, current: int
) -> None:
    """Idempotent: at most one open alert per tenant and quota (a partial unique index); a
    repeat sighting refreshes its figures and last_seen_at."""
    await execute(
        conn, _OPEN_OVER_QUOTA, tenant_id=tenant_id, quota=quota, limit=limit, current=current
    )


async def resolve_open_alert(
    conn: Connection, tenant_id: uuid.UUID, quota: str, current: int
) -> None:
    await execute(conn, _RESOLVE_OPEN, tenant_id=tenant_id, quota=quota, current=current)


async def resolve_open_alerts_except(
    conn: Connection, quota: str, over: Sequence[uuid.UUID]
) -> int:
    """Close the open alerts of `quota` of every tenant but those in `over`."""
    return await execute(conn, _RESOLVE_ALL_BUT, quota=quota, over=list(over))


async def resolve_email_alerts_within_quota(conn: Connection) -> int:
    """Close the max_emails_month alerts of tenants that may send mail again."""
    return await execute(conn, _RESOLVE_SPENT_EMAIL_QUOTAS)


async def agent_use_over_limits(conn: Connection) -> list[AgentUseRow]:
    """(tenant, max_agents, agents in use) for every tenant with a max_agents quota."""
    return await rows(conn, AgentUseRow, _AGENT_USE)


async def try_advisory_xact_lock(conn: Connection, key: int) -> bool:
    """Take a transaction-level advisory lock if no one holds it; False when someone does."""
    return await value(conn, _TRY_LOCK, key=key) is True


async def alerts_page(
    conn: Connection,
    *,
    tenant_id: uuid.UUID | None,
    kind: str | None,
    open_only: bool,
    limit: int,
    before: int | None,
) -> list[AlertRow]:
    """Newest first, with each alert's tenant slug; one more than `limit` when there is a
    next page."""
    stmt = select(
        quota_alerts.c.id,
        quota_alerts.c.tenant_id,
        tenants.c.slug.label("tenant_slug"),
        quota_alerts.c.quota,
        quota_alerts.c.kind,
        quota_alerts.c.quota_limit,
        quota_alerts.c.current_use,
        quota_alerts.c.detail,
        quota_alerts.c.created_at,
        quota_alerts.c.last_seen_at,
        quota_alerts.c.resolved_at,
    ).join(tenants, tenants.c.id == quota_alerts.c.tenant_id)
    if tenant_id is not None:
        stmt = stmt.where(quota_alerts.c.tenant_id == tenant_id)
    if kind is not None:
        stmt = stmt.where(quota_alerts.c.kind == kind)
    if open_only:
        stmt = stmt.where(quota_alerts.c.resolved_at.is_(None))
    if before is not None:
        stmt = stmt.where(quota_alerts.c.id < before)
    stmt = stmt.order_by(quota_alerts.c.id.desc()).limit(limit + 1)
    return await rows(conn, AlertRow, stmt)
