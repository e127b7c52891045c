"""Who is mailed about a ticket event (seed 004's table), as a pure function of the event,
the ticket and the people involved.

| event                  | recipients                                                  |
|------------------------|-------------------------------------------------------------|
| ticket.created         | the reporter (acknowledgement) + the agent queue            |
| ticket.assigned        | the assigned agent                                          |
| ticket.comment_added   | the reporter, for external comments only                    |
| ticket.status_changed  | the reporter, unless the change also resolved or closed it |
| ticket.resolved        | the reporter, asked to confirm                              |
| ticket.closed          | the reporter                                                |
| ticket.sla_reminder    | whom the SLA policy's reminder names (seed 003: requester)  |
| ticket.sla_warning     | the policy's escalation target, and the assignee            |
| ticket.sla_breached    | the policy's escalation target (a group's members, a user)  |
| ticket.approval_added  | the assignee and the reporter                               |
| ticket.approval_revoked| the assignee and the reporter                               |

(`addressed`: the SLA targets, resolved by flowdesk.notifications.addressees.) A status change
into a status that waits on an approval also asks those who may give it
(`ticket.approval_requested`, flowdesk.notifications.addressees.approvers).

Nobody is mailed about their own action, except the reporter's acknowledgement of their own
new ticket; everyone is mailed at most once per message.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Recipient:
    email: str
    name: str
    # None for an address that is nobody's account (the tenant's queue address).
    user_id: uuid.UUID | None


def mail_recipients(
    event: str,
    payload: dict[str, Any],
    *,
    reporter: Recipient | None,
    assignee: Recipient | None,
    queue: Sequence[Recipient],
    comment_visibility: str | None,
    addressed: Sequence[Recipient] = (),
) -> list[Recipient]:
    """The people to mail about one outbox message. `reporter` and `assignee` are None when
    they cannot be mailed (no such live user); `assignee` is the one the event names (for an
    approval, the ticket's); `queue` is the tenant's queue address, or its agents;
    `addressed`, the people an SLA mark is for."""
    actor = _uuid(payload.get("actor_id"))
    wanted: list[Recipient] = []
    own: list[Recipient] = []  # exempt from the "own action" rule
    if event == "ticket.created":
        own = [reporter] if reporter else []
        wanted = list(queue)
    elif event == "ticket.assigned":
        wanted = [assignee] if assignee else []
    elif event == "ticket.comment_added":
        # An internal note never reaches a requester.
        if comment_visibility == "external" and reporter:
            wanted = [reporter]
    elif event == "ticket.status_changed":
        # The resolved or closed mail of the same change says it better.
        if not payload.get("milestone") and reporter:
            wanted = [reporter]
    elif event in ("ticket.resolved", "ticket.closed") and reporter:
        wanted = [reporter]
    elif event in ("ticket.sla_reminder", "ticket.sla_warning", "ticket.sla_breached"):
        wanted = list(addressed)
    elif event in ("ticket.approval_added", "ticket.approval_revoked"):
        # `assignee`: the ticket's own (the message names none).
        wanted = [r for r in (assignee, reporter) if r]
    others = [r for r in wanted if r.user_id is None or r.user_id != actor]
    return _once_each([*own, *others])


def _once_each(recipients: Iterable[Recipient]) -> list[Recipient]:
    seen: set[str] = set()
    unique: list[Recipient] = []
    for recipient in recipients:
        key = recipient.email.strip().lower()
        if key and key not in seen:
            seen.add(key)
            unique.append(recipient)
    return unique


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
