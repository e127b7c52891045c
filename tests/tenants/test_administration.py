"""Tenant administration over HTTP: users, groups, membership, keys, the tenant itself."""

from __future__ import annotations

import asyncio

import httpx

from tests.support import TenantCtx, problem_type


async def test_user_lifecycle(client: httpx.AsyncClient, tenant: TenantCtx) -> None:
    h = tenant.headers
    r = await client.post(
        "/v1/users", json={"email": "Ann@Example.com", "name": "Ann", "kind": "person"}, headers=h
    )
    assert r.status_code == 201
    user = r.json()
    assert user["email"] == "Ann@Example.com" and user["kind"] == "person"
    # E-mail is unique per tenant, case-insensitively.
    r = await client.post(
        "/v1/users", json={"email": "ann@example.com", "name": "Other"}, headers=h
    )
    assert r.status_code == 409
    r = await client.patch(
        f"/v1/users/{user['id']}", json={"name": "Ann B", "kind": "service"}, headers=h
    )
    assert r.status_code == 200 and r.json()["name"] == "Ann B" and r.json()["kind"] == "service"
    assert (await client.get(f"/v1/users/{user['id']}", headers=h)).json()["name"] == "Ann B"
    assert (await client.delete(f"/v1/users/{user['id']}", headers=h)).status_code == 204
    assert (await client.get(f"/v1/users/{user['id']}", headers=h)).status_code == 404
    # The address is free again once its user is deleted.
    r = await client.post(
        "/v1/users", json={"email": "ann@example.com", "name": "Ann 2"}, headers=h
    )
    assert r.status_code == 201


