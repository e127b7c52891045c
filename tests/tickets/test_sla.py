"""Seed 003's SLAs, shipped as declared policies on platform_request, over HTTP: the 48-hour
review (24x7, stopped when the request leaves Submitted), the 72-hour silence rule in Waiting
on Customer (a reminder at 48 hours, the workflow's own cancel at 72, by the system, saying
why), a requester's reply stopping it; the clocks in the ticket's JSON, in list filters and
sorts; exactly-once ticks. Time moves through the tick's `at`, never by sleeping."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from flowdesk.config import Settings
from flowdesk.tickets.sla_tick import preview, run_due
from tests.sql import execute, fetch, fetchval
from tests.support import runtime
from tests.tickets.conftest import Desk, catalog_client, platform_answers


async def _request(desk: Desk, item: str = "platform_change") -> dict[str, Any]:
    body = {"catalog_item": item, "answers": platform_answers(item)}
    r = await desk.client.post("/v1/tickets", json=body, headers=desk.requester.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _get(desk: Desk, ticket: dict[str, Any]) -> dict[str, Any]:
    r = await desk.client.get(f"/v1/tickets/{ticket['id']}", headers=desk.agent.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _clock(ticket: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in ticket["sla"] if c["name"] == name]
    return dict(found)


async def _events(desk: Desk, ticket: dict[str, Any], *kinds: str) -> list[dict[str, Any]]:
    r = await desk.client.get(f"/v1/tickets/{ticket['id']}/events", headers=desk.agent.headers)
    return [e for e in r.json()["items"] if not kinds or e["kind"] in kinds]


async def _topics(app: FastAPI, ticket: dict[str, Any]) -> list[str]:
    found = await fetchval(
        app,
        "SELECT coalesce(array_agg(topic ORDER BY id), '{}') FROM outbox "
        "WHERE payload->>'ticket_id' = $1 AND topic LIKE 'ticket.sla_%'",
        ticket["id"],
    )
    assert isinstance(found, list)
    return found


def _mine(fired: list[Any], ticket: dict[str, Any]) -> list[Any]:
    return [f for f in fired if str(f.ticket_id) == ticket["id"]]


def _at(value: str, **delta: float) -> datetime:
    return datetime.fromisoformat(value) + timedelta(**delta)


async def _waiting(desk: Desk) -> dict[str, Any]:
    ticket = await _request(desk)
    r = await desk.move(ticket, desk.assignee, action="start_review")
    assert r.status_code == 200, r.text
    r = await desk.move(
        ticket, desk.assignee, action="wait_on_customer", comment="Which environment?"
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_the_review_clock_starts_on_submission_and_shows_in_the_json(desk: Desk) -> None:
    ticket = await _request(desk)
    review = _clock(ticket, "review")
    assert review["state"] == "running" and review["started_at"] == ticket["created_at"]
    # 48 hours on the wall clock ("including off hours"), at risk after 36.
    assert _at(review["due_at"]) - _at(ticket["created_at"]) == timedelta(hours=48)
    assert _at(review["warn_at"]) - _at(ticket["created_at"]) == timedelta(hours=36)
    assert 48 * 3600 - 60 < review["remaining_seconds"] <= 48 * 3600
    assert review["overdue_seconds"] is None and review["at_risk"] is False
    # The same on a read, and nothing for a workflow without policies.
    assert _clock(await _get(desk, ticket), "review")["due_at"] == review["due_at"]
    assert (await desk.open())["sla"] == []


async def test_the_review_is_met_when_the_request_leaves_submitted(
    desk: Desk, app: FastAPI
) -> None:
    db, catalog = runtime(app).db, runtime(app).catalog
    reviewed, forgotten = await _request(desk), await _request(desk)
    r = await desk.move(reviewed, desk.assignee, action="start_review")
    assert r.status_code == 200, r.text
    met = _clock(r.json(), "review")
    assert met["state"] == "met" and met["stopped_at"] is not None
    assert met["remaining_seconds"] is None and met["overdue_seconds"] is None

    created = forgotten["created_at"]
    # Nothing before 36 hours; the warning at 36, once; the breach at 48, escalated.
    assert _mine(await run_due(db, catalog, _at(created, hours=35)), forgotten) == []
    warned = _mine(await run_due(db, catalog, _at(created, hours=36, seconds=1)), forgotten)
    assert [f.marks for f in warned] == [("warning",)]
    assert _mine(await run_due(db, catalog, _at(created, hours=36, seconds=2)), forgotten) == []
    breached = _mine(await run_due(db, catalog, _at(created, hours=48, seconds=1)), forgotten)
    assert [f.marks for f in breached] == [("breach",)] and breached[0].action is None
    assert breached[0].recipients == ({"kind": "group", "name": "Platform on-call"},)
    later = await run_due(db, catalog, _at(created, hours=96))
    assert _mine(later, forgotten) == [] and _mine(later, reviewed) == []

    (warning, breach) = await _events(desk, forgotten, "sla_warning", "sla_breached")
    assert warning["actor"] is None and warning["data"]["name"] == "review"
    assert breach["data"]["escalated_to"] == {"kind": "group", "name": "Platform on-call"}
    assert _at(breach["data"]["due_at"]) == _at(_clock(forgotten, "review")["due_at"])
    assert await _topics(app, forgotten) == ["ticket.sla_warning", "ticket.sla_breached"]
    assert await _topics(app, reviewed) == []
    assert await _events(desk, reviewed, "sla_warning", "sla_breached") == []
    shown = _clock(await _get(desk, forgotten), "review")
    assert shown["state"] == "breached" and shown["breached_at"] == shown["due_at"]
    assert shown["remaining_seconds"] is None and shown["overdue_seconds"] >= 0
    # Left Submitted after its breach: it stays breached, and stops counting.
    r = await desk.move(forgotten, desk.assignee, action="start_review")
    stopped = _clock(r.json(), "review")
    assert stopped["state"] == "breached" and stopped["stopped_at"] is not None


async def test_a_clock_stopped_late_before_any_tick_reports_its_breach_once(
    desk: Desk, app: FastAPI
) -> None:
    db, catalog = runtime(app).db, runtime(app).catalog
    ticket = await _request(desk)
    await execute(
        app,
        "UPDATE sla_clocks SET due_at = now() - interval '1 minute', "
        "next_action_at = now() + interval '1 day' WHERE ticket_id = $1::uuid",
        args=(ticket["id"],),
    )
    r = await desk.move(ticket, desk.assignee, action="start_review")
    late = _clock(r.json(), "review")
    assert late["state"] == "breached" and late["overdue_seconds"] >= 60
    fired = _mine(await run_due(db, catalog), ticket)
    assert [f.marks for f in fired] == [("breach",)]
    assert _mine(await run_due(db, catalog, _at(ticket["created_at"], days=30)), ticket) == []
    (breach,) = await _events(desk, ticket, "sla_breached", "sla_warning")
    assert breach["data"]["late"] is True


async def test_silence_in_waiting_on_customer_reminds_then_cancels(
    desk: Desk, app: FastAPI
) -> None:
    db, catalog = runtime(app).db, runtime(app).catalog
    ticket = await _waiting(desk)
    waiting = _clock(ticket, "customer_reply")
    assert waiting["state"] == "running" and waiting["warn_at"] is None
    assert _at(waiting["due_at"]) - _at(waiting["started_at"]) == timedelta(hours=72)
    since = waiting["started_at"]

    assert _mine(await run_due(db, catalog, _at(since, hours=47)), ticket) == []
    reminded = _mine(await run_due(db, catalog, _at(since, hours=48, seconds=1)), ticket)
    assert [(f.marks, f.recipients) for f in reminded] == [
        (("reminder",), ({"kind": "requester"},))
    ]
    assert _mine(await run_due(db, catalog, _at(since, hours=50)), ticket) == []
    (reminder,) = await _events(desk, ticket, "sla_reminder")
    assert reminder["data"]["to"] == {"kind": "requester"} and reminder["actor"] is None
    assert (await _get(desk, ticket))["status"] == "WAITING_ON_CUSTOMER"

    cancelled = _mine(await run_due(db, catalog, _at(since, hours=72, seconds=1)), ticket)
    assert [(f.marks, f.action, f.to_status) for f in cancelled] == [
        (("breach",), "cancel", "DONE")
    ]
    done = await _get(desk, ticket)
    assert done["status"] == "DONE" and done["resolution"] == "canceled"
    clock = _clock(done, "customer_reply")
    assert clock["state"] == "breached" and clock["stopped_at"] is not None
    moved = (await _events(desk, ticket, "transitioned"))[-1]
    assert moved["actor"] is None and moved["data"]["automatic"] is True
    assert moved["data"]["action"] == "cancel" and moved["data"]["resolution"] == "canceled"
    assert "72 hours" in moved["data"]["note"] and moved["data"]["reason"].startswith("SLA")
    # The requester sees why, as an external event of their own ticket.
    mine = await desk.client.get(
        f"/v1/tickets/{ticket['id']}/events", headers=desk.requester.headers
    )
    assert any(e["data"].get("note") for e in mine.json()["items"] if e["kind"] == "transitioned")
    topics = await fetchval(
        app,
        "SELECT array_agg(topic ORDER BY id) FROM outbox WHERE payload->>'ticket_id' = $1",
        ticket["id"],
    )
    assert isinstance(topics, list)
    assert topics[-4:] == [
        "ticket.sla_reminder",
        "ticket.sla_breached",
        "ticket.status_changed",
        "ticket.closed",
    ]
    assert _mine(await run_due(db, catalog, _at(since, days=30)), ticket) == []


async def test_the_requesters_reply_stops_the_clock_and_returns_the_request(
    desk: Desk, app: FastAPI
) -> None:
    db, catalog = runtime(app).db, runtime(app).catalog
    ticket = await _waiting(desk)
    since = _clock(ticket, "customer_reply")["started_at"]
    # An agent's note or reply neither moves it nor stops the clock.
    r = await desk.client.post(
        f"/v1/tickets/{ticket['id']}/comments",
        json={"body": "Any news?", "visibility": "external"},
        headers=desk.agent.headers,
    )
    assert r.status_code == 201, r.text
    still = await _get(desk, ticket)
    assert still["status"] == "WAITING_ON_CUSTOMER"
    assert _clock(still, "customer_reply")["state"] == "running"

    r = await desk.client.post(
        f"/v1/tickets/{ticket['id']}/comments",
        json={"body": "Production, please.", "visibility": "external"},
        headers=desk.requester.headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["author"]["id"] == desk.requester.id
    back = await _get(desk, ticket)
    assert back["status"] == "REVIEW"  # `on_reply: {WAITING_ON_CUSTOMER: return}`
    met = _clock(back, "customer_reply")
    assert met["state"] == "met" and met["stopped_at"] is not None
    assert _mine(await run_due(db, catalog, _at(since, hours=80)), ticket) == []
    assert await _events(desk, ticket, "sla_reminder", "sla_breached") == []

    # Waiting again starts a fresh 72 hours.
    r = await desk.move(ticket, desk.assignee, action="wait_on_customer", comment="And the port?")
    again = _clock(r.json(), "customer_reply")
    assert again["state"] == "running" and again["started_at"] > since


async def test_a_reply_stops_a_clock_without_moving_the_ticket(
    desk: Desk, settings: Settings, tmp_path: Path
) -> None:
    values = """
