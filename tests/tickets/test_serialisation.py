"""Ticket JSON is written from rows as dicts (flowdesk.tickets.facts.ticket_json), not through
the TicketOut model that documents it: every ticket the API writes must be exactly what
TicketOut would have written for it (names, types, UTC times ending in Z, ids as strings)."""

from __future__ import annotations

from typing import Any

from flowdesk.tickets.schemas import TicketOut
from tests.tickets.conftest import Desk


def assert_documented(ticket: dict[str, Any]) -> None:
    as_model = TicketOut.model_validate(ticket)
    assert as_model.model_dump(mode="json") == ticket
    assert set(ticket) == set(TicketOut.model_fields)


async def test_every_ticket_answer_is_what_ticket_out_writes(desk: Desk) -> None:
    c, h = desk.client, desk.agent.headers
    created = await desk.open(
        fields={"floor": 3, "asset": "LT-0042", "tags": ["vpn", "remote"], "urgent": True}
    )
    assert_documented(created)
    assert created["assignee"] is None and created["fields"]["tags"] == ["vpn", "remote"]
    assert created["created_at"].endswith("Z")

    assigned = await desk.assign(created, desk.assignee)
    assert_documented(assigned)
    assert assigned["assignee"] == {"id": desk.assignee.id, "name": "Ada Assignee"}

    r = await desk.move(assigned, desk.assignee, action="resolve")
    assert r.status_code == 200, r.text
    assert_documented(r.json())

    for url in (f"/v1/tickets/{created['id']}", f"/v1/tickets/{created['number']}"):
        r = await c.get(url, headers=h)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert r.headers["etag"] == f'"{r.json()["version"]}"'
        assert_documented(r.json())

    page = (await c.get("/v1/tickets", headers=h)).json()
    assert set(page) == {"items", "next_cursor"}
    assert [t["id"] for t in page["items"]] == [created["id"]]
    for item in page["items"]:
        assert_documented(item)


async def test_if_none_match_star_and_weak_tags(desk: Desk) -> None:
    ticket = await desk.open()
    url, h = f"/v1/tickets/{ticket['id']}", desk.requester.headers
    for tag in ('"1"', 'W/"1"', '"7", "1"', "*"):
        r = await desk.client.get(url, headers={**h, "If-None-Match": tag})
        assert r.status_code == 304, tag
        assert r.headers["etag"] == '"1"' and r.content == b""
    r = await desk.client.get(url, headers={**h, "If-None-Match": '"2"'})
    assert r.status_code == 200
    r = await desk.client.get(url, headers={**h, "If-None-Match": '"1"' * 200})
    assert r.status_code == 422
    assert r.json()["errors"][0]["pointer"] == "/header/If-None-Match"
