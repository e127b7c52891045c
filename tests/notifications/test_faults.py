"""The relay under faults: an SMTP server that refuses some mail or is down for a while (every
mail still arrives once, by Message-ID), the retention purge, the back-off policy, and who is
mailed about what (the pure recipient rules of seed 004)."""

from __future__ import annotations

import asyncio
import statistics
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI

from flowdesk.config import Settings
from flowdesk.notifications import relay
from flowdesk.notifications.recipients import Recipient, mail_recipients
from flowdesk.notifications.relay import RetryPolicy
from tests.notifications.conftest import PATIENCE, settled
from tests.notifications.smtp import SmtpServer
from tests.sql import execute, fetch, fetchval
from tests.support import runtime
from tests.tickets.conftest import Desk

# A ticket opened by the desk's requester is mailed to four: the requester's acknowledgement
# and the queue (the assignee, the other agent and the admin).
MAILS_PER_TICKET = 4


async def eventually(condition: Callable[[], Awaitable[bool]]) -> None:
    """Wait until the relay (in the app's lifespan) makes the database `condition` true."""
    # Polled: what it waits for happens in the database, not on an Event.
    async with asyncio.timeout(PATIENCE):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.05)


async def message_ids(app: FastAPI, tenant_id: uuid.UUID) -> list[str]:
    rows = await fetch(app, "SELECT message_id FROM deliveries WHERE tenant_id = $1", tenant_id)
    return [str(r["message_id"]) for r in rows]


async def states(app: FastAPI, tenant_id: uuid.UUID) -> Counter[str]:
    rows = await fetch(app, "SELECT state FROM deliveries WHERE tenant_id = $1", tenant_id)
    return Counter(str(r["state"]) for r in rows)


def assert_each_arrived_once(mailer: SmtpServer, ids: list[str]) -> None:
    arrived = Counter(mailer.handler.message_ids())
    assert ids and len(set(ids)) == len(ids)
    assert {i: arrived[i] for i in ids} == dict.fromkeys(ids, 1)


# --- the SMTP server misbehaves ----------------------------------------------------------------


async def test_mail_refused_now_and_then_arrives_once_each(
    desk: Desk, mailer: SmtpServer, app: FastAPI
) -> None:
    handler = mailer.handler
    refused_before = handler.refused
    tickets = 10
    try:
        # 451 for a share of the DATA commands; the refused mails are tried again. Should
        # chance refuse none (0.8^40), the next round refuses more.
        for share in (0.2, 0.4, 0.6):
            handler.refuse_share = share
            for i in range(tickets):
                await desk.open(title=f"Flaky relay {share} #{i}")
            await settled(app, desk.tenant.id)
            if handler.refused > refused_before:
                break
    finally:
        handler.refuse_share = 0.0
    assert handler.refused > refused_before

    ids = await message_ids(app, desk.tenant.id)
    assert len(ids) >= tickets * MAILS_PER_TICKET
    assert await states(app, desk.tenant.id) == {"sent": len(ids)}
    assert_each_arrived_once(mailer, ids)
    # The refused ones were tried more than once, and their error cleared once sent.
    retried = await fetch(
        app,
        "SELECT last_error FROM deliveries WHERE tenant_id = $1 AND attempts > 1",
        desk.tenant.id,
    )
    assert retried and all(r["last_error"] is None for r in retried)


async def test_mail_waits_while_the_server_is_down_and_arrives_once_when_it_is_back(
    desk: Desk, mailer: SmtpServer, app: FastAPI
) -> None:
    tenant_id = desk.tenant.id
    await mailer.stop()
    try:
        await desk.open(title="Sent while the mail server is down")
        await desk.open(title="Also sent while it is down")

        async def kept_trying() -> bool:
            rows = await fetch(
                app,
                "SELECT state, attempts, last_error FROM deliveries WHERE tenant_id = $1",
                tenant_id,
            )
            return len(rows) == 2 * MAILS_PER_TICKET and all(
                r["state"] == "pending"
                and r["attempts"] >= 2
                and "connection refused" in (r["last_error"] or "")
                for r in rows
            )

        await eventually(kept_trying)
    finally:
        # Back on the same port, for this test and the module's others.
        await mailer.start()

    await settled(app, tenant_id)
    ids = await message_ids(app, tenant_id)
    assert await states(app, tenant_id) == {"sent": len(ids)}
    assert_each_arrived_once(mailer, ids)


# --- retention -------------------------------------------------------------------------------


