"""The purges on a million rows: how long they take, what a concurrent writer waits, and what
is left behind once VACUUM has run.

    .venv/bin/python bench/purge.py                  # 1,000,000 rows per table (~3-5 minutes)
    .venv/bin/python bench/purge.py --rows 100000    # a quicker run
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/purge.py

On a scratch database (`bench_purge`, made and dropped on the server of BENCH_DATABASE_URL,
else the local PostgreSQL at 127.0.0.1:5432), migrated to head, for each purged table:

1. seed `--rows` rows past retention and `--keep` rows within it (one tenant, bulk SQL),
   then VACUUM ANALYZE and measure the table (heap + indexes);
2. run flowdesk's own purge (`flowdesk.notifications.relay.purge` for the outbox,
   `flowdesk.idempotency.repository.purge_expired`, `flowdesk.usage.retention.purge_usage`)
   while two writers work on the same table as the app does (inserting new rows, and
   updating/deleting rows within retention): each batch's duration comes from asyncpg's query
   logger, each writer statement's latency is timed, and pg_locks is sampled every 20 ms for
   the longest lock wait of any backend;
3. VACUUM (plain, as autovacuum would) and measure again: the size, and pgstattuple's dead
   tuples and free space (what is left for new rows, not returned to the OS).

The report is printed and written to bench/results/purge.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from asyncpg.connection import LoggedQuery

from flowdesk.config import Settings
from flowdesk.db import migrate
from flowdesk.db.pool import Database
from flowdesk.idempotency.repository import purge_expired
from flowdesk.notifications.relay import purge
from flowdesk.usage.retention import purge_usage

ROOT = Path(__file__).resolve().parent
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SCRATCH = "bench_purge"


@dataclass
class Result:
    table: str
    rows: int
    kept: int
    deleted: int = 0
    seconds: float = 0.0
    batches: int = 0
    batch_ms_p50: float = 0.0
    batch_ms_max: float = 0.0
    # The median of the first and of the last ten batches: a purge whose batches slow down as
    # it goes reads what the batches before it deleted.
    batch_ms_first10: float = 0.0
    batch_ms_last10: float = 0.0
    writer_ms_before_p99: float = 0.0
    writer_ms_p50: float = 0.0
    writer_ms_p99: float = 0.0
    writer_ms_max: float = 0.0
    writer_statements: int = 0
    lock_wait_ms_max: float = 0.0
    size_seeded_mb: float = 0.0
    size_after_vacuum_mb: float = 0.0
    dead_tuples_after_vacuum: int = 0
    free_percent_after_vacuum: float = 0.0
    notes: list[str] = field(default_factory=list)


def _url(base: str, database: str) -> str:
    return base.rsplit("/", 1)[0] + "/" + database


# What each table's seed, writers and purge are. Rows "old" are past retention, "keep" within.
SEEDS: dict[str, list[str]] = {
    "outbox": [
        "INSERT INTO outbox (tenant_id, topic, payload, created_at, delivered_at) "
        "SELECT :tenant, 'ticket.created', jsonb_build_object('ticket_id', gen_random_uuid()), "
        "now() - interval '40 days', now() - interval '40 days' FROM generate_series(1, :rows)",
        "INSERT INTO outbox (tenant_id, topic, payload, created_at, delivered_at) "
        "SELECT :tenant, 'ticket.created', '{}'::jsonb, now(), now() "
        "FROM generate_series(1, :keep)",
    ],
    "idempotency_keys": [
        "INSERT INTO idempotency_keys (tenant_id, api_key_id, key, request_hash, state, "
        "response_status, response_body, expires_at) SELECT :tenant, :key, 'old-' || n, "
        "sha256(n::text::bytea), 'done', 201, convert_to(repeat('x', 300), 'UTF8'), "
        "now() - interval '1 hour' FROM generate_series(1, :rows) AS n",
        "INSERT INTO idempotency_keys (tenant_id, api_key_id, key, request_hash, state, "
        "expires_at) SELECT :tenant, :key, 'new-' || n, sha256(n::text::bytea), 'done', "
        "now() + interval '1 day' FROM generate_series(1, :keep) AS n",
    ],
    "api_usage": [
        # Days past a 400-day window, 20 endpoint families a day, of one key.
        "INSERT INTO api_usage (tenant_id, day, api_key_id, family, status_class, count) "
        "SELECT :tenant, current_date - 401 - (n / 20), :key, 'family.' || (n % 20), 2, 1 "
        "FROM generate_series(0, :rows - 1) AS n",
        "INSERT INTO api_usage (tenant_id, day, api_key_id, family, status_class, count) "
        "SELECT :tenant, current_date - (n / 20), :key, 'family.' || (n % 20), 2, 1 "
        "FROM generate_series(0, LEAST(:keep, 8000) - 1) AS n",
    ],
}

# The app's writes on each table while the purge runs: new rows, and changes within retention.
WRITERS: dict[str, list[str]] = {
    "outbox": [
        "INSERT INTO outbox (tenant_id, topic, payload) VALUES ($1, 'ticket.created', '{}')",
        "UPDATE outbox SET delivered_at = now() WHERE tenant_id = $1 AND id = "
        "(SELECT max(id) FROM outbox WHERE tenant_id = $1)",
    ],
    "idempotency_keys": [
        "INSERT INTO idempotency_keys (tenant_id, api_key_id, key, request_hash, state, "
        "expires_at) VALUES ($1, $2, gen_random_uuid()::text, '\\x00', 'in_flight', "
        "now() + interval '1 day')",
        "UPDATE idempotency_keys SET state = 'done' WHERE tenant_id = $1 AND api_key_id = $2 "
        "AND key = 'new-1'",
    ],
    "api_usage": [
        "INSERT INTO api_usage (tenant_id, day, api_key_id, family, status_class, count) "
        "VALUES ($1, current_date, $2, 'v1.tickets', 2, 1) ON CONFLICT (tenant_id, day, "
        "api_key_id, family, status_class) DO UPDATE SET count = api_usage.count + 1",
    ],
}

LOCK_WAITS = """
SELECT coalesce(max(extract(epoch FROM now() - a.state_change)) * 1000, 0)
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.wait_event_type = 'Lock'
"""

SIZE = "SELECT pg_total_relation_size($1::regclass)::float8 / (1024 * 1024)"


async def _seed_tenant(conn: asyncpg.Connection[Any]) -> tuple[uuid.UUID, uuid.UUID]:
    tenant = uuid.uuid4()
    user = uuid.uuid4()
    key = uuid.uuid4()
    await conn.execute(
        "INSERT INTO tenants (id, slug, name) VALUES ($1, $2, 'Bench')", tenant, f"b-{tenant.hex}"
    )
    await conn.execute(
        "INSERT INTO users (tenant_id, id, email, name, kind) VALUES ($1, $2, 'a@b.c', 'A', "
        "'person')",
        tenant,
        user,
    )
    await conn.execute(
        "INSERT INTO api_keys (tenant_id, id, user_id, name, prefix, key_hash, scopes) "
        "VALUES ($1, $2, $3, 'k', 'fdk_x', $4, '{}')",
        tenant,
        key,
        user,
        os.urandom(32),
    )
    return tenant, key


async def _writer(
    url: str, statements: list[str], args: tuple[Any, ...], stop: asyncio.Event, out: list[float]
) -> None:
    conn = await asyncpg.connect(url)
    try:
        while not stop.is_set():
            for sql in statements:
                started = time.perf_counter()
                await conn.execute(sql, *args[: _params(sql)])
                out.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.002)
    finally:
        await conn.close()


def _bind(named: str, **values: Any) -> tuple[Any, ...]:
    """`:name` placeholders -> asyncpg's $n, with the values of the names used."""
    used: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] not in used:
            used.append(match[1])
        return f"${used.index(match[1]) + 1}"

    sql = re.sub(r"(?<!:):(tenant|rows|keep|key)\b", number, named)
    return (sql, *[values[name] for name in used])


