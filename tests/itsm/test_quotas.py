"""max_agents at, under and over its limit; refusals recorded; the background check and its
alerts; max_emails_month stored and readable."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from fastapi import FastAPI

from flowdesk.errors import QuotaExceeded
from flowdesk.itsm.quotas import QUOTA_CHECK_LOCK_KEY, quota_check_job, run_quota_check
from flowdesk.tenants import service as tenant_service
from tests.support import Operator, TenantCtx, new_tenant, problem_type, runtime

MANAGE = ("tickets:manage",)


async def alerts(operator: Operator, slug: str, **params: object) -> list[dict[str, object]]:
    r = await operator.get("/quota-alerts", tenant=slug, **params)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_max_agents_under_at_and_over(
    app: FastAPI, client: httpx.AsyncClient, operator: Operator
) -> None:
    # The admin holds admin, which implies tickets:manage: one seat is taken from the start.
    tenant = await new_tenant(app, client, quotas={"max_agents": 3})
    h = tenant.headers
    usage = (await client.get("/v1/tenant", headers=h)).json()["quota_usage"]["max_agents"]
    assert usage == {"limit": 3, "current": 1}
    await tenant.user(*MANAGE)  # under: 2 of 3
    second = await tenant.user(*MANAGE)  # at: 3 of 3
    usage = (await client.get("/v1/tenant", headers=h)).json()["quota_usage"]["max_agents"]
    assert usage == {"limit": 3, "current": 3}

    # Over: refused, naming the quota, its limit and its use.
    extra = await tenant.user()
    group = await tenant.group(*MANAGE)
    r = await client.put(f"/v1/groups/{group}/members/{extra.id}", headers=h)
    assert r.status_code == 409
    assert problem_type(r) == "quota-exceeded"
    body = r.json()
    assert (body["quota"], body["limit"], body["current"]) == ("max_agents", 3, 3)
    me = (await client.get("/v1/me", headers=extra.headers)).json()
    assert "tickets:manage" not in me["permissions"]
    # The attempt is recorded for the operator (and survives the refused transaction).
    refused = await alerts(operator, tenant.slug, kind="refused")
    assert len(refused) == 1
    assert refused[0]["detail"]["action"] == "add_member"  # type: ignore[index]
    assert refused[0]["detail"]["user_id"] == extra.id  # type: ignore[index]
    assert (refused[0]["limit"], refused[0]["current"], refused[0]["open"]) == (3, 3, False)

    # Granting tickets:manage to a group with members is the other way to take seats.
    plain = await tenant.group("tickets:create")
    assert (
        await client.put(f"/v1/groups/{plain}/members/{extra.id}", headers=h)
    ).status_code == 204
    r = await client.patch(
        f"/v1/groups/{plain}", json={"permissions": ["tickets:create", "tickets:manage"]}, headers=h
    )
    assert r.status_code == 409 and r.json()["quota"] == "max_agents"
    r = await client.patch(f"/v1/groups/{plain}", json={"permissions": ["admin"]}, headers=h)
    assert r.status_code == 409
    assert len(await alerts(operator, tenant.slug, kind="refused")) == 3

    # What adds no seat passes at the limit: an agent joining another agent group, a
    # non-agent group, an agent group that has no new members.
    other_agents = await tenant.group("tickets:manage", "tickets:close")
    r = await client.put(f"/v1/groups/{other_agents}/members/{second.id}", headers=h)
    assert r.status_code == 204
    assert (
        await client.post(
            "/v1/groups", json={"name": "x", "permissions": ["tickets:manage"]}, headers=h
        )
    ).status_code == 201

    # A seat freed is a seat to give.
    assert (await client.delete(f"/v1/users/{second.id}", headers=h)).status_code == 204
    assert (
        await client.put(f"/v1/groups/{group}/members/{extra.id}", headers=h)
    ).status_code == 204


async def test_concurrent_grants_cannot_both_take_the_last_seat(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Four transactions on their own connections each grant a seat and stay open a moment
    before committing: without the tenant row lock each would count only its own grant and
    all four would pass."""
    tenant = await new_tenant(app, client, quotas={"max_agents": 2})
    group = uuid.UUID(await tenant.group(*MANAGE))
    users = [uuid.UUID((await tenant.user()).id) for _ in range(4)]

    async def grant(user_id: uuid.UUID) -> str:
        try:
            async with runtime(app).db.transaction() as conn:
                await tenant_service.add_member(conn, tenant.id, group, user_id)
                await asyncio.sleep(0.05)
        except QuotaExceeded:
            return "refused"
        return "granted"

    results = await asyncio.gather(*[grant(u) for u in users])
    assert sorted(results) == ["granted", "refused", "refused", "refused"]