async def test_the_purge_deletes_what_is_settled_past_retention_in_batches(
    desk: Desk,
    app: FastAPI,
    notify_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant_id = desk.tenant.id
    old, kept_pending, recent = [await desk.open(title=f"Purge {i}") for i in range(3)]
    await settled(app, tenant_id)
    assert notify_settings.notification_retention_days == 30

    def ticket_is(ticket: Any) -> tuple[object, ...]:
        return (tenant_id, uuid.UUID(ticket["id"]))

    # `old`: its four mails settled (sent, failed, dropped) 40 days ago, and its message
    # relayed then. `kept_pending`: relayed 40 days ago too, but one of its mails is still
    # pending (retried tomorrow), however old its last update. `recent`: one mail settled
    # 29 days ago, within the retention.
    await execute(
        app,
        "UPDATE deliveries SET updated_at = now() - interval '40 days' "
        "WHERE tenant_id = $1 AND ticket_id = $2",
        args=ticket_is(old),
    )
    await execute(
        app,
        "UPDATE deliveries SET state = 'failed' WHERE id = (SELECT id FROM deliveries "
        "WHERE tenant_id = $1 AND ticket_id = $2 ORDER BY id LIMIT 1)",
        "UPDATE deliveries SET state = 'dropped' WHERE id = (SELECT id FROM deliveries "
        "WHERE tenant_id = $1 AND ticket_id = $2 AND state = 'sent' ORDER BY id LIMIT 1)",
        args=ticket_is(old),
    )
    await execute(
        app,
        "UPDATE deliveries SET updated_at = now() - interval '40 days' "
        "WHERE tenant_id = $1 AND ticket_id = $2",
        "UPDATE deliveries SET state = 'pending', next_attempt_at = now() + interval '1 day' "
        "WHERE id = (SELECT id FROM deliveries WHERE tenant_id = $1 AND ticket_id = $2 "
        "ORDER BY id LIMIT 1)",
        args=ticket_is(kept_pending),
    )
    await execute(
        app,
        "UPDATE deliveries SET updated_at = now() - interval '29 days' "
        "WHERE id = (SELECT id FROM deliveries WHERE tenant_id = $1 AND ticket_id = $2 "
        "ORDER BY id LIMIT 1)",
        args=ticket_is(recent),
    )
    for ticket in (old, kept_pending):
        await execute(
            app,
            "UPDATE outbox SET delivered_at = now() - interval '40 days' "
            "WHERE tenant_id = $1 AND payload->>'ticket_id' = $2",
            args=(tenant_id, ticket["id"]),
        )

    async def left() -> tuple[object, object, object]:
        deliveries = await fetchval(
            app, "SELECT count(*) FROM deliveries WHERE tenant_id = $1", tenant_id
        )
        pending = await fetchval(
            app,
            "SELECT count(*) FROM deliveries WHERE tenant_id = $1 AND state = 'pending'",
            tenant_id,
        )
        messages = await fetchval(
            app, "SELECT count(*) FROM outbox WHERE tenant_id = $1", tenant_id
        )
        return deliveries, pending, messages

    assert await left() == (3 * MAILS_PER_TICKET, 1, 3)
    # Small batches, so that each kind takes several (and the last one a short one).
    monkeypatch.setattr(relay, "PURGE_BATCH", 2)
    # `old`'s four and `kept_pending`'s three settled mails, and the two old messages.
    purged = await relay.purge(runtime(app).db, notify_settings)
    assert purged == MAILS_PER_TICKET + (MAILS_PER_TICKET - 1) + 2
    assert await left() == (1 + MAILS_PER_TICKET, 1, 1)
    remaining = await fetch(
        app, "SELECT ticket_id, state FROM deliveries WHERE tenant_id = $1", tenant_id
    )
    assert Counter((str(r["ticket_id"]), r["state"]) for r in remaining) == {
        (kept_pending["id"], "pending"): 1,
        (recent["id"], "sent"): MAILS_PER_TICKET,
    }
    # Nothing more is old enough.
    assert await relay.purge(runtime(app).db, notify_settings) == 0


# --- the back-off policy ---------------------------------------------------------------------


def test_the_back_off_doubles_up_to_the_cap_within_the_jitter() -> None:
    policy = RetryPolicy(30, 3600)
    for attempts in range(0, 12):
        raw = min(30 * 2 ** max(attempts - 1, 0), 3600)
        samples = [policy.delay(attempts) for _ in range(500)]
        assert all(raw * 0.8 <= s <= raw * 1.2 for s in samples), raw
        # Jitter around the doubled value, spread over most of the ±20%.
        assert abs(statistics.mean(samples) - raw) <= raw * 0.04
        assert max(samples) - min(samples) >= raw * 0.3
    # Fractions of a second when the base is (tests); no overflow, however many attempts.
    assert 0.04 <= RetryPolicy(0.05, 0.2).delay(1) <= 0.06
    assert 48 <= RetryPolicy(1, 60).delay(5000) <= 72


def retry_times(policy: RetryPolicy, window: float) -> list[float]:
    """When each attempt of a delivery that always fails is made, as the relay schedules them:
    the first at once, then after each the policy's delay, until a retry would come after the
    delivery's deadline (it fails then)."""
    times = [0.0]
    while True:
        next_at = times[-1] + policy.delay(len(times))
        if next_at > window:
            return times
        times.append(next_at)


def test_the_default_back_off_makes_about_thirty_attempts_in_a_day() -> None:
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    policy = RetryPolicy(
        defaults["delivery_retry_base_seconds"], defaults["delivery_retry_max_seconds"]
    )
    assert (policy.base_seconds, policy.max_seconds) == (30, 3600)
    window = defaults["delivery_retry_hours"] * 3600
    counts = [len(retry_times(policy, window)) for _ in range(300)]
    # Without jitter: 0, 30, 90, ... 3810 s (8 attempts), then hourly up to 86400 s (22).
    assert 28.5 <= statistics.mean(counts) <= 31.5
    # The jitter's extremes bound it: all delays 20% longer (26) or shorter (36).
    assert all(26 <= c <= 36 for c in counts)


# --- recipients (seed 004) --------------------------------------------------------------------


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
