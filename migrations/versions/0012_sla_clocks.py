"""SLA clocks: one row per ticket and SLA policy of the catalog

Each clock (flowdesk.tickets.sla) is written in the statement of the status change that
starts, pauses, resumes or stops it; `next_action_at` is when the tick has something to do
for it (a reminder, a warning, the breach), and a partial index on it lets a tick read only
what is due, whatever the number of running clocks. Rows go with their ticket (ON DELETE
CASCADE).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 14:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str, *, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "sla_clocks",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("target_seconds", sa.Integer(), nullable=False),
        sa.Column("elapsed_seconds", sa.Float(), nullable=False, server_default=sa.text("0")),
        _time("started_at", nullable=False),
        _time("running_since"),
        _time("due_at"),
        _time("warn_at"),
        _time("paused_at"),
        _time("breached_at"),
        _time("stopped_at"),
        sa.Column("stage", sa.SmallInteger(), nullable=False, server_default=sa.text("0")),
        _time("next_action_at"),
        sa.CheckConstraint(
            "state IN ('running', 'paused', 'met', 'breached')", name=op.f("ck_sla_clocks_state")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "ticket_id"],
            ["tickets.tenant_id", "tickets.id"],
            name=op.f("fk_sla_clocks_tenant_id_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "ticket_id", "name", name=op.f("pk_sla_clocks")),
    )
    op.create_index(
        "ix_sla_clocks_next_action_at",
        "sla_clocks",
        ["next_action_at"],
        postgresql_where=sa.text("next_action_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_sla_clocks_next_action_at", table_name="sla_clocks")
    op.drop_table("sla_clocks")
