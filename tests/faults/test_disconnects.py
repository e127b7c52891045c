"""Clients that go away mid-request: a raw socket that sends half a body and closes (or resets
the connection), and an httpx request cancelled while the server works on it. The server stays
healthy, logs no error, and what the requests wrote is whole: a create the client gave up on is
either not there or there entirely, and its Idempotency-Key replays it rather than making a
second one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import Callable
from pathlib import Path

import httpx

from flowdesk.db import migrate
from tests.faults.world import (
    TICKET,
    Serve,
    Tenant,
    assert_quiet,
    assert_whole,
    committed,
    counter_held,
    eventually,
    licensed_tenant,
    serving,
    waiting_on_locks,
)


def _request_head(tenant: Tenant, length: int) -> bytes:
    return (
        "POST /v1/tickets HTTP/1.1\r\nHost: flowdesk.test\r\n"
        f"Authorization: Bearer {tenant.key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _hang_up(serve: Serve, tenant: Tenant, *, reset: bool, headers_only: bool = False) -> None:
    """Send the headers and half the body of a create, then close the connection (with a
    reset, when asked: SO_LINGER 0 makes close() send RST instead of FIN)."""
    body = json.dumps(TICKET).encode()
    with socket.create_connection(("127.0.0.1", serve.port), timeout=5) as sock:
        sock.sendall(_request_head(tenant, len(body)))
        if not headers_only:
            sock.sendall(body[: len(body) // 2])
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def test_clients_hanging_up_mid_request_leave_the_server_healthy(
    create_database: Callable[[], str], tmp_path: Path
) -> None:
    url = create_database()
    await asyncio.to_thread(migrate.upgrade, url)
    tenant = await licensed_tenant(url)

    async with (
        serving(url, tmp_path, "serve") as serve,
        httpx.AsyncClient(base_url=serve.base_url, timeout=30) as client,
    ):
        # Half a body, then gone: by FIN and by RST, and headers only.
        for reset in (False, True):
            await asyncio.to_thread(_hang_up, serve, tenant, reset=reset)
        await asyncio.to_thread(_hang_up, serve, tenant, reset=False, headers_only=True)

        # A request the client cancels while the server waits on the database (the tenant's
        # counter is held by the test): the server finishes it, and its Idempotency-Key then
        # replays the ticket it made.
        keyed = {**tenant.headers, "Idempotency-Key": "given-up-on"}
        async with counter_held(url, tenant):
            given_up = asyncio.create_task(client.post("/v1/tickets", json=TICKET, headers=keyed))
            plain = asyncio.create_task(
                client.post("/v1/tickets", json=TICKET, headers=tenant.headers)
            )
            await eventually("two creates in flight", waiting_on_locks(url, 2), serve)
            given_up.cancel()
            plain.cancel()
            for task in (given_up, plain):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        async def both_written() -> bool:
            return len((await committed(url, tenant)).numbers) == 2

        await eventually("the abandoned creates to finish", both_written, serve)

        replay = await client.post("/v1/tickets", json=TICKET, headers=keyed)
        assert replay.status_code == 201, replay.text
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json()["id"] in (await committed(url, tenant)).ids

        # Still healthy: probes and a create answer as ever.
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        r = await client.post("/v1/tickets", json=TICKET, headers=tenant.headers)
        assert r.status_code == 201, r.text
        assert r.json()["number"].endswith("000003")
        assert serve.proc.poll() is None

    found = await committed(url, tenant)
    assert found.numbers == [1, 2, 3]
    assert_whole(found)
    assert_quiet(serve)
