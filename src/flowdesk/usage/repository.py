"""The SQL of usage metering: one upsert per batch, and reads by tenant and day range."""

from __future__ import annotations

import uuid
from datetime import date
from typing import TypedDict

from sqlalchemy import BigInteger, Date, SmallInteger, String, Uuid, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from flowdesk.db.query import Connection, Query, execute, rows
from flowdesk.models import api_usage

UsageKey = tuple[uuid.UUID, uuid.UUID, date, str, int]  # tenant, key, day, family, class

MAX_ROWS = 10_000
"""The most rows one report lists (a year of a busy tenant's keys stays far below)."""


def _add_counts() -> Query:
    """One statement whatever the batch: the rows travel as six arrays, unnested. (A multi-row
    VALUES insert takes six parameters a row, is compiled anew for every batch size, and
    cannot pass PostgreSQL's 65,535-parameter limit: a flush of more than ~10,900 keys would
    fail every time.)"""
    batch = (
        func.unnest(
            bindparam("tenants", type_=ARRAY(Uuid)),
            bindparam("days", type_=ARRAY(Date)),
            bindparam("keys", type_=ARRAY(Uuid)),
            bindparam("families", type_=ARRAY(String)),
            bindparam("classes", type_=ARRAY(SmallInteger)),
            bindparam("counts", type_=ARRAY(BigInteger)),
        )
        .table_valued("tenant_id", "day", "api_key_id", "family", "status_class", "count")
        .render_derived(name="batch")
    )
    keys = [
        batch.c.tenant_id,
        batch.c.day,
        batch.c.api_key_id,
        batch.c.family,
        batch.c.status_class,
    ]
    # A stable order: concurrent flushes lock the same rows in the same order (no deadlock).
    rows_in_order = select(*keys, batch.c.count).order_by(*keys)
    insert = pg_insert(api_usage).from_select(
        ["tenant_id", "day", "api_key_id", "family", "status_class", "count"], rows_in_order
    )
    return Query(
        insert.on_conflict_do_update(
            index_elements=[
                api_usage.c.tenant_id,
                api_usage.c.day,
                api_usage.c.api_key_id,
                api_usage.c.family,
                api_usage.c.status_class,
            ],
            set_={"count": api_usage.c.count + insert.excluded.count},
        )
    )


_ADD_COUNTS = _add_counts()


async def add_counts(conn: Connection, counts: dict[UsageKey, int]) -> None:
    """Add the counts to the stored ones: ON CONFLICT … SET count = count + EXCLUDED.count, so
    any number of processes flushing the same keys add up rather than overwrite."""
    if not counts:
        return
    await execute(
        conn,
        _ADD_COUNTS,
        tenants=[tenant for tenant, _, _, _, _ in counts],
        days=[day for _, _, day, _, _ in counts],
        keys=[key for _, key, _, _, _ in counts],
        families=[family for _, _, _, family, _ in counts],
        classes=[status_class for _, _, _, _, status_class in counts],
        counts=list(counts.values()),
    )


class UsageCountRow(TypedDict):
    day: date
    api_key_id: uuid.UUID
    family: str
    status_class: int
    count: int
    total: int
    """The sum of `count` over every row of the range, listed or not."""


async def usage_counts(
    conn: Connection,
    tenant_id: uuid.UUID,
    first: date,
    last: date,
    api_key_id: uuid.UUID | None = None,
) -> list[UsageCountRow]:
    """The range's rows by day, key, family and class (at most MAX_ROWS), each carrying the
    total of the whole range: a window sum is taken before the LIMIT, so the total counts
    what the list leaves out."""
    stmt = select(
        api_usage.c.day,
        api_usage.c.api_key_id,
        api_usage.c.family,
        api_usage.c.status_class,
        api_usage.c.count,
        func.sum(api_usage.c.count).over().cast(BigInteger).label("total"),
    ).where(api_usage.c.tenant_id == tenant_id, api_usage.c.day >= first, api_usage.c.day <= last)
    if api_key_id is not None:
        stmt = stmt.where(api_usage.c.api_key_id == api_key_id)
    stmt = stmt.order_by(
        api_usage.c.day, api_usage.c.api_key_id, api_usage.c.family, api_usage.c.status_class
    ).limit(MAX_ROWS)
    return await rows(conn, UsageCountRow, stmt)
