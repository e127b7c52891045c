"""The admin audit log (issue 16, item 8): every administrative change is recorded in its own
transaction with its actor, key, action, before and after (never a secret), read back at
GET /v1/audit-log; the table is append-only; a key records which key made it."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from tests.sql import execute, fetchval
from tests.support import Operator, TenantCtx, problem_type


async def _log(tenant: TenantCtx, **params: Any) -> dict[str, Any]:
    r = await tenant.client.get("/v1/audit-log", params=params, headers=tenant.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _by_admins(tenant: TenantCtx) -> list[dict[str, Any]]:
    """The entries of the tenant's own admins (not the licence the test tenant was made with,
    recorded as the operator's)."""
    return [e for e in (await _log(tenant))["items"] if e["actor_type"] == "user"]


async def _key_id(tenant: TenantCtx) -> str:
    return str((await tenant.client.get("/v1/me", headers=tenant.headers)).json()["key_id"])


async def test_key_creation_and_revocation_are_recorded_without_the_secret(
    tenant: TenantCtx,
) -> None:
    c, h = tenant.client, tenant.headers
    admin_key = await _key_id(tenant)
    r = await c.post(
        "/v1/api-keys",
        json={"user_id": tenant.admin.id, "name": "ci", "scopes": ["tickets:read"]},
        headers=h,
    )
    assert r.status_code == 201
    made = r.json()
    assert made["created_by_key_id"] == admin_key
    assert (await c.get(f"/v1/api-keys/{made['id']}", headers=h)).json()[
        "created_by_key_id"
    ] == admin_key
    assert (await c.delete(f"/v1/api-keys/{made['id']}", headers=h)).status_code == 204
    # Revoking it again changes nothing, and records nothing.
    assert (await c.delete(f"/v1/api-keys/{made['id']}", headers=h)).status_code == 204

    entries = (await _log(tenant, target_type="api_key"))["items"]
    assert [e["action"] for e in entries] == ["api_key.revoked", "api_key.created"]
    revoked, created = entries
    for entry in entries:
        assert entry["actor_type"] == "user"
        assert entry["actor_user_id"] == tenant.admin.id
        assert entry["actor_key_id"] == admin_key
        assert entry["target_id"] == made["id"]
        assert entry["request_id"]
    assert created["before"] is None and created["after"]["scopes"] == ["tickets:read"]
    assert revoked["before"]["revoked_at"] is None and revoked["after"]["revoked_at"]
    text = str(entries)
    assert made["key"] not in text and "key_hash" not in text


async def test_users_groups_members_and_the_tenant_are_recorded(tenant: TenantCtx) -> None:
    c, h = tenant.client, tenant.headers
    user = (
        await c.post("/v1/users", json={"email": "ann@example.com", "name": "Ann"}, headers=h)
    ).json()
    await c.patch(f"/v1/users/{user['id']}", json={"name": "Ann B"}, headers=h)
    group = (await c.post("/v1/groups", json={"name": "desk", "permissions": []}, headers=h)).json()
    await c.patch(f"/v1/groups/{group['id']}", json={"permissions": ["tickets:create"]}, headers=h)
    await c.put(f"/v1/groups/{group['id']}/members/{user['id']}", headers=h)
    await c.delete(f"/v1/groups/{group['id']}/members/{user['id']}", headers=h)
    await c.delete(f"/v1/users/{user['id']}", headers=h)
    await c.patch("/v1/tenant", json={"ticket_prefix": "ACME"}, headers=h)

    entries = await _by_admins(tenant)
    assert [e["action"] for e in entries] == [
        "tenant.updated",
        "user.deleted",
        "group.member_removed",
        "group.member_added",
        "group.updated",
        "group.created",
        "user.updated",
        "user.created",
    ]
    by_action = {e["action"]: e for e in entries}
    assert by_action["user.updated"]["before"]["name"] == "Ann"
    assert by_action["user.updated"]["after"]["name"] == "Ann B"
    assert by_action["group.updated"]["before"]["permissions"] == []
    assert by_action["group.updated"]["after"]["permissions"] == ["tickets:create"]
    assert by_action["group.member_added"]["after"] == {"user_id": user["id"]}
    assert by_action["tenant.updated"]["before"] == {"ticket_prefix": "TKT"}
    assert by_action["tenant.updated"]["after"] == {"ticket_prefix": "ACME"}


