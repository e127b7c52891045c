"""notifications: deliveries, webhooks, e-mail templates and the monthly e-mail count

The relay (flowdesk.notifications) turns each outbox message into deliveries, one per
recipient per channel, and sends them with retries. Tenants gain the agent queue's address
and the display name of their mails' From.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tenant_id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )


def _now(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.add_column("tenants", sa.Column("queue_email", sa.String(254)))
    op.add_column("tenants", sa.Column("mail_from_name", sa.String(200)))
    op.create_index(
        "ix_outbox_delivered_at",
        "outbox",
        ["delivered_at"],
        postgresql_where=sa.text("delivered_at IS NOT NULL"),
    )
    op.create_table(
        "webhooks",
        _tenant_id(),
        sa.Column("id", sa.Uuid(), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("description", sa.String(500), nullable=False, server_default=sa.text("''")),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column("disabled_reason", sa.String(200)),
        sa.Column("failing_since", sa.DateTime(timezone=True)),
        _now("created_at"),
        _now("updated_at"),
    )
    op.create_table(
        "notification_templates",
        _tenant_id(),
        sa.Column("event", sa.String(64), primary_key=True),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        _now("created_at"),
        _now("updated_at"),
    )
    op.create_table(
        "deliveries",
        _tenant_id(),
        sa.Column("id", sa.Uuid(), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("outbox_id", sa.BigInteger()),
        sa.Column("ticket_id", sa.Uuid()),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(254), nullable=False),
        sa.Column("webhook_id", sa.Uuid()),
        sa.Column("state", sa.String(10), nullable=False, server_default=sa.text("'pending'")),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        _now("next_attempt_at"),
        sa.Column("give_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("quota_month", sa.Date()),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("content", postgresql.JSONB(), nullable=False),
        _now("created_at"),
        _now("updated_at"),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.ForeignKeyConstraint(
            ["tenant_id", "webhook_id"],
            ["webhooks.tenant_id", "webhooks.id"],
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "uq_deliveries_fan_out",
        "deliveries",
        ["tenant_id", "outbox_id", "channel", "recipient"],
        unique=True,
        postgresql_where=sa.text("outbox_id IS NOT NULL"),
    )
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "ix_deliveries_tenant_id_created_at", "deliveries", ["tenant_id", "created_at", "id"]
    )
    op.create_index(
        "ix_deliveries_tenant_id_ticket_id", "deliveries", ["tenant_id", "ticket_id", "created_at"]
    )
    op.create_index(
        "ix_deliveries_settled",
        "deliveries",
        ["updated_at"],
        postgresql_where=sa.text("state <> 'pending'"),
    )
    op.create_table(
        "email_usage",
        _tenant_id(),
        sa.Column("month", sa.Date(), primary_key=True),
        sa.Column("sent", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )


def downgrade() -> None:
    op.drop_table("email_usage")
    op.drop_table("deliveries")
    op.drop_table("notification_templates")
    op.drop_table("webhooks")
    op.drop_index("ix_outbox_delivered_at", table_name="outbox")
    op.drop_column("tenants", "mail_from_name")
    op.drop_column("tenants", "queue_email")
