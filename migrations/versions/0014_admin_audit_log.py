"""the admin audit log; which key created a key; fenced idempotency claims

`admin_audit_log` records every change to a tenant's administration (keys, users, groups and
members, the tenant's settings, identity providers, webhooks, templates, the licence): actor,
action, target, before and after, request id (flowdesk.audit). It is append-only: a trigger
refuses UPDATE and DELETE (except the cascade of a tenant's own deletion) and TRUNCATE, for
every role, the table's owner included.

`api_keys.created_by_key_id` names the key that created a key through the API.

`idempotency_keys.claim_token` fences claims: each claim, and each takeover of a claim whose
lease ran out, draws a new token, and completing or releasing the claim needs it
(flowdesk.idempotency.repository). Claims already there have none and are treated as in flight
until their lease runs out.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 14:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# pg_trigger_depth() is 1 for a statement on the table itself, more for the DELETE that the
# foreign key's cascade runs (from its own trigger) when the tenant is deleted.
_APPEND_ONLY = """
CREATE FUNCTION flowdesk_admin_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND pg_trigger_depth() > 1 THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'admin_audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""


def upgrade() -> None:
    op.create_table(
        "admin_audit_log",
        sa.Column(
            "tenant_id",
            sa.Uuid(),
            sa.ForeignKey(
                "tenants.id", name=op.f("fk_admin_audit_log_tenant_id_tenants"), ondelete="CASCADE"
            ),
            nullable=False,
        ),
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("actor_type", sa.String(16), nullable=False),
        sa.Column("actor_user_id", sa.Uuid()),
        sa.Column("actor_key_id", sa.Uuid()),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(32), nullable=False),
        sa.Column("target_id", sa.String(200)),
        sa.Column("before", postgresql.JSONB()),
        sa.Column("after", postgresql.JSONB()),
        sa.Column("request_id", sa.String(128)),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_admin_audit_log")),
    )
    op.create_index(
        "ix_admin_audit_log_tenant_id_action", "admin_audit_log", ["tenant_id", "action", "id"]
    )
    op.create_index(
        "ix_admin_audit_log_tenant_id_target",
        "admin_audit_log",
        ["tenant_id", "target_type", "target_id", "id"],
    )
    op.execute(_APPEND_ONLY)
    op.execute(
        "CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON admin_audit_log "
        "FOR EACH ROW EXECUTE FUNCTION flowdesk_admin_audit_log_append_only()"
    )
    op.execute(
        "CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON admin_audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION flowdesk_admin_audit_log_append_only()"
    )

    op.add_column("api_keys", sa.Column("created_by_key_id", sa.Uuid()))
    op.create_foreign_key(
        op.f("fk_api_keys_tenant_id_created_by_key_id_api_keys"),
        "api_keys",
        "api_keys",
        ["tenant_id", "created_by_key_id"],
        ["tenant_id", "id"],
        ondelete="SET NULL (created_by_key_id)",
    )

    op.add_column("idempotency_keys", sa.Column("claim_token", sa.Uuid()))


def downgrade() -> None:
    op.drop_column("idempotency_keys", "claim_token")
    op.drop_constraint(
        op.f("fk_api_keys_tenant_id_created_by_key_id_api_keys"), "api_keys", type_="foreignkey"
    )
    op.drop_column("api_keys", "created_by_key_id")
    op.drop_table("admin_audit_log")
    op.execute("DROP FUNCTION flowdesk_admin_audit_log_append_only()")