def _params(sql: str) -> int:
    return max(int(part[0]) for part in sql.split("$")[1:] if part[:1].isdigit())


async def _sample_locks(url: str, stop: asyncio.Event, out: list[float]) -> None:
    conn = await asyncpg.connect(url)
    try:
        while not stop.is_set():
            out.append(float(await conn.fetchval(LOCK_WAITS)))
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


def _p(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _purge_of(table: str, db: Database, settings: Settings) -> int:
    if table == "outbox":
        return await purge(db, settings)
    if table == "idempotency_keys":
        return await purge_expired(db)
    return await purge_usage(db, 400)


async def measure(url: str, table: str, rows: int, keep: int) -> Result:
    result = Result(table, rows, keep)
    conn = await asyncpg.connect(url)
    try:
        tenant, key = await _seed_tenant(conn)
        for named in SEEDS[table]:
            await conn.execute(*_bind(named, tenant=tenant, rows=rows, keep=keep, key=key))
        await conn.execute(f"VACUUM ANALYZE {table}")
        result.size_seeded_mb = round(float(await conn.fetchval(SIZE, table)), 1)
    finally:
        await conn.close()

    settings = Settings(database_url=url, notification_retention_days=30)
    db = await Database.open(url, settings, size=2)
    batches: list[float] = []

    def on_query(q: LoggedQuery) -> None:
        if q.query.lstrip().upper().startswith(("WITH", "DELETE")):
            batches.append(q.elapsed * 1000)

    await db.add_query_logger(on_query)
    writes: list[float] = []
    waits: list[float] = []
    stop = asyncio.Event()
    # The writers' latency alone first, then with the purge running.
    baseline: list[float] = []
    warm = asyncio.Event()
    writer_args = (tenant, key)
    warming = [
        asyncio.create_task(_writer(url, [sql], writer_args, warm, baseline))
        for sql in WRITERS[table]
    ]
    await asyncio.sleep(2)
    warm.set()
    await asyncio.gather(*warming)
    tasks = [
        asyncio.create_task(_writer(url, [sql], writer_args, stop, writes))
        for sql in WRITERS[table]
    ]
    tasks.append(asyncio.create_task(_sample_locks(url, stop, waits)))
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    try:
        result.deleted = await _purge_of(table, db, settings)
        result.seconds = round(time.perf_counter() - started, 2)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await db.close()
    result.batches = len(batches)
    result.batch_ms_p50 = round(statistics.median(batches), 1) if batches else 0.0
    result.batch_ms_max = round(max(batches, default=0.0), 1)
    if batches:
        result.batch_ms_first10 = round(statistics.median(batches[:10]), 1)
        result.batch_ms_last10 = round(statistics.median(batches[-10:]), 1)
    result.writer_ms_before_p99 = round(_p(baseline, 0.99), 2)
    result.writer_ms_p50 = round(_p(writes, 0.5), 2)
    result.writer_ms_p99 = round(_p(writes, 0.99), 2)
    result.writer_ms_max = round(max(writes, default=0.0), 2)
    result.writer_statements = len(writes)
    result.lock_wait_ms_max = round(max(waits, default=0.0), 1)

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"VACUUM {table}")
        result.size_after_vacuum_mb = round(float(await conn.fetchval(SIZE, table)), 1)
        stats = await conn.fetchrow(
            "SELECT dead_tuple_count, free_percent FROM pgstattuple($1::regclass)", table
        )
        assert stats is not None
        result.dead_tuples_after_vacuum = int(stats["dead_tuple_count"])
        result.free_percent_after_vacuum = float(stats["free_percent"])
        left = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant)
        result.notes.append(f"{left} rows left (the kept ones and the writers')")
    finally:
        await conn.close()
    return result


