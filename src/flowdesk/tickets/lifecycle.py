"""What entering a status changes on a ticket besides its status: the moments of its
lifecycle (started, resolved, closed), the timer of the status's timeout, its SLA clocks,
and whether the ticket may still change at all (a final status).

The moments are stamped on the database's clock, in the statement of the change: a change
carries `True` for "now" and `False` for "clear" in these columns (flowdesk.tickets.statements
turns them into now() and NULL), and the timeout's delay for `timer_due_at`.
"""

from __future__ import annotations

from typing import Any

from flowdesk.tickets import sla
from flowdesk.tickets.errors import TicketClosed
from flowdesk.tickets.repository import Message, TicketRow
from flowdesk.workflow import RESET, Catalog, Workflow


def ensure_changeable(catalog: Catalog, row: TicketRow, action: str | None = None) -> None:
    """409 `ticket-closed` for a ticket in a final status (seed 004: "no further changes
    allowed"); only the reset (an admin's, by the workflow's rules) may still move it."""
    workflow = catalog.workflows.get(row["workflow"])
    if workflow is None or not workflow.is_final(row["status"]) or action == RESET:
        return
    raise TicketClosed(
        f"The ticket is {row['status']}, a final status: it cannot be changed any more "
        "(an admin may reset it).",
        extra={"ticket_status": row["status"]},
    )


def entering(
    workflow: Workflow, row: TicketRow | None, status: str, *, item: str | None = None
) -> dict[str, Any]:
    """The columns a ticket in `status` gets from entering it (`row` is None for a new
    ticket, whose catalog `item` is then given), and under `sla` what it does to the
    ticket's SLA clocks (flowdesk.tickets.sla)."""
    changes: dict[str, Any] = {
        "status": status,
        "status_category": workflow.status_category(status),
    }
    if row is not None and row["status"] == status:
        return changes  # staying (Trac's leave_status) starts no clock and stamps nothing
    started = row["started_at"] if row else None
    resolved = row["resolved_at"] if row else None
    closed = row["closed_at"] if row else None
    if started is None and changes["status_category"] != "initial":
        changes["started_at"] = True
    milestone = workflow.milestone(status)
    if milestone == "resolved":
        changes["resolved_at"] = True
        if closed is not None:
            changes["closed_at"] = False
    elif milestone == "closed":
        # Closing resolves a ticket nobody resolved before (Trac's close is its resolution).
        if resolved is None:
            changes["resolved_at"] = True
        changes["closed_at"] = True
    else:
        # Reopened, or cancelled: neither resolved nor closed any more.
        if resolved is not None:
            changes["resolved_at"] = False
        if closed is not None:
            changes["closed_at"] = False
    timeout = workflow.timeout(status)
    if timeout is not None or (row is not None and row["timer_due_at"] is not None):
        changes["timer_due_at"] = timeout.after if timeout else None
    if workflow.sla_policies:
        clocks = sla.on_status(
            workflow,
            item or (row["catalog_item"] if row else ""),
            row["status"] if row else None,
            status,
            row.get("sla") if row else None,
        )
        if clocks:
            changes["sla"] = clocks
    return changes


def moving(workflow: Workflow, row: TicketRow, status: str) -> tuple[dict[str, Any], list[Message]]:
    """The columns a move of `row` into another status sets, and the messages announcing it.
    The workflow declares which statuses resolve or close a ticket (`milestone`); the status
    change names it, so that the reporter is mailed once, about the milestone."""
    changes = entering(workflow, row, status)
    changes["previous_status"] = row["status"]
    milestone = workflow.milestone(status)
    changed: dict[str, Any] = {"from": row["status"], "to": status}
    if milestone is not None:
        changed["milestone"] = milestone
    outbox: list[Message] = [{"topic": "ticket.status_changed", "payload": changed}]
    if milestone is not None:
        outbox.append({"topic": f"ticket.{milestone}", "payload": {"status": status}})
    return changes, outbox
