"""Tickets and what hangs off them: the per-tenant number counter, comments, the append-only
audit trail, links, approvals, the outbox of events to deliver, and idempotency records."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Computed,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from flowdesk.db.base import Base, new_id

# Sorting by priority needs an order, not the names' alphabet.
PRIORITY_RANK_SQL = (
    "CASE priority WHEN 'LOW' THEN 1 WHEN 'MEDIUM' THEN 2 WHEN 'HIGH' THEN 3 "
    "WHEN 'CRITICAL' THEN 4 END"
)
SEARCH_SQL = (
    "to_tsvector('english'::regconfig, coalesce(title, '') || ' ' || coalesce(description, ''))"
)


def _tenant_fk() -> ForeignKey:
    return ForeignKey("tenants.id", ondelete="CASCADE")


class TicketCounter(Base):
    """One row per tenant; `UPDATE … RETURNING` in the creating transaction hands out numbers
    with no gaps and no duplicates (a rollback undoes the increment with the insert)."""

    __tablename__ = "ticket_counters"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, _tenant_fk(), primary_key=True)
    last_number: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "requester_id"], ["users.tenant_id", "users.id"]),
        ForeignKeyConstraint(["tenant_id", "assignee_id"], ["users.tenant_id", "users.id"]),
        Index("uq_tickets_tenant_id_number", "tenant_id", "number", unique=True),
        Index("ix_tickets_tenant_id_created_at", "tenant_id", "created_at", "id"),
        Index("ix_tickets_tenant_id_updated_at", "tenant_id", "updated_at", "id"),
        Index("ix_tickets_tenant_id_priority_rank", "tenant_id", "priority_rank", "id"),
        Index("ix_tickets_tenant_id_requester_id", "tenant_id", "requester_id", "created_at"),
        Index("ix_tickets_tenant_id_assignee_id", "tenant_id", "assignee_id", "created_at"),
        Index("ix_tickets_search", "search", postgresql_using="gin"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, _tenant_fk(), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    number: Mapped[int] = mapped_column(BigInteger)
    # The tenant's prefix when the ticket was made: a later prefix change leaves old numbers
    # as they were printed.
    prefix: Mapped[str] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))
    type: Mapped[str] = mapped_column(String(64))
    catalog_item: Mapped[str] = mapped_column(String(100))
    workflow: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(100))
    status_category: Mapped[str] = mapped_column(String(16))
    # For detours that return where they came from (Waiting on Customer, Blocked).
    previous_status: Mapped[str | None] = mapped_column(String(100))
    priority: Mapped[str] = mapped_column(String(10))
    priority_rank: Mapped[int] = mapped_column(
        SmallInteger, Computed(PRIORITY_RANK_SQL, persisted=True)
    )
    requester_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    resolution: Mapped[str | None] = mapped_column(String(100))
    fields: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    search: Mapped[Any] = mapped_column(TSVECTOR, Computed(SEARCH_SQL, persisted=True))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def _ticket_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", "ticket_id"], ["tickets.tenant_id", "tickets.id"], ondelete="CASCADE"
    )


class TicketComment(Base):
    __tablename__ = "ticket_comments"
    __table_args__ = (
        _ticket_fk(),
        ForeignKeyConstraint(["tenant_id", "author_id"], ["users.tenant_id", "users.id"]),
        Index("ix_ticket_comments_tenant_id_ticket_id", "tenant_id", "ticket_id", "created_at"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    ticket_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    author_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    body: Mapped[str] = mapped_column(Text)
    visibility: Mapped[str] = mapped_column(String(10))  # internal | external
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TicketEvent(Base):
    """The append-only audit trail, written in the transaction of the change it records."""

    __tablename__ = "ticket_events"
    __table_args__ = (
        _ticket_fk(),
        ForeignKeyConstraint(["tenant_id", "actor_id"], ["users.tenant_id", "users.id"]),
        Index("ix_ticket_events_tenant_id_ticket_id", "tenant_id", "ticket_id", "id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    kind: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # internal events (internal comments) are never shown to requesters.
    visibility: Mapped[str] = mapped_column(String(10), server_default=text("'external'"))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TicketLink(Base):
    __tablename__ = "ticket_links"
    __table_args__ = (
        _ticket_fk(),
        ForeignKeyConstraint(
            ["tenant_id", "target_id"], ["tickets.tenant_id", "tickets.id"], ondelete="CASCADE"
        ),
        Index("uq_ticket_links_kind", "tenant_id", "ticket_id", "kind", "target_id", unique=True),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    ticket_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    kind: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TicketApproval(Base):
    __tablename__ = "ticket_approvals"
    __table_args__ = (
        _ticket_fk(),
        ForeignKeyConstraint(["tenant_id", "approver_id"], ["users.tenant_id", "users.id"]),
        Index("ix_ticket_approvals_tenant_id_ticket_id", "tenant_id", "ticket_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    ticket_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    name: Mapped[str] = mapped_column(String(64))
    approver_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OutboxMessage(Base):
    """Events to deliver (notifications, webhooks), written in the transaction of the change
    so that a delivery can never be lost or announce a change that was rolled back."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "id", postgresql_where=text("delivered_at IS NULL")),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, _tenant_fk(), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IdempotencyRecord(Base):
    """The first response to a POST with an Idempotency-Key, replayed to retries."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, _tenant_fk(), primary_key=True)
    api_key_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    state: Mapped[str] = mapped_column(String(10))  # in_flight | done
    response_status: Mapped[int | None] = mapped_column(SmallInteger)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