def report(results: list[Result], meta: dict[str, Any]) -> str:
    lines = [
        "# Purge benchmark",
        "",
        f"{meta['when']} at {meta['commit']}; {meta['cpus']} CPUs; {meta['server']}.",
        "",
        "| table | rows purged | time | rows/s | batches (p50 / max; first 10 / last 10 ms) "
        "| writer p99 before / "
        "during / max (ms) | longest lock wait seen | size seeded → after VACUUM | dead tuples "
        "/ free space after VACUUM |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        rate = r.deleted / r.seconds if r.seconds else 0
        lines.append(
            f"| {r.table} | {r.deleted:,} | {r.seconds:.1f} s | {rate:,.0f} | "
            f"{r.batches} ({r.batch_ms_p50} / {r.batch_ms_max}; "
            f"{r.batch_ms_first10} / {r.batch_ms_last10}) | "
            f"{r.writer_ms_before_p99} / {r.writer_ms_p99} / {r.writer_ms_max} | "
            f"{r.lock_wait_ms_max} ms | {r.size_seeded_mb} → {r.size_after_vacuum_mb} MB | "
            f"{r.dead_tuples_after_vacuum} / {r.free_percent_after_vacuum:.0f}% |"
        )
    return "\n".join(lines) + "\n"


def _commit() -> str:
    found = subprocess.run(
        ["git", "-C", str(ROOT.parent), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() + (" + uncommitted changes" if _dirty() else "")


def _dirty() -> bool:
    return bool(
        subprocess.run(
            ["git", "-C", str(ROOT.parent), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=int, default=100_000)
    parser.add_argument("--tables", default="outbox,idempotency_keys,api_usage")
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
    results: list[Result] = []
    try:
        await asyncio.to_thread(
            migrate.upgrade, url.replace("postgresql://", "postgresql+asyncpg://")
        )
        conn = await asyncpg.connect(url)
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        await conn.close()
        for table in args.tables.split(","):
            print(f"{table}: seeding {args.rows:,} rows past retention, {args.keep:,} within")
            results.append(await measure(url, table, args.rows, args.keep))
            print(json.dumps(asdict(results[-1])))
    finally:
        admin = await asyncpg.connect(base)
        await admin.execute(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)')
        await admin.close()
    commit = await asyncio.to_thread(_commit)
    meta = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "cpus": os.cpu_count(),
        "server": str(server).split(" on ")[0],
        "machine": platform.machine(),
        "load": os.getloadavg(),
    }
    text = report(results, meta)
    print(text)
    out = ROOT / "results"
    out.mkdir(exist_ok=True)
    (out / "purge.md").write_text(text)
    (out / "purge.json").write_text(
        json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2)
    )


if __name__ == "__main__":
    asyncio.run(main())
