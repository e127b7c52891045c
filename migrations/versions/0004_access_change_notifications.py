"""access change notifications

Every change that can alter what an API key may do (the key itself, its user, the user's
groups and memberships, the tenant's licence, flags, quotas and rate policy) sends
`NOTIFY flowdesk_access, '<tenant id>'` from a trigger, so that every worker's key and licence
caches hear of it, whoever made the change: an endpoint on any worker, the CLI, or SQL typed
by an operator. NOTIFY is transactional: it is delivered on commit, and not at all on
rollback; identical payloads in one transaction are delivered once.

Only the columns that matter fire the triggers: the per-minute `api_keys.last_used_at` write
must not flush every worker's cache.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 18:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "flowdesk_access"

# (table, the column holding its rows' tenant id, the events that fire)
_TRIGGERS = [
    (
        "tenants",
        "id",
        "UPDATE OF slug, licence_active, flags, quotas, rate_limit_requests, "
        "rate_limit_window_seconds OR DELETE",
    ),
    (
        "api_keys",
        "tenant_id",
        "UPDATE OF key_hash, user_id, scopes, expires_at, revoked_at OR DELETE",
    ),
    ("users", "tenant_id", "UPDATE OF kind, deleted_at OR DELETE"),
    ("groups", "tenant_id", "UPDATE OF permissions OR DELETE"),
    ("group_members", "tenant_id", "INSERT OR UPDATE OR DELETE"),
]


def upgrade() -> None:
    # One function for every table: the tenant column's name is the trigger's argument.
    op.execute(
        f"""
        CREATE FUNCTION flowdesk_notify_access() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            changed jsonb;
        BEGIN
            IF TG_OP = 'DELETE' THEN
                changed := to_jsonb(OLD);
            ELSE
                changed := to_jsonb(NEW);
            END IF;
            PERFORM pg_notify('{CHANNEL}', changed ->> TG_ARGV[0]);
            RETURN NULL;
        END
        $$
        """
    )
    for table, column, events in _TRIGGERS:
        op.execute(
            f"CREATE TRIGGER notify_access AFTER {events} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION flowdesk_notify_access('{column}')"
        )


def downgrade() -> None:
    for table, _column, _events in _TRIGGERS:
        op.execute(f"DROP TRIGGER notify_access ON {table}")
    op.execute("DROP FUNCTION flowdesk_notify_access()")
