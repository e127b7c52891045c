"""Migration 0015 (API keys bound to a channel): existing keys whose metered traffic was all
on the public API become public keys; every other key stays first-party."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from flowdesk.db import migrate
from flowdesk.db.pool import asyncpg_dsn


async def test_keys_seen_only_on_the_public_api_become_public(
    create_database: Callable[[], str],
) -> None:
    url = create_database()
    await asyncio.to_thread(migrate.upgrade, url, "0014")
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        tenant = await conn.fetchval(
            "INSERT INTO tenants (slug, name, ticket_prefix) VALUES ('m', 'M', 'M') RETURNING id"
        )
        user = await conn.fetchval(
            "INSERT INTO users (tenant_id, email, name, kind) "
            "VALUES ($1, 'a@m.example', 'A', 'person') RETURNING id",
            tenant,
        )
        keys = {}
        for i, name in enumerate(("public only", "both", "v1 only", "unused")):
            keys[name] = await conn.fetchval(
                "INSERT INTO api_keys (tenant_id, user_id, name, prefix, key_hash, scopes) "
                "VALUES ($1, $2, $3, 'fdk_x', $4, ARRAY['tickets:read']) RETURNING id",
                tenant,
                user,
                name,
                bytes([i]) * 32,
            )
        for name, family in (
            ("public only", "public.tickets"),
            ("public only", "public.assets"),
            ("both", "public.tickets"),
            ("both", "v1.tickets"),
            ("v1 only", "v1.me"),
        ):
            await conn.execute(
                "INSERT INTO api_usage (tenant_id, day, api_key_id, family, status_class, count)"
                " VALUES ($1, current_date, $2, $3, 2, 5)",
                tenant,
                keys[name],
                family,
            )
        await asyncio.to_thread(migrate.upgrade, url)
        rows = await conn.fetch("SELECT name, channel FROM api_keys ORDER BY name")
        assert {r["name"]: r["channel"] for r in rows} == {
            "public only": "public",
            "both": "first_party",
            "v1 only": "first_party",
            "unused": "first_party",
        }
        # Only the two channels exist.
        try:
            await conn.execute("UPDATE api_keys SET channel = 'other'")
        except asyncpg.CheckViolationError:
            pass
        else:
            raise AssertionError("the check constraint let another channel in")
    finally:
        await conn.close()
