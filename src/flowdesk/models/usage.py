"""API usage metering: requests per API key per day, by endpoint family and status class.

Rows are written in batches by flowdesk.usage.meter (an upsert adding to `count`), never once
per request."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    ForeignKeyConstraint,
    Index,
    SmallInteger,
    String,
    Table,
    Uuid,
)

from flowdesk.db.base import metadata
from flowdesk.models.columns import tenant_id

api_usage = Table(
    "api_usage",
    metadata,
    tenant_id(),
    Column("day", Date, primary_key=True),
    Column("api_key_id", Uuid, primary_key=True),
    # The route's family ("public.tickets", "v1.tickets", "v1.users", ...): bounded by the
    # routes, never by what a client puts in a URL.
    Column("family", String(40), primary_key=True),
    # 2 for 2xx, 4 for 4xx, ...
    Column("status_class", SmallInteger, primary_key=True),
    Column("count", BigInteger, nullable=False),
    ForeignKeyConstraint(
        ["tenant_id", "api_key_id"], ["api_keys.tenant_id", "api_keys.id"], ondelete="CASCADE"
    ),
    # The purge of days past retention, across tenants (migration 0016).
    Index("ix_api_usage_day", "day"),
)