async def test_a_member_added_while_their_group_is_granted_a_seat_is_counted(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A group without tickets:manage gains it in one transaction while a member is added to
    it in another: the add waits for the grant and then counts the seat it takes (before, it
    read the group's old permissions, skipped the check and overshot the quota)."""
    tenant = await new_tenant(app, client, quotas={"max_agents": 2})  # the admin holds one
    await tenant.user(*MANAGE)  # and this agent the other
    group = uuid.UUID(await tenant.group("tickets:create"))
    newcomer = uuid.UUID((await tenant.user()).id)
    db, catalog = runtime(app).db, runtime(app).catalog
    granted = asyncio.Event()
    committing = asyncio.Event()

    async def grant() -> None:
        # Grants to an empty group: no seat taken, so it passes; holds the lock a moment.
        async with db.transaction() as conn:
            await tenant_service.update_group(
                conn, catalog, tenant.id, group, {"permissions": ["tickets:create", *MANAGE]}
            )
            granted.set()
            await committing.wait()

    async def add() -> str:
        await granted.wait()
        try:
            async with db.transaction() as conn:
                await tenant_service.add_member(conn, tenant.id, group, newcomer)
        except QuotaExceeded:
            return "refused"
        return "added"

    granting = asyncio.create_task(grant())
    adding = asyncio.create_task(add())
    await granted.wait()
    await asyncio.sleep(0.2)  # the add runs into the grant's lock (before: it was done)
    committing.set()
    await granting
    assert await adding == "refused"
    r = await client.get("/v1/tenant", headers=tenant.headers)
    assert r.json()["quota_usage"]["max_agents"]["current"] == 2


async def test_unlimited_and_max_emails_month(
    client: httpx.AsyncClient, tenant: TenantCtx, operator: Operator
) -> None:
    out = await operator.licence(tenant.slug, quotas={"max_emails_month": 5000})
    assert out["quotas"] == {"max_agents": None, "max_emails_month": 5000}
    shown = (await client.get("/v1/tenant", headers=tenant.headers)).json()
    assert shown["quotas"]["max_emails_month"] == 5000
    assert shown["quota_usage"]["max_emails_month"] == {"limit": 5000, "current": 0}
    for _ in range(3):  # no max_agents: unlimited
        await tenant.user(*MANAGE)
    out = await operator.licence(tenant.slug, quotas={"max_emails_month": None})
    assert out["quotas"]["max_emails_month"] is None
    r = await client.patch(
        f"/platform/v1/tenants/{tenant.slug}/licence",
        json={"quotas": {"max_agents": -1}},
        headers=operator.headers,
    )
    assert r.status_code == 422


async def test_a_lowered_quota_raises_one_alert_until_resolved(
    app: FastAPI, client: httpx.AsyncClient, operator: Operator
) -> None:
    tenant = await new_tenant(app, client)
    await tenant.user(*MANAGE)
    await tenant.user(*MANAGE)  # three agents with the admin
    out = await operator.licence(tenant.slug, quotas={"max_agents": 1})
    assert out["quota_usage"]["max_agents"] == {"limit": 1, "current": 3}
    # Recorded at once, and again by the check: still one open alert.
    for _ in range(2):
        r = await client.post("/platform/v1/quota-checks", headers=operator.headers)
        assert r.status_code == 200 and r.json()["ran"] is True
        assert {
            "tenant_id": str(tenant.id),
            "quota": "max_agents",
            "limit": 1,
            "current": 3,
        } in r.json()["over_quota"]
    found = await alerts(operator, tenant.slug, open="true")
    assert len(found) == 1
    assert (found[0]["kind"], found[0]["limit"], found[0]["current"]) == ("over_quota", 1, 3)

    # Being over does not lock the tenant: what adds no seat still works.
    assert (
        await client.post(
            "/v1/users", json={"email": "n@x.example", "name": "N"}, headers=tenant.headers
        )
    ).status_code == 201

    await operator.licence(tenant.slug, quotas={"max_agents": 10})
    assert await alerts(operator, tenant.slug, open="true") == []
    closed = await alerts(operator, tenant.slug, kind="over_quota")
    assert len(closed) == 1 and closed[0]["resolved_at"] is not None


async def test_the_check_takes_turns_between_processes(
    app: FastAPI, client: httpx.AsyncClient, operator: Operator
) -> None:
    tenant = await new_tenant(app, client, quotas={"max_agents": 0})
    db = runtime(app).db
    # While another process holds the check's lock, this one skips its round.
    async with db.transaction() as conn:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", QUOTA_CHECK_LOCK_KEY)
        assert (await run_quota_check(db)).ran is False
    # Many at once: each either runs or skips, and the alert is recorded once.
    results = await asyncio.gather(*[run_quota_check(db) for _ in range(5)])
    assert any(r.ran for r in results)
    open_alerts = await alerts(operator, tenant.slug, open="true")
    assert len(open_alerts) == 1 and open_alerts[0]["kind"] == "over_quota"


async def test_the_background_task_records_alerts(
    app: FastAPI, client: httpx.AsyncClient, operator: Operator
) -> None:
    tenant = await new_tenant(app, client)
    # Lowered behind the API's back (as another replica or the CLI would): only the check sees it.
    async with runtime(app).db.connection() as conn:
        await conn.execute(
            """UPDATE tenants SET quotas = '{"max_agents": 0}' WHERE id = $1""", tenant.id
        )
    job = quota_check_job(runtime(app).db, interval=0.05)
    job.start()
    try:
        for _ in range(200):
            if await alerts(operator, tenant.slug, open="true"):
                break
            await asyncio.sleep(0.05)
    finally:
        await job.stop()
    found = await alerts(operator, tenant.slug, open="true")
    assert len(found) == 1 and (found[0]["limit"], found[0]["current"]) == (0, 1)
