"""Tenant administration is all or nothing: with a fault injected into a later write of a use
case, nothing of its earlier writes remains."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from flowdesk.itsm.service import LicenceChange, update_licence
from flowdesk.tenants.service import create_tenant
from tests.sql import failing_writes, fetch, fetchval
from tests.support import Operator, TenantCtx, runtime


@pytest.fixture
async def raw_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client that sees the 500 the app answers to an injected fault."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://flowdesk.test") as c:
        yield c


async def test_a_tenant_is_made_whole_or_not_at_all(app: FastAPI) -> None:
    # The tenant, its counter, admin, group and membership are written before its key.
    async with failing_writes(app, "api_keys"):
        with pytest.raises(asyncpg.RaiseError):
            async with runtime(app).db.transaction() as conn:
                await create_tenant(conn, "half-made", "Half made")
    assert await fetchval(app, "SELECT count(*) FROM tenants WHERE slug = 'half-made'") == 0


async def test_deleting_a_user_takes_their_keys_and_memberships_or_nothing(
    app: FastAPI, raw_client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    member = await tenant.user("tickets:create")
    async with failing_writes(app, "api_keys", on="UPDATE"):
        r = await raw_client.delete(f"/v1/users/{member.id}", headers=tenant.headers)
        assert r.status_code == 500
    rows = await fetch(
        app,
        "SELECT u.deleted_at, (SELECT count(*) FROM group_members m WHERE m.user_id = u.id) AS m "
        "FROM users u WHERE u.id = $1::uuid",
        member.id,
    )
    assert rows[0]["deleted_at"] is None and rows[0]["m"] == 1
    r = await raw_client.get("/v1/me", headers=member.headers)
    assert r.status_code == 200


async def test_a_licence_change_is_logged_or_not_made(
    app: FastAPI, raw_client: httpx.AsyncClient, operator: Operator, tenant: TenantCtx
) -> None:
    async with failing_writes(app, "licence_events"):
        r = await raw_client.patch(
            f"/platform/v1/tenants/{tenant.slug}/licence",
            json={"flags": {"public_api": False}, "quotas": {"max_agents": 7}},
            headers=operator.headers,
        )
        assert r.status_code == 500
        with pytest.raises(asyncpg.RaiseError):
            async with runtime(app).db.transaction() as conn:
                await update_licence(conn, tenant.id, LicenceChange(active=False), "tests")
    row = (await fetch(app, "SELECT * FROM tenants WHERE id = $1", tenant.id))[0]
    assert row["licence_active"] is True
    assert row["flags"]["public_api"] is True
    assert row["quotas"].get("max_agents") is None
