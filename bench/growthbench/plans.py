"""Each list shape's query plan: the app runs in this process (ASGI), asyncpg's query logger
catches the request's most expensive statement on tickets or their events, and that statement
is run again under `EXPLAIN (ANALYZE, BUFFERS)` with the same parameters."""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass

import asyncpg
import httpx
from asyncpg.connection import LoggedQuery

from flowdesk.app import create_app
from flowdesk.config import Settings
from flowdesk.runtime import app_runtime
from growthbench.seed import asyncpg_url
from growthbench.shapes import Resolved, Shape, big_tenant_subjects, list_shapes, resolve

WARMUP = 3


@dataclass
class Plan:
    name: str
    page: int
    # In-process timing (no HTTP server), one request at a time.
    p50_ms: float
    p99_ms: float
    rows_read: int  # the most rows one scan of tickets or ticket_events produced or removed
    reads_whole_tenant: bool
    plan: list[str]


async def explain_all(url: str, key: str, big: int, requests: int) -> list[Plan]:
    settings = Settings(
        database_url=asyncpg_url(url),
        seed_demo=False,
        relay_poll_seconds=0,
        # One client far above a key's budget (page 1,000 walks a thousand pages).
        first_party_rate_limit_requests=10**9,
    )
    app = create_app(settings)
    logged: list[LoggedQuery] = []
    plans: list[Plan] = []
    async with app.router.lifespan_context(app):
        await app_runtime(app).db.add_query_logger(logged.append)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            requester, event_ticket = await big_tenant_subjects(client, key)
            for shape in list_shapes(requester, event_ticket, deep=big >= 500_000):
                resolved = await resolve(client, key, shape)
                plans.append(await _one(client, key, resolved, logged, url, big, requests))
                p = plans[-1]
                wide = "  READS > 10% OF THE TENANT" if p.reads_whole_tenant else ""
                print(
                    f"  {p.name:42} p50 {p.p50_ms:7.1f} ms  p99 {p.p99_ms:7.1f} ms  "
                    f"rows read {p.rows_read:>9,}{wide}",
                    flush=True,
                )
    return plans


async def _one(
    client: httpx.AsyncClient,
    key: str,
    resolved: Resolved,
    logged: list[LoggedQuery],
    url: str,
    big: int,
    requests: int,
) -> Plan:
    headers = {"Authorization": f"Bearer {key}"}
    times: list[float] = []
    for i in range(requests + WARMUP):
        logged.clear()
        started = time.perf_counter()
        r = await client.get(resolved.url, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        if r.status_code != 200:
            raise RuntimeError(f"{resolved.shape.name}: {r.status_code} {r.text[:300]}")
        if i >= WARMUP:
            times.append(elapsed)
    statement = max(
        (q for q in logged if re.search(r"\bFROM (tickets|ticket_events)\b", q.query)),
        key=lambda q: q.elapsed,
        default=None,
    )
    plan: list[str] = []
    if statement is not None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SET jit = off")
            found = await conn.fetch(
                "EXPLAIN (ANALYZE, BUFFERS) " + statement.query, *statement.args
            )
            plan = [row[0] for row in found]
        finally:
            await conn.close()
    rows = rows_read(plan)
    times.sort()
    return Plan(
        resolved.shape.name,
        resolved.page,
        round(statistics.median(times), 1),
        round(times[min(len(times) - 1, int(0.99 * len(times)))], 1),
        rows,
        _too_wide(resolved.shape, rows, big),
        plan,
    )


def _too_wide(shape: Shape, rows: int, big: int) -> bool:
    """A page may read a tenth of the tenant's tickets at most; counts may read what they
    count, but not the whole tenant."""
    return rows > (0.9 * big if shape.counts else big / 10)


def rows_read(plan: list[str]) -> int:
    """The most rows one scan node of tickets or ticket_events produced, filtered ones
    included."""
    most = 0
    for i, line in enumerate(plan):
        if re.search(r"Scan.* on (tickets|ticket_events)\b", line):
            actual = re.search(r"actual time=\S+ rows=(\d+) loops=(\d+)", line)
            count = int(actual[1]) * int(actual[2]) if actual else 0
            for follow in plan[i + 1 : i + 4]:
                removed = re.search(r"Rows Removed by (?:Filter|Index Recheck): (\d+)", follow)
                if removed:
                    count += int(removed[1]) * (int(actual[2]) if actual else 1)
            most = max(most, count)
    return most
