"""/public/v1/tickets: the /v1 ticket endpoints behind API-key scopes and the public_api flag,
with the same semantics and errors."""

from __future__ import annotations

import httpx

from tests.support import TICKET, TenantCtx, problem_type

AGENT = ("tickets:create", "tickets:manage", "tickets:close")


async def test_scopes(client: httpx.AsyncClient, tenant: TenantCtx) -> None:
    # One service account with two keys: one that reads, one that writes.
    writer = await tenant.user(
        "tickets:create", kind="service", scopes=["tickets:write"], channel="public"
    )
    reader_key = await tenant.key(writer.id, ["tickets:read"], channel="public")
    read = {"Authorization": f"Bearer {reader_key}"}

    r = await client.post("/public/v1/tickets", json=TICKET, headers=writer.headers)
    assert r.status_code == 201, r.text
    ticket = r.json()
    # GET list and GET one need tickets:read ...
    assert (await client.get("/public/v1/tickets", headers=read)).status_code == 200
    assert (await client.get(f"/public/v1/tickets/{ticket['id']}", headers=read)).status_code == 200
    r = await client.get("/public/v1/tickets", headers=writer.headers)
    assert r.status_code == 403 and r.json()["required_scope"] == "tickets:read"
    # ... POST and PATCH tickets:write.
    r = await client.post("/public/v1/tickets", json=TICKET, headers=read)
    assert r.status_code == 403 and r.json()["required_scope"] == "tickets:write"
    r = await client.patch(f"/public/v1/tickets/{ticket['id']}", json={"title": "x"}, headers=read)
    assert r.status_code == 403 and r.json()["required_scope"] == "tickets:write"
    # No key at all is 401, as everywhere.
    assert (await client.get("/public/v1/tickets")).status_code == 401


async def test_same_semantics_as_v1(
    client: httpx.AsyncClient, tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    system = await tenant.user(*AGENT, kind="service")
    h = (await tenant.public(system)).headers
    r = await client.post(
        "/public/v1/tickets", json=TICKET, headers=h | {"Idempotency-Key": "ext-1"}
    )
    assert r.status_code == 201
    ticket = r.json()
    assert r.headers["location"] == f"/public/v1/tickets/{ticket['id']}"
    assert r.headers["etag"] == f'"{ticket["version"]}"'
    # A replay returns the first response; the ticket exists once.
    again = await client.post(
        "/public/v1/tickets", json=TICKET, headers=h | {"Idempotency-Key": "ext-1"}
    )
    assert again.status_code == 201 and again.json()["id"] == ticket["id"]

    # One ticket, two APIs.
    by_number = await client.get(f"/public/v1/tickets/{ticket['number']}", headers=h)
    v1 = await client.get(f"/v1/tickets/{ticket['id']}", headers=system.headers)
    assert by_number.json() == v1.json() == ticket

    r = await client.patch(
        f"/public/v1/tickets/{ticket['id']}",
        json={"title": "Renamed"},
        headers=h | {"If-Match": r.headers["etag"]},
    )
    assert r.status_code == 200 and r.json()["title"] == "Renamed"
    r = await client.patch(
        f"/public/v1/tickets/{ticket['id']}",
        json={"title": "Stale"},
        headers=h | {"If-Match": '"1"'},
    )
    assert r.status_code == 412 and problem_type(r) == "precondition-failed"

    r = await client.post("/public/v1/tickets", json={"title": ""}, headers=h)
    assert r.status_code == 422 and problem_type(r) == "validation-error"
    r = await client.patch(f"/public/v1/tickets/{ticket['id']}", json={"id": "x"}, headers=h)
    assert r.status_code == 422
    assert (await client.get("/public/v1/tickets/TKT-999999", headers=h)).status_code == 404
    # Another tenant's ticket is 404, never 403.
    outsider = await other_tenant.public(other_tenant.admin)
    r = await client.get(f"/public/v1/tickets/{ticket['id']}", headers=outsider.headers)
    assert r.status_code == 404

    page = (await client.get("/public/v1/tickets", params={"limit": 1}, headers=h)).json()
    assert [t["id"] for t in page["items"]] == [ticket["id"]]
    r = await client.get("/public/v1/tickets", params={"limit": 101}, headers=h)
    assert r.status_code == 422
