"""The fault suite's world: real `flowdesk serve` processes on a database, a licensed tenant,
and what the tests look at in PostgreSQL (who waits on a lock, the tenant's tickets).

Every process a test starts is killed in a `finally`, whatever happened. A test waits for other
processes by polling, with a deadline (PATIENCE) and a failure that shows the logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from flowdesk.config import Settings
from flowdesk.db.pool import Database, asyncpg_dsn
from flowdesk.itsm.service import LicenceChange, update_licence
from flowdesk.tenants.service import create_tenant
from flowdesk.vocabulary import FLAGS
from tests.servers import free_port, start_serve, wait_healthy

# How long a test waits for something another process does (the machine may be shared).
PATIENCE = 45.0
TICKET = {"title": "The printer is on fire", "catalog_item": "itsm_incident"}


@dataclass
class Serve:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def environment(url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """A serve process's settings: the database, a data directory of its own, and nothing in
    the background that the tests do not look at."""
    return {
        "FLOWDESK_DATABASE_URL": url,
        "FLOWDESK_DATA_DIR": str(data_dir),
        "FLOWDESK_SEED_DEMO": "false",
        "FLOWDESK_RELAY_POLL_SECONDS": "0",
        "FLOWDESK_TIMER_TICK_SECONDS": "0",
        "FLOWDESK_QUOTA_CHECK_SECONDS": "0",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


@contextlib.asynccontextmanager
async def serving(url: str, tmp_path: Path, name: str, **extra: str) -> AsyncIterator[Serve]:
    """`flowdesk serve` on `url`, healthy; killed on the way out if it is still running."""
    port, log = free_port(), tmp_path / f"{name}.log"
    proc = start_serve(port, log, **environment(url, tmp_path / f"{name}-data", **extra))
    try:
        await asyncio.to_thread(wait_healthy, proc, port, log)
        yield Serve(proc, port, log)
    finally:
        if proc.poll() is None:
            proc.kill()
        await asyncio.to_thread(proc.wait, 30)


@dataclass(frozen=True)
class Tenant:
    id: uuid.UUID
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def licensed_tenant(url: str) -> Tenant:
    """A tenant whose ITSM licence is active with every flag on; its admin's key."""
    db = await Database.open(url, Settings(database_url=url, seed_demo=False), size=1)
    try:
        slug = f"t-{uuid.uuid4().hex[:12]}"
        async with db.transaction() as conn:
            created = await create_tenant(conn, slug, f"Tenant {slug}", "TKT")
            change = LicenceChange(active=True, flags=dict.fromkeys(FLAGS, True))
            await update_licence(conn, created.tenant["id"], change, "tests")
    finally:
        await db.close()
    return Tenant(created.tenant["id"], created.key.secret)


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A connection of the test's own (not flowdesk's), to look and to hold locks."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(asyncpg_dsn(url))
    try:
        yield conn
    finally:
        conn.terminate()


@contextlib.asynccontextmanager
async def counter_held(url: str, tenant: Tenant) -> AsyncIterator[None]:
    """The tenant's ticket counter row locked by a transaction of the test: every create of the
    tenant waits on it, in flight, until the block ends (and the transaction rolls back)."""
    async with connected(url) as conn:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute(
            "SELECT 1 FROM ticket_counters WHERE tenant_id = $1 FOR UPDATE", tenant.id
        )
        try:
            yield
        finally:
            await transaction.rollback()


async def eventually(what: str, condition: Callable[[], Awaitable[bool]], *logs: Serve) -> None:
    """Wait for `condition`, polling; fail with the servers' logs after PATIENCE."""
    try:
        async with asyncio.timeout(PATIENCE):
            while True:  # polled: what it waits for happens in other processes
                if await condition():
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        shown = "\n".join(f"--- {s.log.name}\n{s.output()}" for s in logs)
        pytest.fail(f"timed out waiting for {what}\n{shown}")


def waiting_on_locks(url: str, count: int) -> Callable[[], Awaitable[bool]]:
    """Whether at least `count` of flowdesk's statements wait on a lock (requests in flight)."""

    async def check() -> bool:
        async with connected(url) as conn:
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'flowdesk' AND wait_event_type = 'Lock'"
            )
        return int(waiting) >= count

    return check


def no_flowdesk_sessions(url: str) -> Callable[[], Awaitable[bool]]:
    """Whether every session flowdesk had on the database has ended (a dead process's backends
    end once they notice their client is gone)."""

    async def check() -> bool:
        async with connected(url) as conn:
            left = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name LIKE 'flowdesk%'"
            )
        return int(left) == 0

    return check


@dataclass(frozen=True)
class Committed:
    """What the database holds of a tenant's tickets."""

    numbers: list[int]
    ids: set[str]
    last_number: int
    created_events: int
    created_messages: int


async def committed(url: str, tenant: Tenant) -> Committed:
    async with connected(url) as conn:
        rows = await conn.fetch(
            "SELECT id, number FROM tickets WHERE tenant_id = $1 ORDER BY number", tenant.id
        )
        last = await conn.fetchval(
            "SELECT last_number FROM ticket_counters WHERE tenant_id = $1", tenant.id
        )
        events = await conn.fetchval(
            "SELECT count(*) FROM ticket_events WHERE tenant_id = $1 AND kind = 'created'",
            tenant.id,
        )
        messages = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE tenant_id = $1 AND topic = 'ticket.created'",
            tenant.id,
        )
    return Committed(
        numbers=[int(r["number"]) for r in rows],
        ids={str(r["id"]) for r in rows},
        last_number=int(last),
        created_events=int(events),
        created_messages=int(messages),
    )


def assert_whole(found: Committed) -> None:
    """Numbers 1..N with no gap or duplicate, the counter at N, and every ticket with the event
    and the outbox message its creating statement wrote: nothing half-written."""
    count = len(found.numbers)
    assert found.numbers == list(range(1, count + 1)), found.numbers
    assert found.last_number == count
    assert found.created_events == count
    assert found.created_messages == count


def assert_quiet(serve: Serve) -> None:
    """No 500 and no traceback in the server's log."""
    output = serve.output()
    assert "Traceback" not in output, output
    assert "Exception in ASGI application" not in output, output
