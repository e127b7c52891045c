"""approval policies: users' managers, one approval per ticket, name and approver

Seed 003's manager approval needs to know who the requester's manager is: `users.manager_id`,
a user of the same tenant (set by admins), cleared if that user row is ever removed (users are
soft-deleted, so in practice only with the tenant). The foreign key's ON DELETE SET NULL names
the column, so that it never clears the tenant_id it shares with the key (PostgreSQL 15). A
user is not their own manager (a check); longer cycles are refused by the API.

Approvals become one per (ticket, name, approver): a unique index, which a second approval by
the same person answers with 409 (flowdesk.db.constraints.unique). Duplicates recorded before
it are merged into the earliest. It replaces the (tenant_id, ticket_id) index, its prefix.
Revoking or clearing an approval deletes its row; the audit trail (ticket_events `approved`,
`approval_revoked`, `approvals_cleared`) is its history.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 14:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("manager_id", sa.Uuid()))
    op.create_foreign_key(
        op.f("fk_users_tenant_id_manager_id_users"),
        "users",
        "users",
        ["tenant_id", "manager_id"],
        ["tenant_id", "id"],
        ondelete="SET NULL (manager_id)",
    )
    op.create_check_constraint(op.f("ck_users_manager_not_self"), "users", "manager_id <> id")
    # A manager's reports (and the foreign key's ON DELETE) are found by it.
    op.create_index(
        "ix_users_tenant_id_manager_id",
        "users",
        ["tenant_id", "manager_id"],
        postgresql_where=sa.text("manager_id IS NOT NULL"),
    )

    op.execute(
        """
        DELETE FROM ticket_approvals later USING ticket_approvals earlier
         WHERE later.tenant_id = earlier.tenant_id
           AND later.ticket_id = earlier.ticket_id
           AND later.name = earlier.name
           AND later.approver_id = earlier.approver_id
           AND (later.created_at, later.id) > (earlier.created_at, earlier.id)
        """
    )
    op.create_index(
        "uq_ticket_approvals_approver",
        "ticket_approvals",
        ["tenant_id", "ticket_id", "name", "approver_id"],
        unique=True,
    )
    op.drop_index("ix_ticket_approvals_tenant_id_ticket_id", table_name="ticket_approvals")


def downgrade() -> None:
    op.create_index(
        "ix_ticket_approvals_tenant_id_ticket_id", "ticket_approvals", ["tenant_id", "ticket_id"]
    )
    op.drop_index("uq_ticket_approvals_approver", table_name="ticket_approvals")
    op.drop_index("ix_users_tenant_id_manager_id", table_name="users")
    op.drop_constraint(op.f("ck_users_manager_not_self"), "users", type_="check")
    op.drop_constraint(op.f("fk_users_tenant_id_manager_id_users"), "users", type_="foreignkey")
    op.drop_column("users", "manager_id")
