"""The SLA tick on 100,000 running clocks: what one tick costs with nothing due, and with N
due; the plan that makes it so; and what clocks add to a ticket's create and transition.

    .venv/bin/python bench/sla_tick.py                   # 100,000 clocks, about a minute
    .venv/bin/python bench/sla_tick.py --clocks 1000000  # a bigger haystack
    BENCH_DATABASE_URL=postgresql://postgres@host:5432/postgres .venv/bin/python bench/sla_tick.py

On a scratch database (`bench_sla`, made and dropped on the server of BENCH_DATABASE_URL,
else the local PostgreSQL at 127.0.0.1:5432), migrated to head:

1. seed one tenant, `--clocks` platform requests in SUBMITTED and their running `review`
   clocks (seed 003's 48 hours), due 1 to 48 hours from now, in bulk (generate_series);
   VACUUM ANALYZE;
2. time `flowdesk.tickets.sla_tick.run_due` with nothing due (`--ticks` runs: median, p95),
   through flowdesk's own pool, as the periodic job runs it; EXPLAIN ANALYZE its claim;
3. make N clocks due (their warning, `next_action_at` a second ago) and time the one tick
   that does them all (N = 10, 100, 1000);
4. time the ticket writes the clocks ride on, statement by statement: a create with no
   policy (itsm) against a create that starts a clock, and a transition with and without
   a clock stop (`--writes` of each, median).

The report is printed and written to bench/results/sla_tick.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from flowdesk.config import Settings
from flowdesk.db import migrate
from flowdesk.db.pool import Database
from flowdesk.tickets import lifecycle
from flowdesk.tickets.repository import NewTicket, Ref, TicketRepository
from flowdesk.tickets.sla_tick import _DUE, run_due
from flowdesk.workflow import load_catalog

ROOT = Path(__file__).resolve().parent
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SCRATCH = "bench_sla"

SEED = """
WITH made AS (
    INSERT INTO tickets (tenant_id, number, prefix, title, type, catalog_item, workflow,
                         status, status_category, priority, requester_id, created_at)
    SELECT $1, n, 'B', 'Request ' || n, 'change', 'platform_change', 'platform_request',
           'SUBMITTED', 'initial', 'MEDIUM', $2, now() - interval '1 hour'
    FROM generate_series($3::bigint, $3::bigint + $4::bigint - 1) AS n
    RETURNING tenant_id, id, number
)
INSERT INTO sla_clocks (tenant_id, ticket_id, name, state, target_seconds, started_at,
                        running_since, due_at, warn_at, next_action_at)
SELECT tenant_id, id, 'review', 'running', 172800, now(), now(),
       now() + interval '1 hour' + (number % 47) * interval '1 hour',
       now() + interval '1 hour' + (number % 47) * interval '45 minutes',
       now() + interval '1 hour' + (number % 47) * interval '45 minutes'
