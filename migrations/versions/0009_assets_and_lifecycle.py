"""assets and movements linked to tickets; the ticket lifecycle's moments and timers

Seed 004's asset integration: a tenant-scoped registry of the assets and movements tickets
refer to, keyed by the asset system's own ids, and the links on tickets (flowdesk.assets).

Tickets gain the moments users filter and report on (started_at, resolved_at, closed_at) and
`timer_due_at`, when the current status's timeout moves the ticket (flowdesk.tickets.timers).
Existing tickets that left their initial category get started_at from their first recorded
transition (or their creation); which statuses resolve or close a ticket is the catalog's
knowledge, not the database's, so resolved_at and closed_at start empty for old tickets.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True))


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column(
            "tenant_id",
            sa.Uuid(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("id", sa.Uuid(), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("external_ref", sa.String(200), nullable=False),
        sa.Column("tag", sa.String(100)),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column(
            "attributes",
            postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        _time("deleted_at"),
    )
    op.create_index(
        "uq_assets_tenant_id_external_ref",
        "assets",
        ["tenant_id", "external_ref"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index("ix_assets_tenant_id_created_at", "assets", ["tenant_id", "created_at", "id"])
    op.create_table(
        "asset_movements",
        sa.Column("tenant_id", sa.Uuid(), primary_key=True),
        sa.Column("id", sa.Uuid(), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("asset_id", sa.Uuid(), nullable=False),
        sa.Column("from_location", sa.String(200)),
        sa.Column("to_location", sa.String(200)),
        sa.Column("moved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("external_ref", sa.String(200)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.ForeignKeyConstraint(["tenant_id", "asset_id"], ["assets.tenant_id", "assets.id"]),
    )
    op.create_index(
        "uq_asset_movements_tenant_id_external_ref",
        "asset_movements",
        ["tenant_id", "external_ref"],
        unique=True,
        postgresql_where=sa.text("external_ref IS NOT NULL"),
    )
    op.create_index(
        "ix_asset_movements_tenant_id_asset_id",
        "asset_movements",
        ["tenant_id", "asset_id", "moved_at", "id"],
    )

    for name in ("started_at", "resolved_at", "closed_at", "timer_due_at"):
        op.add_column("tickets", _time(name))
    op.add_column("tickets", sa.Column("asset_id", sa.Uuid()))
    op.add_column("tickets", sa.Column("movement_id", sa.Uuid()))
    op.create_foreign_key(
        "tickets_tenant_id_asset_id_fkey",
        "tickets",
        "assets",
        ["tenant_id", "asset_id"],
        ["tenant_id", "id"],
    )
    op.create_foreign_key(
        "tickets_tenant_id_movement_id_fkey",
        "tickets",
        "asset_movements",
        ["tenant_id", "movement_id"],
        ["tenant_id", "id"],
    )
    op.create_index(
        "ix_tickets_tenant_id_asset_id",
        "tickets",
        ["tenant_id", "asset_id", "created_at", "id"],
        postgresql_where=sa.text("asset_id IS NOT NULL"),
    )
    op.create_index(
        "ix_tickets_timer_due_at",
        "tickets",
        ["timer_due_at"],
        postgresql_where=sa.text("timer_due_at IS NOT NULL"),
    )
    op.execute(
        """
        UPDATE tickets t SET started_at = coalesce(
            (SELECT min(e.created_at) FROM ticket_events e
              WHERE e.tenant_id = t.tenant_id AND e.ticket_id = t.id
                AND e.kind IN ('transitioned', 'reset')),
            t.created_at)
         WHERE t.status_category <> 'initial'
        """
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_timer_due_at", table_name="tickets")
    op.drop_index("ix_tickets_tenant_id_asset_id", table_name="tickets")
    op.drop_constraint("tickets_tenant_id_movement_id_fkey", "tickets", type_="foreignkey")
    op.drop_constraint("tickets_tenant_id_asset_id_fkey", "tickets", type_="foreignkey")
    for name in (
        "movement_id",
        "asset_id",
        "timer_due_at",
        "closed_at",
        "resolved_at",
        "started_at",
    ):
        op.drop_column("tickets", name)
    op.drop_table("asset_movements")
    op.drop_table("assets")
