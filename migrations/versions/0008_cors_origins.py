"""tenant CORS origins; ticket changes notified for the live streams

Tenants gain `allowed_origins`: the browser origins (scheme://host[:port]) whose SPAs may call
flowdesk with this tenant's credentials (flowdesk.api.cors). Every process keeps all tenants'
origins in memory to answer preflights, so a change of the column must reach every worker like
any other access change: the tenants trigger of migration 0004 (NOTIFY flowdesk_access) fires
on it too.

Every ticket change appends its audit events (ticket_events) in the statement that makes it;
a statement-level trigger on that table sends one `NOTIFY flowdesk_tickets` per event, in the
same transaction, so it is delivered on commit and never for a rollback, whoever writes
(flowdesk.tickets.live fans them out to the streams of GET /v1/events/stream). The payload is
a small JSON object (~330 bytes, far below NOTIFY's 8,000): what a stream needs to decide who
sees the event and to describe it without reading the database. Streams resume from an event
id (Last-Event-ID): the index on (tenant_id, id) finds a tenant's events after one.

Only the events of tenants someone watches are notified: `live_tenants` holds the tenants with
an open stream on some process (each keeps its tenants' `listening_until` a minute or two
ahead). A notifying commit is serialised with every other notifying commit and loses group
commit (bench/results/streams.md measured creates at 0.74 with a NOTIFY each), so tenants with
no screen open, API-only tenants and imports pay nothing.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TICKETS_CHANNEL = "flowdesk_tickets"
_COLUMNS_0004 = (
    "slug, licence_active, flags, quotas, rate_limit_requests, rate_limit_window_seconds"
)


def _tenants_trigger(columns: str) -> None:
    op.execute("DROP TRIGGER notify_access ON tenants")
    op.execute(
        f"CREATE TRIGGER notify_access AFTER UPDATE OF {columns} OR DELETE ON tenants "
        "FOR EACH ROW EXECUTE FUNCTION flowdesk_notify_access('id')"
    )


def upgrade() -> None:
    op.add_column(
        "tenants",
        sa.Column(
            "allowed_origins",
            postgresql.ARRAY(sa.Text()),
            nullable=False,
            server_default=sa.text("'{}'::text[]"),
        ),
    )
    _tenants_trigger(f"{_COLUMNS_0004}, allowed_origins")

    op.create_index("ix_ticket_events_tenant_id_id", "ticket_events", ["tenant_id", "id"])
    op.create_table(
        "live_tenants",
        sa.Column(
            "tenant_id",
            sa.Uuid(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("listening_until", sa.DateTime(timezone=True), nullable=False),
    )
    # After the statement, so the ticket is read as the statement left it (its new version),
    # in one pass over the events it added.
    op.execute(
        # The one interpolated value is the module's constant channel name.
        f"""
        CREATE FUNCTION flowdesk_notify_ticket_events() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{TICKETS_CHANNEL}', json_build_object(
                'id', e.id, 'tenant_id', e.tenant_id, 'ticket_id', e.ticket_id,
                'kind', e.kind, 'visibility', e.visibility, 'requester_id', t.requester_id,
                'prefix', t.prefix, 'number', t.number, 'version', t.version,
                'at', e.created_at)::text)
            FROM added e
            JOIN tickets t ON t.tenant_id = e.tenant_id AND t.id = e.ticket_id
            -- Only tenants someone watches: a notifying commit is serialised with every other
            -- one (and loses group commit), so nobody pays for streams nobody has open.
            WHERE EXISTS (
                SELECT 1 FROM live_tenants l
                 WHERE l.tenant_id = e.tenant_id AND l.listening_until > now())
            ORDER BY e.id;
            RETURN NULL;
        END
        $$
        """  # noqa: S608
    )
    op.execute(
        "CREATE TRIGGER notify_ticket_events AFTER INSERT ON ticket_events "
        "REFERENCING NEW TABLE AS added FOR EACH STATEMENT "
        "EXECUTE FUNCTION flowdesk_notify_ticket_events()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER notify_ticket_events ON ticket_events")
    op.execute("DROP FUNCTION flowdesk_notify_ticket_events()")
    op.drop_table("live_tenants")
    op.drop_index("ix_ticket_events_tenant_id_id", table_name="ticket_events")
    _tenants_trigger(_COLUMNS_0004)
    op.drop_column("tenants", "allowed_origins")
