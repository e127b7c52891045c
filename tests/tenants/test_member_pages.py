"""A group's members are listed in bounded pages (issue 16, item 9): the group shows its first
100 member ids and the count, GET /v1/groups/{id}/members pages through them all."""

from __future__ import annotations

import uuid

from fastapi import FastAPI

from tests.sql import execute
from tests.support import TenantCtx


async def test_a_large_group_is_listed_page_by_page(app: FastAPI, tenant: TenantCtx) -> None:
    c, h = tenant.client, tenant.headers
    group = (await c.post("/v1/groups", json={"name": "big", "permissions": []}, headers=h)).json()
    # 130 members, joined one second apart, made in SQL (the API would take a request each).
    await execute(
        app,
        "INSERT INTO users (tenant_id, email, name, kind) "
        "SELECT $1, 'm' || n || '@example.com', 'M' || n, 'person' FROM generate_series(1, 130) n",
        args=(tenant.id,),
    )
    await execute(
        app,
        "INSERT INTO group_members (tenant_id, group_id, user_id, created_at) "
        "SELECT $1, $2::uuid, id, now() - make_interval(secs => 1000 - substr(name, 2)::int) "
        "FROM users WHERE tenant_id = $1 AND email LIKE 'm%@example.com'",
        args=(tenant.id, group["id"]),
    )
    shown = (await c.get(f"/v1/groups/{group['id']}", headers=h)).json()
    assert shown["member_count"] == 130 and len(shown["member_ids"]) == 100

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 50} | ({"cursor": cursor} if cursor else {})
        r = await c.get(f"/v1/groups/{group['id']}/members", params=params, headers=h)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [m["user_id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 130
    assert seen[:100] == shown["member_ids"]  # the same order: as they joined

    r = await c.get(f"/v1/groups/{uuid.uuid4()}/members", headers=h)
    assert r.status_code == 404
    r = await c.get(f"/v1/groups/{group['id']}/members", params={"cursor": "WzFd"}, headers=h)
    assert r.status_code == 422
