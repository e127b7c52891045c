"""Usage metering: requests per key per day by endpoint family and status class, counted in
memory and written in batches; read by the tenant's admin and by the operator."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from flowdesk.api.usage_middleware import family_of
from flowdesk.usage.meter import UsageMeter
from flowdesk.usage.repository import MAX_ROWS
from tests.support import TICKET, Operator, TenantCtx, bearer, runtime


async def stored_rows(app: FastAPI, tenant: TenantCtx) -> int:
    async with runtime(app).db.connection() as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM api_usage WHERE tenant_id = $1", tenant.id
        )
    assert isinstance(count, int)
    return count


def counts(report: dict[str, object], key_id: str) -> dict[tuple[str, str], int]:
    items = report["items"]
    assert isinstance(items, list)
    return {
        (i["family"], i["status_class"]): i["count"] for i in items if i["api_key_id"] == key_id
    }


async def test_requests_are_counted_and_flushed_in_batches(
    app: FastAPI, client: httpx.AsyncClient, tenant: TenantCtx, operator: Operator
) -> None:
    member = await tenant.user("tickets:create", scopes=["tickets:read", "tickets:write"])
    key_id = (await client.get("/v1/me", headers=member.headers)).json()["key_id"]
    h = member.headers
    # The same user's key for the public API (a key works on one API only).
    r = await client.post(
        "/v1/api-keys",
        json={
            "user_id": member.id,
            "name": "integration",
            "scopes": ["tickets:read", "tickets:write"],
            "channel": "public",
        },
        headers=tenant.headers,
    )
    assert r.status_code == 201 and r.json()["channel"] == "public"
    public_id, p = r.json()["id"], bearer(r.json()["key"])
    meter = runtime(app).usage_meter
    await meter.flush()
    for _ in range(3):
        assert (await client.get("/public/v1/tickets", headers=p)).status_code == 200
    assert (await client.post("/public/v1/tickets", json=TICKET, headers=p)).status_code == 201
    assert (await client.get("/public/v1/tickets/TKT-999999", headers=p)).status_code == 404
    assert (await client.get("/v1/tickets", headers=h)).status_code == 200
    assert (await client.get("/v1/users", headers=h)).status_code == 403
    assert (await client.get("/v1/no-such-thing", headers=h)).status_code == 404
    assert (await client.get("/v1/tickets")).status_code == 401  # no key: nothing to charge

    # No write per request: nothing of this key is in the database before the flush.
    assert meter.pending == 8
    rows_before = await stored_rows(app, tenant)
    await meter.flush()
    assert meter.pending == 0
    assert await stored_rows(app, tenant) > rows_before

    r = await client.get("/v1/usage", headers=tenant.headers)
    assert r.status_code == 200
    report = r.json()
    today = datetime.now(UTC).date().isoformat()
    assert report["last_day"] == today
    assert counts(report, public_id) == {("public.tickets", "2xx"): 4, ("public.tickets", "4xx"): 1}
    assert counts(report, key_id) == {
        ("v1.me", "2xx"): 1,
        ("v1.tickets", "2xx"): 1,
        ("v1.users", "4xx"): 1,
        # An unknown path is not a family of its own: clients cannot mint families.
        ("other", "4xx"): 1,
    }

    # A second batch adds to the first.
    for _ in range(2):
        await client.get("/public/v1/tickets", headers=p)
    await meter.flush()
    r = await operator.get(f"/tenants/{tenant.slug}/usage", api_key_id=public_id)
    assert r.status_code == 200
    assert counts(r.json(), public_id)[("public.tickets", "2xx")] == 6
    assert {i["api_key_id"] for i in r.json()["items"]} == {public_id}

    # Only admins read it; ranges are bounded.
    assert (await client.get("/v1/usage", headers=h)).status_code == 403
    too_long = (datetime.now(UTC) - timedelta(days=400)).date().isoformat()
    r = await client.get("/v1/usage", params={"from": too_long}, headers=tenant.headers)
    assert r.status_code == 422


async def test_several_meters_add_up(
    app: FastAPI, client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    """Processes flush the same (key, day, family, class) rows: the upsert adds, never
    overwrites."""
    key_id = (await client.get("/v1/me", headers=tenant.headers)).json()["key_id"]
    meters = [UsageMeter(runtime(app).db, flush_seconds=3600) for _ in range(3)]
    for meter in meters:
        for _ in range(5):
            meter.record(tenant.id, uuid.UUID(key_id), "public.bench", 200)
    for meter in meters:
        assert await meter.flush() == 5
    r = await client.get("/v1/usage", params={"api_key_id": key_id}, headers=tenant.headers)
    assert counts(r.json(), key_id)[("public.bench", "2xx")] == 15


async def test_a_flush_of_more_rows_than_postgresql_has_bind_parameters(
    app: FastAPI, client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    """12,000 distinct rows in one flush (a busy day of many keys): one statement over arrays,
    where six bind parameters a row would pass PostgreSQL's 65,535 limit."""
    key_id = uuid.UUID((await client.get("/v1/me", headers=tenant.headers)).json()["key_id"])
    meter = UsageMeter(runtime(app).db, flush_seconds=3600)
    for family in range(12_000):
        meter.record(tenant.id, key_id, f"f{family}", 200)
        meter.record(tenant.id, key_id, f"f{family}", 201)
    assert await meter.flush() == 24_000
    assert await stored_rows(app, tenant) >= 12_000
    meter.record(tenant.id, key_id, "f7", 200)
    assert await meter.flush() == 1  # added to the stored row
    async with runtime(app).db.connection() as conn:
        count = await conn.fetchval(
            "SELECT count FROM api_usage WHERE tenant_id = $1 AND family = 'f7'", tenant.id
        )
    assert count == 3


