"""flowdesk through a real PgBouncer in transaction-pooling mode (docs/scaling.md).

PgBouncer runs with a config of its own in a temporary directory, on a free port, in front of
the test database. The app is set up as a deployment behind it is
(FLOWDESK_DATABASE_POOLER=pgbouncer: no prepared-statement cache, no startup parameters
PgBouncer refuses; FLOWDESK_LISTEN_DATABASE_URL straight to PostgreSQL), and the ticket
suite's core runs through it: creating, the idempotent retry, transitions, lists, comments,
and concurrent creates numbered without gap or duplicate over a pool larger than PgBouncer's.
The listener must be connected straight to PostgreSQL, and must hear. Skipped, saying why,
where the pgbouncer binary is missing (Debian: `apt-get install pgbouncer`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from flowdesk.app import create_app
from flowdesk.config import Settings
from flowdesk.db.pool import asyncpg_dsn
from tests.servers import free_port
from tests.sql import fetch
from tests.support import new_tenant, runtime
from tests.tickets.conftest import AGENT

PGBOUNCER = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
)
pytestmark = pytest.mark.skipif(
    PGBOUNCER is None, reason="pgbouncer is not installed (Debian: apt-get install pgbouncer)"
)

# Server connections PgBouncer keeps per database: fewer than the app's pool, so that client
# transactions really share server connections.
SERVER_POOL = 4


@pytest.fixture(scope="module")
def pgbouncer(database_url: str) -> Iterator[str]:
    """A PgBouncer in front of the test database; its URL (postgresql+asyncpg://)."""
    assert PGBOUNCER is not None
    target = make_url(database_url)
    # Not under pytest's basetemp: as root, PgBouncer runs as another user, who must reach it.
    here = Path(tempfile.mkdtemp(prefix="flowdesk-pgbouncer-"))
    port = free_port()
    user = target.username or "postgres"
    # The embedded server listens on a Unix socket only, the configured one on TCP.
    socket_dir = target.query.get("host")
    host = socket_dir if isinstance(socket_dir, str) else target.host or "127.0.0.1"
    server = f"host={host} port={target.port or 5432} dbname={target.database}"
    if target.password:
        server += f" password={target.password}"
    (here / "userlist.txt").write_text(f'"{user}" "{target.password or ""}"\n')
    (here / "pgbouncer.ini").write_text(
        f"""[databases]
; What FLOWDESK_DATABASE_POOLER=pgbouncer leaves out of the startup packet, set on each server
; connection (a deployment may set it on the role instead: ALTER ROLE ... SET).
flowdesk = {server} user={user} connect_query='SET jit = off; SET statement_timeout = 15000'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {here / "userlist.txt"}
pool_mode = transaction
default_pool_size = {SERVER_POOL}
max_client_conn = 500
logfile = {here / "pgbouncer.log"}
pidfile = {here / "pgbouncer.pid"}
"""
    )
    command = [PGBOUNCER, str(here / "pgbouncer.ini")]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root: it runs as the server's own user when the server
        # is reached by its socket (whose directory only that user may enter), else postgres.
        runner = Path(host).owner() if host.startswith("/") else "postgres"
        shutil.chown(here, runner)
        for path in here.iterdir():
            shutil.chown(path, runner)
        command[1:1] = ["-u", runner]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(proc, port, here / "pgbouncer.log")
        pooled = target.set(host="127.0.0.1", port=port, database="flowdesk", query={})
        yield pooled.render_as_string(hide_password=False)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(here, ignore_errors=True)


def _wait_for_port(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    import socket

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"pgbouncer exited: {log.read_text() if log.exists() else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail("pgbouncer did not listen")


@pytest.fixture(scope="module")
async def pooled_app(
    pgbouncer: str, database_url: str, settings: Settings
) -> AsyncIterator[FastAPI]:
    application = create_app(
        settings.model_copy(
            update={
                "database_url": pgbouncer,
                "database_pooler": "pgbouncer",
                "listen_database_url": database_url,
                "db_pool_size": 3 * SERVER_POOL,
            }
        )
    )
    async with application.router.lifespan_context(application):
        listener = runtime(application).listener
        for _ in range(200):  # the listener connects in the background
            if listener.listening:
                break
            await asyncio.sleep(0.05)
        yield application


@pytest.fixture
async def pooled(pooled_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=pooled_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://flowdesk.test") as c:
        yield c


async def test_statements_go_through_pgbouncer_with_the_role_settings(
    pooled_app: FastAPI, database_url: str
) -> None:
    [row] = await fetch(
        pooled_app,
        "SELECT current_database() AS db, current_setting('statement_timeout') AS timeout,"
        " current_setting('jit') AS jit, current_setting('application_name') AS app",
    )
    # "flowdesk" is only PgBouncer's name for the test database: the pool went through it.
    assert row["db"] == make_url(database_url).database
    assert (row["timeout"], row["jit"], row["app"]) == ("15s", "off", "flowdesk")


async def test_the_ticket_core_works_through_pgbouncer(
    pooled_app: FastAPI, pooled: httpx.AsyncClient
) -> None:
    t = await new_tenant(pooled_app, pooled)
    agent = await t.user(*AGENT, name="Ada")
    requester = await t.user("tickets:create", name="Rita")
    body = {"title": "VPN drops every hour", "catalog_item": "itsm_incident"}
    idem = {**requester.headers, "Idempotency-Key": "pgb-1"}
    r = await pooled.post("/v1/tickets", json=body, headers=idem)
    assert r.status_code == 201, r.text
    ticket = r.json()
    again = await pooled.post("/v1/tickets", json=body, headers=idem)
    assert (again.status_code, again.json()["id"]) == (201, ticket["id"])
    other = await pooled.post("/v1/tickets", json={**body, "title": "x"}, headers=idem)
    assert other.status_code == 422, other.text
    ref = f"/v1/tickets/{ticket['id']}"
    r = await pooled.patch(
        ref, json={"assignee_id": agent.id}, headers={**t.headers, "If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "in_progress"
    r = await pooled.post(
        f"{ref}/comments", json={"body": "On it", "visibility": "external"}, headers=agent.headers
    )
    assert r.status_code == 201, r.text
    r = await pooled.post(
        f"{ref}/transitions",
        json={"action": "resolve", "resolution": "fixed"},
        headers=agent.headers,
    )
    assert r.status_code in (200, 409), r.text
    r = await pooled.get("/v1/tickets", params={"q": "vpn"}, headers=agent.headers)
    assert [x["id"] for x in r.json()["items"]] == [ticket["id"]]
    r = await pooled.get(f"{ref}/comments", headers=requester.headers)
    assert [c["body"] for c in r.json()["items"]] == ["On it"]
    r = await pooled.get(f"{ref}/events", headers=agent.headers)
    assert {"created", "commented"} <= {e["kind"] for e in r.json()["items"]}


async def test_concurrent_creates_are_numbered_without_gap_through_pgbouncer(
    pooled_app: FastAPI, pooled: httpx.AsyncClient
) -> None:
    t = await new_tenant(pooled_app, pooled)
    body = {"title": "Concurrent", "catalog_item": "itsm_incident"}
    answers = await asyncio.gather(
        *[pooled.post("/v1/tickets", json=body, headers=t.headers) for _ in range(60)]
    )
    assert [a.status_code for a in answers] == [201] * 60
    numbers = sorted(a.json()["number"] for a in answers)
    assert numbers == [f"TKT-{n:06d}" for n in range(1, 61)]


async def test_the_listener_bypasses_pgbouncer_and_hears(
    pooled_app: FastAPI, database_url: str
) -> None:
    listener = runtime(pooled_app).listener
    assert listener.listening  # the app's start-up waited for it (see pooled_app)
    tenant_id = uuid.uuid4()
    heard = asyncio.Event()

    class Ear:
        def forget_tenant(self, forgotten: uuid.UUID) -> None:
            if forgotten == tenant_id:
                heard.set()

        def forget_all(self) -> None:
            pass

    listener.subscribe(Ear())
    direct = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        # Its LISTEN is held by a connection of PostgreSQL's own, named as the listener.
        listening = await direct.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'flowdesk-listener'"
            " AND datname = current_database()"
        )
        assert listening >= 1
        await direct.execute(f"NOTIFY flowdesk_access, '{tenant_id}'")
    finally:
        await direct.close()
    await asyncio.wait_for(heard.wait(), 10)
