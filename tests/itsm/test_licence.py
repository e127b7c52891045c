"""The ITSM licence: activated by the platform operator only; without it the tenant's ticket
endpoints answer licence-inactive and nothing else of the tenant changes."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.support import TICKET, Operator, TenantCtx, new_tenant, problem_type


async def test_without_a_licence_only_the_ticket_endpoints_close(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    tenant = await new_tenant(app, client, licensed=False)
    h = tenant.headers
    public = (await tenant.public(tenant.admin)).headers
    for method, path, body in [
        ("GET", "/v1/tickets", None),
        ("POST", "/v1/tickets", TICKET),
        ("GET", "/v1/tickets/TKT-000001", None),
        ("GET", "/public/v1/tickets", None),
        ("POST", "/public/v1/tickets", TICKET),
    ]:
        headers = public if path.startswith("/public/") else h
        r = await client.request(method, path, json=body, headers=headers)
        assert r.status_code == 403, (path, r.text)
        assert problem_type(r) == "licence-inactive"
        assert "platform operator" in r.json()["detail"]
    # Everything else of the tenant works as before.
    assert (await client.get("/v1/me", headers=h)).status_code == 200
    assert (await client.get("/v1/users", headers=h)).status_code == 200
    r = await client.get("/v1/tenant", headers=h)
    assert r.status_code == 200 and r.json()["licence"]["active"] is False
    groups = (await client.get("/v1/groups", headers=h)).json()["items"]
    assert [g["name"] for g in groups] == ["Administrators"]


async def test_activation_opens_the_desk_and_deactivation_closes_it(
    app: FastAPI, client: httpx.AsyncClient, operator: Operator
) -> None:
    tenant = await new_tenant(app, client, licensed=False)
    h = tenant.headers
    assert (await client.get("/v1/tickets", headers=h)).status_code == 403

    out = await operator.licence(tenant.slug, active=True)
    assert out["licence"]["active"] is True and out["licence"]["activated_at"]
    # The two portals come with the licence; the rest is sold separately.
    assert out["flags"] == {
        "agent_portal": True,
        "end_user_portal": True,
        "asset_integration": False,
        "email_notifications": False,
        "email_templates": False,
        "public_api": False,
        "movement_link": False,
    }
    # The change is visible at once on this worker (the cache is cleared after the commit).
    assert (await client.get("/v1/tickets", headers=h)).status_code == 200
    assert (await client.post("/v1/tickets", json=TICKET, headers=h)).status_code == 201

    out = await operator.licence(tenant.slug, active=False)
    assert out["licence"]["active"] is False and out["licence"]["deactivated_at"]
    r = await client.get("/v1/tickets", headers=h)
    assert r.status_code == 403 and problem_type(r) == "licence-inactive"

    # Every change is in the licence log, newest first, with who made it.
    r = await operator.get(f"/tenants/{tenant.slug}/licence/events")
    events = r.json()["items"]
    assert [e["changes"].get("active") for e in events] == [[True, False], [False, True]]
    assert {e["actor"] for e in events} == {"platform-api"}


async def test_the_itsm_agent_system_group(
    app: FastAPI, client: httpx.AsyncClient, operator: Operator
) -> None:
    tenant = await new_tenant(app, client, licensed=False)
    h = tenant.headers
    # A group the tenant made under that name before the licence keeps its permissions.
    r = await client.post(
        "/v1/groups", json={"name": "ITSM Agent", "permissions": ["tickets:create"]}, headers=h
    )
    own_id = r.json()["id"]
    await operator.licence(tenant.slug, active=True)
    groups = {g["name"]: g for g in (await client.get("/v1/groups", headers=h)).json()["items"]}
    agent_group = groups["ITSM Agent"]
    assert agent_group["system"] is True
    assert agent_group["permissions"] == ["tickets:close", "tickets:create", "tickets:manage"]
    assert groups["ITSM Agent (custom)"]["id"] == own_id
    assert groups["ITSM Agent (custom)"]["permissions"] == ["tickets:create"]

    gid = agent_group["id"]
    r = await client.delete(f"/v1/groups/{gid}", headers=h)
    assert r.status_code == 409 and "system group" in r.json()["detail"]
    r = await client.patch(f"/v1/groups/{gid}", json={"permissions": ["admin"]}, headers=h)
    assert r.status_code == 409
    r = await client.patch(f"/v1/groups/{gid}", json={"name": "Agents"}, headers=h)
    assert r.status_code == 409
    # Membership is the admins' to manage; it grants the agent role at once.
    user = await tenant.user()
    assert (await client.put(f"/v1/groups/{gid}/members/{user.id}", headers=h)).status_code == 204
    me = (await client.get("/v1/me", headers=user.headers)).json()
    assert me["permissions"] == ["tickets:close", "tickets:create", "tickets:manage"]

    # Deactivating and reactivating keeps the one group and its members.
    await operator.licence(tenant.slug, active=False)
    await operator.licence(tenant.slug, active=True)
    groups = (await client.get("/v1/groups", headers=h)).json()["items"]
    again = [g for g in groups if g["name"] == "ITSM Agent"]
    assert len(again) == 1 and again[0]["id"] == gid and again[0]["member_ids"] == [user.id]


async def test_tenant_admins_cannot_license_themselves(
    client: httpx.AsyncClient, tenant_unlicensed: TenantCtx
) -> None:
    h = tenant_unlicensed.headers
    r = await client.patch("/v1/tenant", json={"flags": {"public_api": True}}, headers=h)
    assert r.status_code == 422
    r = await client.patch(
        f"/platform/v1/tenants/{tenant_unlicensed.slug}/licence", json={"active": True}, headers=h
    )
    assert r.status_code == 401
    assert (await client.get("/v1/tenant", headers=h)).json()["licence"]["active"] is False
