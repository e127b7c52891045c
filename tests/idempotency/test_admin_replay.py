"""Every administrative POST honours Idempotency-Key as the README promises (issue 16, item
6): users, groups, API keys, webhooks, members, assets. A retry gets the first answer (the
same user, group, key secret, webhook secret), and nothing is made twice."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from tests.sql import fetchval
from tests.support import TenantCtx


async def _twice(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str], key: str
) -> tuple[httpx.Response, httpx.Response]:
    h = headers | {"Idempotency-Key": key}
    return await client.post(url, json=body, headers=h), await client.post(
        url, json=body, headers=h
    )


def _replayed(first: httpx.Response, again: httpx.Response, status: int = 201) -> None:
    assert first.status_code == again.status_code == status, first.text
    assert first.content == again.content
    assert again.headers["idempotent-replayed"] == "true"


async def test_users_groups_and_keys_are_made_once(app: FastAPI, tenant: TenantCtx) -> None:
    c, h = tenant.client, tenant.headers
    first, again = await _twice(
        c, "/v1/users", {"email": "twice@example.com", "name": "Twice"}, h, "user-1"
    )
    _replayed(first, again)
    user_id = first.json()["id"]
    assert (
        await fetchval(
            app,
            "SELECT count(*) FROM users WHERE tenant_id = $1 AND email = $2",
            tenant.id,
            "twice@example.com",
        )
        == 1
    )

    first, again = await _twice(c, "/v1/groups", {"name": "once", "permissions": []}, h, "g-1")
    _replayed(first, again)
    group_id = first.json()["id"]

    first, again = await _twice(
        c, "/v1/api-keys", {"user_id": user_id, "name": "k", "scopes": ["tickets:read"]}, h, "k-1"
    )
    _replayed(first, again)
    assert first.json()["key"] == again.json()["key"]  # the one key made, shown to its retry
    assert (
        await fetchval(
            app,
            "SELECT count(*) FROM api_keys WHERE tenant_id = $1 AND user_id = $2::uuid",
            tenant.id,
            user_id,
        )
        == 1
    )

    # The same key with another body is refused; a refusal (409: the name is taken) is
    # replayed too.
    r = await c.post(
        "/v1/groups",
        json={"name": "other", "permissions": []},
        headers=h | {"Idempotency-Key": "g-1"},
    )
    assert r.status_code == 422
    first, again = await _twice(c, "/v1/groups", {"name": "once", "permissions": []}, h, "g-2")
    _replayed(first, again, 409)

    member = f"/v1/groups/{group_id}/members/{user_id}"
    put = h | {"Idempotency-Key": "m-1"}
    a, b = await c.put(member, headers=put), await c.put(member, headers=put)
    assert a.status_code == b.status_code == 204 and b.headers["idempotent-replayed"] == "true"


async def test_webhooks_and_assets_are_made_once(app: FastAPI, tenant: TenantCtx) -> None:
    c, h = tenant.client, tenant.headers
    first, again = await _twice(
        c,
        "/v1/webhooks",
        {"url": "https://hooks.example.com/flowdesk", "events": ["ticket.created"]},
        h,
        "w-1",
    )
    _replayed(first, again)
    assert first.json()["secret"] == again.json()["secret"]
    assert await fetchval(app, "SELECT count(*) FROM webhooks WHERE tenant_id = $1", tenant.id) == 1

    first, again = await _twice(
        c, "/v1/assets", {"external_ref": "A-1", "name": "Laptop", "type": "laptop"}, h, "as-1"
    )
    _replayed(first, again)
    first, again = await _twice(
        c,
        f"/v1/assets/{first.json()['id']}/movements",
        {"to_location": "Desk 4", "moved_at": "2026-12-01T10:00:00Z"},
        h,
        "mv-1",
    )
    _replayed(first, again)
