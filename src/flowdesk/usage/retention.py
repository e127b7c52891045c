"""Usage counters past their window: API usage days and e-mail months older than the
retention are deleted in bounded batches by a periodic job (flowdesk.db.batches)."""

from __future__ import annotations

from sqlalchemy import Integer, bindparam, delete, func, select

from flowdesk.config import Settings
from flowdesk.db.batches import delete_in_batches
from flowdesk.db.pool import Database
from flowdesk.db.query import Query
from flowdesk.models import api_usage, email_usage
from flowdesk.periodic import Periodic

_batch = bindparam("batch", type_=Integer)
_cutoff = func.current_date() - bindparam("retention_days", type_=Integer)


def _purge_api_usage() -> Query:
    u = api_usage.c
    old = (
        select(u.tenant_id, u.day, u.api_key_id, u.family, u.status_class)
        .where(u.day < _cutoff)
        # In the index's order: a batch steps over the entries the batches before it killed,
        # instead of a scan over every dead row they left (bench/purge.py).
        .order_by(u.day)
        .limit(_batch)
        .with_for_update(skip_locked=True)
        .cte("old")
    )
    return Query(
        delete(api_usage).where(
            u.tenant_id == old.c.tenant_id,
            u.day == old.c.day,
            u.api_key_id == old.c.api_key_id,
            u.family == old.c.family,
            u.status_class == old.c.status_class,
        )
    )


def _purge_email_usage() -> Query:
    # A month is kept while any of its days is within the window.
    e = email_usage.c
    old = (
        select(e.tenant_id, e.month)
        .where(e.month < func.date_trunc("month", _cutoff))
        .limit(_batch)
        .with_for_update(skip_locked=True)
        .cte("old")
    )
    return Query(delete(email_usage).where(e.tenant_id == old.c.tenant_id, e.month == old.c.month))


_PURGE_API_USAGE = _purge_api_usage()
_PURGE_EMAIL_USAGE = _purge_email_usage()


async def purge_usage(db: Database, retention_days: int) -> int:
    """Delete the counters older than `retention_days`; how many rows went."""
    total = 0
    for statement in (_PURGE_API_USAGE, _PURGE_EMAIL_USAGE):
        total += await delete_in_batches(db, statement, retention_days=retention_days)
    return total


def usage_purge_job(db: Database, settings: Settings) -> Periodic:
    return Periodic(
        "usage-purge",
        settings.usage_purge_seconds,
        lambda: purge_usage(db, settings.usage_retention_days),
    )
