"""api_keys' hash index includes tenant_id; indexes for the usage purge and the queue counts

Distribution by tenant (Citus, docs/scaling.md) needs every unique index of a tenant table to
include tenant_id. Authentication still finds a key by its hash alone: the index leads with
key_hash, and the hash of 32 random bytes is unique by construction, so nothing is lost.

The queue's counts (GET /v1/tickets/counts, the open and active tickets by status, assignee or
priority) read only the tickets of the categories counted, from the index
`ix_tickets_tenant_id_status_category` alone (an index-only scan), instead of every ticket of
the tenant (bench/growth.py).

The usage purge (flowdesk.usage.retention) deletes the days past retention of every tenant in
bounded batches; `ix_api_usage_day` lets each batch find them without reading the table.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 15:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "uq_api_keys_key_hash_tenant_id", "api_keys", ["key_hash", "tenant_id"], unique=True
    )
    op.drop_index("uq_api_keys_key_hash", table_name="api_keys")
    op.create_index("ix_api_usage_day", "api_usage", ["day"])
    op.create_index(
        "ix_tickets_tenant_id_status_category",
        "tickets",
        ["tenant_id", "status_category"],
        postgresql_include=["status", "assignee_id", "priority", "workflow", "requester_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_tenant_id_status_category", table_name="tickets")
    op.drop_index("ix_api_usage_day", table_name="api_usage")
    op.create_index("uq_api_keys_key_hash", "api_keys", ["key_hash"], unique=True)
    op.drop_index("uq_api_keys_key_hash_tenant_id", table_name="api_keys")
