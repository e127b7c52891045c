"""Seed 004's lifecycle as written: closed is final, the reporter confirms or rejects a
resolution, an unanswered resolution closes itself, taking an open ticket starts it, and the
moments users report on (started, resolved, closed) are kept."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI

from flowdesk.tickets.timers import preview, run_due
from tests.cli.test_commands import run
from tests.sql import execute, fetchval
from tests.support import problem_type, runtime
from tests.tickets.conftest import Desk


async def _resolved(desk: Desk) -> dict[str, Any]:
    ticket = await desk.open()
    await desk.assign(ticket, desk.assignee)
    r = await desk.move(ticket, desk.assignee, action="resolve", comment="Reinstalled the VPN")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_every_write_is_refused_on_a_closed_ticket(desk: Desk) -> None:
    c = desk.client
    other = await desk.open()
    ticket = await _resolved(desk)
    closed = await desk.move(ticket, desk.agent, action="close")
    assert closed.json()["status"] == "closed"
    base = f"/v1/tickets/{ticket['id']}"
    agent, requester = desk.agent.headers, desk.requester.headers
    refused = [
        ("PATCH", base, {"title": "Changed"}, agent),
        ("PATCH", base, {"title": "Changed"}, requester),
        ("PATCH", base, {"assignee_id": desk.agent.id}, agent),
        ("PATCH", base, {"assignee_id": None}, desk.admin.headers),
        ("POST", f"{base}/comments", {"body": "One more thing"}, requester),
        ("POST", f"{base}/comments", {"body": "Note", "visibility": "internal"}, agent),
        ("POST", f"{base}/links", {"kind": "relates_to", "target": other["number"]}, agent),
        ("POST", f"{base}/approvals", {"name": "infra"}, agent),
        ("POST", f"{base}/transitions", {"to": "in_progress"}, agent),
        ("POST", f"{base}/transitions", {"action": "reopen"}, desk.admin.headers),
    ]
    version = closed.json()["version"]
    for method, url, body, headers in refused:
        r = await c.request(method, url, json=body, headers=headers)
        assert r.status_code == 409, (method, url, r.text)
        assert problem_type(r) == "ticket-closed"
    after = (await c.get(base, headers=agent)).json()
    assert (after["version"], after["title"]) == (version, ticket["title"])
    # A cancelled ITSM ticket is just as final.
    cancelled = await desk.open()
    await desk.move(cancelled, desk.agent, action="cancel")
    r = await c.post(
        f"/v1/tickets/{cancelled['id']}/comments", json={"body": "hello?"}, headers=requester
    )
    assert r.status_code == 409 and problem_type(r) == "ticket-closed"
    # A link *to* a closed ticket from an open one is fine (e.g. "duplicate of").
    r = await c.post(
        f"/v1/tickets/{other['id']}/links",
        json={"kind": "relates_to", "target": ticket["number"]},
        headers=agent,
    )
    assert r.status_code == 201, r.text


async def test_only_an_admin_reset_moves_a_final_ticket(desk: Desk) -> None:
    ticket = await _resolved(desk)
    await desk.move(ticket, desk.agent, action="close")
    url = f"/v1/tickets/{ticket['id']}/transitions"
    options = (await desk.client.get(url, headers=desk.agent.headers)).json()["items"]
    assert [(o["action"], o["allowed"]) for o in options] == [("_reset", False)]
    r = await desk.move(ticket, desk.agent, action="_reset")
    assert r.status_code == 409 and problem_type(r) == "transition-refused"
    r = await desk.move(ticket, desk.admin, action="_reset")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["closed_at"], r.json()["resolved_at"]) == (
        "open",
        None,
        None,
    )


async def test_the_reporter_confirms_or_rejects_the_resolution(desk: Desk) -> None:
    # Confirm: the reporter closes it.
    ticket = await _resolved(desk)
    for someone in (desk.agent, desk.assignee, desk.admin):
        r = await desk.move(ticket, someone, action="confirm")
        assert r.status_code == 409 and problem_type(r) == "transition-refused"
        assert r.json()["reasons"][0]["code"] == "role"
    options = {
        o["action"]: o["allowed"]
        for o in (
            await desk.client.get(
                f"/v1/tickets/{ticket['id']}/transitions", headers=desk.requester.headers
            )
        ).json()["items"]
    }
    assert options["confirm"] and options["reject"] and not options["close"]
    r = await desk.move(ticket, desk.requester, action="confirm")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed" and r.json()["closed_at"] is not None

    # Reject: back to in progress, and only with a reason the agents can read.
    ticket = await _resolved(desk)
    r = await desk.move(ticket, desk.agent, action="reject", comment="Still broken")
    assert r.status_code == 409 and r.json()["reasons"][0]["code"] == "role"
    r = await desk.move(ticket, desk.requester, action="reject")
    assert r.status_code == 409
    assert {x["code"] for x in r.json()["reasons"]} == {"input"}
    r = await desk.move(ticket, desk.requester, action="reject", comment="Still drops hourly")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["resolved_at"]) == ("in_progress", None)
    comments = (
        await desk.client.get(f"/v1/tickets/{ticket['id']}/comments", headers=desk.agent.headers)
    ).json()["items"]
    assert [(m["body"], m["visibility"]) for m in comments][-1] == (
        "Still drops hourly",
        "external",
    )
    # Another requester cannot even see it.
    stranger = await desk.tenant.user("tickets:create")
    r = await desk.move(ticket, stranger, action="confirm")
    assert r.status_code == 404


async def test_an_unanswered_resolution_closes_itself_after_seven_days(
    desk: Desk, app: FastAPI
) -> None:
    db, catalog = runtime(app).db, runtime(app).catalog
    ticket = await _resolved(desk)
    answered = await _resolved(desk)
    await desk.move(answered, desk.requester, action="reject", comment="No")
    due = await fetchval(app, "SELECT timer_due_at FROM tickets WHERE id = $1::uuid", ticket["id"])
    resolved_at = datetime.fromisoformat(ticket["resolved_at"])
    assert isinstance(due, datetime) and abs(due - resolved_at - timedelta(days=7)) < timedelta(
        seconds=1
    )
    # Rejected: its timer went with the status.
    assert (
        await fetchval(app, "SELECT timer_due_at FROM tickets WHERE id = $1::uuid", answered["id"])
        is None
    )

    # Six days on, nothing is due; a dry run past seven days says what would move.
    assert [m for m in await run_due(db, catalog, resolved_at + timedelta(days=6))] == []
    later = resolved_at + timedelta(days=7, seconds=1)
    planned = [m for m in await preview(db, catalog, later) if str(m.ticket_id) == ticket["id"]]
    assert [(m.action, m.to_status) for m in planned] == [("close", "closed")]
    still = await desk.client.get(f"/v1/tickets/{ticket['id']}", headers=desk.agent.headers)
    assert still.json()["status"] == "resolved"

    # Two processes ticking at once move it once.
    results = await asyncio.gather(run_due(db, catalog, later), run_due(db, catalog, later))
    moved = [m for batch in results for m in batch if str(m.ticket_id) == ticket["id"]]
    assert [(m.action, m.from_status, m.to_status) for m in moved] == [
        ("close", "resolved", "closed")
    ]
    closed = (
        await desk.client.get(f"/v1/tickets/{ticket['id']}", headers=desk.agent.headers)
    ).json()
    assert closed["status"] == "closed" and closed["closed_at"] is not None
    events = (
        await desk.client.get(f"/v1/tickets/{ticket['id']}/events", headers=desk.agent.headers)
    ).json()["items"]
    last = events[-1]
    assert last["kind"] == "transitioned" and last["actor"] is None
    assert last["data"]["automatic"] is True and last["data"]["action"] == "close"
    # The reporter is told it closed, as for any close.
    topics = await fetchval(
        app,
        "SELECT array_agg(topic ORDER BY id) FROM outbox WHERE payload->>'ticket_id' = $1",
        ticket["id"],
    )
    assert isinstance(topics, list) and topics[-2:] == ["ticket.status_changed", "ticket.closed"]
    # Closed, it has no timer left: a later tick leaves it alone.
    assert all(str(m.ticket_id) != ticket["id"] for m in await run_due(db, catalog, later))


async def test_taking_an_open_ticket_starts_it(desk: Desk) -> None:
    ticket = await desk.open()
    assert (ticket["status"], ticket["started_at"]) == ("open", None)
    assigned = await desk.assign(ticket, desk.assignee)
    assert assigned["status"] == "in_progress" and assigned["started_at"] is not None
    assert assigned["version"] == ticket["version"] + 1  # one write
    # Unassigning an in-progress ticket does not move it back.
    r = await desk.client.patch(
        f"/v1/tickets/{ticket['id']}", json={"assignee_id": None}, headers=desk.admin.headers
    )
    assert (r.json()["status"], r.json()["assignee"]) == ("in_progress", None)
    # Assigning it again moves nothing either: only an open ticket starts.
    again = await desk.assign(ticket, desk.agent)
    assert again["status"] == "in_progress"
    assert again["started_at"] == assigned["started_at"]


async def test_the_lifecycle_moments_are_kept_and_filterable(desk: Desk) -> None:
    c, h = desk.client, desk.agent.headers
    before = datetime.now(UTC) - timedelta(seconds=5)
    untouched = await desk.open(title="Untouched")
    resolved = await _resolved(desk)
    closed = await _resolved(desk)
    closed = (await desk.move(closed, desk.requester, action="confirm")).json()
    assert untouched["started_at"] is None and untouched["resolved_at"] is None
    assert resolved["started_at"] is not None and resolved["resolved_at"] is not None
    assert resolved["closed_at"] is None
    assert closed["closed_at"] is not None and closed["resolved_at"] == resolved_at_of(closed)

    async def titles(**params: Any) -> list[str]:
        r = await c.get(
            "/v1/tickets",
            params={"status_category": ["initial", "active", "inactive"], **params},
            headers=h,
        )
        assert r.status_code == 200, r.text
        return sorted(t["id"] for t in r.json()["items"])

    since = before.isoformat()
    assert await titles(started_after=since) == sorted([resolved["id"], closed["id"]])
    assert await titles(resolved_after=since) == sorted([resolved["id"], closed["id"]])
    assert await titles(closed_after=since) == [closed["id"]]
    assert await titles(closed_before=since) == []
    r = await c.get("/v1/tickets", params={"closed_after": "12"}, headers=h)
    assert r.status_code == 422


def resolved_at_of(ticket: dict[str, Any]) -> str:
    """A confirmed ticket keeps the moment it was resolved (the close does not move it)."""
    assert ticket["resolved_at"] is not None and ticket["resolved_at"] <= ticket["closed_at"]
    return str(ticket["resolved_at"])


async def test_timers_tick_from_the_command_line(desk: Desk, database_url: str) -> None:
    ticket = await _resolved(desk)
    at = (datetime.fromisoformat(ticket["resolved_at"]) + timedelta(days=8)).isoformat()
    dry = run(database_url, "timers", "tick", "--at", at, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    planned = [m for m in json.loads(dry.stdout)["moved"] if m["ticket_id"] == ticket["id"]]
    assert planned == [
        {"ticket_id": ticket["id"], "action": "close", "from": "resolved", "to": "closed"}
    ]
    url = f"/v1/tickets/{ticket['id']}"
    assert (await desk.client.get(url, headers=desk.agent.headers)).json()["status"] == "resolved"
    done = run(database_url, "timers", "tick", "--at", at)
    assert done.returncode == 0, done.stderr
    assert (await desk.client.get(url, headers=desk.agent.headers)).json()["status"] == "closed"
    bad = run(database_url, "timers", "tick", "--at", "yesterday")
    assert bad.returncode != 0 and "ISO 8601" in bad.stderr


async def test_the_tick_without_a_time_uses_the_databases_now(desk: Desk, app: FastAPI) -> None:
    # What the periodic job runs: a timer already past is due, one ahead is not.
    ticket, later = await _resolved(desk), await _resolved(desk)
    await execute(
        app,
        "UPDATE tickets SET timer_due_at = now() - interval '1 minute' WHERE id = $1::uuid",
        args=(ticket["id"],),
    )
    moved = await run_due(runtime(app).db, runtime(app).catalog)
    assert [str(m.ticket_id) for m in moved] == [ticket["id"]]
    h = desk.agent.headers
    assert (await desk.client.get(f"/v1/tickets/{ticket['id']}", headers=h)).json()[
        "status"
    ] == "closed"
    assert (await desk.client.get(f"/v1/tickets/{later['id']}", headers=h)).json()[
        "status"
    ] == "resolved"
