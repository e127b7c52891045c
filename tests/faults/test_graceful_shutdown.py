"""SIGTERM to `flowdesk serve` with requests in flight, as `docker stop` sends it: the listening
socket closes at once (new connections are refused), a request that finishes within the
shutdown timeout (FLOWDESK_SHUTDOWN_TIMEOUT_SECONDS) is answered as usual, one that does not is
cut off with a 503 and its work rolled back, the usage counts kept in memory are written, and
the process exits by itself, with status 0, before a container's grace period would kill it.

Each create is held in flight by a lock the test takes on its tenant's counter row: one is let
go while the server drains, the other only after the process has exited."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from flowdesk.db import migrate
from tests.faults.world import (
    PATIENCE,
    TICKET,
    Tenant,
    assert_whole,
    committed,
    connected,
    counter_held,
    eventually,
    licensed_tenant,
    serving,
    waiting_on_locks,
)

# Short enough to keep the test quick, long enough for the drained request to be let go in time
# on a busy machine.
SHUTDOWN_TIMEOUT = 6


async def usage(url: str, tenant: Tenant) -> int:
    async with connected(url) as conn:
        total = await conn.fetchval(
            "SELECT coalesce(sum(count), 0) FROM api_usage WHERE tenant_id = $1", tenant.id
        )
    return int(total)


def refuses_connections(port: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return False
        except ConnectionRefusedError:
            return True

    return check


async def test_sigterm_drains_in_flight_requests_flushes_usage_and_exits(
    create_database: Callable[[], str], tmp_path: Path
) -> None:
    url = create_database()
    await asyncio.to_thread(migrate.upgrade, url)
    drained, cut_off = await licensed_tenant(url), await licensed_tenant(url)

    environment = {
        "FLOWDESK_SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_TIMEOUT),
        # Only the shutdown's flush writes usage.
        "FLOWDESK_USAGE_FLUSH_SECONDS": "3600",
    }
    async with (
        serving(url, tmp_path, "serve", **environment) as serve,
        httpx.AsyncClient(base_url=serve.base_url, timeout=60) as client,
        counter_held(url, cut_off),
    ):
        for _ in range(3):
            assert (await client.get("/v1/me", headers=drained.headers)).status_code == 200
        assert await usage(url, drained) == 0  # counted in memory only, so far

        async with counter_held(url, drained):
            finishing = asyncio.create_task(
                client.post("/v1/tickets", json=TICKET, headers=drained.headers)
            )
            overrunning = asyncio.create_task(
                client.post("/v1/tickets", json=TICKET, headers=cut_off.headers)
            )
            await eventually("two creates in flight", waiting_on_locks(url, 2), serve)

            serve.proc.send_signal(signal.SIGTERM)
            await eventually("connections refused", refuses_connections(serve.port), serve)
            assert serve.proc.poll() is None  # draining
        # The first create is let go while the server drains: answered as ever.
        first = await finishing
        assert first.status_code == 201, first.text

        # The second is still held when the shutdown timeout runs out: cut off with a
        # 503, and its statement cancelled in the database (it no longer waits on the
        # lock the test still holds), so nothing of it can commit later.
        second = await overrunning
        assert second.status_code == 503, second.text
        assert second.headers["retry-after"].isdigit()
        await eventually("the cut-off statement to be cancelled", idle(url), serve)
        exit_code = await asyncio.to_thread(serve.proc.wait, SHUTDOWN_TIMEOUT + PATIENCE)
    assert exit_code == 0, serve.output()
    assert "Traceback" not in serve.output(), serve.output()

    # The usage counted in memory was written at shutdown: three reads and the create.
    assert await usage(url, drained) == 4
    assert (await committed(url, drained)).numbers == [1]
    assert_whole(await committed(url, drained))
    nothing = await committed(url, cut_off)
    assert nothing.numbers == [] and nothing.last_number == 0 and nothing.created_events == 0


def idle(url: str) -> Callable[[], Awaitable[bool]]:
    waiting = waiting_on_locks(url, 1)

    async def check() -> bool:
        return not await waiting()

    return check
