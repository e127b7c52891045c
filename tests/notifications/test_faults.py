"""The relay under faults: an SMTP server that refuses some mail or is down for a while (every
mail still arrives once, by Message-ID), and the retention purge."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI

from flowdesk.config import Settings
from flowdesk.notifications import relay
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