sla_policies:
  - name: customer_reply
    workflow: platform_request
    start: [WAITING_ON_CUSTOMER]
    stop: {leaving: [WAITING_ON_CUSTOMER], events: [requester_reply]}
    target: 72h
  - name: first_response
    workflow: platform_request
    catalog_items: [platform_debug]
    start: [SUBMITTED]
    stop: {events: [agent_reply]}
    target: 4h
workflows:
  - name: platform_request
    extends: platform_request
    on_reply: {}
"""
    async with catalog_client(settings, tmp_path, values) as client:
        desk.client = client
        waiting = await _waiting(desk)
        r = await client.post(
            f"/v1/tickets/{waiting['id']}/comments",
            json={"body": "Production.", "visibility": "external"},
            headers=desk.requester.headers,
        )
        assert r.status_code == 201, r.text
        assert r.json()["body"] == "Production." and r.json()["author"]["name"] == "Rita Requester"
        now = await _get(desk, waiting)
        assert now["status"] == "WAITING_ON_CUSTOMER"
        assert _clock(now, "customer_reply")["state"] == "met"
        assert now["version"] == waiting["version"] + 1

        # Only the debug item has a first response clock; an agent's internal note does not
        # stop it, their external reply does.
        assert [c["name"] for c in (await _request(desk))["sla"]] == ["review"]
        debug = await _request(desk, "platform_debug")
        assert [c["name"] for c in debug["sla"]] == ["first_response", "review"]
        for visibility, state in (("internal", "running"), ("external", "met")):
            r = await client.post(
                f"/v1/tickets/{debug['id']}/comments",
                json={"body": "Looking", "visibility": visibility},
                headers=desk.agent.headers,
            )
            assert r.status_code == 201, r.text
            assert _clock(await _get(desk, debug), "first_response")["state"] == state
        # A reply given with a transition is a reply too.
        other = await _request(desk, "platform_debug")
        r = await desk.move(other, desk.agent, action="start_review", comment="On it")
        assert r.status_code == 200, r.text
        assert _clock(r.json(), "first_response")["state"] == "met"


async def test_clocks_pause_and_resume_on_a_business_calendar(
    desk: Desk, settings: Settings, tmp_path: Path
) -> None:
    values = """
