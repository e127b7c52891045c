"""Approvals of a ticket, governed by the catalog's approval policies
(flowdesk.workflow.approvals): recording one (only by those its policy names, never by the
requester, nor by the assignee where the policy says so), revoking one, the approvals a
manager's filing gives, and those a transition clears.

Who may give an approval is decided on a read of the approver (their groups, e-mail, and
whether they manage the requester) and the ticket; the write then happens only while the
ticket is still in the status it was decided on. Each write is one statement with its audit
event and outbox message (flowdesk.tickets.statements).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from flowdesk.auth.principal import Principal
from flowdesk.db.constraints import unique
from flowdesk.db.query import Connection
from flowdesk.errors import Conflict, Forbidden, InvalidInput, NotFound
from flowdesk.tickets import lifecycle
from flowdesk.tickets.facts import parse_ref
from flowdesk.tickets.implied_approvals import APPROVAL_ADDED
from flowdesk.tickets.repository import (
    ApprovalRow,
    ApproverRow,
    Event,
    Message,
    TicketRepository,
    TicketRow,
)
from flowdesk.tickets.schemas import ApprovalOut, UserRef
from flowdesk.tickets.service import ATTEMPTS, locate
from flowdesk.vocabulary import ADMIN
from flowdesk.workflow import Catalog
from flowdesk.workflow.approvals import ApprovalPolicy

APPROVAL_REVOKED = "ticket.approval_revoked"
# The unique index that keeps one approval per (ticket, name, approver).
ONE_PER_APPROVER = "uq_ticket_approvals_approver"


# --- reaching the ticket ---------------------------------------------------------------------


async def _ticket(
    conn: Connection, catalog: Catalog, principal: Principal, ref: str
) -> tuple[TicketRepository, TicketRow]:
    """The ticket as the caller sees it, or, for a desk user who is the requester's manager,
    the request they are asked to approve: its approvals (not the rest of it) are theirs to
    read and write. Anyone else's ticket stays 404."""
    try:
        return await locate(conn, catalog, principal, ref)
    except NotFound:
        if principal.is_agent:
            raise
        repo = TicketRepository(conn, principal.tenant_id, requester_only=None)
        parsed = parse_ref(ref)
        row = await repo.get(parsed) if parsed is not None else None
        if row is None or _deleted(catalog, row):
            raise
        approver = await repo.approver(principal.user_id, row["requester_id"])
        if approver is None or approver["requester_manager_id"] != principal.user_id:
            raise
        return repo, row


def _deleted(catalog: Catalog, row: TicketRow) -> bool:
    workflow = catalog.workflows.get(row["workflow"])
    status = workflow.statuses.get(row["status"]) if workflow else None
    return status is not None and status.deleted


# --- who may give an approval ----------------------------------------------------------------


def _policy(catalog: Catalog, name: str) -> ApprovalPolicy:
    policy = catalog.approvals.get(name)
    if policy is None:
        known = ", ".join(catalog.approvals) or "none"
        raise InvalidInput(f"No approval '{name}' in the catalog.", [("/name", f"one of: {known}")])
    return policy


def refusal(
    policy: ApprovalPolicy, row: TicketRow, user_id: uuid.UUID, approver: ApproverRow | None
) -> Forbidden | None:
    """Why this user may not give this approval on this ticket (None: they may)."""
    extra: dict[str, object] = {"approval": policy.name}
    if user_id == row["requester_id"]:
        return Forbidden(
            "Nobody approves their own request: the requester may not give the "
            f"'{policy.name}' approval.",
            extra={**extra, "reason": "requester"},
        )
    if "assignee" in policy.forbidden_roles and user_id == row["assignee_id"]:
        return Forbidden(
            f"The ticket's assignee may not give the '{policy.name}' approval.",
            extra={**extra, "reason": "assignee"},
        )
    if approver is not None and _eligible(policy, user_id, approver):
        return None
    return Forbidden(
        f"Only {policy.eligible()} may give the '{policy.name}' approval.",
        extra={**extra, "reason": "not_eligible", "given_by": policy.eligible()},
    )


def _eligible(policy: ApprovalPolicy, user_id: uuid.UUID, approver: ApproverRow) -> bool:
    groups = set(approver["groups"] or ())
    email = approver["email"].casefold()
    for who in policy.given_by:
        if who.kind == "group" and who.name in groups:
            return True
        if who.kind == "user" and who.name.casefold() == email:
            return True
        if who.kind == "manager" and approver["requester_manager_id"] == user_id:
            return True
    return False


# --- the use cases ---------------------------------------------------------------------------


async def add_approval(
    conn: Connection, catalog: Catalog, principal: Principal, ref: str, name: str
) -> ApprovalOut:
    policy = _policy(catalog, name)
    for _ in range(ATTEMPTS):
        repo, row = await _ticket(conn, catalog, principal, ref)
        lifecycle.ensure_changeable(catalog, row)
        approver = await repo.approver(principal.user_id, row["requester_id"])
        refused = refusal(policy, row, principal.user_id, approver)
        if refused is not None:
            raise refused
        said = {"name": name, "approver_id": principal.user_id}
        with unique(ONE_PER_APPROVER, f"You have already given the '{name}' approval."):
            approval = await repo.add_approval(
                row,
                name,
                principal.user_id,
                [{"kind": "approved", "data": {"name": name}}],
                [{"topic": APPROVAL_ADDED, "payload": said}],
            )
        if approval is not None:
            return _approval_out(approval)
    raise Conflict("The ticket kept changing while the approval was recorded; retry it.")


async def revoke_approval(
    conn: Connection, catalog: Catalog, principal: Principal, ref: str, approval_id: uuid.UUID
) -> None:
    """The approver takes their approval back, or an admin removes it."""
    for _ in range(ATTEMPTS):
        repo, row = await _ticket(conn, catalog, principal, ref)
        lifecycle.ensure_changeable(catalog, row)
        approval = next(
            (a for a in await repo.approvals(row["id"]) if a["id"] == approval_id), None
        )
        if approval is None:
            raise NotFound(f"No approval {approval_id} on this ticket.")
        if approval["approver_id"] != principal.user_id and not principal.can(ADMIN):
            raise Forbidden(
                "Only the approver, or an admin, may revoke an approval.",
                extra={"approval": approval["name"], "reason": "not_the_approver"},
            )
        said = {
            "approval_id": approval_id,
            "name": approval["name"],
            "approver_id": approval["approver_id"],
        }
        revoked: Event = {"kind": "approval_revoked", "data": said}
        announced: Message = {"topic": APPROVAL_REVOKED, "payload": said}
        if await repo.delete_approval(row, approval_id, principal.user_id, [revoked], [announced]):
            return
        # Nothing deleted: revoked meanwhile (then 404 on the next read), or the ticket moved.
    raise Conflict("The ticket kept changing while the approval was revoked; retry it.")


async def list_approvals(
    conn: Connection,
    catalog: Catalog,
    principal: Principal,
    ref: str,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int | None = None,
) -> list[ApprovalOut]:
    """The ticket's approvals, oldest first: with `limit`, a page of them (after `after`),
    and one more when another page follows."""
    repo, row = await _ticket(conn, catalog, principal, ref)
    found = (
        await repo.approvals(row["id"])
        if limit is None
        else await repo.approvals_page(row["id"], after, limit + 1)
    )
    return [_approval_out(a) for a in found]


def _approval_out(a: ApprovalRow) -> ApprovalOut:
    return ApprovalOut(
        id=a["id"],
        name=a["name"],
        approver=UserRef(id=a["approver_id"], name=a["approver_name"]),
        created_at=a["created_at"],
    )
