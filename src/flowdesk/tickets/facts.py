"""Building the engine's inputs from a ticket row and a principal, and the ticket's JSON."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, TypeAlias

import orjson

from flowdesk.auth.principal import Principal
from flowdesk.db.query import Connection
from flowdesk.tickets.repository import Ref, TicketRepository, TicketRow
from flowdesk.tickets.sla import sla_json
from flowdesk.workflow import Actor, TicketFacts, Workflow
from flowdesk.workflow.form_schema import stored_answers

# A ticket as its JSON object: the shape flowdesk.tickets.schemas.TicketOut documents.
TicketJson: TypeAlias = dict[str, Any]

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


def repository_for(conn: Connection, principal: Principal) -> TicketRepository:
    return TicketRepository(conn, principal.tenant_id, requester_only=visible_to(principal))


def actor_of(principal: Principal, catalog_item: str) -> Actor:
    """The caller as the workflow engine sees it on a ticket of `catalog_item`: its
    permissions, and the workflow rights it holds everywhere or for that item (RT's rights
    per queue: `ApproveOrder@orders`)."""
    scoped = f"@{catalog_item}"
    permissions = frozenset(
        p.removesuffix(scoped) for p in principal.permissions if "@" not in p or p.endswith(scoped)
    )
    return Actor(user=str(principal.user_id), permissions=permissions)


def facts_of(
    row: TicketRow,
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
        answers=stored_answers(row["answers"])[0],
        links=links,
        approvals=approvals,
        previous_status=row["previous_status"],
    )


def needs(workflow: Workflow, kind: str) -> bool:
    """Whether any action of the workflow has a condition of this kind (links, approvals):
    only then are those facts worth a query. (A scan of a dozen actions: cheaper than the
    query it saves, and nothing to invalidate when a catalog is rebuilt.)"""
    return any(kind in c.kinds for a in workflow.actions for c in a.conditions)


def ticket_json(row: TicketRow) -> TicketJson:
    """The ticket's JSON object, built from its row as a dict rather than a TicketOut model:
    the row's values are already of the right types, and validating them again cost every
    ticket response (and every item of a list) more than building it (bench/request_cpu.py).
    tests/tickets/test_serialisation.py holds it to TicketOut's schema."""
    answers, answers_html = stored_answers(row["answers"])
    assignee = None
    if row["assignee_id"] is not None:
        assignee = {"id": row["assignee_id"], "name": row["assignee_name"]}
    return {
        "id": row["id"],
        "number": format_number(row["prefix"], row["number"]),
        "title": row["title"],
        "description": row["description"],
        "type": row["type"],
        "catalog_item": row["catalog_item"],
        "workflow": row["workflow"],
        "status": row["status"],
        "status_category": row["status_category"],
        "priority": row["priority"],
        "requester": {"id": row["requester_id"], "name": row["requester_name"]},
        "assignee": assignee,
        "resolution": row["resolution"],
        "fields": row["fields"],
        "answers": answers,
        "answers_html": answers_html,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "started_at": row["started_at"],
        "resolved_at": row["resolved_at"],
        "closed_at": row["closed_at"],
        "asset": _asset(row),
        "movement": _movement(row),
        "version": row["version"],
        # Rows read without their clocks (a notification's) show none.
        "sla": sla_json(row.get("sla")),
    }


def _asset(row: TicketRow) -> dict[str, Any] | None:
    if row["asset_id"] is None or row["asset_name"] is None:
        return None
    return {
        "id": row["asset_id"],
        "external_ref": row["asset_external_ref"],
        "tag": row["asset_tag"],
        "name": row["asset_name"],
        "type": row["asset_type"],
        "deleted": row["asset_deleted_at"] is not None,
    }


def _movement(row: TicketRow) -> dict[str, Any] | None:
    if row["movement_id"] is None or row["movement_moved_at"] is None:
        return None
    return {
        "id": row["movement_id"],
        "from_location": row["movement_from"],
        "to_location": row["movement_to"],
        "moved_at": row["movement_moved_at"],
    }


@dataclass(frozen=True, slots=True)
class AssetLinks:
    """Which of a ticket's asset links the tenant's flags let it store and show (seed 004:
    with the flag off, "the asset link is ignored"); links stored meanwhile stay stored."""

    assets: bool = False
    movements: bool = False

    def shown(self, ticket: TicketJson) -> TicketJson:
        if not self.assets:
            ticket["asset"] = None
        if not self.movements:
            ticket["movement"] = None
        return ticket


def receipt(ticket: TicketJson) -> TicketJson:
    """A write's answer to a key that may not read tickets (TicketReceipt)."""
    return {"id": ticket["id"], "number": ticket["number"], "version": ticket["version"]}


def dump_json(value: Any) -> bytes:
    """JSON as the Pydantic models write it: UTC times end in Z, and asyncpg's UUIDs (a
    subclass orjson does not take as is) are written as their canonical strings."""
    return orjson.dumps(value, default=str, option=orjson.OPT_UTC_Z)
