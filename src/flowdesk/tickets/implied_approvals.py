"""Approvals that other writes give or clear, by the catalog's approval policies: the filing
of a request by the requester's manager gives theirs (seed 003: "if they make requests on
behalf of their team, we can assume they approve"), and a transition by an action a policy
is `cleared_by` (back to Review) clears them, in the same statement as the write.
"""

from __future__ import annotations

import uuid

from flowdesk.tickets.repository import Event, Message, TicketRepository
from flowdesk.workflow import Catalog, Workflow
from flowdesk.workflow.model import Condition

# The outbox topic of a recorded approval (flowdesk.tickets.approvals writes it too).
APPROVAL_ADDED = "ticket.approval_added"


def approvals_read_by(workflow: Workflow) -> frozenset[str]:
    """The approvals the workflow's conditions name (at any depth)."""
    return frozenset(
        value
        for action in workflow.actions
        for condition in action.conditions
        for value in _approval_values(condition)
    )


def _approval_values(condition: Condition) -> tuple[str, ...]:
    if condition.kind == "approval":
        return tuple(condition.values)
    return tuple(v for p in condition.parts for v in _approval_values(p))


async def filed_approvals(
    repo: TicketRepository,
    catalog: Catalog,
    workflow: Workflow,
    filer: uuid.UUID,
    requester: uuid.UUID,
) -> tuple[list[str], list[Event], list[Message]]:
    """Seed 003: "If they make requests on behalf of their team, we can assume they approve."
    A request the requester's manager files for them is that manager's approval, for every
    approval the workflow reads whose policy says `filing_approves`: the names, with the
    events and messages that record them as any approval is."""
    if filer == requester:
        return [], [], []
    read = approvals_read_by(workflow)
    names = sorted(
        p.name for p in catalog.approvals.values() if p.filing_approves and p.name in read
    )
    if not names:
        return [], [], []
    approver = await repo.approver(filer, requester)
    if approver is None or approver["requester_manager_id"] != filer:
        return [], [], []
    events: list[Event] = [
        {"kind": "approved", "data": {"name": name, "filed_for_report": True}} for name in names
    ]
    messages: list[Message] = [
        {"topic": APPROVAL_ADDED, "payload": {"name": name, "approver_id": filer}} for name in names
    ]
    return names, events, messages


def cleared_by(
    catalog: Catalog, action: str, recorded: frozenset[str]
) -> tuple[list[str], list[Event]]:
    """The approvals a transition by `action` clears (policies `cleared_by` it), and the event
    saying so when any of them was recorded."""
    names = sorted(p.name for p in catalog.approvals.values() if action in p.cleared_by)
    if not names:
        return [], []
    present = [n for n in names if n in recorded]
    if not present:
        return names, []
    return names, [{"kind": "approvals_cleared", "data": {"names": present, "action": action}}]
