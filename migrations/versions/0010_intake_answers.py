"""tickets.answers: the intake form's answers, filterable and searchable

A catalog item may declare an intake form (flowdesk.workflow.forms); the answers that map onto
no ticket field are kept as they were given in `tickets.answers`, one JSON object keyed by
question. Lists filter on them by containment (`answers @> '{"environments": ["prd"]}'`),
served by a GIN index in jsonb_path_ops (smaller than the default opclass, and containment is
the only operator used). The full-text `search` column is re-created to also cover the string
values of the answers (PostgreSQL 15 cannot change a generated column's expression in place);
its index is re-created under the same name.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 14:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT_SEARCH = (
    "to_tsvector('english'::regconfig, coalesce(title, '') || ' ' || coalesce(description, ''))"
)
# jsonb_to_tsvector with an explicit configuration is immutable, as a generated column needs.
_ANSWERS_SEARCH = "jsonb_to_tsvector('english'::regconfig, answers, '[\"string\"]'::jsonb)"


def _recreate_search(expression: str) -> None:
    op.drop_index("ix_tickets_search", table_name="tickets", postgresql_using="gin")
    op.drop_column("tickets", "search")
    op.add_column(
        "tickets",
        sa.Column(
            "search",
            postgresql.TSVECTOR(),
            sa.Computed(expression, persisted=True),
            nullable=False,
        ),
    )
    op.create_index("ix_tickets_search", "tickets", ["search"], postgresql_using="gin")


def upgrade() -> None:
    op.add_column(
        "tickets",
        sa.Column(
            "answers",
            postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
    )
    op.create_index(
        "ix_tickets_answers",
        "tickets",
        ["answers"],
        postgresql_using="gin",
        postgresql_ops={"answers": "jsonb_path_ops"},
    )
    _recreate_search(f"{_TEXT_SEARCH} || {_ANSWERS_SEARCH}")


def downgrade() -> None:
    _recreate_search(_TEXT_SEARCH)
    op.drop_index("ix_tickets_answers", table_name="tickets", postgresql_using="gin")
    op.drop_column("tickets", "answers")
