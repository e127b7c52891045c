"""Comments (internal notes versus external replies), the audit trail, links and approvals."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from flowdesk.tickets import activity
from tests.sql import fetch
from tests.tickets.conftest import Desk


async def test_requesters_never_see_internal_notes(desk: Desk) -> None:
    ticket = await desk.open()
    url = f"/v1/tickets/{ticket['id']}"
    c = desk.client
    r = await c.post(
        f"{url}/comments",
        json={"body": "Looks like the switch in B2", "visibility": "internal"},
        headers=desk.agent.headers,
    )
    assert r.status_code == 201 and r.json()["visibility"] == "internal"
    r = await c.post(
        f"{url}/comments",
        json={"body": "We are on it", "visibility": "external"},
        headers=desk.agent.headers,
    )
    assert r.status_code == 201
    r = await c.post(f"{url}/comments", json={"body": "Thanks!"}, headers=desk.requester.headers)
    assert r.status_code == 201 and r.json()["visibility"] == "external"
    r = await c.post(
        f"{url}/comments",
        json={"body": "psst", "visibility": "internal"},
        headers=desk.requester.headers,
    )
    assert r.status_code == 403
    # An internal note through a transition is refused to a requester too.
    r = await c.post(
        f"{url}/comments",
        json={"body": "", "visibility": "external"},
        headers=desk.requester.headers,
    )
    assert r.status_code == 422

    as_requester = (await c.get(f"{url}/comments", headers=desk.requester.headers)).json()["items"]
    assert [x["body"] for x in as_requester] == ["We are on it", "Thanks!"]
    as_agent = (await c.get(f"{url}/comments", headers=desk.agent.headers)).json()["items"]
    assert [x["body"] for x in as_agent] == [
        "Looks like the switch in B2",
        "We are on it",
        "Thanks!",
    ]
    assert as_agent[0]["author"]["name"] == "Otto Other"

    requester_events = (await c.get(f"{url}/events", headers=desk.requester.headers)).json()[
        "items"
    ]
    agent_events = (await c.get(f"{url}/events", headers=desk.agent.headers)).json()["items"]
    assert [e["data"]["visibility"] for e in requester_events if e["kind"] == "commented"] == [
        "external",
        "external",
    ]
    assert [e["data"]["visibility"] for e in agent_events if e["kind"] == "commented"] == [
        "internal",
        "external",
        "external",
    ]


async def test_audit_trail_records_every_change_with_actor(desk: Desk) -> None:
    ticket = await desk.open()
    url = f"/v1/tickets/{ticket['id']}"
    await desk.assign(ticket, desk.assignee)
    await desk.client.patch(url, json={"priority": "LOW"}, headers=desk.agent.headers)
    await desk.move(
        ticket, desk.assignee, action="resolve", comment="Fixed", comment_visibility="internal"
    )
    events = (await desk.client.get(f"{url}/events", headers=desk.agent.headers)).json()["items"]
    assert [e["kind"] for e in events] == [
        "created",
        "assigned",
        "transitioned",
        "field_changed",
        "transitioned",
        "commented",
    ]
    actors = [e["actor"]["id"] for e in events]
    assert actors == [
        desk.requester.id,
        desk.admin.id,
        desk.admin.id,
        desk.agent.id,
        desk.assignee.id,
        desk.assignee.id,
    ]
    # Assigning the open ticket started it (itsm_default's on_assign), in the same write.
    assert events[2]["data"] == {"action": "on_assign", "from": "open", "to": "in_progress"}
    assert events[4]["data"] == {"action": "resolve", "from": "in_progress", "to": "resolved"}
    # Pages of the trail.
    page = (
        await desk.client.get(f"{url}/events", params={"limit": 2}, headers=desk.agent.headers)
    ).json()
    rest = (
        await desk.client.get(
            f"{url}/events",
            params={"limit": 10, "cursor": page["next_cursor"]},
            headers=desk.agent.headers,
        )
    ).json()
    assert [e["id"] for e in page["items"] + rest["items"]] == [e["id"] for e in events]
    assert rest["next_cursor"] is None


async def test_links_and_approvals(desk: Desk) -> None:
    a, b = await desk.open(), await desk.open()
    c, h = desk.client, desk.agent.headers
    url = f"/v1/tickets/{a['id']}"
    r = await c.post(f"{url}/links", json={"kind": "blocked_by", "target": b["id"]}, headers=h)
    assert r.status_code == 201
    link = r.json()
    assert (
        await c.post(f"{url}/links", json={"kind": "blocked_by", "target": b["number"]}, headers=h)
    ).status_code == 409
    assert (
        await c.post(f"{url}/links", json={"kind": "blocked_by", "target": a["id"]}, headers=h)
    ).status_code == 422
    assert (
        await c.post(f"{url}/links", json={"kind": "blocked_by", "target": "TKT-999999"}, headers=h)
    ).status_code == 422
    assert (
        await c.post(f"{url}/links", json={"kind": "Blocked By", "target": b["id"]}, headers=h)
    ).status_code == 422
    r = await c.post(
        f"{url}/links",
        json={"kind": "relates_to", "target": b["id"]},
        headers=desk.requester.headers,
    )
    assert r.status_code == 403
    assert [
        x["kind"] for x in (await c.get(f"{url}/links", headers=desk.requester.headers)).json()
    ] == ["blocked_by"]
    assert (await c.delete(f"{url}/links/{link['id']}", headers=h)).status_code == 204
    assert (await c.delete(f"{url}/links/{link['id']}", headers=h)).status_code == 404
    assert (await c.get(f"{url}/links", headers=h)).json() == []

    assert (
        await c.post(f"{url}/approvals", json={"name": "infra"}, headers=desk.requester.headers)
    ).status_code == 403
    # The `infra` approval is given by the group "INFRA approvers" (its policy in the catalog;
    # tests/tickets/test_approval_policies.py walks the rules).
    await desk.join("INFRA approvers", desk.agent)
    r = await c.post(f"{url}/approvals", json={"name": "infra"}, headers=h)
    assert r.status_code == 201 and r.json()["approver"]["id"] == desk.agent.id
    assert [x["name"] for x in (await c.get(f"{url}/approvals", headers=h)).json()] == ["infra"]
    kinds = [e["kind"] for e in (await c.get(f"{url}/events", headers=h)).json()["items"]]
    assert kinds == ["created", "linked", "unlinked", "approved"]


async def test_outbox_messages_are_written_with_the_change(desk: Desk, app: FastAPI) -> None:

    ticket = await desk.open()
    await desk.assign(ticket, desk.assignee)  # starts the open ticket (on_assign)
    await desk.move(ticket, desk.agent, action="resolve")
    await desk.client.post(
        f"/v1/tickets/{ticket['id']}/comments", json={"body": "Fixed?"}, headers=desk.agent.headers
    )
    await desk.move(ticket, desk.agent, action="close")
    rows = await fetch(
        app,
        "SELECT topic, payload FROM outbox WHERE payload->>'ticket_id' = $1 ORDER BY id",
        ticket["id"],
    )
    topics = [r[0] for r in rows]
    assert topics == [
        "ticket.created",
        "ticket.assigned",
        "ticket.status_changed",
        "ticket.status_changed",
        "ticket.resolved",
        "ticket.comment_added",
        "ticket.status_changed",
        "ticket.closed",
    ]
    assert rows[1][1]["assignee_id"] == desk.assignee.id
    assert rows[5][1]["visibility"] == "external"


async def test_a_requester_sees_no_number_of_a_linked_ticket_they_cannot_read(
    desk: Desk,
) -> None:
    mine = await desk.open()
    also_mine = await desk.open()
    theirs = await desk.open(desk.agent, title="An agent's own ticket")
    url = f"/v1/tickets/{mine['id']}/links"
    for target in (also_mine, theirs):
        r = await desk.client.post(
            url, json={"kind": "relates_to", "target": target["number"]}, headers=desk.agent.headers
        )
        assert r.status_code == 201, r.text
    as_agent = (await desk.client.get(url, headers=desk.agent.headers)).json()
    assert [link["target_number"] for link in as_agent] == [also_mine["number"], theirs["number"]]
    as_requester = (await desk.client.get(url, headers=desk.requester.headers)).json()
    assert [link["target_number"] for link in as_requester] == [also_mine["number"], None]


async def test_comments_per_minute_and_links_per_ticket_are_bounded(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16, case 1: every growing collection of a ticket is bounded, so the lowest
    privilege cannot grow a ticket and its trail without end."""
    monkeypatch.setattr(activity, "COMMENTS_PER_MINUTE", 3)
    monkeypatch.setattr(activity, "LINKS_MAX", 2)
    c = desk.client
    ticket = await desk.open()
    url = f"/v1/tickets/{ticket['id']}/comments"
    for n in range(3):
        body = {"body": f"Still broken ({n})", "visibility": "external"}
        assert (await c.post(url, json=body, headers=desk.requester.headers)).status_code == 201
    r = await c.post(
        url, json={"body": "And again", "visibility": "external"}, headers=desk.requester.headers
    )
    assert r.status_code == 429 and r.headers["retry-after"] == "60", r.text
    # Another author is not held back by the first.
    r = await c.post(
        url, json={"body": "On it", "visibility": "external"}, headers=desk.agent.headers
    )
    assert r.status_code == 201, r.text
    comments = (await c.get(url, headers=desk.agent.headers)).json()["items"]
    assert len(comments) == 4

    others = [await desk.open() for _ in range(3)]
    links = f"/v1/tickets/{ticket['id']}/links"
    for other in others[:2]:
        body = {"kind": "relates_to", "target": other["number"]}
        assert (await c.post(links, json=body, headers=desk.agent.headers)).status_code == 201
    body = {"kind": "relates_to", "target": others[2]["number"]}
    r = await c.post(links, json=body, headers=desk.agent.headers)
    assert r.status_code == 409 and "at most 2 links" in r.json()["detail"], r.text
    assert len((await c.get(links, headers=desk.agent.headers)).json()) == 2
