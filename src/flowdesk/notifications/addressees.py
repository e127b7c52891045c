"""Whom the SLA and approval messages address beyond the ticket's requester and assignee, as
pure functions of the catalog, the ticket and what the fan-out read (flowdesk.notifications.
audience):

- an SLA mark's target as the catalog declares it (`requester`, `assignee`, a group's members,
  a user by e-mail); the warning, which declares none, goes to the policy's escalation target;
- the approvals a request waits on once it enters a status: those that a way out of the
  status needs (its conditions, rules included) and that nobody gave yet, and for each the
  people who may give it (its policy's group members, the requester's manager, a named user),
  never the requester, nor the assignee where the policy forbids it.

Both are worked out at fan-out from the ticket as it is then (ADR 0008, "Who is told"): the
ticket writes stay as they are, and a status left or an approval given before the fan-out
asks nobody for what is no longer needed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from flowdesk.notifications.audience import Audience
from flowdesk.notifications.recipients import Recipient
from flowdesk.notifications.repository import PersonRow, TicketNoticeRow
from flowdesk.tickets import sla
from flowdesk.tickets.facts import facts_of
from flowdesk.workflow import Catalog, TicketFacts, Workflow
from flowdesk.workflow.model import Condition
from flowdesk.workflow.sla_model import SlaPolicy

SLA_TOPICS = ("ticket.sla_reminder", "ticket.sla_warning", "ticket.sla_breached")
APPROVAL_TOPICS = ("ticket.approval_added", "ticket.approval_revoked")
APPROVAL_REQUESTED = "ticket.approval_requested"


def _recipient(person: PersonRow) -> Recipient:
    return Recipient(person["email"], person["name"], person["id"])


def requester_of(ticket: TicketNoticeRow) -> Recipient | None:
    if not ticket["requester_live"] or not ticket["requester_email"]:
        return None
    return Recipient(ticket["requester_email"], ticket["requester_name"], ticket["requester_id"])


def assignee_of(ticket: TicketNoticeRow) -> Recipient | None:
    if ticket["assignee_id"] is None or not ticket["assignee_live"] or not ticket["assignee_email"]:
        return None
    return Recipient(ticket["assignee_email"], ticket["assignee_name"] or "", ticket["assignee_id"])


# --- SLA marks -------------------------------------------------------------------------------


def sla_policy(catalog: Catalog, ticket: TicketNoticeRow, name: object) -> SlaPolicy | None:
    workflow = catalog.workflows.get(ticket["workflow"])
    if workflow is None:
        return None
    return next(
        (p for p in sla.policies_for(workflow, ticket["catalog_item"]) if p.name == name), None
    )


def sla_target(topic: str, payload: dict[str, Any], policy: SlaPolicy | None) -> dict[str, str]:
    """The target the mark names (`to` of a reminder, `escalated_to` of a breach); for a
    warning, the policy's escalation target (who will have the breach: told in time)."""
    named = payload.get("to") or payload.get("escalated_to")
    if isinstance(named, dict):
        return {str(k): str(v) for k, v in named.items()}
    if topic == "ticket.sla_warning" and policy is not None:
        breach = next((m for m in policy.marks if m.kind == "breach" and m.to), None)
        if breach is not None and breach.to is not None:
            return breach.to.to_dict()
    return {}


def target_groups_and_emails(target: dict[str, str]) -> tuple[list[str], list[str]]:
    kind, name = target.get("kind"), target.get("name", "")
    if kind == "group" and name:
        return [name], []
    if kind == "user" and name:
        return [], [name]
    return [], []


def sla_recipients(
    topic: str, target: dict[str, str], ticket: TicketNoticeRow, audience: Audience
) -> list[Recipient]:
    """The people an SLA mark is mailed to: its target, and on a warning the assignee too
    (the one who can still meet the target)."""
    tenant = ticket["tenant_id"]
    kind, name = target.get("kind"), target.get("name", "")
    found: list[Recipient | None] = []
    if kind == "requester":
        found.append(requester_of(ticket))
    elif kind == "assignee":
        found.append(assignee_of(ticket))
    elif kind == "group":
        found += [_recipient(p) for p in audience.group(tenant, name)]
    elif kind == "user":
        person = audience.user(tenant, name)
        found.append(_recipient(person) if person else None)
    if topic == "ticket.sla_warning":
        found.append(assignee_of(ticket))
    return [r for r in found if r is not None]


