"""Creating, reading, changing and listing tickets over HTTP."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI

from tests.sql import execute
from tests.support import TenantCtx, bearer
from tests.tickets.conftest import Desk, force_status


async def test_create_defaults_and_numbering(desk: Desk) -> None:
    first = await desk.open(description="The card reader rejects everything", fields={"floor": 3})
    assert first["number"] == "TKT-000001"
    assert first["status"] == "open" and first["status_category"] == "initial"
    assert first["priority"] == "HIGH"  # the catalog item's default
    assert first["type"] == "incident" and first["workflow"] == "itsm_default"
    assert first["requester"] == {"id": desk.requester.id, "name": "Rita Requester"}
    assert first["assignee"] is None and first["resolution"] is None
    assert first["fields"] == {"floor": 3} and first["version"] == 1
    second = await desk.open(by=desk.agent, catalog_item="itsm_service_request", priority="LOW")
    assert second["number"] == "TKT-000002" and second["priority"] == "LOW"
    # A requester files at the item's default: the priority is the agents' (as in PATCH).
    r = await desk.client.post(
        "/v1/tickets",
        json={"title": "Urgent!!", "catalog_item": "itsm_incident", "priority": "CRITICAL"},
        headers=desk.requester.headers,
    )
    assert r.status_code == 403 and r.json()["fields"] == ["priority"]


async def test_create_response_has_location_and_etag(desk: Desk) -> None:
    r = await desk.client.post(
        "/v1/tickets",
        json={"title": "x", "catalog_item": "incident"},
        headers=desk.requester.headers,
    )
    assert r.status_code == 201
    assert r.headers["location"] == f"/v1/tickets/{r.json()['id']}"
    assert r.headers["etag"] == '"1"'


async def test_create_refusals(desk: Desk) -> None:
    c, h = desk.client, desk.requester.headers
    bad_bodies = [
        {"catalog_item": "incident"},
        {"title": "", "catalog_item": "incident"},
        {"title": "x", "catalog_item": "nope"},
        {"title": "x", "catalog_item": "incident", "priority": "URGENT"},
        {"title": "x", "catalog_item": "incident", "status": "CLOSED"},
        {"title": "x", "catalog_item": "incident", "number": "TKT-000009"},
        {"title": "x", "catalog_item": "incident", "id": str(uuid.uuid4())},
        {"title": "x", "catalog_item": "incident", "version": 3},
        {"title": "x", "catalog_item": "incident", "fields": {"Bad Key": 1}},
        {"title": "x", "catalog_item": "incident", "fields": {"n": 10**30}},
        {"title": "x" * 301, "catalog_item": "incident"},
        {"title": "nul\u0000", "catalog_item": "incident"},
    ]
    for body in bad_bodies:
        r = await c.post("/v1/tickets", json=body, headers=h)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    # Filing for someone else is for agents.
    r = await c.post(
        "/v1/tickets",
        json={"title": "x", "catalog_item": "incident", "requester_id": desk.agent.id},
        headers=h,
    )
    assert r.status_code == 403
    # Nothing above took a number.
    assert (await desk.open())["number"] == "TKT-000001"


async def test_create_needs_the_permission_and_the_scope(desk: Desk) -> None:
    nobody = await desk.tenant.user()
    r = await desk.client.post(
        "/v1/tickets", json={"title": "x", "catalog_item": "incident"}, headers=nobody.headers
    )
    assert r.status_code == 403 and r.json()["required_permission"] == "tickets:create"
    read_only = await desk.tenant.key(desk.requester.id, ["tickets:read"])
    r = await desk.client.post(
        "/v1/tickets", json={"title": "x", "catalog_item": "incident"}, headers=bearer(read_only)
    )
    assert r.status_code == 403 and r.json()["required_scope"] == "tickets:write"


async def test_agent_files_on_behalf_of_a_requester(desk: Desk) -> None:
    ticket = await desk.open(by=desk.agent, requester_id=desk.requester.id)
    assert ticket["requester"]["id"] == desk.requester.id
    mine = (await desk.client.get("/v1/tickets", headers=desk.requester.headers)).json()["items"]
    assert [t["id"] for t in mine] == [ticket["id"]]
    r = await desk.client.post(
        "/v1/tickets",
        json={"title": "x", "catalog_item": "incident", "requester_id": str(uuid.uuid4())},
        headers=desk.agent.headers,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/requester_id"


async def test_get_by_id_or_number_with_etag(desk: Desk) -> None:
    ticket = await desk.open()
    for ref in (ticket["id"], ticket["number"]):
        r = await desk.client.get(f"/v1/tickets/{ref}", headers=desk.requester.headers)
        assert r.status_code == 200 and r.json() == ticket
        assert r.headers["etag"] == '"1"'
    r = await desk.client.get(
        f"/v1/tickets/{ticket['id']}", headers=desk.requester.headers | {"If-None-Match": '"1"'}
    )
    assert r.status_code == 304
    for ref in ("TKT-000999", "TKT-1", "TKT-0000001", "tkt-000001", "nonsense", str(uuid.uuid4())):
        r = await desk.client.get(f"/v1/tickets/{ref}", headers=desk.requester.headers)
        assert r.status_code == 404, ref
        assert r.json()["type"] == "/problems/not-found"


async def test_prefix_change_keeps_old_numbers(desk: Desk) -> None:
    old = await desk.open()
    r = await desk.client.patch(
        "/v1/tenant", json={"ticket_prefix": "OPS"}, headers=desk.admin.headers
    )
    assert r.status_code == 200
    new = await desk.open()
    assert old["number"] == "TKT-000001" and new["number"] == "OPS-000002"
    assert (await desk.client.get("/v1/tickets/TKT-000001", headers=desk.admin.headers)).json()[
        "id"
    ] == old["id"]
    assert (
        await desk.client.get("/v1/tickets/OPS-000001", headers=desk.admin.headers)
    ).status_code == 404


async def test_numbers_grow_a_digit_past_999999(desk: Desk, app: FastAPI) -> None:
    await execute(
        app,
        "UPDATE ticket_counters SET last_number = 999999 WHERE tenant_id = $1",
        args=(desk.tenant.id,),
    )
    ticket = await desk.open()
    assert ticket["number"] == "TKT-1000000"
    r = await desk.client.get("/v1/tickets/TKT-1000000", headers=desk.requester.headers)
    assert r.json()["id"] == ticket["id"]


async def test_patch_fields_title_priority_and_if_match(desk: Desk) -> None:
    ticket = await desk.open(fields={"floor": 3, "room": "B2"})
    url, h = f"/v1/tickets/{ticket['id']}", desk.agent.headers
    r = await desk.client.patch(
        url,
        json={"title": "Card reader", "priority": "CRITICAL", "fields": {"room": None, "seat": 4}},
        headers=h | {"If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["title"] == "Card reader" and body["priority"] == "CRITICAL"
    assert body["fields"] == {"floor": 3, "seat": 4}
    assert body["version"] == 2 and r.headers["etag"] == '"2"'
    r = await desk.client.patch(url, json={"title": "stale"}, headers=h | {"If-Match": '"1"'})
    assert r.status_code == 412 and r.json()["current_etag"] == '"2"'
    # Nothing changed: no new version.
    r = await desk.client.patch(url, json={"title": "Card reader"}, headers=h)
    assert r.json()["version"] == 2
    for body in (
        {"status": "closed"},
        {"number": "X-000001"},
        {"version": 9},
        {"created_at": "2020-01-01T00:00:00Z"},
        {"requester_id": desk.agent.id},
    ):
        assert (await desk.client.patch(url, json=body, headers=h)).status_code == 422, body
    events = (await desk.client.get(f"{url}/events", headers=h)).json()["items"]
    changed = {
        e["data"]["field"]: (e["data"]["old"], e["data"]["new"])
        for e in events
        if e["kind"] == "field_changed"
    }
    assert changed["title"] == ("Something is broken", "Card reader")
    assert changed["priority"] == ("HIGH", "CRITICAL")
    # Only the keys that changed are on the record (room removed, seat added).
    assert changed["fields"] == ({"room": "B2"}, {"seat": 4})


async def test_a_tickets_fields_are_bounded_once_merged(desk: Desk) -> None:
    # A review grew one ticket to 1.2 MB (and its events to 24 MB) with 20 requester PATCHes
    # of 50 keys each: the merged fields now stay within 100 keys and 32 KiB.
    ticket = await desk.open()
    url, h = f"/v1/tickets/{ticket['id']}", desk.requester.headers
    for batch in range(2):
        fields = {f"k{batch}_{i}": i for i in range(50)}
        r = await desk.client.patch(url, json={"fields": fields}, headers=h)
        assert r.status_code == 200, r.text
    r = await desk.client.patch(url, json={"fields": {"one_more": 1}}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/fields"
    # Removing keys is always possible; then there is room again.
    r = await desk.client.patch(url, json={"fields": {"k0_0": None}}, headers=h)
    assert r.status_code == 200
    r = await desk.client.patch(url, json={"fields": {"one_more": 1}}, headers=h)
    assert r.status_code == 200
    big = {f"b{i}": "x" * 1000 for i in range(40)}
    other = await desk.open()
    r = await desk.client.patch(f"/v1/tickets/{other['id']}", json={"fields": big}, headers=h)
    assert r.status_code == 422 and "bytes" in r.json()["detail"]
    r = await desk.client.post(
        "/v1/tickets",
        json={"title": "Big", "catalog_item": "itsm_incident", "fields": big},
        headers=h,
    )
    assert r.status_code == 422
    events = (await desk.client.get(f"{url}/events", headers=h)).json()["items"]
    sizes = [len(str(e["data"])) for e in events if e["kind"] == "field_changed"]
    assert max(sizes) < 2000  # each event holds its change, not the whole fields


async def test_requesters_edit_only_their_words(desk: Desk) -> None:
    ticket = await desk.open()
    url, h = f"/v1/tickets/{ticket['id']}", desk.requester.headers
    assert (
        await desk.client.patch(url, json={"description": "more detail"}, headers=h)
    ).status_code == 200
    for body in (
        {"priority": "LOW"},
        {"assignee_id": desk.agent.id},
        {"catalog_item": "itsm_service_request"},
    ):
        r = await desk.client.patch(url, json=body, headers=h)
        assert r.status_code == 403, body


async def test_assignment_needs_an_agent(desk: Desk) -> None:
    ticket = await desk.open()
    url = f"/v1/tickets/{ticket['id']}"
    r = await desk.client.patch(
        url, json={"assignee_id": desk.requester.id}, headers=desk.agent.headers
    )
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/assignee_id"
    r = await desk.client.patch(
        url, json={"assignee_id": desk.assignee.id}, headers=desk.agent.headers
    )
    assert r.json()["assignee"] == {"id": desk.assignee.id, "name": "Ada Assignee"}
    r = await desk.client.patch(url, json={"assignee_id": None}, headers=desk.agent.headers)
    assert r.json()["assignee"] is None
    events = (await desk.client.get(f"{url}/events", headers=desk.agent.headers)).json()["items"]
    assert [(e["data"]["old"], e["data"]["new"]) for e in events if e["kind"] == "assigned"] == [
        (None, desk.assignee.id),
        (desk.assignee.id, None),
    ]


async def test_moving_between_catalog_items_follows_the_status_maps(desk: Desk) -> None:
    ticket = await desk.open(catalog_item="incident")
    url, h = f"/v1/tickets/{ticket['id']}", desk.agent.headers
    # Same statuses in both workflows: the status is kept.
    r = await desk.client.patch(url, json={"catalog_item": "service_request"}, headers=h)
    assert r.status_code == 200
    assert (r.json()["workflow"], r.json()["type"], r.json()["status"]) == (
        "service_request",
        "service_request",
        "OPEN",
    )
    # itsm_default has no OPEN and no map says where it goes: refused, nothing changes.
    r = await desk.client.patch(
        url, json={"catalog_item": "itsm_incident", "title": "moved?"}, headers=h
    )
    assert r.status_code == 409
    body = r.json()
    assert body["type"] == "/problems/status-map-missing"
    assert (body["from_workflow"], body["to_workflow"], body["missing_status"]) == (
        "service_request",
        "itsm_default",
        "OPEN",
    )
    after = (await desk.client.get(url, headers=h)).json()
    assert after["title"] == "Something is broken" and after["workflow"] == "service_request"
    events = (await desk.client.get(f"{url}/events", headers=h)).json()["items"]
    moved = [e["data"] for e in events if e["kind"] == "moved"]
    assert moved == [
        {
            "from_catalog_item": "incident",
            "to_catalog_item": "service_request",
            "from_workflow": "incident_response",
            "to_workflow": "service_request",
            "from_status": "OPEN",
            "to_status": "OPEN",
        }
    ]


async def test_desk_users_see_only_their_own_tickets(desk: Desk) -> None:
    mine = await desk.open()
    other_requester = await desk.tenant.user("tickets:create")
    theirs = await desk.open(by=other_requester)
    listed = (await desk.client.get("/v1/tickets", headers=desk.requester.headers)).json()["items"]
    assert [t["id"] for t in listed] == [mine["id"]]
    assert (
        await desk.client.get(f"/v1/tickets/{theirs['id']}", headers=desk.requester.headers)
    ).status_code == 404
    queue = (await desk.client.get("/v1/tickets", headers=desk.agent.headers)).json()["items"]
    assert {t["id"] for t in queue} == {mine["id"], theirs["id"]}


async def test_list_filters_sorting_and_pages(desk: Desk, app: FastAPI) -> None:
    c, h = desk.client, desk.agent.headers
    # An agent files them for the requester: only agents set a priority.
    agent, rita = desk.agent, desk.requester.id
    a = await desk.open(agent, title="VPN drops every hour", priority="LOW", requester_id=rita)
    b = await desk.open(
        agent,
        title="Printer jams",
        catalog_item="itsm_service_request",
        priority="CRITICAL",
        requester_id=rita,
    )
    d = await desk.open(
        agent,
        title="Laptop will not boot",
        catalog_item="incident",
        priority="MEDIUM",
        requester_id=rita,
    )
    await desk.assign(b, desk.assignee)
    closed = await desk.open(title="Old VPN issue")
    await force_status(app, closed["id"], "closed", status_category="inactive")

    async def ids(**params: str | int | list[str]) -> list[str]:
        r = await c.get("/v1/tickets", params=params, headers=h)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["items"]]

    # Newest first; the closed (inactive) one is left out unless asked for.
    assert await ids() == [d["id"], b["id"], a["id"]]
    assert await ids(status_category=["inactive"]) == [closed["id"]]
    # b was started by its assignment (itsm_default's on_assign): active, not initial.
    assert set(await ids(status_category=["initial", "inactive"])) == {
        a["id"],
        d["id"],
        closed["id"],
    }
    assert await ids(status="closed") == [closed["id"]]
    assert await ids(q="vpn") == [a["id"]]
    assert set(await ids(q="vpn", status_category=["initial", "inactive"])) == {
        a["id"],
        closed["id"],
    }
    assert await ids(assignee=desk.assignee.id) == [b["id"]]
    assert await ids(assignee="none") == [d["id"], a["id"]]
    assert await ids(requester=desk.requester.id, priority=["LOW", "MEDIUM"]) == [d["id"], a["id"]]
    assert await ids(type="service_request") == [b["id"]]
    assert await ids(catalog_item="incident") == [d["id"]]
    assert await ids(sort="priority") == [a["id"], d["id"], b["id"]]
    assert await ids(sort="-priority") == [b["id"], d["id"], a["id"]]
    assert await ids(sort="created") == [a["id"], b["id"], d["id"]]
    me = (
        await c.get("/v1/tickets", params={"assignee": "me"}, headers=desk.assignee.headers)
    ).json()["items"]
    assert [t["id"] for t in me] == [b["id"]]
    created = (await c.get(f"/v1/tickets/{b['id']}", headers=h)).json()["created_at"]
    assert await ids(created_after=created, sort="created") == [b["id"], d["id"]]
    assert await ids(created_before=created, sort="created") == [a["id"]]
    # b was assigned after d was filed: the last one touched of the three.
    touched = (await c.get(f"/v1/tickets/{b['id']}", headers=h)).json()["updated_at"]
    assert await ids(updated_after=touched) == [b["id"]]
    assert await ids(updated_before=touched, sort="updated") == [a["id"], d["id"]]

    for sort in ("-created", "priority", "updated"):
        seen, cursor = [], None
        while True:
            params = {"limit": 1, "sort": sort, **({"cursor": cursor} if cursor else {})}
            page = (await c.get("/v1/tickets", params=params, headers=h)).json()
            seen += [t["id"] for t in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted([a["id"], b["id"], d["id"]]) and len(seen) == 3
    r = await c.get("/v1/tickets", params={"limit": 1}, headers=h)
    cursor = r.json()["next_cursor"]
    assert (
        await c.get("/v1/tickets", params={"cursor": cursor, "sort": "priority"}, headers=h)
    ).status_code == 422
    for bad in (
        {"limit": 0},
        {"limit": 101},
        {"status_category": "dormant"},
        {"assignee": "someone"},
        {"sort": "title"},
        {"cursor": "%%%"},
        # PostgreSQL text cannot hold NUL: refused as input, never passed on (was a 500).
        {"status": "\x00"},
        {"type": "a\x00"},
        {"catalog_item": "\x00"},
        {"q": "vpn\x00"},
    ):
        r = await c.get("/v1/tickets", params=bad, headers=h)
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"] == "application/problem+json"


async def test_catalog_and_workflows(client: httpx.AsyncClient, tenant: TenantCtx) -> None:
    h = tenant.headers
    items = (await client.get("/v1/catalog", headers=h)).json()
    debug = next(i for i in items if i["name"] == "platform_debug")
    assert debug == {
        "name": "platform_debug",
        "display_name": "Platform debug request",
        "type": "debug",
        "workflow": "platform_request",
        "default_priority": "HIGH",
        "has_form": True,
    }
    names = [w["name"] for w in (await client.get("/v1/workflows", headers=h)).json()]
    assert {"incident_response", "itsm_default", "platform_request"} <= set(names)
    w = (await client.get("/v1/workflows/incident_response", headers=h)).json()
    assert [s["name"] for s in w["statuses"]] == ["OPEN", "IN_PROGRESS", "RESOLVED", "CLOSED"]
    assert {
        (a["from"][0], a["to"], tuple(a["roles"])) for a in w["actions"] if a["from"] != [""]
    } >= {("RESOLVED", "CLOSED", ("requester",))}
    mermaid = await client.get("/v1/workflows/incident_response/graph", headers=h)
    assert mermaid.status_code == 200 and mermaid.text.startswith("stateDiagram-v2")
    dot = await client.get(
        "/v1/workflows/incident_response/graph", params={"format": "dot"}, headers=h
    )
    assert dot.text.lstrip().startswith("digraph")
    assert (await client.get("/v1/workflows/nope", headers=h)).status_code == 404
    assert (
        await client.get(
            "/v1/workflows/incident_response/graph", params={"format": "png"}, headers=h
        )
    ).status_code == 422


async def test_an_agents_read_only_key_sees_the_queue_but_cannot_write(desk: Desk) -> None:
    """Reads follow what the user is, writes what the key allows: an integration reading the
    queue with a tickets:read key sees what its agent sees, internal notes included."""
    ticket = await desk.open()
    await desk.client.post(
        f"/v1/tickets/{ticket['id']}/comments",
        json={"body": "note", "visibility": "internal"},
        headers=desk.agent.headers,
    )
    reader = bearer(await desk.tenant.key(desk.agent.id, ["tickets:read"]))
    listed = (await desk.client.get("/v1/tickets", headers=reader)).json()["items"]
    assert [t["id"] for t in listed] == [ticket["id"]]
    comments = (
        await desk.client.get(f"/v1/tickets/{ticket['id']}/comments", headers=reader)
    ).json()["items"]
    assert [c["visibility"] for c in comments] == ["internal"]
    r = await desk.client.patch(
        f"/v1/tickets/{ticket['id']}", json={"priority": "LOW"}, headers=reader
    )
    assert r.status_code == 403 and r.json()["required_scope"] == "tickets:write"
    options = (
        await desk.client.get(f"/v1/tickets/{ticket['id']}/transitions", headers=reader)
    ).json()["items"]
    assert options and not any(o["allowed"] for o in options)
