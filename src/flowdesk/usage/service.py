"""Usage reports for a tenant (its admins at /v1/usage, the operator at /platform/v1)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from flowdesk.db.query import Connection
from flowdesk.errors import InvalidInput
from flowdesk.usage.repository import usage_counts
from flowdesk.usage.schemas import UsageReport, UsageRow

DEFAULT_DAYS = 30
MAX_DAYS = 366


async def usage_report(
    conn: Connection,
    tenant_id: uuid.UUID,
    first: date | None,
    last: date | None,
    api_key_id: uuid.UUID | None,
) -> UsageReport:
    last = last or datetime.now(UTC).date()
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise InvalidInput("The range is empty.", [("/query/from", "must not be after 'to'")])
    if (last - first).days >= MAX_DAYS:
        raise InvalidInput(
            f"The range is longer than {MAX_DAYS} days.", [("/query/from", "range too long")]
        )
    found = await usage_counts(conn, tenant_id, first, last, api_key_id)
    items = [
        UsageRow(
            day=r["day"],
            api_key_id=r["api_key_id"],
            family=r["family"],
            status_class=f"{r['status_class']}xx",
            count=r["count"],
        )
        for r in found
    ]
    # The total of the whole range, even when the list stops at its maximum length.
    total = found[0]["total"] if found else 0
    return UsageReport(first_day=first, last_day=last, total=total, items=items)
