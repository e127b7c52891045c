"""The SQL behind authentication: one query from key hash to everything a Principal needs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdesk.models import ApiKey, Group, GroupMember, Tenant, User


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_slug: str
    user_id: uuid.UUID
    user_kind: str
    user_deleted: bool
    scopes: tuple[str, ...]
    granted: tuple[str, ...]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


# Group permissions flattened to one comma-separated string (arrays of unequal length cannot
# be aggregated into a PostgreSQL array); split in Python.
_granted = (
    select(func.string_agg(func.array_to_string(Group.permissions, ","), ","))
    .select_from(GroupMember)
    .join(Group, (Group.tenant_id == GroupMember.tenant_id) & (Group.id == GroupMember.group_id))
    .where(GroupMember.tenant_id == ApiKey.tenant_id, GroupMember.user_id == ApiKey.user_id)
    .scalar_subquery()
)


async def fetch_key(conn: AsyncConnection, key_hash: bytes) -> KeyRecord | None:
    stmt = (
        select(
            ApiKey.id,
            ApiKey.tenant_id,
            Tenant.slug,
            ApiKey.user_id,
            User.kind,
            User.deleted_at,
            ApiKey.scopes,
            ApiKey.expires_at,
            ApiKey.revoked_at,
            ApiKey.last_used_at,
        )
        .add_columns(_granted)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .join(User, (User.tenant_id == ApiKey.tenant_id) & (User.id == ApiKey.user_id))
        .where(ApiKey.key_hash == key_hash)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    return KeyRecord(
        key_id=row[0],
        tenant_id=row[1],
        tenant_slug=row[2],
        user_id=row[3],
        user_kind=row[4],
        user_deleted=row[5] is not None,
        scopes=tuple(row[6]),
        expires_at=row[7],
        revoked_at=row[8],
        last_used_at=row[9],
        granted=tuple(p for p in (row[10] or "").split(",") if p),
    )


async def record_key_use(
    conn: AsyncConnection, uses: dict[tuple[uuid.UUID, uuid.UUID], datetime]
) -> None:
    """Record when keys were last used ((tenant id, key id) -> time), in one statement. A
    stored time that is already later (another worker's) is kept."""
    await conn.execute(
        text(
            """
            UPDATE api_keys k SET last_used_at = u.used_at
            FROM unnest(CAST(:tenants AS uuid[]), CAST(:ids AS uuid[]),
                        CAST(:times AS timestamptz[])) AS u(tenant_id, id, used_at)
            WHERE k.tenant_id = u.tenant_id AND k.id = u.id
              AND (k.last_used_at IS NULL OR k.last_used_at < u.used_at)
            """
        ),
        {
            "tenants": [tenant for tenant, _ in uses],
            "ids": [key for _, key in uses],
            "times": list(uses.values()),
        },
    )
