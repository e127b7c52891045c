"""Seed 004's asset integration: the registry the asset system feeds, tickets filed about an
asset ("Report issue"), the asset's Tickets history, the delete rule and the two flags."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import Operator, TenantCtx, problem_type
from tests.tickets.conftest import Desk


async def _asset(desk: Desk, ref: str = "AS-1001", **body: Any) -> dict[str, Any]:
    payload = {"external_ref": ref, "name": "ThinkPad T14", "type": "laptop", "tag": "LT-42"}
    r = await desk.client.post("/v1/assets", json=payload | body, headers=desk.agent.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_the_registry_is_fed_by_the_asset_system(desk: Desk) -> None:
    c, h = desk.client, desk.agent.headers
    laptop = await _asset(desk, attributes={"cpu": "i7", "ram_gb": 16})
    assert laptop["attributes"] == {"cpu": "i7", "ram_gb": 16}
    r = await c.post(
        "/v1/assets", json={"external_ref": "AS-1001", "name": "x", "type": "y"}, headers=h
    )
    assert r.status_code == 409, r.text
    # Sync by the asset system's own ids: created, then replaced.
    r = await c.put(
        "/v1/assets/by-ref/AS-2002", json={"name": "HP LaserJet", "type": "printer"}, headers=h
    )
    assert r.status_code == 201, r.text
    printer = r.json()
    r = await c.put(
        "/v1/assets/by-ref/AS-2002",
        json={"name": "HP LaserJet 4", "type": "printer", "tag": "PR-7"},
        headers=h,
    )
    assert r.status_code == 200 and r.json()["id"] == printer["id"]
    assert (r.json()["name"], r.json()["tag"]) == ("HP LaserJet 4", "PR-7")
    # PATCH merges attributes; null removes one.
    r = await c.patch(
        f"/v1/assets/{laptop['id']}",
        json={"attributes": {"ram_gb": 32, "cpu": None}, "tag": None},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["attributes"], r.json()["tag"]) == ({"ram_gb": 32}, None)
    r = await c.patch(f"/v1/assets/{laptop['id']}", json={"external_ref": "AS-2002"}, headers=h)
    assert r.status_code == 409
    # Listing and search.
    r = await c.get("/v1/assets", params={"q": "laserjet"}, headers=h)
    assert [a["id"] for a in r.json()["items"]] == [printer["id"]]
    r = await c.get("/v1/assets", params={"type": "laptop"}, headers=h)
    assert [a["id"] for a in r.json()["items"]] == [laptop["id"]]
    first = (await c.get("/v1/assets", params={"limit": 1}, headers=h)).json()
    rest = (
        await c.get("/v1/assets", params={"limit": 1, "cursor": first["next_cursor"]}, headers=h)
    ).json()
    assert [a["id"] for a in first["items"] + rest["items"]] == [laptop["id"], printer["id"]]
    # Movements.
    url = f"/v1/assets/{laptop['id']}/movements"
    moves = [
        {"from_location": "Stock", "to_location": "Desk 4.12", "moved_at": "2026-11-01T09:00:00Z"},
        {
            "from_location": "Desk 4.12",
            "to_location": "Repair",
            "moved_at": "2026-11-20T09:00:00Z",
            "note": "Screen flickers",
            "external_ref": "MV-9",
        },
    ]
    for move in moves:
        r = await c.post(url, json=move, headers=h)
        assert r.status_code == 201, r.text
    r = await c.post(url, json=moves[1], headers=h)
    assert r.status_code == 409  # the same external movement twice
    listed = (await c.get(url, headers=h)).json()["items"]
    assert [m["to_location"] for m in listed] == ["Repair", "Desk 4.12"]  # newest first
    r = await c.post(url, json={"moved_at": 12}, headers=h)
    assert r.status_code == 422


async def test_the_registry_is_the_agents(desk: Desk, other_tenant: TenantCtx) -> None:
    c = desk.client
    asset = await _asset(desk)
    requester = desk.requester.headers
    r = await c.post(
        "/v1/assets", json={"external_ref": "R-1", "name": "n", "type": "t"}, headers=requester
    )
    assert r.status_code == 403
    assert (await c.get("/v1/assets", headers=requester)).status_code == 403
    assert (await c.get(f"/v1/assets/{asset['id']}", headers=requester)).status_code == 404
    r = await c.patch(f"/v1/assets/{asset['id']}", json={"name": "x"}, headers=requester)
    assert r.status_code == 403
    assert (await c.delete(f"/v1/assets/{asset['id']}", headers=requester)).status_code == 403
    # The tenant's admin reads it; another tenant's admin does not find it.
    r = await c.get(f"/v1/assets/{asset['id']}", headers=desk.admin.headers)
    assert r.status_code == 200
    r = await c.get(f"/v1/assets/{asset['id']}", headers=other_tenant.headers)
    assert r.status_code == 404


async def test_report_issue_links_both_ways(desk: Desk) -> None:
    c = desk.client
    asset = await _asset(desk)
    r = await c.post(
        f"/v1/assets/{asset['id']}/tickets",
        json={"title": "Screen flickers", "catalog_item": "itsm_incident"},
        headers=desk.requester.headers,
    )
    assert r.status_code == 201, r.text
    reported = r.json()
    assert reported["asset"] == {
        "id": asset["id"],
        "external_ref": "AS-1001",
        "tag": "LT-42",
        "name": "ThinkPad T14",
        "type": "laptop",
        "deleted": False,
    }
    assert r.headers["location"] == f"/v1/tickets/{reported['id']}"
    # POST /v1/tickets takes the asset (and a movement, which names its asset) too.
    move = (
        await c.post(
            f"/v1/assets/{asset['id']}/movements",
            json={"to_location": "Desk 4.12", "moved_at": "2026-11-01T09:00:00Z"},
            headers=desk.agent.headers,
        )
    ).json()
    r = await c.post(
        "/v1/tickets",
        json={
            "title": "Arrived broken",
            "catalog_item": "itsm_incident",
            "movement_id": move["id"],
        },
        headers=desk.requester.headers,
    )
    assert r.status_code == 201, r.text
    moved = r.json()
    assert moved["asset"]["id"] == asset["id"]
    assert moved["movement"]["id"] == move["id"]
    assert moved["movement"]["to_location"] == "Desk 4.12"
    # Someone else's ticket about the same asset.
    theirs = await desk.open(desk.agent, title="Battery swelling", asset_id=asset["id"])

    history = f"/v1/assets/{asset['id']}/tickets"
    agents = (await c.get(history, headers=desk.agent.headers)).json()["items"]
    assert [t["id"] for t in agents] == [theirs["id"], moved["id"], reported["id"]]
    # A requester sees the asset of their own tickets, never other tickets through it.
    mine = (await c.get(history, headers=desk.requester.headers)).json()["items"]
    assert [t["id"] for t in mine] == [moved["id"], reported["id"]]
    r = await c.get(f"/v1/assets/{asset['id']}", headers=desk.requester.headers)
    assert r.status_code == 200 and r.json()["id"] == asset["id"]
    stranger = await desk.tenant.user("tickets:create")
    assert (await c.get(history, headers=stranger.headers)).status_code == 404
    # Closed tickets stay in the history.
    await desk.move(theirs, desk.agent, action="cancel")
    agents = (await c.get(history, headers=desk.agent.headers)).json()["items"]
    assert theirs["id"] in [t["id"] for t in agents]

    # Bad links are refused and write nothing.
    other = await _asset(desk, "AS-3003")
    for body, pointer in (
        ({"asset_id": "00000000-0000-4000-8000-000000000000"}, "/asset_id"),
        ({"movement_id": "00000000-0000-4000-8000-000000000000"}, "/movement_id"),
        ({"asset_id": other["id"], "movement_id": move["id"]}, "/movement_id"),
    ):
        r = await c.post(
            "/v1/tickets",
            json={"title": "x", "catalog_item": "itsm_incident", **body},
            headers=desk.requester.headers,
        )
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["pointer"] == pointer


async def test_an_asset_with_open_tickets_cannot_be_deleted(desk: Desk) -> None:
    c, h = desk.client, desk.agent.headers
    asset = await _asset(desk)
    first = await desk.open(asset_id=asset["id"])
    second = await desk.open(asset_id=asset["id"])
    r = await c.delete(f"/v1/assets/{asset['id']}", headers=h)
    assert r.status_code == 409 and problem_type(r) == "asset-has-open-tickets"
    assert r.json()["open_tickets"] == 2
    await desk.move(first, desk.agent, action="cancel")
    r = await c.delete(f"/v1/assets/{asset['id']}", headers=h)
    assert r.status_code == 409 and r.json()["open_tickets"] == 1
    await desk.assign(second, desk.assignee)
    await desk.move(second, desk.assignee, action="resolve")
    r = await c.delete(f"/v1/assets/{asset['id']}", headers=h)
    assert r.status_code == 409  # resolved is still active: awaiting the reporter
    await desk.move(second, desk.requester, action="confirm")
    assert (await c.delete(f"/v1/assets/{asset['id']}", headers=h)).status_code == 204
    assert (await c.get(f"/v1/assets/{asset['id']}", headers=h)).status_code == 404
    # The tickets keep a record of what they were linked to.
    kept = (await c.get(f"/v1/tickets/{first['id']}", headers=h)).json()["asset"]
    assert (kept["external_ref"], kept["deleted"]) == ("AS-1001", True)
    # A deleted asset takes no new tickets; its reference is free for the asset system.
    r = await c.post(
        "/v1/tickets",
        json={"title": "x", "catalog_item": "itsm_incident", "asset_id": asset["id"]},
        headers=desk.requester.headers,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["detail"] == "deleted"
    assert (await _asset(desk))["id"] != asset["id"]


@pytest.mark.parametrize("flag", ["asset_integration", "movement_link"])
async def test_the_flags_ignore_links_while_off(desk: Desk, operator: Operator, flag: str) -> None:
    c = desk.client
    asset = await _asset(desk)
    move = (
        await c.post(
            f"/v1/assets/{asset['id']}/movements",
            json={"to_location": "Desk", "moved_at": "2026-11-01T09:00:00Z"},
            headers=desk.agent.headers,
        )
    ).json()
    links = {"asset_id": asset["id"], "movement_id": move["id"]}
    kept = await desk.open(**links)  # filed while both flags are on
    assert kept["asset"] is not None and kept["movement"] is not None

    await operator.flags(desk.tenant.slug, **{flag: False})
    ignored = await desk.open(**links)
    field = "asset" if flag == "asset_integration" else "movement"
    other = "movement" if flag == "asset_integration" else "asset"
    # Off: not stored, not shown; the other link is untouched.
    assert ignored[field] is None and ignored[other] is not None
    shown = (await c.get(f"/v1/tickets/{kept['id']}", headers=desk.agent.headers)).json()
    assert shown[field] is None and shown[other] is not None
    listed = (await c.get("/v1/tickets", headers=desk.agent.headers)).json()["items"]
    assert all(t[field] is None for t in listed)
    history = f"/v1/assets/{asset['id']}/tickets"
    r = await c.get(history, headers=desk.agent.headers)
    report = await c.post(
        f"/v1/assets/{asset['id']}/tickets",
        json={"title": "x", "catalog_item": "itsm_incident"},
        headers=desk.requester.headers,
    )
    if flag == "asset_integration":
        for refused in (r, report):
            assert refused.status_code == 403 and problem_type(refused) == "feature-disabled"
            assert refused.json()["flag"] == "asset_integration"
    else:
        assert r.status_code == 200 and report.status_code == 201

    # On again: links stored while it was on show again; those ignored stay absent.
    await operator.flags(desk.tenant.slug, **{flag: True})
    shown = (await c.get(f"/v1/tickets/{kept['id']}", headers=desk.agent.headers)).json()
    assert shown[field] is not None
    again = (await c.get(f"/v1/tickets/{ignored['id']}", headers=desk.agent.headers)).json()
    assert again[field] is None


async def test_assets_on_the_public_api(desk: Desk, client: httpx.AsyncClient) -> None:
    h = (await desk.tenant.public(desk.agent)).headers
    r = await client.put(
        "/public/v1/assets/by-ref/AS-77", json={"name": "Forklift", "type": "vehicle"}, headers=h
    )
    assert r.status_code == 201, r.text
    asset = r.json()
    r = await client.post(
        f"/public/v1/assets/{asset['id']}/tickets",
        json={"title": "Brakes squeal", "catalog_item": "itsm_incident"},
        headers=h,
    )
    assert r.status_code == 201, r.text
    assert r.headers["location"].startswith("/public/v1/tickets/")
    assert "ratelimit" in r.headers
