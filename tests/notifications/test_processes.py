"""The relay as real processes on one database: `flowdesk worker`s and `flowdesk serve`
relaying at once (each mail sent once), a worker killed mid-batch (its claims come due again:
every mail arrives, perhaps twice with the same Message-ID), and `flowdesk worker --once`
writing to the Maildir that `flowdesk mail list|show` read.

The SMTP server runs in the test's event loop, so the test waits for the processes with
`asyncio.sleep`, and anything blocking (a health check, a process's exit) runs in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from flowdesk.app import create_app
from flowdesk.config import Settings
from flowdesk.db import migrate
from flowdesk.db.pool import Database
from flowdesk.itsm.service import LicenceChange, update_licence
from flowdesk.tenants.service import create_tenant
from flowdesk.vocabulary import FLAGS
from tests.notifications.conftest import MAIL_FROM
from tests.notifications.smtp import Handler, SmtpServer
from tests.servers import FLOWDESK, free_port, start_serve, stop, wait_healthy
from tests.support import bearer
from tests.tickets.conftest import AGENT

# How long a test waits for the processes (they start in a second or two each; the machine
# may be shared).
PATIENCE = 45.0
# A ticket the admin opens is mailed twice: the admin's acknowledgement, and the agent.
MAILS_PER_TICKET = 2


# --- the world: a fresh database, a licensed tenant, processes --------------------------------


@pytest.fixture
def database(create_database: Callable[[], str]) -> str:
    url = create_database()
    migrate.upgrade(url)
    return url


@pytest.fixture
async def db(database: str, settings: Settings) -> AsyncIterator[Database]:
    """The test's own pool on the database, to look at what the processes did."""
    pool = await Database.open(database, settings.model_copy(update={"database_url": database}))
    yield pool
    await pool.close()


async def licensed_tenant(db: Database) -> str:
    """A tenant whose ITSM licence is active with every flag on; its admin's key."""
    slug = f"t-{uuid.uuid4().hex[:12]}"
    async with db.transaction() as conn:
        created = await create_tenant(conn, slug, f"Tenant {slug}", "TKT")
        change = LicenceChange(active=True, flags=dict.fromkeys(FLAGS, True))
        await update_licence(conn, created.tenant["id"], change, "tests")
    return created.key.secret


