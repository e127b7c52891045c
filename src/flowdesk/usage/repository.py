"""The SQL of usage metering: one upsert per batch, and reads by tenant and day range."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from flowdesk.models import ApiUsage

UsageKey = tuple[uuid.UUID, uuid.UUID, date, str, int]  # tenant, key, day, family, class


async def add_counts(conn: AsyncConnection, counts: dict[UsageKey, int]) -> None:
    """Add the counts to the stored ones: ON CONFLICT … SET count = count + EXCLUDED.count, so
    any number of processes flushing the same keys add up rather than overwrite."""
    if not counts:
        return
    rows = [
        {
            "tenant_id": tenant_id,
            "api_key_id": key_id,
            "day": day,
            "family": family,
            "status_class": status_class,
            "count": count,
        }
        # A stable order: concurrent flushes lock the same rows in the same order (no deadlock).
        for (tenant_id, key_id, day, family, status_class), count in sorted(
            counts.items(), key=lambda kv: (str(kv[0][0]), kv[0][2], str(kv[0][1]), kv[0][3:])
        )
    ]
    stmt = pg_insert(ApiUsage).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[
            ApiUsage.tenant_id,
            ApiUsage.day,
            ApiUsage.api_key_id,
            ApiUsage.family,
            ApiUsage.status_class,
        ],
        set_={"count": ApiUsage.count + stmt.excluded.count},
    )
    await conn.execute(stmt)


async def usage_rows(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    first: date,
    last: date,
    api_key_id: uuid.UUID | None = None,
) -> Sequence[ApiUsage]:
    stmt = select(ApiUsage).where(
        ApiUsage.tenant_id == tenant_id, ApiUsage.day >= first, ApiUsage.day <= last
    )
    if api_key_id is not None:
        stmt = stmt.where(ApiUsage.api_key_id == api_key_id)
    stmt = stmt.order_by(
        ApiUsage.day, ApiUsage.api_key_id, ApiUsage.family, ApiUsage.status_class
    ).limit(10_000)
    return (await session.execute(stmt)).scalars().all()
