"""Notifications: the deliveries the relay makes of outbox messages (one per recipient per
channel), the tenants' webhook endpoints and e-mail templates, and the monthly e-mail count."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from flowdesk.db.base import metadata
from flowdesk.models.columns import created_at, tenant_id, updated_at, uuid_id

webhooks = Table(
    "webhooks",
    metadata,
    tenant_id(),
    uuid_id(),
    Column("url", Text, nullable=False),
    Column("events", ARRAY(Text), nullable=False),
    Column("description", String(500), nullable=False, server_default=text("''")),
    # The signing key (Standard Webhooks' `whsec_…`). Kept as it is, not hashed: every delivery
    # is signed with it.
    Column("secret", String(100), nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("disabled_reason", String(200)),
    # The first failed delivery since the last one that succeeded: an endpoint failing for
    # longer than the setting allows is disabled.
    Column("failing_since", DateTime(timezone=True)),
    created_at(),
    updated_at(),
)

# A tenant's own subject, HTML and text for one event (used while `email_templates` is on).
notification_templates = Table(
    "notification_templates",
    metadata,
    tenant_id(),
    Column("event", String(64), primary_key=True),
    Column("subject", String(500), nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=False),
    created_at(),
    updated_at(),
)

# One row per (outbox message, channel, recipient): the unique key makes a message's fan-out
# idempotent, and the row carries what is sent, so a retry sends the same mail (same
# Message-ID) or the same signed webhook (same webhook-id).
deliveries = Table(
    "deliveries",
    metadata,
    tenant_id(),
    uuid_id(),
    # NULL for a delivery no message made (a webhook test, an endpoint's disabling notice).
    Column("outbox_id", BigInteger),
    Column("ticket_id", Uuid),
    Column("event", String(64), nullable=False),
    Column("channel", String(16), nullable=False),  # email | webhook
    # An e-mail address, or the id of a webhook endpoint.
    Column("recipient", String(254), nullable=False),
    Column("webhook_id", Uuid),
    Column("state", String(10), nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    # When it is next due; a claim moves it a lease ahead, so that the claims of a worker that
    # died mid-send come due again.
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Retries stop here (about 24 h after the message, or after an admin's retry).
    Column("give_up_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text),
    # The month a mail was counted in against max_emails_month, while it is counted: a mail
    # claimed again after its relay died is not counted twice; a failed send gives it back.
    Column("quota_month", Date),
    Column("message_id", String(255), nullable=False),
    Column("content", JSONB, nullable=False),
    created_at(),
    updated_at(),
    Column("sent_at", DateTime(timezone=True)),
    ForeignKeyConstraint(
        ["tenant_id", "webhook_id"], ["webhooks.tenant_id", "webhooks.id"], ondelete="CASCADE"
    ),
    Index(
        "uq_deliveries_fan_out",
        "tenant_id",
        "outbox_id",
        "channel",
        "recipient",
        unique=True,
        postgresql_where=text("outbox_id IS NOT NULL"),
    ),
    Index("ix_deliveries_due", "next_attempt_at", postgresql_where=text("state = 'pending'")),
    Index("ix_deliveries_tenant_id_created_at", "tenant_id", "created_at", "id"),
    Index("ix_deliveries_tenant_id_ticket_id", "tenant_id", "ticket_id", "created_at"),
    Index("ix_deliveries_settled", "updated_at", postgresql_where=text("state <> 'pending'")),
)

# Mails sent per tenant per calendar month (UTC), against the licence's max_emails_month.
# A mail's count is taken when it is claimed for sending and given back if the send fails,
# so concurrent workers never send past the quota.
email_usage = Table(
    "email_usage",
    metadata,
    tenant_id(),
    Column("month", Date, primary_key=True),
    Column("sent", Integer, nullable=False, server_default=text("0")),
)