async def open_tickets(
    client: httpx.AsyncClient, admin_key: str, count: int, title: str
) -> list[dict[str, Any]]:
    """Add an agent to the tenant (so that each new ticket is mailed to the agent queue too),
    then open `count` tickets as the admin, at once."""
    headers = bearer(admin_key)
    r = await client.post(
        "/v1/groups", json={"name": "agents", "permissions": list(AGENT)}, headers=headers
    )
    assert r.status_code == 201, r.text
    group_id = r.json()["id"]
    r = await client.post(
        "/v1/users",
        json={"email": "otto@agents.example", "name": "Otto Agent", "kind": "person"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    r = await client.put(f"/v1/groups/{group_id}/members/{r.json()['id']}", headers=headers)
    assert r.status_code == 204, r.text

    async def one(i: int) -> dict[str, Any]:
        body = {"title": f"{title} #{i}", "catalog_item": "itsm_incident"}
        r = await client.post("/v1/tickets", json=body, headers=headers)
        assert r.status_code == 201, r.text
        return dict(r.json())

    return list(await asyncio.gather(*(one(i) for i in range(count))))


@contextlib.asynccontextmanager
async def in_process(
    url: str, settings: Settings, data_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The API in this process on the database, not relaying: the tickets' outbox messages
    are left to the processes under test."""
    app = create_app(
        settings.model_copy(
            update={"database_url": url, "data_dir": data_dir, "relay_poll_seconds": 0}
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://flowdesk.test") as c:
            yield c


def environment(url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """A process's environment: this one's without its FLOWDESK_ settings, and the given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDESK_")}
    return env | {
        "FLOWDESK_DATABASE_URL": url,
        "FLOWDESK_DATA_DIR": str(data_dir),
        "FLOWDESK_SEED_DEMO": "false",
        "FLOWDESK_LOG_LEVEL": "warning",
        "FLOWDESK_MAIL_FROM": MAIL_FROM,
        # The worker's "relaying" line reaches its log at once.
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def start_worker(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [FLOWDESK, "worker", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )


async def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """A `flowdesk` command to its end (in a thread: the loop goes on)."""
    return await asyncio.to_thread(
        subprocess.run, [FLOWDESK, *args], env=env, capture_output=True, text=True, timeout=60
    )


async def stop_all(procs: list[subprocess.Popen[bytes]]) -> list[int]:
    """SIGTERM each (killed if it lingers), at once; their exit codes."""
    return list(await asyncio.gather(*(asyncio.to_thread(stop, p) for p in procs)))


def logs(directory: Path) -> str:
    return "\n".join(f"--- {f.name}\n{f.read_text()}" for f in sorted(directory.glob("*.log")))


async def eventually(what: str, condition: Callable[[], Awaitable[bool]], where: Path) -> None:
    """Wait (not blocking the loop, where the SMTP server runs) for `condition`."""
    # Polled: what it waits for happens in other processes.
    try:
        async with asyncio.timeout(PATIENCE):
            while True:
                if await condition():
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}\n{logs(where)}")


def relaying(proc: subprocess.Popen[bytes], log: Path) -> bool:
    """Whether the worker says it relays (it has connected and migrated)."""
    assert proc.poll() is None, f"the worker exited\n{log.read_text()}"
    return "worker relaying notifications" in log.read_text()


async def worker_started(proc: subprocess.Popen[bytes], log: Path) -> None:
    async def up() -> bool:
        return relaying(proc, log)

    await eventually("the worker", up, log.parent)


async def delivery_states(db: Database) -> Counter[str]:
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT state FROM deliveries")
    return Counter(str(r["state"]) for r in rows)


async def delivery_ids(db: Database) -> list[str]:
    async with db.connection() as conn:
        return [str(r["message_id"]) for r in await conn.fetch("SELECT message_id FROM deliveries")]


def all_sent(db: Database, expected: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await delivery_states(db) == {"sent": expected}

    return check


# --- many relays at once -------------------------------------------------------------------


class TallyHandler(Handler):
    """Also notes the connection each mail came over (which process sent it)."""

    def __init__(self) -> None:
        super().__init__()
        self.over: list[SMTP] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if reply.startswith("250"):
            self.over.append(server)
        return reply

    def mails_via(self, smtp: SmtpServer) -> int:
        sessions = {id(s) for s in smtp.sessions}
        return sum(id(s) in sessions for s in self.over)


async def test_two_workers_and_a_serve_process_send_each_mail_once(
    database: str, db: Database, tmp_path: Path
) -> None:
    tickets = 30
    expected = tickets * MAILS_PER_TICKET
    # One mailbox, one address per process: which addresses were used shows who sent.
    handler = TallyHandler()
    servers = [SmtpServer(handler) for _ in range(3)]
    for server in servers:
        await server.start()
    admin_key = await licensed_tenant(db)
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        relaying = {"FLOWDESK_RELAY_POLL_SECONDS": "0.1"}
        for i, server in enumerate(servers[1:]):
            env = environment(database, tmp_path, FLOWDESK_SMTP_URL=server.url(), **relaying)
            procs.append(start_worker(env, tmp_path / f"worker{i}.log"))
        serve_log = tmp_path / "serve.log"
        serve_env = environment(database, tmp_path, FLOWDESK_SMTP_URL=servers[0].url(), **relaying)
        serve = start_serve(
            port, serve_log, **{k: v for k, v in serve_env.items() if k.startswith("FLOWDESK_")}
        )
        procs.append(serve)
        await asyncio.to_thread(wait_healthy, serve, port, serve_log)
        for i, proc in enumerate(procs[:2]):
            await worker_started(proc, tmp_path / f"worker{i}.log")

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            await open_tickets(client, admin_key, tickets, "Relayed by many")
        # (A mail is recorded sent once the SMTP server has taken it.)
        await eventually(f"{expected} sent", all_sent(db, expected), tmp_path)
    finally:
        codes = await stop_all(procs)
        for server in servers:
            await server.stop()
    # Stopped: nothing more can come.
    assert codes == [0] * len(procs), logs(tmp_path)
    ids = await delivery_ids(db)
    assert len(ids) == expected
    arrived = Counter(handler.message_ids())
    assert arrived == Counter(ids), "each mail once, and nothing else"
    # Who sent (informative: the split depends on who polled first).
    print("mails sent by serve, worker, worker:", [handler.mails_via(s) for s in servers])


# --- a worker killed mid-batch -------------------------------------------------------------------


class SlowHandler(Handler):
    """Takes its time over each mail, so that a worker is killed with a batch in flight."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(0.2)
        return await super().handle_DATA(server, session, envelope)


async def test_a_killed_workers_claims_come_due_again_and_every_mail_arrives(
    database: str, db: Database, settings: Settings, tmp_path: Path
) -> None:
    tickets = 10
    expected = tickets * MAILS_PER_TICKET
    admin_key = await licensed_tenant(db)
    async with in_process(database, settings, tmp_path / "api") as client:
        await open_tickets(client, admin_key, tickets, "Relayed by the survivor")
    handler = SlowHandler()
    smtp = SmtpServer(handler)
    await smtp.start()
    env = environment(
        database,
        tmp_path,
        FLOWDESK_SMTP_URL=smtp.url(),
        FLOWDESK_RELAY_POLL_SECONDS="0.1",
        FLOWDESK_DELIVERY_LEASE_SECONDS="2",
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        first = start_worker(env, tmp_path / "first.log")
        procs.append(first)

        async def some_arrived() -> bool:
            assert first.poll() is None, logs(tmp_path)
            return len(handler.received) >= 3

        await eventually("the first mails", some_arrived, tmp_path)
        os.kill(first.pid, signal.SIGKILL)
        await asyncio.to_thread(first.wait, 10)
        arrived_before = len(handler.received)
        assert arrived_before < expected, "the batch was over before the kill"
        async with db.connection() as conn:
            claimed = await conn.fetchval(
                "SELECT count(*) FROM deliveries WHERE state = 'pending' AND attempts > 0"
            )
        assert claimed > 0, "nothing was left claimed by the killed worker"

        procs.append(start_worker(env, tmp_path / "second.log"))
        await eventually(f"{expected} sent", all_sent(db, expected), tmp_path)
    finally:
        codes = await stop_all(procs)
        await smtp.stop()
    assert codes[1:] == [0], logs(tmp_path)

    ids = await delivery_ids(db)
    arrived = Counter(handler.message_ids())
    # At least once each (the one in flight at the kill may have come twice, with the same
    # Message-ID), and nothing else.
    assert set(arrived) == set(ids) and len(ids) == expected
    duplicates = sum(n - 1 for n in arrived.values())
    # What the killed worker had sent but not yet recorded (outcomes are recorded every few
    # sends) comes again, with the same Message-ID.
    assert duplicates <= arrived_before
    print(f"{arrived_before} mail(s) before the kill, {duplicates} duplicate(s) in all")
    async with db.connection() as conn:
        attempts = await conn.fetch("SELECT attempts FROM deliveries")
        counted = await conn.fetchval("SELECT sum(sent) FROM email_usage")
    assert all(r["attempts"] >= 1 for r in attempts)
    # Each mail counts once against the quota, though some were claimed (and sent) twice.
    assert counted == expected


# --- the Maildir when no SMTP server is set ---------------------------------------------------


async def test_worker_once_writes_the_maildir_that_mail_list_and_show_read(
    database: str, db: Database, settings: Settings, tmp_path: Path
) -> None:
    admin_key = await licensed_tenant(db)
    async with in_process(database, settings, tmp_path / "api") as client:
        [ticket] = await open_tickets(client, admin_key, 1, "Printer on fire")
    env = environment(database, tmp_path)

    done = await run(env, "worker", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    assert await delivery_states(db) == {"sent": MAILS_PER_TICKET}
    assert len(list((tmp_path / "mail" / "new").iterdir())) == MAILS_PER_TICKET

    listed = await run(env, "mail", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == MAILS_PER_TICKET, listed.stdout
    assert all(ticket["number"] in line for line in lines)
    assert sum("otto@agents.example" in line for line in lines) == 1
    key = lines[0].split()[0]

    shown = await run(env, "mail", "show", key)
    assert shown.returncode == 0, shown.stderr
    assert "Printer on fire #0" in shown.stdout
    assert ticket["number"] in shown.stdout
    missing = await run(env, "mail", "show", "no-such-mail")
    assert missing.returncode == 1 and "no mail" in missing.stderr
