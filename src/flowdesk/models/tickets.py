"""Tickets and what hangs off them: the per-tenant number counter, comments, the append-only
audit trail, links, approvals, the outbox of events to deliver, and idempotency records."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    DateTime,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR

from flowdesk.db.base import metadata
from flowdesk.models.columns import created_at, tenant_id, updated_at, uuid_id
from flowdesk.vocabulary import PRIORITIES

# Sorting by priority needs an order, not the names' alphabet.
PRIORITY_RANK_SQL = (
    "CASE priority "
    + " ".join(f"WHEN '{name}' THEN {rank}" for rank, name in enumerate(PRIORITIES, start=1))
    + " END"
)
# The title, the description and the string values of the intake form's answers (migration
# 0010); jsonb_to_tsvector with an explicit configuration is immutable, as generated columns need.
SEARCH_SQL = (
    "to_tsvector('english'::regconfig, coalesce(title, '') || ' ' || coalesce(description, ''))"
    " || jsonb_to_tsvector('english'::regconfig, answers, '[\"string\"]'::jsonb)"
)

# One row per tenant; `UPDATE … RETURNING` in the creating statement hands out numbers with
# no gaps and no duplicates (a rollback undoes the increment with the insert).
ticket_counters = Table(
    "ticket_counters",
    metadata,
    tenant_id(),
    Column("last_number", BigInteger, nullable=False, server_default=text("0")),
)

tickets = Table(
    "tickets",
    metadata,
    tenant_id(),
    uuid_id(),
    Column("number", BigInteger, nullable=False),
    # The tenant's prefix when the ticket was made: a later prefix change leaves old numbers
    # as they were printed.
    Column("prefix", String(10), nullable=False),
    Column("title", String(300), nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("type", String(64), nullable=False),
    Column("catalog_item", String(100), nullable=False),
    Column("workflow", String(100), nullable=False),
    Column("status", String(100), nullable=False),
    Column("status_category", String(16), nullable=False),
    # For detours that return where they came from (Waiting on Customer, Blocked).
    Column("previous_status", String(100)),
    Column("priority", String(10), nullable=False),
    Column(
        "priority_rank", SmallInteger, Computed(PRIORITY_RANK_SQL, persisted=True), nullable=False
    ),
    Column("requester_id", Uuid, nullable=False),
    Column("assignee_id", Uuid),
    Column("resolution", String(100)),
    Column("fields", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # The intake form's answers that map onto no ticket field, keyed by question
    # (flowdesk.workflow.forms); filtered by containment, searched through `search`.
    Column("answers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("search", TSVECTOR, Computed(SEARCH_SQL, persisted=True), nullable=False),
    Column("version", Integer, nullable=False, server_default=text("1")),
    created_at(),
    updated_at(),
    # The lifecycle's moments, on the database's clock (flowdesk.tickets.lifecycle): when the
    # ticket first left its initial category (RT's Started), was resolved, was closed.
    Column("started_at", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True)),
    # When the current status's timeout moves the ticket (`timeout` in the catalog); NULL in
    # a status without one.
    Column("timer_due_at", DateTime(timezone=True)),
    # Seed 004's asset integration: the asset (and movement) the ticket was filed about.
    Column("asset_id", Uuid),
    Column("movement_id", Uuid),
    ForeignKeyConstraint(["tenant_id", "requester_id"], ["users.tenant_id", "users.id"]),
    ForeignKeyConstraint(["tenant_id", "assignee_id"], ["users.tenant_id", "users.id"]),
    ForeignKeyConstraint(["tenant_id", "asset_id"], ["assets.tenant_id", "assets.id"]),
    ForeignKeyConstraint(
        ["tenant_id", "movement_id"], ["asset_movements.tenant_id", "asset_movements.id"]
    ),
    Index("uq_tickets_tenant_id_number", "tenant_id", "number", unique=True),
    Index("ix_tickets_tenant_id_created_at", "tenant_id", "created_at", "id"),
    Index("ix_tickets_tenant_id_updated_at", "tenant_id", "updated_at", "id"),
    Index("ix_tickets_tenant_id_priority_rank", "tenant_id", "priority_rank", "id"),
    # The queue's counts read the counted categories only, from the index alone (0016).
    Index(
        "ix_tickets_tenant_id_status_category",
        "tenant_id",
        "status_category",
        postgresql_include=["status", "assignee_id", "priority", "workflow", "requester_id"],
    ),
    Index("ix_tickets_tenant_id_requester_id", "tenant_id", "requester_id", "created_at"),
    Index("ix_tickets_tenant_id_assignee_id", "tenant_id", "assignee_id", "created_at"),
    Index("ix_tickets_search", "search", postgresql_using="gin"),
    Index(
        "ix_tickets_answers",
        "answers",
        postgresql_using="gin",
        postgresql_ops={"answers": "jsonb_path_ops"},
    ),
    Index(
        "ix_tickets_tenant_id_asset_id",
        "tenant_id",
        "asset_id",
        "created_at",
        "id",
        postgresql_where=text("asset_id IS NOT NULL"),
    ),
    # The timer tick reads only what is due, whatever the number of open tickets.
    Index(
        "ix_tickets_timer_due_at", "timer_due_at", postgresql_where=text("timer_due_at IS NOT NULL")
    ),
)


def _ticket_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", "ticket_id"], ["tickets.tenant_id", "tickets.id"], ondelete="CASCADE"
    )


ticket_comments = Table(
    "ticket_comments",
    metadata,
    tenant_id(references_tenant=False),
    uuid_id(),
    Column("ticket_id", Uuid, nullable=False),
    Column("author_id", Uuid, nullable=False),
    Column("body", Text, nullable=False),
    Column("visibility", String(10), nullable=False),  # internal | external
    created_at(),
    _ticket_fk(),
    ForeignKeyConstraint(["tenant_id", "author_id"], ["users.tenant_id", "users.id"]),
    Index("ix_ticket_comments_tenant_id_ticket_id", "tenant_id", "ticket_id", "created_at"),
)

# The append-only audit trail, written in the statement or transaction of the change it
# records. Internal events (internal comments) are never shown to requesters.
ticket_events = Table(
    "ticket_events",
    metadata,
    tenant_id(references_tenant=False),
    # The primary key, (tenant_id, id), also serves a tenant's events after one: the replay of
    # a live stream (flowdesk.tickets.live).
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("ticket_id", Uuid, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actor_id", Uuid),
    Column("visibility", String(10), nullable=False, server_default=text("'external'")),
    Column("data", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    created_at(),
    _ticket_fk(),
    ForeignKeyConstraint(["tenant_id", "actor_id"], ["users.tenant_id", "users.id"]),
    Index("ix_ticket_events_tenant_id_ticket_id", "tenant_id", "ticket_id", "id"),
)

ticket_links = Table(
    "ticket_links",
    metadata,
    tenant_id(references_tenant=False),
    uuid_id(),
    Column("ticket_id", Uuid, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("target_id", Uuid, nullable=False),
    created_at(),
    _ticket_fk(),
    ForeignKeyConstraint(
        ["tenant_id", "target_id"], ["tickets.tenant_id", "tickets.id"], ondelete="CASCADE"
    ),
    Index("uq_ticket_links_kind", "tenant_id", "ticket_id", "kind", "target_id", unique=True),
)

ticket_approvals = Table(
    "ticket_approvals",
    metadata,
    tenant_id(references_tenant=False),
    uuid_id(),
    Column("ticket_id", Uuid, nullable=False),
    Column("name", String(64), nullable=False),
    Column("approver_id", Uuid, nullable=False),
    created_at(),
    _ticket_fk(),
    ForeignKeyConstraint(["tenant_id", "approver_id"], ["users.tenant_id", "users.id"]),
    # One approval per (ticket, name, approver) (migration 0011): a second is a 409.
    Index(
        "uq_ticket_approvals_approver", "tenant_id", "ticket_id", "name", "approver_id", unique=True
    ),
)

# The tenants someone watches live (GET /v1/events/stream) on some process: only their ticket
# events are NOTIFYed (migration 0008's trigger), since a notifying commit costs every writer
# (flowdesk.tickets.live). Processes with open streams keep their tenants' rows in the future.
live_tenants = Table(
    "live_tenants",
    metadata,
    tenant_id(),
    Column("listening_until", DateTime(timezone=True), nullable=False),
)

# Events to deliver (notifications, webhooks), written in the statement of the change so that
# a delivery can never be lost or announce a change that was rolled back.
outbox = Table(
    "outbox",
    metadata,
    tenant_id(),
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("topic", String(64), nullable=False),
    Column("payload", JSONB, nullable=False),
    created_at(),
    # When the relay turned the message into its deliveries (flowdesk.notifications.relay).
    Column("delivered_at", DateTime(timezone=True)),
    Index("ix_outbox_pending", "id", postgresql_where=text("delivered_at IS NULL")),
    Index(
        "ix_outbox_delivered_at", "delivered_at", postgresql_where=text("delivered_at IS NOT NULL")
    ),
)

# The first response to a POST with an Idempotency-Key, replayed to retries.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    tenant_id(),
    Column("api_key_id", Uuid, primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", LargeBinary(32), nullable=False),
    Column("state", String(10), nullable=False),  # in_flight | done
    # The fence of an in-flight claim (migration 0014): each claim, and each takeover of a
    # claim whose lease ran out, draws a new one; completing or releasing needs the current one.
    Column("claim_token", Uuid),
    Column("response_status", SmallInteger),
    Column("response_body", LargeBinary),
    Column("response_headers", JSONB),
    created_at(),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_idempotency_keys_expires_at", "expires_at"),
)