# --- approvals a request waits on ------------------------------------------------------------


def awaited_approvals(workflow: Workflow, facts: TicketFacts) -> tuple[str, ...]:
    """The approvals that a way out of the ticket's status needs and nobody gave yet: of each
    action whose other conditions hold (an action the ticket cannot take anyway waits on
    nobody's approval), what its approval conditions and rules miss."""
    names: set[str] = set()
    for edge in workflow.table.get(facts.status or "", ()):
        gates = [c for c in edge.conditions if "approval" in c.kinds]
        others = [c for c in edge.conditions if "approval" not in c.kinds]
        if all(c.holds(facts) for c in others):
            for condition in gates:
                names |= _missing(condition, facts)
    return tuple(sorted(names))


def _missing(condition: Condition, facts: TicketFacts) -> set[str]:
    kind = condition.kind
    if kind == "approval":
        # Any one of several names would do: everyone who may give one of them is asked.
        return set() if condition.holds(facts) else set(condition.values)
    if kind == "all":
        return {n for part in condition.parts for n in _missing(part, facts)}
    if kind == "when":
        when, require = condition.parts
        return _missing(require, facts) if when.holds(facts) else set()
    return set()  # `any` and `not` of approvals: no one approval is the missing one


@dataclass(frozen=True, slots=True)
class ApprovalAsk:
    """One person asked for the approvals they may give (labels, in catalog order)."""

    recipient: Recipient
    labels: tuple[str, ...]


def awaited_for(catalog: Catalog, ticket: TicketNoticeRow, held: frozenset[str]) -> tuple[str, ...]:
    workflow = catalog.workflows.get(ticket["workflow"])
    if workflow is None:
        return ()
    return awaited_approvals(workflow, facts_of(ticket, approvals=held))


def approval_groups_and_emails(
    catalog: Catalog, names: tuple[str, ...]
) -> tuple[list[str], list[str]]:
    group_names: list[str] = []
    emails: list[str] = []
    for name in names:
        policy = catalog.approvals.get(name)
        if policy is not None:
            group_names += policy.groups()
            emails += policy.users()
    return group_names, emails


def needs_manager(catalog: Catalog, names: tuple[str, ...]) -> bool:
    return any((p := catalog.approvals.get(n)) is not None and p.by_manager for n in names)


def approvers(
    catalog: Catalog, ticket: TicketNoticeRow, names: tuple[str, ...], audience: Audience
) -> list[ApprovalAsk]:
    """Who may give each awaited approval, each person once with every approval they may
    give; never the requester, nor the assignee where the approval's policy forbids it."""
    tenant = ticket["tenant_id"]
    asked: dict[str, tuple[Recipient, list[str]]] = {}
    for name in names:
        policy = catalog.approvals.get(name)
        if policy is None:
            continue
        people: list[PersonRow] = []
        for giver in policy.given_by:
            if giver.kind == "group":
                people += audience.group(tenant, giver.name)
            elif giver.kind == "user":
                person = audience.user(tenant, giver.name)
                people += [person] if person else []
            elif giver.kind == "manager":
                manager = audience.manager_of(tenant, ticket["requester_id"])
                people += [manager] if manager else []
        barred: set[uuid.UUID | None] = {ticket["requester_id"]}
        if "assignee" in policy.forbidden_roles:
            barred.add(ticket["assignee_id"])
        for person in people:
            if person["id"] in barred:
                continue
            key = person["email"].strip().casefold()
            _, labels = asked.setdefault(key, (_recipient(person), []))
            label = policy.label or policy.name
            if label not in labels:
                labels.append(label)
    return [ApprovalAsk(r, tuple(labels)) for r, labels in asked.values()]