async def test_concurrent_creates_of_one_email_are_one_201_and_one_409(
    client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    """The unique index decides, not a read before the write: two requests racing for one
    address cannot both pass a check, and the loser is told Conflict, never a 500."""
    for attempt in range(5):
        body = {"email": f"twin{attempt}@example.com", "name": "Twin"}
        responses = await asyncio.gather(
            *(client.post("/v1/users", json=body, headers=tenant.headers) for _ in range(2))
        )
        assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
        (lost,) = [r for r in responses if r.status_code == 409]
        assert problem_type(lost) == "conflict"
        assert "already exists" in lost.json()["detail"]


async def test_concurrent_creates_of_one_group_name_are_one_201_and_one_409(
    client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    for attempt in range(5):
        body = {"name": f"Twins {attempt}", "permissions": ["tickets:create"]}
        responses = await asyncio.gather(
            *(client.post("/v1/groups", json=body, headers=tenant.headers) for _ in range(2))
        )
        assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
        (lost,) = [r for r in responses if r.status_code == 409]
        assert problem_type(lost) == "conflict"


async def test_renaming_onto_a_taken_name_or_email_is_a_conflict(
    client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    h = tenant.headers
    first = await tenant.user()
    second = await tenant.user()
    r = await client.patch(f"/v1/users/{second.id}", json={"email": first.email.upper()}, headers=h)
    assert r.status_code == 409 and problem_type(r) == "conflict"
    # A change of case of one's own address is no conflict.
    r = await client.patch(f"/v1/users/{first.id}", json={"email": first.email.upper()}, headers=h)
    assert r.status_code == 200 and r.json()["email"] == first.email.upper()
    a = await tenant.group("tickets:create")
    await tenant.group("tickets:close")
    r = await client.patch(f"/v1/groups/{a}", json={"name": "g-tickets_close"}, headers=h)
    assert r.status_code == 409 and problem_type(r) == "conflict"


async def test_deleting_a_user_revokes_their_keys(
    client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    user = await tenant.user("tickets:create")
    assert (await client.get("/v1/me", headers=user.headers)).status_code == 200
    assert (await client.delete(f"/v1/users/{user.id}", headers=tenant.headers)).status_code == 204
    assert (await client.get("/v1/me", headers=user.headers)).status_code == 401


async def test_users_list_is_cursor_paginated(client: httpx.AsyncClient, tenant: TenantCtx) -> None:
    for i in range(5):
        r = await client.post(
            "/v1/users", json={"email": f"u{i}@x.example", "name": f"U{i}"}, headers=tenant.headers
        )
        assert r.status_code == 201
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        r = await client.get("/v1/users", params=params, headers=tenant.headers)
        assert r.status_code == 200
        body = r.json()
        assert len(body["items"]) <= 2
        seen += [u["email"] for u in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [tenant.admin.email] + [f"u{i}@x.example" for i in range(5)]
    r = await client.get("/v1/users", params={"cursor": "!!bogus"}, headers=tenant.headers)
    assert r.status_code == 422
    r = await client.get("/v1/users", params={"limit": 101}, headers=tenant.headers)
    assert r.status_code == 422


async def test_groups_grant_permissions(client: httpx.AsyncClient, tenant: TenantCtx) -> None:
    h = tenant.headers
    user = await tenant.user()
    assert (await client.get("/v1/me", headers=user.headers)).json()["permissions"] == []
    r = await client.post(
        "/v1/groups",
        json={"name": "Agents", "permissions": ["tickets:manage", "tickets:create"]},
        headers=h,
    )
    assert r.status_code == 201
    group = r.json()
    assert (
        group["permissions"] == ["tickets:create", "tickets:manage"] and group["member_ids"] == []
    )
    assert (await client.post("/v1/groups", json={"name": "Agents"}, headers=h)).status_code == 409
    r = await client.post("/v1/groups", json={"name": "Bad", "permissions": ["root"]}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/permissions/0"

    assert (
        await client.put(f"/v1/groups/{group['id']}/members/{user.id}", headers=h)
    ).status_code == 204
    # PUT is idempotent.
    assert (
        await client.put(f"/v1/groups/{group['id']}/members/{user.id}", headers=h)
    ).status_code == 204
    assert (await client.get(f"/v1/groups/{group['id']}", headers=h)).json()["member_ids"] == [
        user.id
    ]
    assert (await client.get("/v1/me", headers=user.headers)).json()["permissions"] == [
        "tickets:create",
        "tickets:manage",
    ]
    r = await client.patch(
        f"/v1/groups/{group['id']}", json={"permissions": ["tickets:create"]}, headers=h
    )
    assert r.status_code == 200
    assert (await client.get("/v1/me", headers=user.headers)).json()["permissions"] == [
        "tickets:create"
    ]
    assert (
        await client.delete(f"/v1/groups/{group['id']}/members/{user.id}", headers=h)
    ).status_code == 204
    assert (
        await client.delete(f"/v1/groups/{group['id']}/members/{user.id}", headers=h)
    ).status_code == 404
    assert (await client.get("/v1/me", headers=user.headers)).json()["permissions"] == []
    assert (await client.delete(f"/v1/groups/{group['id']}", headers=h)).status_code == 204
    assert (await client.get(f"/v1/groups/{group['id']}", headers=h)).status_code == 404
    r = await client.get("/v1/groups", headers=h)
    # The test tenant is ITSM-licensed, which gives it the "ITSM Agent" system group.
    assert [g["name"] for g in r.json()["items"]] == ["Administrators", "ITSM Agent"]


async def test_the_last_administrator_cannot_be_removed(
    client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    h = tenant.headers
    admins = (await client.get("/v1/groups", headers=h)).json()["items"][0]
    r = await client.delete(f"/v1/groups/{admins['id']}/members/{tenant.admin.id}", headers=h)
    assert r.status_code == 409
    assert (await client.delete(f"/v1/users/{tenant.admin.id}", headers=h)).status_code == 409
    assert (await client.delete(f"/v1/groups/{admins['id']}", headers=h)).status_code == 409
    r = await client.patch(
        f"/v1/groups/{admins['id']}", json={"permissions": ["tickets:create"]}, headers=h
    )
    assert r.status_code == 409
    # Nothing was half-done: the admin still administers.
    assert (await client.get("/v1/users", headers=h)).status_code == 200
    # With a second admin, the first may go.
    second = await tenant.user("admin")
    r = await client.delete(
        f"/v1/groups/{admins['id']}/members/{tenant.admin.id}", headers=second.headers
    )
    assert r.status_code == 204


async def test_api_keys(client: httpx.AsyncClient, tenant: TenantCtx) -> None:
    h = tenant.headers
    user = await tenant.user("tickets:create")
    r = await client.post(
        "/v1/api-keys",
        json={"user_id": user.id, "name": "ci", "scopes": ["tickets:read", "tickets:write"]},
        headers=h,
    )
    assert r.status_code == 201
    created = r.json()
    assert created["key"].startswith(created["prefix"]) and created["scopes"] == [
        "tickets:read",
        "tickets:write",
    ]
    listed = (await client.get("/v1/api-keys", params={"user_id": user.id}, headers=h)).json()[
        "items"
    ]
    assert {k["id"] for k in listed} >= {created["id"]}
    assert all("key" not in k for k in listed)
    got = (await client.get(f"/v1/api-keys/{created['id']}", headers=h)).json()
    assert "key" not in got
    bad = [
        {"user_id": user.id, "name": "x", "scopes": ["root"]},
        {"user_id": user.id, "name": "x", "scopes": []},
        {
            "user_id": user.id,
            "name": "x",
            "scopes": ["admin"],
            "expires_at": "2001-01-01T00:00:00Z",
        },
        {"user_id": user.id, "name": "x", "scopes": ["admin"], "expires_at": "2999-01-01T00:00:00"},
        {"user_id": user.id, "name": "", "scopes": ["admin"]},
        {"user_id": user.id, "name": "x", "scopes": ["admin"], "secret": "mine"},
    ]
    for body in bad:
        r = await client.post("/v1/api-keys", json=body, headers=h)
        assert r.status_code == 422, body
    r = await client.post(
        "/v1/api-keys",
        json={"user_id": "00000000-0000-0000-0000-000000000000", "name": "x", "scopes": ["admin"]},
        headers=h,
    )
    assert r.status_code == 404


async def test_tenant_settings(client: httpx.AsyncClient, tenant: TenantCtx) -> None:
    r = await client.get("/v1/tenant", headers=tenant.headers)
    assert r.status_code == 200
    assert r.json()["slug"] == tenant.slug and r.json()["ticket_prefix"] == "TKT"
    r = await client.patch("/v1/tenant", json={"ticket_prefix": "OPS"}, headers=tenant.headers)
    assert r.status_code == 200 and r.json()["ticket_prefix"] == "OPS"
    bad_patches: list[dict[str, object]] = [
        {"ticket_prefix": "ops"},
        {"ticket_prefix": "TOOLONGPREFIX"},
        {"slug": "x"},
        {"flags": {}},
    ]
    for bad in bad_patches:
        assert (
            await client.patch("/v1/tenant", json=bad, headers=tenant.headers)
        ).status_code == 422


async def test_another_tenants_ids_are_404(
    client: httpx.AsyncClient, tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    theirs = await other_tenant.user("tickets:create")
    their_group = await other_tenant.group("tickets:create")
    keys = (
        await client.get(
            "/v1/api-keys", params={"user_id": theirs.id}, headers=other_tenant.headers
        )
    ).json()
    their_key = keys["items"][0]["id"]
    mine = await tenant.user()
    my_group = await tenant.group("tickets:create")
    h = tenant.headers
    calls = [
        ("GET", f"/v1/users/{theirs.id}", None),
        ("PATCH", f"/v1/users/{theirs.id}", {"name": "x"}),
        ("DELETE", f"/v1/users/{theirs.id}", None),
        ("GET", f"/v1/groups/{their_group}", None),
        ("PATCH", f"/v1/groups/{their_group}", {"name": "x"}),
        ("DELETE", f"/v1/groups/{their_group}", None),
        ("PUT", f"/v1/groups/{their_group}/members/{mine.id}", None),
        ("PUT", f"/v1/groups/{my_group}/members/{theirs.id}", None),
        ("DELETE", f"/v1/groups/{their_group}/members/{theirs.id}", None),
        ("GET", f"/v1/api-keys/{their_key}", None),
        ("DELETE", f"/v1/api-keys/{their_key}", None),
        ("POST", "/v1/api-keys", {"user_id": theirs.id, "name": "x", "scopes": ["admin"]}),
    ]
    for method, url, body in calls:
        r = await client.request(method, url, json=body, headers=h)
        assert r.status_code == 404, (method, url, r.text)
    # And nothing of theirs changed.
    assert (await client.get("/v1/me", headers=theirs.headers)).status_code == 200


async def test_a_key_mints_no_key_that_can_do_more_than_itself(
    client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    # Issue 16, case 8: a key scoped only `admin` minted keys with every scope.
    admin_only = await tenant.key(tenant.admin.id, ["admin"])
    h = {"Authorization": f"Bearer {admin_only}"}
    body = {"user_id": tenant.admin.id, "name": "wider", "scopes": ["admin", "tickets:write"]}
    r = await client.post("/v1/api-keys", json=body, headers=h)
    assert r.status_code == 403, r.text
    assert r.json()["scopes"] == ["tickets:write"]
    r = await client.post("/v1/api-keys", json={**body, "scopes": ["admin"]}, headers=h)
    assert r.status_code == 201, r.text
