"""Authentication over HTTP: /v1/me, the uniform 401, scopes, revocation, expiry, last use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI

from flowdesk.app import create_app
from flowdesk.auth import keys
from flowdesk.config import Settings
from tests.support import TenantCtx, bearer, problem_type, runtime


async def _last_used(app: FastAPI, key: str) -> datetime | None:
    async with runtime(app).db.connection() as conn:
        used: datetime | None = await conn.fetchval(
            "SELECT last_used_at FROM api_keys WHERE key_hash = $1", keys.hash_key(key)
        )
        return used


async def test_me_describes_the_caller(client: httpx.AsyncClient, tenant: TenantCtx) -> None:
    r = await client.get("/v1/me", headers=tenant.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["tenant"]["slug"] == tenant.slug
    assert body["user"]["email"] == tenant.admin.email
    assert body["permissions"] == ["admin", "tickets:close", "tickets:create", "tickets:manage"]
    assert body["scopes"] == ["admin", "tickets:read", "tickets:write"]


async def test_permissions_are_intersected_with_key_scopes(
    client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    agent = await tenant.user("tickets:create", "tickets:manage", scopes=["tickets:read"])
    r = await client.get("/v1/me", headers=agent.headers)
    assert r.json()["permissions"] == []
    writer = await tenant.key(agent.id, ["tickets:write", "admin"])
    r = await client.get("/v1/me", headers=bearer(writer))
    # The key allows admin, but the user does not hold it.
    assert r.json()["permissions"] == ["tickets:create", "tickets:manage"]


async def test_every_kind_of_bad_key_gets_the_same_401(
    client: httpx.AsyncClient, tenant: TenantCtx, app: FastAPI
) -> None:
    user = await tenant.user()
    revoked = await tenant.key(user.id, ["tickets:read"])
    r = await client.get("/v1/api-keys", headers=tenant.headers, params={"user_id": user.id})
    revoked_id = next(k["id"] for k in r.json()["items"] if revoked.startswith(k["prefix"]))
    assert (
        await client.delete(f"/v1/api-keys/{revoked_id}", headers=tenant.headers)
    ).status_code == 204

    expiring = await tenant.key(
        user.id,
        ["tickets:read"],
        expires_at=(datetime.now(UTC) + timedelta(seconds=60)).isoformat(),
    )
    async with runtime(app).db.connection() as conn:
        await conn.execute(
            "UPDATE api_keys SET expires_at = $1 WHERE key_hash = $2",
            datetime.now(UTC) - timedelta(seconds=1),
            keys.hash_key(expiring),
        )
    runtime(app).authenticator.forget_all()

    good = tenant.admin.key
    bad_checksum = good[:-1] + ("A" if good[-1] != "A" else "B")
    unknown = keys.generate_key()
    cases = {
        "missing": {},
        "not bearer": {"Authorization": f"Basic {good}"},
        "bad checksum": bearer(bad_checksum),
        "unknown": bearer(unknown),
        "revoked": bearer(revoked),
        "expired": bearer(expiring),
        "garbage": bearer("not-a-key"),
    }
    bodies = set()
    for name, headers in cases.items():
        r = await client.get("/v1/me", headers=headers)
        assert r.status_code == 401, name
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["www-authenticate"].startswith("Bearer")
        bodies.add(r.content)
    assert len(bodies) == 1


async def test_revocation_takes_effect_at_once(
    client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    user = await tenant.user()
    assert (await client.get("/v1/me", headers=user.headers)).status_code == 200
    r = await client.get("/v1/api-keys", headers=tenant.headers, params={"user_id": user.id})
    (key,) = r.json()["items"]
    assert "key" not in key and key["prefix"] == user.key[:12]
    assert (
        await client.delete(f"/v1/api-keys/{key['id']}", headers=tenant.headers)
    ).status_code == 204
    assert (await client.get("/v1/me", headers=user.headers)).status_code == 401
    r = await client.get(f"/v1/api-keys/{key['id']}", headers=tenant.headers)
    assert r.json()["revoked_at"] is not None


async def test_last_used_at_is_written_once_per_interval(
    client: httpx.AsyncClient, tenant: TenantCtx, app: FastAPI
) -> None:
    user = await tenant.user()
    authenticator = runtime(app).authenticator
    assert await _last_used(app, user.key) is None
    await client.get("/v1/me", headers=user.headers)
    # Noted, not yet written: the request did not wait for a write.
    assert await _last_used(app, user.key) is None
    assert await authenticator.flush_uses() >= 1
    first = await _last_used(app, user.key)
    assert first is not None
    for _ in range(5):
        await client.get("/v1/me", headers=user.headers)
    await authenticator.flush_uses()
    assert await _last_used(app, user.key) == first


async def test_admin_endpoints_need_the_admin_permission(
    client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    agent = await tenant.user("tickets:manage")
    r = await client.get("/v1/users", headers=agent.headers)
    assert r.status_code == 403
    assert r.json()["type"] == "/problems/forbidden"
    assert r.json()["required_permission"] == "admin"
    # An admin whose key lacks the admin scope is refused as well.
    admin_key = await tenant.key(tenant.admin.id, ["tickets:read"])
    assert (await client.get("/v1/users", headers=bearer(admin_key))).status_code == 403


async def test_key_uses_noted_are_written_at_shutdown(
    settings: Settings, tenant: TenantCtx, app: FastAPI
) -> None:
    """The uses a process has noted are not lost when it stops between two flushes."""
    other = create_app(settings)
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/v1/me", headers=tenant.headers)).status_code == 200
    assert await _last_used(app, tenant.admin.key) is not None


async def test_invented_keys_cost_one_lookup_and_a_failing_address_is_throttled(
    settings: Settings, tenant: TenantCtx
) -> None:
    """Anyone can make well-formed keys offline: a key found missing is not looked up again,
    and an address that keeps presenting such keys gets 429 before any lookup."""
    other = create_app(settings.model_copy(update={"auth_failure_limit": 3}))
    statements: list[str] = []
    async with other.router.lifespan_context(other):
        await runtime(other).db.add_query_logger(lambda record: statements.append(record.query))
        invented = keys.generate_key()

        def looked_up() -> int:
            return sum("key_hash" in s for s in statements)

        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=other, client=("203.0.113.7", 4000)),
            base_url="http://t",
        ) as attacker:
            for _ in range(2):
                r = await attacker.get("/v1/me", headers=bearer(invented))
                assert r.status_code == 401, r.text
            # The usage middleware and the endpoint both asked, twice: one lookup in all.
            assert looked_up() == 1
            # Missing or malformed credentials cost no lookup and are not counted.
            for headers in ({}, bearer("fdk_x"), bearer("x" * 40), bearer("fdk_" + "a" * 38)):
                assert (await attacker.get("/v1/me", headers=headers)).status_code == 401
            assert (await attacker.get("/v1/me", headers=bearer(invented))).status_code == 401
            # The third key that opened nothing was the limit: the next is refused unread.
            r = await attacker.get("/v1/me", headers=bearer(keys.generate_key()))
            assert r.status_code == 429 and problem_type(r) == "rate-limited"
            assert 1 <= int(r.headers["retry-after"]) <= 60
            assert looked_up() == 1
            # Until the window ends, even a good key from this address waits.
            assert (await attacker.get("/v1/me", headers=tenant.headers)).status_code == 429
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=other, client=("198.51.100.2", 4000)),
            base_url="http://t",
        ) as neighbour:
            assert (await neighbour.get("/v1/me", headers=tenant.headers)).status_code == 200