FROM made
"""


def _url(base: str, database: str) -> str:
    return base.rsplit("/", 1)[0] + "/" + database


async def _seed(url: str, clocks: int) -> tuple[uuid.UUID, uuid.UUID]:
    conn = await asyncpg.connect(url)
    try:
        tenant, user = uuid.uuid4(), uuid.uuid4()
        await conn.execute(
            "INSERT INTO tenants (id, slug, name, ticket_prefix) "
            "VALUES ($1, 'bench', 'Bench', 'B')",
            tenant,
        )
        await conn.execute(
            "INSERT INTO users (tenant_id, id, email, name, kind) "
            "VALUES ($1, $2, 'a@b.c', 'A', 'person')",
            tenant,
            user,
        )
        await conn.execute("INSERT INTO ticket_counters (tenant_id) VALUES ($1)", tenant)
        step = 50_000
        for first in range(1, clocks + 1, step):
            await conn.execute(SEED, tenant, user, first, min(step, clocks - first + 1))
        await conn.execute(
            "UPDATE ticket_counters SET last_number = $2 WHERE tenant_id = $1", tenant, clocks
        )
        await conn.execute("VACUUM ANALYZE tickets")
        await conn.execute("VACUUM ANALYZE sla_clocks")
        return tenant, user
    finally:
        await conn.close()


def _ms(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    tenant, user = await _seed(url, args.clocks)
    asyncpg_url = url.replace("postgresql://", "postgresql+asyncpg://")
    settings = Settings(database_url=asyncpg_url, seed_demo=False)
    catalog = load_catalog([])
    db = await Database.open(asyncpg_url, settings, size=4)
    out: dict[str, Any] = {"clocks": args.clocks}
    try:
        for _ in range(20):  # warm the pool and the compiled statements
            await run_due(db, catalog)
        times = []
        for _ in range(args.ticks):
            began = time.perf_counter()
            fired = await run_due(db, catalog)
            times.append(time.perf_counter() - began)
            assert fired == []
        out["nothing_due"] = _ms(times)
        async with db.connection() as conn:
            plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + _DUE.sql, None, 100)
        out["plan"] = [r[0] for r in plan]
        out["due"] = []
        for n in (10, 100, 1000):
            async with db.connection() as conn:
                await conn.execute(
                    "UPDATE sla_clocks SET next_action_at = now() - interval '1 second' "
                    "WHERE (tenant_id, ticket_id, name) IN (SELECT tenant_id, ticket_id, name "
                    "FROM sla_clocks WHERE stage = 0 ORDER BY next_action_at DESC LIMIT $1)",
                    n,
                )
            began = time.perf_counter()
            fired = await run_due(db, catalog)
            took = time.perf_counter() - began
            assert len(fired) == n, (len(fired), n)
            out["due"].append(
                {
                    "due": n,
                    "tick_ms": round(took * 1000, 1),
                    "per_clock_ms": round(took * 1000 / n, 3),
                }
            )
        out["writes"] = await _writes(db, catalog, tenant, user, args.writes)
    finally:
        await db.close()
    return out


async def _writes(
    db: Database, catalog: Any, tenant: uuid.UUID, user: uuid.UUID, count: int
) -> dict[str, Any]:
    """Statement by statement, on one connection: creates and transitions with and without
    the clock work, alternating so both see the same server."""
    results: dict[str, list[float]] = {
        "create (itsm, no policy)": [],
        "create (platform, starts a clock)": [],
        "transition (itsm, no policy)": [],
        "transition (platform, stops a clock)": [],
    }
    itsm, platform_wf = catalog.workflow("itsm_default"), catalog.workflow("platform_request")
    async with db.connection() as conn:
        repo = TicketRepository(conn, tenant, requester_only=None)
        for i in range(count + 20):
            made = {}
            for label, workflow, item, status in (
                ("create (itsm, no policy)", itsm, "itsm_incident", "open"),
                ("create (platform, starts a clock)", platform_wf, "platform_change", "SUBMITTED"),
            ):
                moment = lifecycle.entering(workflow, None, status, item=item)
                values: NewTicket = {
                    "title": "Bench",
                    "description": "",
                    "type": "change",
                    "catalog_item": item,
                    "workflow": workflow.name,
                    "status": status,
                    "status_category": workflow.status_category(status),
                    "priority": "MEDIUM",
                    "requester_id": user,
                    "fields": {},
                    "answers": {},
                    "asset_id": None,
                    "movement_id": None,
                    "started_at": moment.get("started_at"),
                    "resolved_at": moment.get("resolved_at"),
                    "closed_at": moment.get("closed_at"),
                    "timer_due_at": moment.get("timer_due_at"),
                }
                if "sla" in moment:
                    values["sla"] = moment["sla"]
                began = time.perf_counter()
                row = await repo.insert(values, user, [{"kind": "created", "data": {}}], [])
                took = time.perf_counter() - began
                assert row is not None
                made[label] = row
                if i >= 20:
                    results[label].append(took)
            for label, key, workflow, target in (
                ("transition (itsm, no policy)", "create (itsm, no policy)", itsm, "in_progress"),
                (
                    "transition (platform, stops a clock)",
                    "create (platform, starts a clock)",
                    platform_wf,
                    "REVIEW",
                ),
            ):
                row = await repo.get(Ref(id=made[key]["id"]))
                assert row is not None
                changes, outbox = lifecycle.moving(workflow, row, target)
                began = time.perf_counter()
                written = await repo.update(
                    row, changes, user, [{"kind": "transitioned", "data": {}}], outbox
                )
                took = time.perf_counter() - began
                assert written is not None
                if i >= 20:
                    results[label].append(took)
    return {label: _ms(times) for label, times in results.items()}


def report(result: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        "# SLA tick",
        "",
        f"{meta['when']}, {meta['server']}, {meta['cpus']} CPUs, load {meta['load'][0]:.2f}",
        "",
        f"{result['clocks']:,} running clocks.",
        "",
        "| tick | median | p95 | max |",
        "|---|---|---|---|",
        "| nothing due | {median_ms} ms | {p95_ms} ms | {max_ms} ms |".format(
            **result["nothing_due"]
        ),
        "",
        "| clocks due | one tick | per clock |",
        "|---|---|---|",
        *(f"| {d['due']} | {d['tick_ms']} ms | {d['per_clock_ms']} ms |" for d in result["due"]),
        "",
        "The claim's plan (nothing due):",
        "",
        "```",
        *result["plan"],
        "```",
        "",
        "| write (one statement, median of each) | median | p95 |",
        "|---|---|---|",
        *(
            f"| {label} | {t['median_ms']} ms | {t['p95_ms']} ms |"
            for label, t in result["writes"].items()
        ),
        "",
    ]
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clocks", type=int, default=100_000)
    parser.add_argument("--ticks", type=int, default=500)
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    args = parser.parse_args()
    base = args.url.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(base)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{SCRATCH}"')
        server = await admin.fetchval("SELECT version()")
    finally:
        await admin.close()
    url = _url(base, SCRATCH)
    try:
        await asyncio.to_thread(
            migrate.upgrade, url.replace("postgresql://", "postgresql+asyncpg://")
        )
        result = await measure(url, args)
    finally:
        admin = await asyncpg.connect(base)
        await admin.execute(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)')
        await admin.close()
    meta = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "server": str(server).split(" on ")[0],
        "machine": platform.machine(),
        "load": os.getloadavg(),
    }
    text = report(result, meta)
    print(text)
    out = ROOT / "results"
    out.mkdir(exist_ok=True)
    (out / "sla_tick.md").write_text(text)
    (out / "sla_tick.json").write_text(json.dumps({"meta": meta, "result": result}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
