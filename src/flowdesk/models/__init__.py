"""ORM tables, one module per aggregate, all on one metadata (what Alembic compares against)."""

from flowdesk.db.base import Base, metadata
from flowdesk.models.identity import ApiKey, Group, GroupMember, User
from flowdesk.models.tenants import Tenant
from flowdesk.models.tickets import (
    IdempotencyRecord,
    OutboxMessage,
    Ticket,
    TicketApproval,
    TicketComment,
    TicketCounter,
    TicketEvent,
    TicketLink,
)

__all__ = [
    "ApiKey",
    "Base",
    "Group",
    "GroupMember",
    "IdempotencyRecord",
    "OutboxMessage",
    "Tenant",
    "Ticket",
    "TicketApproval",
    "TicketComment",
    "TicketCounter",
    "TicketEvent",
    "TicketLink",
    "User",
    "metadata",
]
