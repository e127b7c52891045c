"""The SQL of usage metering: one upsert per batch, and reads by tenant and day range."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from flowdesk.models import ApiUsage

UsageKey = tuple[uuid.UUID, uuid.UUID, date, str, int]  # tenant, key, day, family, class


# One statement whatever the batch: the rows travel as six arrays. (A multi-row VALUES
# insert took six bind parameters a row, compiled anew for every batch size, which blocked
# the event loop for milliseconds per flush and could not pass PostgreSQL's 65,535-parameter
# limit: a flush of more than ~10,900 keys would have failed every time.)
_ADD_COUNTS = text(
    """
INSERT INTO api_usage (tenant_id, day, api_key_id, family, status_class, count)
SELECT * FROM unnest(CAST(:tenants AS uuid[]), CAST(:days AS date[]), CAST(:keys AS uuid[]),
                     CAST(:families AS text[]), CAST(:classes AS smallint[]),
                     CAST(:counts AS bigint[]))
-- A stable order: concurrent flushes lock the same rows in the same order (no deadlock).
ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (tenant_id, day, api_key_id, family, status_class)
DO UPDATE SET count = api_usage.count + EXCLUDED.count
"""
)


async def add_counts(conn: AsyncConnection, counts: dict[UsageKey, int]) -> None:
    """Add the counts to the stored ones: ON CONFLICT … SET count = count + EXCLUDED.count, so
    any number of processes flushing the same keys add up rather than overwrite."""
    if not counts:
        return
    await conn.execute(
        _ADD_COUNTS,
        {
            "tenants": [tenant for tenant, _, _, _, _ in counts],
            "days": [day for _, _, day, _, _ in counts],
            "keys": [key for _, key, _, _, _ in counts],
            "families": [family for _, _, _, family, _ in counts],
            "classes": [status_class for _, _, _, _, status_class in counts],
            "counts": list(counts.values()),
        },
    )


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
