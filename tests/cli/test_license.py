"""`flowdesk tenants license`, `flowdesk quotas check`, and the licensed demo tenant."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import httpx
from fastapi import FastAPI

from flowdesk.cli import _seed_demo_tenant
from flowdesk.config import Settings
from flowdesk.db import migrate
from flowdesk.db.pool import asyncpg_dsn
from tests.cli.test_commands import run
from tests.support import new_tenant


async def test_license_from_the_command_line(
    database_url: str, app: FastAPI, client: httpx.AsyncClient
) -> None:
    tenant = await new_tenant(app, client, licensed=False)
    done = run(
        database_url,
        "tenants",
        "license",
        tenant.slug,
        "--activate",
        "--flag",
        "public_api=on",
        "--flag",
        "agent_portal=off",
        "--max-agents",
        "5",
        "--rate-limit",
        "100/60",
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["licence"]["active"] is True
    assert shown["flags"]["public_api"] is True and shown["flags"]["agent_portal"] is False
    assert shown["quotas"] == {"max_agents": 5, "max_emails_month": None}
    assert shown["rate_limit"] == {"requests": 100, "window_seconds": 60, "default": False}
    # The tenant's admins see it (within the licence cache's few seconds; this worker has not
    # cached the tenant yet).
    r = await client.get("/v1/tenant", headers=tenant.headers)
    assert r.json()["licence"]["active"] is True and r.json()["quotas"]["max_agents"] == 5

    done = run(
        database_url, "tenants", "license", tenant.slug, "--deactivate", "--max-agents", "unlimited"
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["licence"]["active"] is False and shown["quotas"]["max_agents"] is None

    bad = run(database_url, "tenants", "license", tenant.slug, "--flag", "warp_drive=on")
    assert bad.returncode == 2 and "unknown flag" in bad.stderr
    bad = run(database_url, "tenants", "license", tenant.slug, "--rate-limit", "fast")
    assert bad.returncode == 2 and "REQUESTS/SECONDS" in bad.stderr
    missing = run(database_url, "tenants", "license", "no-such-tenant", "--activate")
    assert missing.returncode == 1 and "No tenant" in missing.stderr

    done = run(database_url, "quotas", "check")
    assert done.returncode == 0, done.stderr
    assert "tenants_checked" in json.loads(done.stdout)


async def _tenants(url: str) -> list[tuple[str, bool, dict[str, bool]]]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn.fetch("SELECT slug, licence_active, flags::text FROM tenants")
        return [(r["slug"], r["licence_active"], json.loads(r["flags"])) for r in rows]
    finally:
        await conn.close()


def test_a_created_tenant_is_unlicensed_and_the_demo_is_licensed(create_database: object) -> None:
    url: str = create_database()  # type: ignore[operator]
    done = run(url, "tenants", "create", "acme-unlicensed", "--name", "Acme")
    assert done.returncode == 0 and "tenants license acme-unlicensed --activate" in done.stdout
    _seed_demo_tenant(url, Settings(database_url=url))  # not an empty database: no demo
    assert asyncio.run(_tenants(url)) == [("acme-unlicensed", False, {})]

    url = create_database()  # type: ignore[operator]
    migrate.upgrade(url)
    _seed_demo_tenant(url, Settings(database_url=url))
    [(slug, active, flags)] = asyncio.run(_tenants(url))
    assert slug == "demo" and active is True
    assert len(flags) == 7 and all(flags.values())
