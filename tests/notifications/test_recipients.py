"""Who is mailed about what: seed 004's recipient rules, as the pure function that decides them."""

from __future__ import annotations

import uuid
from typing import Any

from flowdesk.notifications.recipients import Recipient, mail_recipients


def person(name: str) -> Recipient:
    return Recipient(f"{name}@example.com", name.title(), uuid.uuid4())


REPORTER, ASSIGNEE, AGENT, OTHER = (person(n) for n in ("rita", "ada", "otto", "olga"))
QUEUE = [ASSIGNEE, AGENT, OTHER]


def mailed(
    event: str,
    actor: Recipient | None,
    *,
    reporter: Recipient | None = REPORTER,
    assignee: Recipient | None = None,
    queue: list[Recipient] | None = None,
    comment: str | None = None,
    **payload: Any,
) -> list[str]:
    if actor is not None:
        payload["actor_id"] = str(actor.user_id)
    recipients = mail_recipients(
        event,
        payload,
        reporter=reporter,
        assignee=assignee,
        queue=QUEUE if queue is None else queue,
        comment_visibility=comment,
    )
    return [r.email for r in recipients]


def emails(*people: Recipient) -> list[str]:
    return [p.email for p in people]


def test_each_event_mails_whom_seed_004_names() -> None:
    assert mailed("ticket.created", REPORTER) == emails(REPORTER, ASSIGNEE, AGENT, OTHER)
    assert mailed("ticket.assigned", OTHER, assignee=ASSIGNEE) == emails(ASSIGNEE)
    assert mailed("ticket.comment_added", ASSIGNEE, comment="external") == emails(REPORTER)
    assert mailed("ticket.status_changed", ASSIGNEE, to="in_progress") == emails(REPORTER)
    assert mailed("ticket.resolved", ASSIGNEE) == emails(REPORTER)
    assert mailed("ticket.closed", AGENT) == emails(REPORTER)
    # Only the new ticket goes to the queue; no other event to the assignee unless assigned.
    for event in ("ticket.comment_added", "ticket.status_changed", "ticket.closed"):
        assert mailed(event, OTHER, assignee=ASSIGNEE, comment="external") == emails(REPORTER)
    assert mailed("webhook.disabled", OTHER) == []
    assert mailed("ticket.deleted", OTHER) == []


def test_nobody_is_mailed_about_their_own_action_but_the_reporters_acknowledgement() -> None:
    # The reporter opening their ticket is acknowledged; an agent opening one (for the
    # reporter) is not mailed as part of the queue.
    assert mailed("ticket.created", REPORTER) == emails(REPORTER, ASSIGNEE, AGENT, OTHER)
    assert mailed("ticket.created", AGENT) == emails(REPORTER, ASSIGNEE, OTHER)
    # Assigning oneself, replying to one's own ticket, closing it oneself: no mail.
    assert mailed("ticket.assigned", ASSIGNEE, assignee=ASSIGNEE) == []
    assert mailed("ticket.comment_added", REPORTER, comment="external") == []
    assert mailed("ticket.status_changed", REPORTER) == []
    assert mailed("ticket.resolved", REPORTER) == []
    assert mailed("ticket.closed", REPORTER) == []
    # No actor (a system change): everyone the event names.
    assert mailed("ticket.closed", None) == emails(REPORTER)


def test_the_queue_is_its_address_or_the_agents_and_only_for_a_new_ticket() -> None:
    desk = Recipient("desk@example.com", "Acme queue", None)
    # The queue address is nobody's account: never the actor, always mailed.
    assert mailed("ticket.created", REPORTER, queue=[desk]) == emails(REPORTER, desk)
    assert mailed("ticket.created", AGENT, queue=[desk]) == emails(REPORTER, desk)
    assert mailed("ticket.created", REPORTER, queue=[]) == emails(REPORTER)
    # A reporter who cannot be mailed: the queue only.
    assert mailed("ticket.created", AGENT, reporter=None) == emails(ASSIGNEE, OTHER)
    assert mailed("ticket.assigned", OTHER, assignee=None) == []


def test_a_status_change_that_reaches_a_milestone_is_left_to_the_milestones_mail() -> None:
    assert mailed("ticket.status_changed", ASSIGNEE, to="resolved", milestone="resolved") == []
    assert mailed("ticket.status_changed", ASSIGNEE, to="closed", milestone="closed") == []
    assert mailed("ticket.status_changed", ASSIGNEE, to="pending") == emails(REPORTER)
    assert mailed("ticket.status_changed", ASSIGNEE, reporter=None) == []


def test_everyone_is_mailed_once_whatever_the_case_of_their_address() -> None:
    shouting = Recipient(REPORTER.email.upper(), "Rita again", uuid.uuid4())
    queue = [AGENT, shouting, Recipient(f" {AGENT.email.title()} ", "Otto", None)]
    assert mailed("ticket.created", REPORTER, queue=queue) == emails(REPORTER, AGENT)
    # The reporter is an agent too (in the queue): acknowledged, once.
    assert mailed("ticket.created", AGENT, reporter=AGENT) == emails(AGENT, ASSIGNEE, OTHER)
    # An address of nothing is nobody.
    blank = Recipient("", "Nobody", uuid.uuid4())
    assert mailed("ticket.created", REPORTER, queue=[blank, OTHER]) == emails(REPORTER, OTHER)


def test_internal_comments_reach_nobody() -> None:
    for actor in (ASSIGNEE, REPORTER, None):
        assert mailed("ticket.comment_added", actor, assignee=ASSIGNEE, comment="internal") == []
    assert mailed("ticket.comment_added", ASSIGNEE, comment=None) == []
    assert mailed("ticket.comment_added", ASSIGNEE, reporter=None, comment="external") == []
