"""Access changes reach every process's key and licence caches through LISTEN/NOTIFY.

The app here trusts cached entries for an hour either way (`auth_cache_seconds` and
`licence_cache_seconds` are 3600), so a change can only take effect through a notification.
Changes are made with plain SQL on a connection of the test's own, as an operator or another
replica would: nothing in this process is told directly.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from flowdesk.app import create_app
from flowdesk.auth import keys
from flowdesk.config import Settings
from flowdesk.db.listener import CHANNEL, AccessListener
from flowdesk.db.pool import asyncpg_dsn
from tests.support import TenantCtx, new_tenant, problem_type, runtime, until


@pytest.fixture(scope="module")
async def slow_app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(
        settings.model_copy(
            update={
                "auth_cache_seconds": 3600,
                "licence_cache_seconds": 3600,
                "access_cache_seconds": 3600,
            }
        )
    )
    async with app.router.lifespan_context(app):
        await until(lambda: _listener(app).listening, "the listener connects")
        yield app


@pytest.fixture
async def slow_client(slow_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=slow_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://flowdesk.test") as c:
        yield c


@pytest.fixture
async def sql(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    yield conn
    await conn.close()


def _listener(app: FastAPI) -> AccessListener:
    return runtime(app).listener


async def _heard_so_far(app: FastAPI, sql: asyncpg.Connection) -> None:
    """Returns once the app's listener has handled every notification committed before the
    call (a new tenant's own, say, which would otherwise make it forget the tenant's keys at
    an unknown moment): PostgreSQL delivers them in commit order, so a marker sent now is
    heard after all of them."""
    marker = uuid.uuid4()
    heard = asyncio.Event()

    class Marker:
        def forget_all(self) -> None:
            pass

        def forget_tenant(self, tenant_id: uuid.UUID) -> None:
            if tenant_id == marker:
                heard.set()

    _listener(app).subscribe(Marker())
    await sql.execute("SELECT pg_notify($1, $2)", CHANNEL, str(marker))
    await asyncio.wait_for(heard.wait(), 10)


def _status_is(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], status: int
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await client.get(path, headers=headers)).status_code == status

    return check


async def test_a_revocation_by_sql_reaches_the_key_cache(
    slow_app: FastAPI, slow_client: httpx.AsyncClient, sql: asyncpg.Connection
) -> None:
    tenant = await new_tenant(slow_app, slow_client)
    assert (await slow_client.get("/v1/me", headers=tenant.headers)).status_code == 200
    await sql.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_hash = $1",
        keys.hash_key(tenant.admin.key),
    )
    await until(
        _status_is(slow_client, "/v1/me", tenant.headers, 401), "the revoked key is refused"
    )


async def test_a_group_change_by_sql_reaches_the_key_cache(
    slow_app: FastAPI, slow_client: httpx.AsyncClient, sql: asyncpg.Connection
) -> None:
    tenant = await new_tenant(slow_app, slow_client)
    # The admin's permissions come from the administrators group; take admin away from it.
    assert (await slow_client.get("/v1/users", headers=tenant.headers)).status_code == 200
    await sql.execute(
        "UPDATE groups SET permissions = array_remove(permissions, 'admin') WHERE tenant_id = $1",
        tenant.id,
    )
    await until(
        _status_is(slow_client, "/v1/users", tenant.headers, 403), "admin is no longer held"
    )


async def test_a_licence_change_by_sql_reaches_the_licence_cache(
    slow_app: FastAPI, slow_client: httpx.AsyncClient, sql: asyncpg.Connection
) -> None:
    tenant = await new_tenant(slow_app, slow_client)
    assert (await slow_client.get("/v1/tickets", headers=tenant.headers)).status_code == 200
    await sql.execute(
        "UPDATE tenants SET flags = flags || '{\"agent_portal\": false}' WHERE id = $1",
        tenant.id,
    )

    async def disabled() -> bool:
        r = await slow_client.get("/v1/tickets", headers=tenant.headers)
        return r.status_code == 403 and problem_type(r).endswith("feature-disabled")

    await until(disabled, "the agent portal is off")


async def test_other_tenants_keep_their_cache_entries(
    slow_app: FastAPI, slow_client: httpx.AsyncClient, sql: asyncpg.Connection
) -> None:
    first = await new_tenant(slow_app, slow_client)
    second = await new_tenant(slow_app, slow_client)
    await _heard_so_far(slow_app, sql)
    for t in (first, second):
        assert (await slow_client.get("/v1/me", headers=t.headers)).status_code == 200
    cache = runtime(slow_app).authenticator._cache
    second_digest = keys.hash_key(second.admin.key)
    assert second_digest in cache
    await sql.execute("UPDATE users SET kind = kind WHERE tenant_id = $1", first.id)
    await until(lambda: keys.hash_key(first.admin.key) not in cache, "the first is forgotten")
    assert second_digest in cache


async def test_marking_a_key_used_notifies_nobody(
    tenant: TenantCtx, sql: asyncpg.Connection, database_url: str
) -> None:
    """The per-minute last_used_at write must not flush every worker's caches. Notifications
    are delivered in commit order, so a sentinel sent after the write arrives first only if
    the write sent nothing."""
    heard: asyncio.Queue[str] = asyncio.Queue()
    listening = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await listening.add_listener(CHANNEL, lambda *args: heard.put_nowait(args[3]))
        await sql.execute(
            "UPDATE api_keys SET last_used_at = now() WHERE key_hash = $1",
            keys.hash_key(tenant.admin.key),
        )
        await sql.execute(f"NOTIFY {CHANNEL}, 'sentinel'")
        assert await asyncio.wait_for(heard.get(), 10) == "sentinel"
        # And a change that matters is heard, with the tenant's id.
        await sql.execute(
            "UPDATE api_keys SET expires_at = now() + interval '1 day' WHERE key_hash = $1",
            keys.hash_key(tenant.admin.key),
        )
        assert await asyncio.wait_for(heard.get(), 10) == str(tenant.id)
    finally:
        await listening.close()


async def test_a_lost_listener_falls_back_to_the_short_ttl_and_comes_back(
    slow_app: FastAPI, slow_client: httpx.AsyncClient, sql: asyncpg.Connection
) -> None:
    listener = _listener(slow_app)
    ttl = listener.ttl_policy(5.0)
    tenant = await new_tenant(slow_app, slow_client)
    await _heard_so_far(slow_app, sql)
    assert (await slow_client.get("/v1/me", headers=tenant.headers)).status_code == 200
    cache = runtime(slow_app).authenticator._cache
    assert keys.hash_key(tenant.admin.key) in cache
    before = time.monotonic()
    assert ttl(before) == 3600

    assert listener._conn is not None
    pid = listener._conn.get_server_pid()
    await sql.execute("SELECT pg_terminate_backend($1)", pid)
    await until(lambda: not listener.listening, "the loss is noticed")
    assert ttl(before) == 5.0  # deaf: nothing is trusted beyond the short TTL
    await until(lambda: listener.listening, "the listener is back")
    assert listener._conn is not None
    assert listener._conn.get_server_pid() != pid
    # What changed while it was away is unknown: everything was forgotten, and an entry
    # fetched before it came back stays on the short TTL.
    assert keys.hash_key(tenant.admin.key) not in cache
    assert ttl(before) == 5.0
    assert ttl(time.monotonic()) == 3600

    # And a change made after it came back is heard.
    assert (await slow_client.get("/v1/me", headers=tenant.headers)).status_code == 200
    await sql.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_hash = $1",
        keys.hash_key(tenant.admin.key),
    )
    await until(
        _status_is(slow_client, "/v1/me", tenant.headers, 401), "the revoked key is refused"
    )


async def test_a_load_that_raced_a_change_is_not_cached(
    slow_app: FastAPI, slow_client: httpx.AsyncClient, sql: asyncpg.Connection
) -> None:
    """A key read while a change to its tenant was heard may be the old state: it serves the
    request that read it but is not kept for the next."""
    tenant = await new_tenant(slow_app, slow_client)
    await _heard_so_far(slow_app, sql)
    authenticator = runtime(slow_app).authenticator
    digest = keys.hash_key(tenant.admin.key)
    # Hold the key lookup at the table lock, so the change is heard while it is in flight.
    tx = sql.transaction()
    await tx.start()
    await sql.execute("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
    lookup = asyncio.create_task(authenticator.authenticate(f"Bearer {tenant.admin.key}"))

    async def waiting() -> bool:
        # pg_locks, not pg_stat_activity: inside this transaction the latter is a snapshot
        # taken at its first read, which may predate the lookup (then it never shows it).
        return bool(
            await sql.fetchval(
                "SELECT count(*) FROM pg_locks "
                "WHERE NOT granted AND relation = 'api_keys'::regclass"
            )
        )

    await until(waiting, "the lookup waits for the lock")
    authenticator.forget_tenant(tenant.id)
    await tx.rollback()
    principal = await lookup
    assert principal.tenant_id == tenant.id
    assert digest not in authenticator._cache
    # The next lookup reads again and is kept.
    await authenticator.authenticate(f"Bearer {tenant.admin.key}")
    assert digest in authenticator._cache
