"""ORM tables, one module per aggregate, all on one metadata (what Alembic compares against)."""

from flowdesk.db.base import Base, metadata
from flowdesk.models.identity import ApiKey, Group, GroupMember, User
from flowdesk.models.itsm import LicenceEvent, QuotaAlert
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
from flowdesk.models.usage import ApiUsage

__all__ = [
    "ApiKey",
    "ApiUsage",
    "Base",
    "Group",
    "GroupMember",
    "IdempotencyRecord",
    "LicenceEvent",
    "OutboxMessage",
    "QuotaAlert",
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
