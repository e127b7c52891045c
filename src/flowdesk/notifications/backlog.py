"""How far the relay is behind, for the metrics: outbox messages not yet fanned out (and the
age of the oldest) and deliveries due. One statement over the partial indexes the relay's own
claims use (ix_outbox_pending, ix_deliveries_due); the counts stop at `COUNT_CAP`, so that a
scrape stays cheap however large a backlog grows."""

from __future__ import annotations

from typing import TypedDict

from sqlalchemy import Float, Integer, bindparam, extract, func, literal, select

from flowdesk.db.query import Connection, Query, row
from flowdesk.models import deliveries, outbox

# Beyond this many, a backlog is reported as this many: an alert needs no exact count.
COUNT_CAP = 10_000


class Backlog(TypedDict):
    outbox_pending: int
    outbox_oldest_seconds: float
    deliveries_due: int


def _backlog() -> Query:
    limit = bindparam("cap", type_=Integer)
    pending = (
        select(literal(1)).select_from(outbox).where(outbox.c.delivered_at.is_(None)).limit(limit)
    ).subquery()
    oldest = (
        select(outbox.c.created_at)
        .where(outbox.c.delivered_at.is_(None))
        .order_by(outbox.c.id)
        .limit(1)
        .scalar_subquery()
    )
    due = (
        select(literal(1))
        .select_from(deliveries)
        .where(deliveries.c.state == "pending", deliveries.c.next_attempt_at <= func.now())
        .limit(limit)
    ).subquery()
    return Query(
        select(
            select(func.count()).select_from(pending).scalar_subquery().label("outbox_pending"),
            func.coalesce(extract("epoch", func.now() - oldest), 0)
            .cast(Float)
            .label("outbox_oldest_seconds"),
            select(func.count()).select_from(due).scalar_subquery().label("deliveries_due"),
        )
    )


_BACKLOG = _backlog()


async def backlog(conn: Connection) -> Backlog:
    found = await row(conn, Backlog, _BACKLOG, cap=COUNT_CAP)
    assert found is not None  # a SELECT without FROM has its one row
    return found
