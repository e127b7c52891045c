"""A `flowdesk serve` worker killed with SIGKILL in the middle of a create that carries an
Idempotency-Key: nothing of the ticket is written, the key's claim is left in flight, and once
its lease has run out a retry with the same key creates the ticket once and replays it after.

The create is held in flight by a lock the test takes on the tenant's ticket counter row, so
the kill lands while the request's transaction is open, at a moment the test chooses."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from flowdesk.db import migrate
from tests.faults.world import (
    TICKET,
    committed,
    connected,
    counter_held,
    eventually,
    licensed_tenant,
    no_flowdesk_sessions,
    serving,
    waiting_on_locks,
)

KEY = "create-printer-ticket-1"


async def test_a_worker_killed_mid_create_leaves_nothing_and_no_stuck_claim(
    create_database: Callable[[], str], tmp_path: Path
) -> None:
    url = create_database()
    await asyncio.to_thread(migrate.upgrade, url)
    tenant = await licensed_tenant(url)
    headers = {**tenant.headers, "Idempotency-Key": KEY}

    async with serving(url, tmp_path, "doomed") as doomed:
        async with httpx.AsyncClient(base_url=doomed.base_url, timeout=60) as client:
            async with counter_held(url, tenant):
                create = asyncio.create_task(
                    client.post("/v1/tickets", json=TICKET, headers=headers)
                )
                await eventually(
                    "the create to wait on the counter", waiting_on_locks(url, 1), doomed
                )
                doomed.proc.send_signal(signal.SIGKILL)
                with pytest.raises(httpx.TransportError):
                    await create
            # The lock is gone: the dead worker's statement may finish, but its transaction is
            # never committed; its session ends when PostgreSQL finds the client gone.
            await eventually("the dead worker's sessions to end", no_flowdesk_sessions(url), doomed)
        assert doomed.proc.wait(timeout=10) == -signal.SIGKILL

    found = await committed(url, tenant)
    assert found.numbers == [] and found.last_number == 0, found
    assert found.created_events == 0 and found.created_messages == 0, found
    async with connected(url) as conn:
        state = await conn.fetchval(
            "SELECT state FROM idempotency_keys WHERE tenant_id = $1 AND key = $2", tenant.id, KEY
        )
    assert state == "in_flight"  # the claim the dead request left, until its lease runs out

    # A new process with a short lease: the retry is refused as in flight (409, Retry-After)
    # until the lease runs out, then it takes the claim over and creates the ticket once.
    async with (
        serving(url, tmp_path, "successor", FLOWDESK_IDEMPOTENCY_LEASE_SECONDS="2") as successor,
        httpx.AsyncClient(base_url=successor.base_url, timeout=30) as client,
    ):
        answers: list[httpx.Response] = []

        async def retried() -> bool:
            r = await client.post("/v1/tickets", json=TICKET, headers=headers)
            answers.append(r)
            if r.status_code == 409:
                assert r.headers["retry-after"].isdigit()
                await asyncio.sleep(0.2)
                return False
            return True

        await eventually("the claim's lease to run out", retried, successor)
        first = answers[-1]
        assert first.status_code == 201, first.text
        assert first.json()["number"].endswith("000001")
        assert all(r.status_code == 409 for r in answers[:-1])

        replay = await client.post("/v1/tickets", json=TICKET, headers=headers)
        assert replay.status_code == 201
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json()["id"] == first.json()["id"]

    found = await committed(url, tenant)
    assert found.numbers == [1] and found.ids == {first.json()["id"]}
    assert found.created_events == 1 and found.created_messages == 1
