"""Drop ix_ticket_events_tenant_id_id: the primary key (tenant_id, id) is the same index

Migration 0008 added `ix_ticket_events_tenant_id_id` for the replay of a tenant's live stream
(its events after an id). The table's primary key is (tenant_id, id) already, so the two
indexes hold the same entries: every audit event paid for a third B-tree insert, and the trail
kept a second copy of its key. In the growth benchmark's database (25,000,000 events) the
duplicate was the size of the primary key (bench/results/growth.md). The replay's plan now
reads the primary key.

Dropped CONCURRENTLY, outside the migration's transaction, so that a large trail is not locked
against the writes of every ticket while it goes.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 20:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_ticket_events_tenant_id_id",
            table_name="ticket_events",
            postgresql_concurrently=True,
            if_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_ticket_events_tenant_id_id",
            "ticket_events",
            ["tenant_id", "id"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )
