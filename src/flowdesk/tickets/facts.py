"""Building the engine's inputs from a ticket row and a principal, and the ticket's JSON."""

from __future__ import annotations

import re
import uuid
from typing import Any

from flowdesk.auth.principal import Principal
from flowdesk.tickets.repository import Ref, Row, TicketRepository
from flowdesk.tickets.schemas import TicketOut, UserRef
from flowdesk.workflow import Actor, TicketFacts, Workflow

_NUMBER = re.compile(r"^([A-Z][A-Z0-9]{0,9})-(\d{6,18})$")


def parse_ref(ref: str) -> Ref | None:
    """A ticket id or its printed number; None for anything else (which is then a 404)."""
    try:
        return Ref(id=uuid.UUID(ref))
    except ValueError:
        pass
    match = _NUMBER.match(ref)
    if match is None:
        return None
    prefix, digits = match.groups()
    number = int(digits)
    if format_number(prefix, number) != ref:  # only the canonical spelling
        return None
    return Ref(prefix=prefix, number=number)


def format_number(prefix: str, number: int) -> str:
    # Six digits, growing a seventh past 999999 rather than failing.
    return f"{prefix}-{number:06d}"


def visible_to(principal: Principal) -> uuid.UUID | None:
    """Agents see the tenant's whole queue; anyone else only what they requested (the desk
    view): the requester the caller is limited to, or None."""
    return None if principal.is_agent else principal.user_id


def repository_for(conn: Any, principal: Principal) -> TicketRepository:
    return TicketRepository(conn, principal.tenant_id, requester_only=visible_to(principal))


def actor_of(principal: Principal) -> Actor:
    return Actor(user=str(principal.user_id), permissions=principal.permissions)


def facts_of(
    row: Row,
    *,
    links: frozenset[str] = frozenset(),
    approvals: frozenset[str] = frozenset(),
) -> TicketFacts:
    return TicketFacts(
        status=row["status"],
        type=row["type"],
        requester=str(row["requester_id"]),
        owner=str(row["assignee_id"]) if row["assignee_id"] else None,
        resolution=row["resolution"],
        fields=row["fields"],
        links=links,
        approvals=approvals,
        previous_status=row["previous_status"],
    )


def needs(workflow: Workflow, kind: str) -> bool:
    """Whether any action of the workflow has a condition of this kind (links, approvals):
    only then are those facts worth a query. (A scan of a dozen actions: cheaper than the
    query it saves, and nothing to invalidate when a catalog is rebuilt.)"""
    return any(c.kind == kind for a in workflow.actions for c in a.conditions)


def ticket_out(row: Row) -> TicketOut:
    assignee = None
    if row["assignee_id"] is not None:
        assignee = UserRef(id=row["assignee_id"], name=row["assignee_name"])
    return TicketOut(
        id=row["id"],
        number=format_number(row["prefix"], row["number"]),
        title=row["title"],
        description=row["description"],
        type=row["type"],
        catalog_item=row["catalog_item"],
        workflow=row["workflow"],
        status=row["status"],
        status_category=row["status_category"],
        priority=row["priority"],
        requester=UserRef(id=row["requester_id"], name=row["requester_name"]),
        assignee=assignee,
        resolution=row["resolution"],
        fields=row["fields"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )
