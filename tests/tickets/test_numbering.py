"""Ticket numbers under real concurrency: two `flowdesk serve` processes, real parallel
connections, hundreds of creates at once, some failing after they took a number. Every tenant
must end with exactly the numbers 1..N: no gap, no duplicate."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.servers import free_port, start_serve, stop, wait_healthy
from tests.sql import execute, fetch, fetchval
from tests.support import TenantCtx, new_tenant


@pytest.fixture
async def servers(database_url: str, tmp_path: Path) -> AsyncIterator[list[str]]:
    procs, urls = [], []
    try:
        for i in range(2):
            port, log = free_port(), tmp_path / f"serve{i}.log"
            procs.append(
                start_serve(
                    port, log, FLOWDESK_DATABASE_URL=database_url, FLOWDESK_DB_POOL_SIZE="12"
                )
            )
            urls.append((port, log))
        for proc, (port, log) in zip(procs, urls, strict=True):
            await asyncio.to_thread(wait_healthy, proc, port, log)
        yield [f"http://127.0.0.1:{port}" for port, _ in urls]
    finally:
        for proc in procs:
            stop(proc)


async def _numbers(app: FastAPI, tenant_id: uuid.UUID) -> tuple[list[int], int]:
    rows = await fetch(
        app, "SELECT number FROM tickets WHERE tenant_id = $1 ORDER BY number", tenant_id
    )
    counter = await fetchval(
        app, "SELECT last_number FROM ticket_counters WHERE tenant_id = $1", tenant_id
    )
    assert isinstance(counter, int)
    return [r["number"] for r in rows], counter


async def _fire(
    servers: list[str], jobs: Sequence[tuple[str, Mapping[str, object]]], concurrency: int = 64
) -> list[int]:
    """POST each (key, body) to /v1/tickets, alternating servers, `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        targets = itertools.cycle(servers)

        async def one(base: str, key: str, body: Mapping[str, object]) -> int:
            async with gate:
                headers = {"Authorization": f"Bearer {key}"}
                if body.get("title") == "FAIL":
                    # uvicorn closes the connection after a 500; don't reuse it.
                    headers["Connection"] = "close"
                r = await client.post(f"{base}/v1/tickets", json=body, headers=headers)
                return r.status_code

        return list(await asyncio.gather(*[one(next(targets), key, body) for key, body in jobs]))


_FAULT = (
    """
CREATE OR REPLACE FUNCTION test_fail_ticket() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.title = 'FAIL' THEN RAISE EXCEPTION 'injected failure'; END IF;
    RETURN NEW;
END $$
""",
    "CREATE TRIGGER test_fail_ticket BEFORE INSERT ON tickets "
    "FOR EACH ROW EXECUTE FUNCTION test_fail_ticket()",
)


async def test_500_concurrent_creates_in_one_tenant_with_failures_leave_no_gap(
    servers: list[str], app: FastAPI, client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    gone = await tenant.user("tickets:create")
    assert (await client.delete(f"/v1/users/{gone.id}", headers=tenant.headers)).status_code == 204
    good = {"title": "Outage", "catalog_item": "itsm_incident"}
    # Refused inside the statement before a number is taken: filed for a deleted user (422).
    refused = {**good, "requester_id": gone.id}
    # Failing after the number was taken: a trigger (test-only) makes the insert raise, so the
    # statement, counter increment included, is undone (the client sees a 500 for that fault).
    faulty = {**good, "title": "FAIL"}
    jobs = []
    for i in range(600):
        body = refused if i % 12 == 0 else faulty if i % 12 == 6 else good
        jobs.append((tenant.admin.key, body))
    await execute(app, *_FAULT)
    try:
        codes = await _fire(servers, jobs)
    finally:
        await execute(
            app, "DROP TRIGGER test_fail_ticket ON tickets", "DROP FUNCTION test_fail_ticket()"
        )
    assert (codes.count(201), codes.count(422), codes.count(500)) == (500, 50, 50)
    numbers, counter = await _numbers(app, tenant.id)
    assert numbers == list(range(1, 501))
    assert counter == 500


async def test_concurrent_creates_spread_over_tenants(
    servers: list[str], app: FastAPI, client: httpx.AsyncClient
) -> None:
    tenants = [await new_tenant(app, client) for _ in range(5)]
    jobs = [
        (t.admin.key, {"title": f"t{i}", "catalog_item": "incident"})
        for i in range(100)
        for t in tenants
    ]
    codes = await _fire(servers, jobs)
    assert codes == [201] * 500
    for t in tenants:
        numbers, counter = await _numbers(app, t.id)
        assert numbers == list(range(1, 101)) and counter == 100
