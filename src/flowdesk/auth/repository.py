"""The SQL behind authentication: one query from a key's hash to everything a Principal needs,
and the batched write of when keys were last used."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TypedDict

from sqlalchemy import ARRAY, DateTime, Uuid, bindparam, cast, func, or_, select, update

from flowdesk.db.query import Connection, Query, execute, row
from flowdesk.models import api_keys, group_members, groups, tenants, users


class KeyRow(TypedDict):
    key_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_slug: str
    user_id: uuid.UUID
    user_kind: str
    user_deleted: bool
    scopes: list[str]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    channel: str
    # Every permission the user's groups grant (None when they are in no group).
    granted: list[str] | None


_permission = func.unnest(groups.c.permissions).column_valued("permission")
# The key's user's group permissions, one array: unnested first, since PostgreSQL cannot
# aggregate arrays of unequal length into one. (The sign-in of flowdesk.auth.identity reads
# them the same way.)
GRANTED = (
    select(func.array_agg(_permission.distinct()))
    .select_from(
        group_members.join(
            groups,
            (groups.c.tenant_id == group_members.c.tenant_id)
            & (groups.c.id == group_members.c.group_id),
        )
    )
    .where(
        group_members.c.tenant_id == api_keys.c.tenant_id,
        group_members.c.user_id == api_keys.c.user_id,
    )
    .scalar_subquery()
)

_FETCH_KEY = Query(
    select(
        api_keys.c.id.label("key_id"),
        api_keys.c.tenant_id,
        tenants.c.slug.label("tenant_slug"),
        api_keys.c.user_id,
        users.c.kind.label("user_kind"),
        users.c.deleted_at.is_not(None).label("user_deleted"),
        api_keys.c.scopes,
        api_keys.c.expires_at,
        api_keys.c.revoked_at,
        api_keys.c.last_used_at,
        api_keys.c.channel,
        GRANTED.label("granted"),
    )
    .select_from(
        api_keys.join(tenants, tenants.c.id == api_keys.c.tenant_id).join(
            users, (users.c.tenant_id == api_keys.c.tenant_id) & (users.c.id == api_keys.c.user_id)
        )
    )
    .where(api_keys.c.key_hash == bindparam("key_hash"))
)


async def fetch_key(conn: Connection, key_hash: bytes) -> KeyRow | None:
    return await row(conn, KeyRow, _FETCH_KEY, key_hash=key_hash)


_uses = (
    func.unnest(
        cast(bindparam("tenant_ids"), ARRAY(Uuid)),
        cast(bindparam("key_ids"), ARRAY(Uuid)),
        cast(bindparam("used_at"), ARRAY(DateTime(timezone=True))),
    )
    .table_valued("tenant_id", "id", "used_at")
    .render_derived(name="u")
)
_RECORD_KEY_USE = Query(
    update(api_keys)
    .where(
        api_keys.c.tenant_id == _uses.c.tenant_id,
        api_keys.c.id == _uses.c.id,
        # A stored time that is already later (another worker's) is kept.
        or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < _uses.c.used_at),
    )
    .values(last_used_at=_uses.c.used_at)
)


async def record_key_use(
    conn: Connection, uses: Mapping[tuple[uuid.UUID, uuid.UUID], datetime]
) -> int:
    """Record when keys were last used ((tenant id, key id) -> time), in one statement; how
    many keys were written."""
    return await execute(
        conn,
        _RECORD_KEY_USE,
        tenant_ids=[tenant for tenant, _ in uses],
        key_ids=[key for _, key in uses],
        used_at=list(uses.values()),
    )
