"""Transitions: what the caller may do to a ticket now (with reasons when not), and doing it."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from flowdesk.auth.principal import Principal
from flowdesk.db.query import Connection
from flowdesk.errors import Conflict, Forbidden, InvalidInput
from flowdesk.tickets import implied_approvals, lifecycle, sla
from flowdesk.tickets.errors import StaleVersion, TransitionRefusedError, TransitionUnavailable
from flowdesk.tickets.facts import TicketJson, actor_of, facts_of, needs, ticket_json
from flowdesk.tickets.repository import Event, Message, TicketRepository, TicketRow
from flowdesk.tickets.schemas import (
    ReasonOut,
    TransitionIn,
    TransitionOption,
    TransitionsOut,
)
from flowdesk.tickets.service import ATTEMPTS, locate
from flowdesk.tickets.versions import VersionCheck, any_version
from flowdesk.vocabulary import TICKETS_MANAGE
from flowdesk.workflow import (
    RESET,
    ActionOption,
    ApplyInputs,
    Catalog,
    TicketFacts,
    TransitionRefused,
    UnknownAction,
    UnknownWorkflow,
    Workflow,
    action_for_target,
    apply,
    available_actions,
)


async def _facts(repo: TicketRepository, workflow: Workflow, row: TicketRow) -> TicketFacts:
    links = await repo.link_kinds(row["id"]) if needs(workflow, "link") else frozenset()
    approvals = await repo.approval_names(row["id"]) if needs(workflow, "approval") else frozenset()
    facts = facts_of(row, links=links, approvals=approvals)
    names = workflow.owner_names()
    if not names:
        return facts
    # Owners named in the workflow (Trac's `set_owner = ann, qa-team`) are people of this
    # tenant only once looked up: by e-mail, name, group or permission.
    directory = await repo.owner_directory(names, workflow.owner_grantors)
    return replace(facts, owner_candidates=directory)


def _workflow(catalog: Catalog, row: TicketRow) -> Workflow:
    try:
        return catalog.workflow(row["workflow"])
    except UnknownWorkflow as exc:
        raise TransitionUnavailable(
            f"The ticket's workflow '{row['workflow']}' is no longer in the catalog; move it to "
            "another catalog item.",
            extra={"workflow": row["workflow"]},
        ) from exc


def _option(o: ActionOption) -> TransitionOption:
    return TransitionOption(
        action=o.action,
        label=o.label,
        to=o.to,
        allowed=o.allowed,
        reasons=[ReasonOut.model_validate(r.to_dict()) for r in o.reasons],
        update_type=o.update_type,
        comment_required=o.comment_required,
        resolutions=list(o.resolutions),
        owners=list(o.owners),
    )


async def list_transitions(
    conn: Connection, catalog: Catalog, principal: Principal, ref: str
) -> TransitionsOut:
    repo, row = await locate(conn, catalog, principal, ref)
    workflow = _workflow(catalog, row)
    facts = await _facts(repo, workflow, row)
    options = available_actions(workflow, facts, actor_of(principal, row["catalog_item"]))
    return TransitionsOut(
        status=row["status"], version=row["version"], items=[_option(o) for o in options]
    )


async def transition(
    conn: Connection,
    catalog: Catalog,
    principal: Principal,
    ref: str,
    body: TransitionIn,
    if_match: VersionCheck = any_version,
) -> TicketJson:
    """Decide on a read, write if the ticket is still at that version, else decide again: of
    two concurrent moves out of one status one wins and the other is refused (409), or fails
    its If-Match (412), on the fresh read."""
    for _ in range(ATTEMPTS):
        repo, row = await locate(conn, catalog, principal, ref)
        if not if_match(row["version"]):
            raise StaleVersion(row["version"])
        written = await _decide_and_write(repo, catalog, principal, row, body)
        if written is not None:
            return ticket_json(written)
    raise Conflict("The ticket kept changing while this transition was decided; retry it.")


async def _decide_and_write(
    repo: TicketRepository,
    catalog: Catalog,
    principal: Principal,
    row: TicketRow,
    body: TransitionIn,
) -> TicketRow | None:
    lifecycle.ensure_changeable(catalog, row, body.action)
    workflow = _workflow(catalog, row)
    facts = await _facts(repo, workflow, row)
    actor = actor_of(principal, row["catalog_item"])
    inputs = ApplyInputs(
        owner=str(body.assignee_id) if body.assignee_id else None,
        resolution=body.resolution,
        comment=body.comment,
    )
    try:
        action = body.action or action_for_target(workflow, facts, actor, str(body.to))
        outcome = apply(workflow, action, facts, actor, inputs)
    except UnknownAction as exc:
        raise TransitionUnavailable.from_engine(exc, workflow.name) from exc
    except TransitionRefused as exc:
        raise TransitionRefusedError.from_engine(exc) from exc
    changes: dict[str, Any] = {}
    kind = "reset" if outcome.action == RESET else "transitioned"
    moved: dict[str, Any] = {"action": outcome.action, "from": row["status"], "to": outcome.status}
    events: list[Event] = [{"kind": kind, "data": moved}]
    outbox: list[Message] = []
    if outcome.status != row["status"]:
        moved_changes, announced = lifecycle.moving(workflow, row, outcome.status)
        changes |= moved_changes
        outbox += announced
    if outcome.resolution != row["resolution"]:
        changes["resolution"] = outcome.resolution
        moved["resolution"] = outcome.resolution
    owner = _user_id(outcome.owner)
    if owner != row["assignee_id"]:
        if owner is not None and not await repo.is_agent(owner):
            raise InvalidInput(
                "The new owner must be an agent of this tenant.",
                [("/assignee_id", "not an agent")],
            )
        changes["assignee_id"] = owner
        events.append({"kind": "assigned", "data": {"old": row["assignee_id"], "new": owner}})
        if owner is not None:
            outbox.append({"topic": "ticket.assigned", "payload": {"assignee_id": owner}})
    comment = None
    if body.comment:
        # The action's update type decides an agent's default visibility.
        option = next(
            o for o in available_actions(workflow, facts, actor) if o.action == outcome.action
        )
        visibility = _comment_visibility(principal, option, body)
        comment = (uuid.uuid4(), body.comment, visibility)
        said = {"comment_id": comment[0], "visibility": visibility}
        events.append({"kind": "commented", "visibility": visibility, "data": said})
        outbox.append({"topic": "ticket.comment_added", "payload": said})
        if visibility == "external" and workflow.sla_policies:
            # A reply that comes with the move may stop clocks (`stop: {events: [...]}`).
            replied = sla.on_reply(
                workflow,
                row["catalog_item"],
                row["sla"],
                by_requester=principal.user_id == row["requester_id"],
            )
            if replied:
                changes["sla"] = sla.merged(changes.get("sla", []), replied)
    # Every transition is on the record and moves the version, even one that leaves the
    # status as it was (Trac's leave_status), so that If-Match sees it.
    changes.setdefault("status", outcome.status)
    # Approvals whose policy this action clears (seed 003: back to Review), in the same write.
    cleared, cleared_events = implied_approvals.cleared_by(catalog, outcome.action, facts.approvals)
    events += cleared_events
    return await repo.update(
        row, changes, principal.user_id, events, outbox, comment, cleared_approvals=cleared
    )


def _user_id(owner: str | None) -> uuid.UUID | None:
    """The owner the engine chose, as a user id; owners named in a workflow were looked up
    into ids (`_facts`), so anything else is input that names no user."""
    if owner is None:
        return None
    try:
        return uuid.UUID(owner)
    except ValueError:
        raise InvalidInput(
            f"The owner '{owner}' is not a user of this tenant.",
            [("/assignee_id", "not a user")],
        ) from None


def _comment_visibility(principal: Principal, option: ActionOption, body: TransitionIn) -> str:
    """Requesters only ever write external comments; agents default to what the action's
    update type says (a reply is external, a comment internal)."""
    agent = principal.can(TICKETS_MANAGE)
    wanted = body.comment_visibility
    if wanted is None:
        wanted = (
            "internal"
            if agent and option.update_type == "comment" and not option.external
            else "external"
        )
    if wanted == "internal" and not agent:
        raise Forbidden(
            "Requesters can only write external comments.",
            extra={"required_permission": TICKETS_MANAGE},
        )
    return wanted
