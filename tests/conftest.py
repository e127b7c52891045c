"""Test harness: a real PostgreSQL for the whole session (the embedded server by default, or
the one in FLOWDESK_TEST_DATABASE_URL), a fresh database migrated to head, and the ASGI app
driven through httpx.

Tests isolate themselves by working in a tenant of their own (the `tenant` fixture): tenants
share nothing, so tests need no truncation between them and can run in any order.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from flowdesk.app import create_app
from flowdesk.config import Settings
from flowdesk.db import embedded, migrate
from tests.support import PLATFORM_TOKEN, Operator, TenantCtx, new_tenant
from tests.tickets.conftest import AGENT, Desk


def _plain_dsn(url: str) -> str:
    """asyncpg wants postgresql://, SQLAlchemy postgresql+asyncpg://."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A URL of the PostgreSQL server's maintenance database."""
    configured = os.environ.get("FLOWDESK_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    # Not under pytest's basetemp: pytest prunes old basetemps, and a second pytest running on
    # the machine could delete a live data directory.
    data_dir = Path(tempfile.mkdtemp(prefix="flowdesk-test-pg-"))
    # Registered before the server's own exit hook, so it runs after the server has stopped.
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    url = embedded.start(data_dir, database="postgres")
    # Durability is not what the tests check; turning it off halves the suite's time.
    _run(
        _execute(
            url,
            "ALTER SYSTEM SET fsync = off",
            "ALTER SYSTEM SET synchronous_commit = off",
            "SELECT pg_reload_conf()",
        )
    )
    yield url


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine to completion from sync code, even when called inside a running loop
    (the fixtures below are used from async tests too)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coro).result()


async def _execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(_plain_dsn(url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def create_database(server_url: str) -> Iterator[object]:
    """Makes fresh, empty databases on the test server; drops them at the end."""
    made: list[str] = []

    def create() -> str:
        name = f"flowdesk_test_{uuid.uuid4().hex[:12]}"
        _run(_execute(server_url, f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(server_url).set(database=name).render_as_string(hide_password=False)

    yield create
    for name in made:
        _run(_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def database_url(create_database: object) -> str:
    url: str = create_database()  # type: ignore[operator]
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("data"),
        seed_demo=False,
        # The relay runs in the notification tests, on databases of their own.
        relay_poll_seconds=0,
        db_pool_size=10,
        platform_token=PLATFORM_TOKEN,
        # The background tasks are driven by hand in the tests that need them.
        quota_check_seconds=0,
        timer_tick_seconds=0,
        sla_tick_seconds=0,
        usage_flush_seconds=3600,
        key_use_flush_seconds=3600,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://flowdesk.test") as c:
        yield c


@pytest.fixture
async def tenant(app: FastAPI, client: httpx.AsyncClient) -> TenantCtx:
    """A tenant of this test's own, with its admin and the admin's key."""
    return await new_tenant(app, client)


@pytest.fixture
async def other_tenant(app: FastAPI, client: httpx.AsyncClient) -> TenantCtx:
    return await new_tenant(app, client)


@pytest.fixture
def operator(client: httpx.AsyncClient) -> Operator:
    """The platform operator, with the platform token."""
    return Operator(client)


@pytest.fixture
async def desk(client: httpx.AsyncClient, tenant: TenantCtx) -> Desk:
    """A service desk in `tenant`: a requester, the assignee and another agent."""
    return Desk(
        client=client,
        tenant=tenant,
        requester=await tenant.user("tickets:create", name="Rita Requester"),
        assignee=await tenant.user(*AGENT, name="Ada Assignee"),
        agent=await tenant.user(*AGENT, name="Otto Other"),
    )