async def test_a_refused_change_records_nothing(tenant: TenantCtx) -> None:
    """The entry is written in the change's transaction: the last admin's deletion is refused
    (409) and leaves no entry."""
    r = await tenant.client.delete(f"/v1/users/{tenant.admin.id}", headers=tenant.headers)
    assert r.status_code == 409
    assert await _by_admins(tenant) == []


async def test_licence_changes_by_the_platform_are_recorded(
    tenant: TenantCtx, operator: Operator
) -> None:
    await operator.licence(tenant.slug, flags={"public_api": False}, quotas={"max_agents": 7})
    entries = (await _log(tenant, action="licence.updated"))["items"]
    # The newest; the oldest is the test tenant's licence, given by the CLI's code path.
    assert [e["actor_type"] for e in entries] == ["platform", "operator"]
    entry = entries[0]
    assert entry["actor_type"] == "platform" and entry["actor_user_id"] is None
    assert entry["before"]["flags"] == {"public_api": True}
    assert entry["after"] == {"flags": {"public_api": False}, "quotas": {"max_agents": 7}}


async def test_the_log_filters_and_pages(tenant: TenantCtx, other_tenant: TenantCtx) -> None:
    c, h = tenant.client, tenant.headers
    for n in range(3):
        await c.post("/v1/groups", json={"name": f"g{n}", "permissions": []}, headers=h)
    await c.post("/v1/users", json={"email": "x@example.com", "name": "X"}, headers=h)

    page = await _log(tenant, action="group.created", limit=2)
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = await _log(tenant, action="group.created", limit=2, cursor=page["next_cursor"])
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    names = [e["after"]["name"] for e in page["items"] + rest["items"]]
    assert names == ["g2", "g1", "g0"]

    assert len((await _log(tenant, actor_user_id=tenant.admin.id))["items"]) == 4
    assert (await _log(tenant, actor_user_id=str(uuid.uuid4())))["items"] == []
    group_id = page["items"][0]["target_id"]
    assert len((await _log(tenant, target_type="group", target_id=group_id))["items"]) == 1
    everything = await _by_admins(tenant)
    newest = everything[0]["created_at"]
    assert (await _log(tenant, since="2000-01-01T00:00:00Z", until="2000-01-02T00:00:00Z"))[
        "items"
    ] == []
    assert len((await _log(tenant, since="2000-01-01T00:00:00Z"))["items"]) == 5  # licence too
    assert [e["action"] for e in (await _log(tenant, since=newest))["items"]] == ["user.created"]
    assert "user.created" not in [e["action"] for e in (await _log(tenant, until=newest))["items"]]

    # Another tenant's admin sees none of it.
    assert await _by_admins(other_tenant) == []

    for bad in ({"cursor": "bm90LWEtY3Vyc29y"}, {"cursor": "WyJ4Il0"}, {"since": "0.5"}):
        r = await c.get("/v1/audit-log", params=bad, headers=h)
        assert r.status_code == 422, bad
        assert problem_type(r) == "validation-error", r.text
    r = await c.get(
        "/v1/audit-log",
        params={"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        headers=h,
    )
    assert r.status_code == 422


async def test_only_admins_read_the_log(tenant: TenantCtx) -> None:
    agent = await tenant.user("tickets:manage")
    r = await tenant.client.get("/v1/audit-log", headers=agent.headers)
    assert r.status_code == 403


async def test_the_log_is_append_only(app: FastAPI, tenant: TenantCtx) -> None:
    await tenant.client.post(
        "/v1/groups", json={"name": "kept", "permissions": []}, headers=tenant.headers
    )
    for statement in (
        "UPDATE admin_audit_log SET action = 'forged' WHERE tenant_id = $1",
        "DELETE FROM admin_audit_log WHERE tenant_id = $1",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await execute(app, statement, args=(tenant.id,))
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await execute(app, "TRUNCATE admin_audit_log")
    assert (
        await fetchval(app, "SELECT count(*) FROM admin_audit_log WHERE tenant_id = $1", tenant.id)
        == 2  # the licence and the group
    )
    # The tenant's own deletion takes its log with it (the foreign key's cascade).
    await execute(app, "DELETE FROM tenants WHERE id = $1", args=(tenant.id,))
    assert (
        await fetchval(app, "SELECT count(*) FROM admin_audit_log WHERE tenant_id = $1", tenant.id)
        == 0
    )
