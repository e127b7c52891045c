"""Seeding: flowdesk's tenants through its own service functions, and the reference and pgbench
databases (flowdesk's schema) with bulk SQL and deterministic ids.

flowdesk: every tenant is made by `flowdesk.tenants.service.create_tenant` (tenant, counter row,
admin user, administrators group, admin key with all scopes), so the keys are real keys and the
rows are what production has; when flowdesk has the ITSM licence (flowdesk.itsm), each tenant
also gets it, active, with every feature flag on (see `_licence_hooks`).

reference / pgbench: tenant i has id 00000000-0000-4000-8000-<i, 12 digits>, its user
00000000-0000-4000-9000-<i>, pgbench's transition ticket k 00000000-0000-4000-a000-<k> (in
tenant k % tenants). The pgbench scripts compute the same ids.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

logger = logging.getLogger("bench.seed")

TENANT_UUID = "('00000000-0000-4000-8000-' || lpad(({0})::text, 12, '0'))::uuid"
USER_UUID = "('00000000-0000-4000-9000-' || lpad(({0})::text, 12, '0'))::uuid"
TICKET_UUID = "('00000000-0000-4000-a000-' || lpad(({0})::text, 12, '0'))::uuid"


def tenant_uuid(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def user_uuid(i: int) -> str:
    return f"00000000-0000-4000-9000-{i:012d}"


# --- flowdesk ------------------------------------------------------------------------------

LicenceHook = Callable[[Any, Any], Awaitable[None]]


def _licence_hooks() -> list[LicenceHook]:
    """How to switch a tenant's ITSM licence on with every feature flag, if this flowdesk has
    a licence (without an active one the ticket endpoints answer 403).

    flowdesk.itsm.service.update_licence(conn, tenant_id, LicenceChange(...), actor) is the
    operator's use case (what /platform/v1 and the CLI call), run in the seeding transaction;
    nothing found: no hook."""
    try:
        service = importlib.import_module("flowdesk.itsm.service")
        vocabulary = importlib.import_module("flowdesk.vocabulary")
    except ImportError:
        return []
    update = getattr(service, "update_licence", None)
    change_type = getattr(service, "LicenceChange", None)
    if update is None or change_type is None:
        logger.warning("flowdesk.itsm has no update_licence/LicenceChange; no licence set")
        return []
    flags = dict.fromkeys(getattr(vocabulary, "FLAGS", ()), True)
    params = inspect.signature(update).parameters

    failed: list[BaseException] = []

    async def activate(conn: Any, tenant_id: Any) -> None:
        if not failed:
            change = change_type(active=True, flags=flags)
            kwargs = {"actor": "bench"} if "actor" in params else {}
            try:
                async with conn.transaction():  # a savepoint: a failure undoes only this
                    await update(conn, tenant_id, change, **kwargs)
                return
            except Exception as exc:  # the licensing code is young; say so and carry on
                failed.append(exc)
                logger.warning(
                    "flowdesk.itsm.service.update_licence failed (%s); setting the licence "
                    "columns directly instead",
                    str(exc).splitlines()[0],
                )
        await _activate_by_sql(conn, tenant_id, flags)

    return [activate]


async def _activate_by_sql(conn: Any, tenant_id: Any, flags: dict[str, bool]) -> None:
    """What update_licence stores for an activation with every flag on."""
    await conn.execute(
        "UPDATE tenants SET licence_active = true, licence_activated_at = now(), "
        "flags = $1::jsonb, updated_at = now() WHERE id = $2",
        json.dumps(flags),
        tenant_id,
    )


async def seed_flowdesk(url: str, tenants: int, *, concurrency: int = 4) -> list[str]:
    """Make `tenants` tenants; return their admin keys (index 0 is the hot tenant)."""
    from flowdesk.config import Settings
    from flowdesk.db.pool import Database
    from flowdesk.tenants.service import create_tenant

    settings = Settings(database_url=url, seed_demo=False)
    db = await Database.open(url, settings, size=concurrency)
    hooks = _licence_hooks()
    keys = [""] * tenants

    async def batch(indices: range) -> None:
        async with db.transaction() as conn:
            for i in indices:
                made = await create_tenant(conn, f"bench-{i:05d}", f"Bench tenant {i}", "TKT")
                for hook in hooks:
                    await hook(conn, made.tenant["id"])
                keys[i] = made.key.secret

    try:
        size = 25
        chunks = [range(i, min(i + size, tenants)) for i in range(0, tenants, size)]
        for start in range(0, len(chunks), concurrency):
            await asyncio.gather(*(batch(c) for c in chunks[start : start + concurrency]))
    finally:
        await db.close()
    return keys


# --- reference and pgbench -----------------------------------------------------------------


async def seed_plain(dsn: str, tenants: int, *, tokens: bool) -> list[str]:
    """Tenants, counters and one user each in flowdesk's schema; with `tokens`, the reference
    app's token table too. Returns the tokens (empty without)."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                f"""
                INSERT INTO tenants (id, slug, name, ticket_prefix)
                SELECT {TENANT_UUID.format("i")}, 'ref-' || i, 'Reference tenant ' || i, 'TKT'
                FROM generate_series(0, $1 - 1) AS i
                """,
                tenants,
            )
            await conn.execute(
                f"""
                INSERT INTO ticket_counters (tenant_id, last_number)
                SELECT {TENANT_UUID.format("i")}, 0 FROM generate_series(0, $1 - 1) AS i
                """,
                tenants,
            )
            await conn.execute(
                f"""
                INSERT INTO users (tenant_id, id, email, name, kind)
                SELECT {TENANT_UUID.format("i")}, {USER_UUID.format("i")},
                       'agent@ref-' || i || '.example', 'Agent ' || i, 'person'
                FROM generate_series(0, $1 - 1) AS i
                """,
                tenants,
            )
            if not tokens:
                return []
            from flowdesk.auth.keys import generate_key

            secrets = [generate_key() for _ in range(tenants)]
            await conn.execute(
                "CREATE TABLE ref_tokens (token text PRIMARY KEY, tenant_id uuid, user_id uuid)"
            )
            await conn.executemany(
                "INSERT INTO ref_tokens VALUES ($1, $2::uuid, $3::uuid)",
                [(s, tenant_uuid(i), user_uuid(i)) for i, s in enumerate(secrets)],
            )
            return secrets
    finally:
        await conn.close()


async def seed_pgbench_tickets(dsn: str, tenants: int, count: int) -> None:
    """`count` tickets in_progress for pgbench's transition script: ticket k in tenant
    k % tenants, numbered after the tenant's counter, which is moved past them."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                f"""
                INSERT INTO tickets (tenant_id, id, number, prefix, title, description, type,
                                     catalog_item, workflow, status, status_category, priority,
                                     requester_id)
                SELECT {TENANT_UUID.format("k % $2")}, {TICKET_UUID.format("k")},
                       c.last_number + k / $2 + 1, 'TKT', 'Printer on fire', 'Seeded.',
                       'incident', 'itsm_incident', 'itsm_default', 'in_progress', 'active',
                       'HIGH', {USER_UUID.format("k % $2")}
                FROM generate_series(0, $1 - 1) AS k
                JOIN ticket_counters c ON c.tenant_id = {TENANT_UUID.format("k % $2")}
                """,
                count,
                tenants,
            )
            await conn.execute(
                """
                UPDATE ticket_counters c SET last_number = m.top
                FROM (SELECT tenant_id, max(number) AS top FROM tickets GROUP BY tenant_id) m
                WHERE c.tenant_id = m.tenant_id
                """
            )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def analyze(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
