"""The tenant: the root of every other row (each tenant-owned table leads with tenant_id)."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Integer, String, Table, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from flowdesk.db.base import metadata
from flowdesk.models.columns import created_at, updated_at, uuid_id

tenants = Table(
    "tenants",
    metadata,
    uuid_id(),
    Column("slug", String(63), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("ticket_prefix", String(10), nullable=False, server_default=text("'TKT'")),
    Column("flags", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("quotas", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # The ITSM add-on licence, set by the platform operator only (flowdesk.itsm).
    Column("licence_active", Boolean, nullable=False, server_default=text("false")),
    Column("licence_activated_at", DateTime(timezone=True)),
    Column("licence_deactivated_at", DateTime(timezone=True)),
    # The per-API-key rate limit of this tenant; NULL means the service default.
    Column("rate_limit_requests", Integer),
    Column("rate_limit_window_seconds", Integer),
    # Where "the agent queue" is mailed (ticket.created); NULL: every agent.
    Column("queue_email", String(254)),
    # The display name of notification mails' From (the address is the deployment's).
    Column("mail_from_name", String(200)),
    # The browser origins whose SPAs may call flowdesk with this tenant's keys and tokens, in
    # the form browsers send (flowdesk.origins); the deployment's own come on top (CORS).
    Column("allowed_origins", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    created_at(),
    updated_at(),
)
