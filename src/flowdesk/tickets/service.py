"""Ticket use cases: create, read, list, update (and move between workflows).

Writes are optimistic: the decision is made on a read, and the one-statement write applies
only if the ticket is still at that version; otherwise the use case reads and decides again
(a few times at most). No lock is held while Python thinks.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import orjson

from flowdesk.auth.principal import Principal
from flowdesk.db.query import Connection
from flowdesk.errors import Conflict, Forbidden, InvalidInput, found
from flowdesk.pagination import next_cursor
from flowdesk.tickets import answers, implied_approvals, lifecycle, listing
from flowdesk.tickets.errors import StaleVersion, StatusMapMissingError, TransitionRefusedError
from flowdesk.tickets.facts import (
    AssetLinks,
    TicketJson,
    actor_of,
    parse_ref,
    repository_for,
    ticket_json,
    visible_to,
)
from flowdesk.tickets.listing import Filters, ListQuery
from flowdesk.tickets.repository import Event, Message, NewTicket, TicketRepository, TicketRow
from flowdesk.tickets.schemas import (
    TicketCount,
    TicketCountQuery,
    TicketCountsOut,
    TicketCreate,
    TicketFilterQuery,
    TicketListQuery,
    TicketPatch,
)
from flowdesk.tickets.versions import VersionCheck, any_version
from flowdesk.vocabulary import ADMIN, CATEGORIES, TICKETS_CREATE, TICKETS_MANAGE
from flowdesk.workflow import (
    ApplyInputs,
    Catalog,
    StatusMapMissing,
    TicketFacts,
    TransitionRefused,
    UnknownAction,
    action_for_target,
    apply,
)

# The action an automatic move on assignment is recorded as (`on_assign` in the catalog).
ON_ASSIGN = "on_assign"

# Fields a requester may change on their own ticket; everything else is the agents'.
REQUESTER_EDITABLE = frozenset({"title", "description", "fields"})


# How often a write decides again when the ticket moved on under it before it gives up.
ATTEMPTS = 5


async def locate(
    conn: Connection, catalog: Catalog, principal: Principal, ref: str
) -> tuple[TicketRepository, TicketRow]:
    """The ticket behind `ref` as this caller may see it, or 404 (another tenant's ticket, or
    another requester's, is not found rather than forbidden; nor is a deleted ticket, which
    only admins read, as in RT)."""
    repo = repository_for(conn, principal)
    parsed = parse_ref(ref)
    row = await repo.get(parsed) if parsed is not None else None
    if row is not None and not principal.can(ADMIN) and _deleted(catalog, row):
        row = None
    return repo, found(row, f"No ticket '{ref}'.")


async def create_ticket(
    conn: Connection,
    catalog: Catalog,
    principal: Principal,
    body: TicketCreate,
    links: AssetLinks = AssetLinks(),
) -> TicketJson:
    """A new ticket. Its asset and movement links are stored only as far as `links` (the
    tenant's flags) allow; the rest are ignored, as seed 004 says."""
    if not principal.can(TICKETS_CREATE):
        raise Forbidden(
            f"Creating tickets needs the '{TICKETS_CREATE}' permission.",
            extra={"required_permission": TICKETS_CREATE},
        )
    item = catalog.items.get(body.catalog_item)
    if item is None:
        raise InvalidInput(
            f"No catalog item '{body.catalog_item}'.",
            [("/catalog_item", f"one of: {', '.join(sorted(catalog.items))}")],
        )
    if body.priority is not None and not principal.can(TICKETS_MANAGE):
        # As PATCH: the priority is the agents' to set (the catalog item's default otherwise).
        raise Forbidden(
            f"Setting the priority needs the '{TICKETS_MANAGE}' permission.",
            extra={"required_permission": TICKETS_MANAGE, "fields": ["priority"]},
        )
    requester = principal.user_id
    if body.requester_id is not None and body.requester_id != principal.user_id:
        if not principal.can(TICKETS_MANAGE):
            raise Forbidden(
                f"Filing on behalf of someone else needs the '{TICKETS_MANAGE}' permission.",
                extra={"required_permission": TICKETS_MANAGE},
            )
        requester = body.requester_id
    filed = await answers.filing(conn, principal.tenant_id, item, body)
    workflow = catalog.workflow(item.workflow)
    facts = TicketFacts(
        status=None,
        type=item.type,
        requester=str(requester),
        fields=filed.fields,
        answers=filed.answers,
    )
    actor = actor_of(principal, item.name)
    target = body.status or workflow.default_create_status
    try:
        action = action_for_target(workflow, facts, actor, target)
        outcome = apply(workflow, action, facts, actor, ApplyInputs())
    except UnknownAction as exc:
        allowed = ", ".join(workflow.create_statuses)
        raise InvalidInput(
            f"A ticket cannot be created in '{target}'.", [("/status", f"one of: {allowed}")]
        ) from exc
    except TransitionRefused as exc:
        raise TransitionRefusedError.from_engine(exc) from exc
    fields = _clean_fields(filed.fields)
    _check_fields_size(fields)
    repo = repository_for(conn, principal)
    asset_id, movement_id = await _asset_links(repo, body, links)
    moment = lifecycle.entering(workflow, None, outcome.status, item=item.name)
    values: NewTicket = {
        "title": filed.title,
        "description": filed.description,
        "type": item.type,
        "catalog_item": item.name,
        "workflow": workflow.name,
        "status": outcome.status,
        "status_category": workflow.status_category(outcome.status),
        "priority": filed.priority or item.default_priority,
        "requester_id": requester,
        "fields": fields,
        "answers": filed.stored,
        "asset_id": asset_id,
        "movement_id": movement_id,
        "started_at": moment.get("started_at"),
        "resolved_at": moment.get("resolved_at"),
        "closed_at": moment.get("closed_at"),
        "timer_due_at": moment.get("timer_due_at"),
    }
    if "sla" in moment:
        values["sla"] = moment["sla"]
    created: dict[str, Any] = {
        "status": outcome.status,
        "priority": values["priority"],
        "catalog_item": item.name,
    }
    if asset_id is not None:
        created["asset_id"] = asset_id
    if movement_id is not None:
        created["movement_id"] = movement_id
    # A request the requester's manager files for them carries the manager's approval.
    given, approved, announced = await implied_approvals.filed_approvals(
        repo, catalog, workflow, principal.user_id, requester
    )
    events: list[Event] = [{"kind": "created", "data": created}, *approved]
    outbox: list[Message] = [{"topic": "ticket.created", "payload": {}}, *announced]
    row = await repo.insert(values, principal.user_id, events, outbox, given)
    if row is None:
        # The links were checked above; one may have gone meanwhile (an asset deleted).
        await _asset_links(repo, body, links)
        raise InvalidInput(
            "The requester is not a user of this tenant.", [("/requester_id", "no such user")]
        )
    return ticket_json(row)


async def _asset_links(
    repo: TicketRepository, body: TicketCreate, links: AssetLinks
) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """The asset and movement the new ticket links, checked: 422 for an asset that is not
    (or no longer) in the registry, a movement that is not, or one of another asset."""
    asset_id = body.asset_id if links.assets else None
    movement_id = body.movement_id if links.movements else None
    if asset_id is None and movement_id is None:
        return None, None
    found = await repo.link_targets(asset_id, movement_id)
    if movement_id is not None:
        of_asset = found["movement_asset_id"]
        if of_asset is None:
            raise InvalidInput("No such asset movement.", [("/movement_id", "no such movement")])
        if asset_id is not None and of_asset != asset_id:
            raise InvalidInput(
                "The movement is not one of the asset's.",
                [("/movement_id", "a movement of another asset")],
            )
        if asset_id is None and links.assets:
            # A movement names its asset: the ticket is about that asset too.
            asset_id = of_asset
            found = await repo.link_targets(asset_id, None)
    if asset_id is not None and not found["asset_live"]:
        gone = found["asset_live"] is False
        raise InvalidInput(
            "The asset was deleted." if gone else "No such asset.",
            [
                (
                    "/asset_id" if body.asset_id else "/movement_id",
                    "deleted" if gone else "no such asset",
                )
            ],
        )
    return asset_id, movement_id


async def get_ticket(
    conn: Connection, catalog: Catalog, principal: Principal, ref: str
) -> TicketJson:
    _, row = await locate(conn, catalog, principal, ref)
    return ticket_json(row)


def filters_of(catalog: Catalog, principal: Principal, p: TicketFilterQuery) -> Filters:
    """The filters a list or count query asks for, with the listing defaults: the one
    reading of them, so that a count counts what the list with the same query lists."""
    categories: list[str] = list(p.status_category or [])
    stale_in = None
    # As RT: a deleted ticket never shows in search results, even when its status is named.
    leave_out = catalog.deleted
    if p.stale:
        stale_in = [(w.name, list(w.statuses)) for w in catalog.workflows.values()]
    elif not p.status:
        # As RT: inactive tickets are left out unless asked for, hidden statuses unless named.
        categories = categories or ["initial", "active"]
        leave_out = catalog.unlisted
    return Filters(
        statuses=p.status or (),
        categories=categories,
        exclude_hidden=leave_out,
        assignee=_person(p.assignee, principal, "assignee")
        if p.assignee not in (None, "none")
        else None,
        unassigned=p.assignee == "none",
        requester=_person(p.requester, principal, "requester") if p.requester else None,
        priorities=p.priority or (),
        types=p.type or (),
        catalog_items=p.catalog_item or (),
        created_after=p.created_after,
        created_before=p.created_before,
        updated_after=p.updated_after,
        updated_before=p.updated_before,
        started_after=p.started_after,
        started_before=p.started_before,
        resolved_after=p.resolved_after,
        resolved_before=p.resolved_before,
        closed_after=p.closed_after,
        closed_before=p.closed_before,
        q=p.q,
        stale_in=stale_in,
        sla_state=p.sla_state,
        answers=tuple(p.answer.items()),
    )


async def list_tickets(
    conn: Connection,
    catalog: Catalog,
    principal: Principal,
    p: TicketListQuery,
    after: tuple[Any, uuid.UUID] | None,
    *,
    asset_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """A page of the tickets the caller may see that the query asks for, after the row whose
    sort key is `after` (the query's cursor, read back); with `asset_id`, the asset's
    "Tickets" history, closed tickets included unless the query narrows it."""
    filters = filters_of(catalog, principal, p)
    if asset_id is not None:
        narrowed = bool(p.status or p.status_category)
        filters = replace(
            filters,
            asset=asset_id,
            categories=list(p.status_category or ()) if narrowed else list(CATEGORIES),
        )
    query = ListQuery(filters, sort=p.sort, after=after, limit=p.limit)
    rows = await listing.page(conn, principal.tenant_id, visible_to(principal), query)
    items = [ticket_json(r) for r in rows[: p.limit]]
    cursor = next_cursor(rows, p.limit, lambda r: [p.sort, _sort_key(r, p.sort), r["id"]])
    # The shape of Page[TicketOut], which documents it.
    return {"items": items, "next_cursor": cursor}


async def count_tickets(
    conn: Connection, catalog: Catalog, principal: Principal, p: TicketCountQuery
) -> TicketCountsOut:
    """How many of the tickets GET /v1/tickets would list for this query (every page of it)
    have each value of `p.group_by`."""
    found = await listing.counts(
        conn,
        principal.tenant_id,
        visible_to(principal),
        filters_of(catalog, principal, p),
        p.group_by,
    )
    counts = [
        TicketCount(key=None if r["key"] is None else str(r["key"]), count=r["count"])
        for r in found
    ]
    return TicketCountsOut(group_by=p.group_by, counts=counts, total=sum(c.count for c in counts))


def _deleted(catalog: Catalog, row: TicketRow) -> bool:
    workflow = catalog.workflows.get(row["workflow"])
    status = workflow.statuses.get(row["status"]) if workflow else None
    return status is not None and status.deleted


def _sort_key(row: TicketRow, sort: str) -> object:
    """The value of the row's sort column (flowdesk.tickets.listing.SORT_COLUMNS)."""
    column = sort.lstrip("-")
    if column == "sla_due":
        return row["sla_due_at"]  # type: ignore[typeddict-item]  # the sla_due page's key
    if column == "priority":
        return row["priority_rank"]
    return row["updated_at"] if column == "updated" else row["created_at"]


def _person(value: str | None, principal: Principal, name: str) -> uuid.UUID:
    if value == "me":
        return principal.user_id
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        # Only `assignee` also takes "none", which never reaches here.
        raise InvalidInput(
            f"'{name}' must be 'me' or a user id.", [(f"/query/{name}", "invalid")]
        ) from exc


async def update_ticket(
    conn: Connection,
    catalog: Catalog,
    principal: Principal,
    ref: str,
    body: TicketPatch,
    if_match: VersionCheck = any_version,
) -> TicketJson:
    sent = body.model_fields_set
    if not principal.can(TICKETS_MANAGE):
        beyond = sorted(sent - REQUESTER_EDITABLE)
        if beyond:
            raise Forbidden(
                f"Changing {', '.join(beyond)} needs the '{TICKETS_MANAGE}' permission.",
                extra={"required_permission": TICKETS_MANAGE, "fields": beyond},
            )
    for _ in range(ATTEMPTS):
        repo, row = await locate(conn, catalog, principal, ref)
        lifecycle.ensure_changeable(catalog, row)
        if not if_match(row["version"]):
            raise StaleVersion(row["version"])
        changes, events, outbox = await _patch(repo, catalog, row, body)
        if not changes:
            return ticket_json(row)
        written = await repo.update(row, changes, principal.user_id, events, outbox)
        if written is not None:
            return ticket_json(written)
    raise Conflict("The ticket kept changing while this update was decided; retry it.")


async def _patch(
    repo: TicketRepository, catalog: Catalog, row: TicketRow, body: TicketPatch
) -> tuple[dict[str, Any], list[Event], list[Message]]:
    """What a PATCH changes on this version of the ticket, with its events and messages."""
    sent = body.model_fields_set
    changes: dict[str, Any] = {}
    events: list[Event] = []
    outbox: list[Message] = []
    simple = (
        ("title", body.title, row["title"]),
        ("description", body.description, row["description"]),
        ("priority", body.priority, row["priority"]),
    )
    for name, value, old in simple:
        if name in sent and value is not None and value != old:
            changes[name] = value
            events.append(
                {"kind": "field_changed", "data": {"field": name, "old": old, "new": value}}
            )
    if "fields" in sent and body.fields is not None:
        merged = _clean_fields({**row["fields"], **body.fields})
        if merged != row["fields"]:
            _check_fields_size(merged)
            changes["fields"] = merged
            # Only what changed: the whole of both would make every small change as large as
            # the ticket's fields (a review wrote 24 MB of events from 20 PATCHes).
            changed = sorted(
                k for k in {*row["fields"], *merged} if row["fields"].get(k) != merged.get(k)
            )
            events.append(
                {
                    "kind": "field_changed",
                    "data": {
                        "field": "fields",
                        "old": {k: row["fields"][k] for k in changed if k in row["fields"]},
                        "new": {k: merged[k] for k in changed if k in merged},
                    },
                }
            )
    if "assignee_id" in sent and body.assignee_id != row["assignee_id"]:
        if body.assignee_id is not None and not await repo.is_agent(body.assignee_id):
            raise InvalidInput(
                "The assignee must be an agent of this tenant.",
                [("/assignee_id", "not an agent (tickets:manage)")],
            )
        changes["assignee_id"] = body.assignee_id
        events.append(
            {"kind": "assigned", "data": {"old": row["assignee_id"], "new": body.assignee_id}}
        )
        if body.assignee_id is not None:
            outbox.append(
                {"topic": "ticket.assigned", "payload": {"assignee_id": body.assignee_id}}
            )
            changes |= _on_assign(catalog, row, events, outbox)
    if (
        "catalog_item" in sent
        and body.catalog_item is not None
        and body.catalog_item != row["catalog_item"]
    ):
        changes |= _move(catalog, row, body.catalog_item, events)
    return changes, events, outbox


def _on_assign(
    catalog: Catalog, row: TicketRow, events: list[Event], outbox: list[Message]
) -> dict[str, Any]:
    """The move an assignment makes where the workflow says so (`on_assign`: itsm_default's
    open ticket starts when an agent takes it), recorded as a transition in the same write."""
    workflow = catalog.workflows.get(row["workflow"])
    target = workflow.on_assign.get(row["status"]) if workflow else None
    if workflow is None or target is None:
        return {}
    events.append(
        {"kind": "transitioned", "data": {"action": ON_ASSIGN, "from": row["status"], "to": target}}
    )
    changes, announced = lifecycle.moving(workflow, row, target)
    outbox += announced
    return changes


def _move(catalog: Catalog, row: TicketRow, item_name: str, events: list[Event]) -> dict[str, Any]:
    """A new catalog item, and with it maybe a new workflow: the status follows the map."""
    item = catalog.items.get(item_name)
    if item is None:
        raise InvalidInput(f"No catalog item '{item_name}'.", [("/catalog_item", "unknown")])
    try:
        status = catalog.map_status(row["workflow"], item.workflow, row["status"])
    except StatusMapMissing as exc:
        raise StatusMapMissingError.from_engine(exc) from exc
    workflow = catalog.workflow(item.workflow)
    events.append(
        {
            "kind": "moved",
            "data": {
                "from_catalog_item": row["catalog_item"],
                "to_catalog_item": item.name,
                "from_workflow": row["workflow"],
                "to_workflow": workflow.name,
                "from_status": row["status"],
                "to_status": status,
            },
        }
    )
    return {
        **lifecycle.entering(workflow, row, status, item=item.name),
        "catalog_item": item.name,
        "type": item.type,
        "workflow": workflow.name,
    }


# A ticket's custom fields, merged, stay within these: a PATCH may add 50 keys at a time, and
# without a bound on the whole, a requester could grow a ticket without end.
FIELDS_MAX_KEYS = 100
FIELDS_MAX_BYTES = 32 * 1024


def _check_fields_size(fields: dict[str, Any]) -> None:
    size = len(orjson.dumps(fields))
    if len(fields) > FIELDS_MAX_KEYS or size > FIELDS_MAX_BYTES:
        raise InvalidInput(
            f"A ticket's fields hold at most {FIELDS_MAX_KEYS} keys and {FIELDS_MAX_BYTES} bytes "
            f"of JSON; these would hold {len(fields)} keys and {size} bytes.",
            [("/fields", "too large once merged")],
        )


def _clean_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A null value removes the key (JSON merge-patch semantics)."""
    return {k: v for k, v in fields.items() if v is not None}