calendars:
  - {name: office, timezone: Europe/London, hours: "09:00-17:00"}
sla_policies:
  - name: resolution
    workflow: platform_request
    start: [SUBMITTED]
    pause: [WAITING_ON_CUSTOMER, BLOCKED]
    target: 16h
    calendar: office
"""
    async with catalog_client(settings, tmp_path, values) as client:
        app = client.app  # type: ignore[attr-defined]
        desk.client = client
        ticket = await _request(desk)
        running = _clock(ticket, "resolution")
        assert running["state"] == "running" and running["due_at"] is not None
        # Sixteen working hours: two working days at least, however the week falls.
        assert _at(running["due_at"]) - _at(running["started_at"]) >= timedelta(hours=40)
        # It has counted five working hours when it pauses.
        await execute(
            app,
            "UPDATE sla_clocks SET elapsed_seconds = 18000 "
            "WHERE ticket_id = $1::uuid AND name = 'resolution'",
            args=(ticket["id"],),
        )
        await desk.move(ticket, desk.assignee, action="start_review")
        r = await desk.move(ticket, desk.assignee, action="wait_on_customer", comment="Which?")
        paused = _clock(r.json(), "resolution")
        assert paused["state"] == "paused" and paused["due_at"] is None
        assert 11 * 3600 - 60 <= paused["remaining_seconds"] <= 11 * 3600
        (row,) = await fetch(
            app,
            "SELECT next_action_at FROM sla_clocks "
            "WHERE ticket_id = $1::uuid AND name = 'resolution'",
            ticket["id"],
        )
        assert row["next_action_at"] is None  # a paused clock costs the tick nothing
        r = await desk.move(ticket, desk.assignee, action="resume")
        resumed = _clock(r.json(), "resolution")
        assert resumed["state"] == "running" and resumed["due_at"] is not None
        # Eleven working hours left: past the next working day's end at least.
        assert _at(resumed["due_at"]) - _at(resumed["started_at"]) >= timedelta(hours=11)
        # Done stops every clock.
        r = await desk.move(ticket, desk.assignee, action="cancel", comment="Not needed")
        assert _clock(r.json(), "resolution")["state"] == "met"


async def test_two_ticks_at_once_do_each_mark_once(desk: Desk, app: FastAPI) -> None:
    db, catalog = runtime(app).db, runtime(app).catalog
    tickets = [await _waiting(desk) for _ in range(6)]
    at = _at(max(_clock(t, "customer_reply")["started_at"] for t in tickets), hours=72, seconds=1)
    dry = await preview(db, catalog, at)
    assert {str(f.ticket_id) for f in dry} >= {t["id"] for t in tickets}
    # The dry run changed nothing.
    for t in tickets:
        assert await _events(desk, t, "sla_reminder", "sla_breached") == []
    results = await asyncio.gather(*(run_due(db, catalog, at) for _ in range(3)))
    for t in tickets:
        mine = [f for batch in results for f in _mine(batch, t)]
        assert [(f.marks, f.action) for f in mine] == [(("reminder", "breach"), "cancel")]
        assert len(await _events(desk, t, "sla_reminder")) == 1
        assert len(await _events(desk, t, "sla_breached")) == 1
        assert (await _get(desk, t))["status"] == "DONE"


async def test_lists_filter_on_sla_state_and_sort_by_the_nearest_due_time(
    desk: Desk, app: FastAPI
) -> None:
    ok, risky, late, other = [await _request(desk) for _ in range(4)]
    plain = await desk.open()
    hour = timedelta(hours=1)
    for ticket, warn, due in ((risky, -hour, hour), (late, -3 * hour, -hour)):
        await execute(
            app,
            "UPDATE sla_clocks SET warn_at = now() + $2::interval, "
            "due_at = now() + $3::interval WHERE ticket_id = $1::uuid",
            args=(ticket["id"], warn, due),
        )
    h = desk.agent.headers

    async def ids(**params: Any) -> list[str]:
        r = await desk.client.get("/v1/tickets", params=params, headers=h)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["items"]]

    mine = {ok["id"], risky["id"], late["id"], other["id"], plain["id"]}
    assert [i for i in await ids(sla_state="breached") if i in mine] == [late["id"]]
    assert [i for i in await ids(sla_state="at_risk") if i in mine] == [risky["id"]]
    shown = _clock(await _get(desk, risky), "review")
    assert shown["at_risk"] is True and shown["state"] == "running"
    assert _clock(await _get(desk, late), "review")["state"] == "breached"
    r = await desk.client.get(
        "/v1/tickets/counts", params={"group_by": "status", "sla_state": "breached"}, headers=h
    )
    assert r.status_code == 200 and r.json()["total"] == 1

    ordered = [i for i in await ids(sort="sla_due", limit=100) if i in mine]
    assert ordered[:2] == [late["id"], risky["id"]]
    assert ordered[-1] == plain["id"]  # no clock: last
    # Page by page, one at a time, the same order.
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"sort": "sla_due", "limit": 1}
        if cursor:
            params["cursor"] = cursor
        r = await desk.client.get("/v1/tickets", params=params, headers=h)
        assert r.status_code == 200, r.text
        seen += [t["id"] for t in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert [i for i in seen if i in mine] == ordered
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize(
    "cursor",
    [
        "WyJzbGFfZHVlIiwgMSwgIngiXQ",  # ["sla_due", 1, "x"]
        "WyJzbGFfZHVlIiwieWVzdGVyZGF5IiwiMDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwIl0",
        "WyItY3JlYXRlZCIsIjIwMjYtMDEtMDFUMDA6MDA6MDBaIiwiMDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwIl0",
        "bm90IGpzb24",
    ],
)
async def test_a_forged_sla_cursor_is_a_422(desk: Desk, cursor: str) -> None:
    r = await desk.client.get(
        "/v1/tickets",
        params={"sort": "sla_due", "cursor": cursor},
        headers=desk.agent.headers,
    )
    assert r.status_code == 422, r.text
