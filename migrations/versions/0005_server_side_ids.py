"""server-side ids

Row ids come from the database (`DEFAULT gen_random_uuid()`), so an insert built with
SQLAlchemy Core and run on asyncpg needs no value from Python, and a use case can insert and
read the id back in the same statement (RETURNING).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 03:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = (
    "tenants",
    "users",
    "groups",
    "api_keys",
    "tickets",
    "ticket_comments",
    "ticket_links",
    "ticket_approvals",
)


def upgrade() -> None:
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT gen_random_uuid()")


def downgrade() -> None:
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN id DROP DEFAULT")