async def test_the_total_counts_what_the_list_leaves_out(
    app: FastAPI, client: httpx.AsyncClient, tenant: TenantCtx, operator: Operator
) -> None:
    """A range of more rows than a report lists: the total is the range's, not the page's."""
    key_id = uuid.UUID((await client.get("/v1/me", headers=tenant.headers)).json()["key_id"])
    meter = UsageMeter(runtime(app).db, flush_seconds=3600)
    rows = MAX_ROWS + 500
    for family in range(rows):
        meter.record(tenant.id, key_id, f"f{family}", 200)
        meter.record(tenant.id, key_id, f"f{family}", 404)
    assert await meter.flush() == 2 * rows
    for report in (
        (await client.get("/v1/usage", headers=tenant.headers)).json(),
        (await operator.get(f"/tenants/{tenant.slug}/usage")).json(),
    ):
        assert len(report["items"]) == MAX_ROWS
        assert report["total"] == 2 * rows
    r = await client.get(
        "/v1/usage", params={"api_key_id": str(uuid.uuid4())}, headers=tenant.headers
    )
    assert r.json() == r.json() | {"total": 0, "items": []}


def test_families() -> None:
    assert family_of("/public/v1/tickets/{ref}") == "public.tickets"
    assert family_of("/v1/groups/{group_id}/members/{user_id}") == "v1.groups"
    assert family_of("/healthz") == "other"


async def test_the_key_is_resolved_once_per_request(
    app: FastAPI, client: httpx.AsyncClient, tenant: TenantCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
    authenticator = runtime(app).authenticator
    original = authenticator.authenticate
    calls: list[str] = []

    async def counting(authorization: str | None) -> object:
        calls.append(authorization or "")
        return await original(authorization)

    monkeypatch.setattr(authenticator, "authenticate", counting)
    public = await tenant.public(tenant.admin)
    for path in ["/public/v1/tickets", "/v1/tickets", "/v1/me"]:
        headers = public.headers if path.startswith("/public/") else tenant.headers
        calls.clear()
        assert (await client.get(path, headers=headers)).status_code == 200
        assert len(calls) == 1, path
