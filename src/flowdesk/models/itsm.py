"""The ITSM add-on's governance records: quota alerts (refused overruns and tenants found over
quota) and the log of licence changes made by the platform operator."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    String,
    Table,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from flowdesk.db.base import metadata
from flowdesk.models.columns import created_at, tenant_id

# `kind` is `refused` (a change that would have overrun a quota, refused at the door; closed
# from birth) or `over_quota` (the background check found the tenant over a quota; open until
# a later check finds it back within, at most one open per tenant and quota).
quota_alerts = Table(
    "quota_alerts",
    metadata,
    tenant_id(),
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("quota", String(40), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("quota_limit", Integer, nullable=False),
    Column("current_use", Integer, nullable=False),
    Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    created_at(),
    Column("last_seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("resolved_at", DateTime(timezone=True)),
    Index(
        "uq_quota_alerts_open",
        "tenant_id",
        "quota",
        unique=True,
        postgresql_where=text("resolved_at IS NULL"),
    ),
    Index("ix_quota_alerts_id", "id"),
)

# Who changed a tenant's licence, flags, quotas or rate limit, when, and to what.
licence_events = Table(
    "licence_events",
    metadata,
    tenant_id(),
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("actor", String(64), nullable=False),
    Column("changes", JSONB, nullable=False),
    created_at(),
)
