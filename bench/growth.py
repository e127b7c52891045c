"""The growth benchmark: what each list shape costs in a million-ticket tenant.

    make bench-growth                              # scale 1: 5,000,000 tickets (long: see below)
    .venv/bin/python bench/growth.py --scale 0.1   # 500,000 tickets, the big tenant 100,000
    BENCH_DATABASE_URL=postgresql://… .venv/bin/python bench/growth.py

On a scratch database (`bench_growth`, made anew on the server of BENCH_DATABASE_URL, else the
local PostgreSQL at 127.0.0.1:5432), migrated to head:

1. **Seed**, with PostgreSQL's bulk path (`INSERT … SELECT generate_series`): 1,000 tenants x
   scale (made by flowdesk's own `create_tenant`, licensed), 5,000,000 x scale tickets, of
   which 1,000,000 x scale in the first tenant (the big one, with 50 requesters and 20
   agents), statuses mostly closed as a long-lived desk's are, created over three years, with
   ~5 audit events and ~1 comment per ticket and 2 relayed outbox messages; one ticket of the
   big tenant carries 1,000 events. Then VACUUM ANALYZE.
2. **Measure** every list shape a queue screen uses, in the big tenant, as an agent, through
   the app in this process (ASGI, one request at a time: the 1-connection figure): the
   default list, each sort, each filter, the search `q` with a common and a rare word, cursor
   pages 1, 100 (and 1,000 at scale ≥ 0.5), the counts, the events of the 1,000-event ticket.
   Each shape: p50/p99 of `--requests` requests after a warm-up, and the `EXPLAIN (ANALYZE,
   BUFFERS)` of its ticket statement (captured with asyncpg's query logger, run with the same
   parameters). A plan is flagged when it reads more ticket rows than a tenth of the big
   tenant's tickets to return one page.

The report is printed and written to bench/results/growth.{md,json}. Not part of `make test`;
a full-scale seed takes a long time on two shared cores (hence `--scale`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from asyncpg.connection import LoggedQuery

from flowdesk.app import create_app
from flowdesk.config import Settings
from flowdesk.db import migrate
from flowdesk.runtime import app_runtime

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from loadbench.seed import seed_flowdesk  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SCRATCH = "bench_growth"
# The big tenant's admin key, for `--reuse` (kept out of bench/results, which is committed).
KEY_FILE = ROOT / ".data" / "growth.key"
TARGET_MS = 50.0
SEARCH_TARGET_MS = 100.0

# Title words: "printer" is in every tenth ticket, "zeppelin" in one in 50,000.
WORDS = "'{vpn,printer,email,laptop,password,network,screen,keyboard,access,license}'"

SEED_SQL = [
    # People of the big tenant: requesters and agents (agents through the admin group).
    """
    INSERT INTO users (tenant_id, id, email, name, kind)
    SELECT $1, gen_random_uuid(), 'user' || n || '@big.example', 'User ' || n, 'person'
    FROM generate_series(1, 70) AS n
    """,
    """
    INSERT INTO group_members (tenant_id, group_id, user_id)
    SELECT u.tenant_id, g.id, u.id
    FROM (SELECT tenant_id, id FROM users WHERE tenant_id = $1 AND email LIKE 'user%'
          ORDER BY email LIMIT 20) u
    JOIN groups g ON g.tenant_id = u.tenant_id AND 'admin' = ANY (g.permissions)
    """,
    # Tickets: tenant t's k-th ticket; the big tenant takes the first `big` of them.
    """
    WITH people AS (
      SELECT tenant_id, array_agg(id ORDER BY email) AS ids FROM users GROUP BY tenant_id
    ), placed AS (
      SELECT k, CASE WHEN k < $2 THEN 0 ELSE 1 + (k - $2) % ($3 - 1) END AS t
      FROM generate_series(0, $1 - 1) AS k
    ), numbered AS (
      SELECT k, t, row_number() OVER (PARTITION BY t ORDER BY k) AS number,
             count(*) OVER (PARTITION BY t) AS total
      FROM placed
    )
    INSERT INTO tickets (tenant_id, id, number, prefix, title, description, type, catalog_item,
                         workflow, status, status_category, priority, requester_id,
                         assignee_id, created_at, updated_at, started_at, resolved_at,
                         closed_at)
    SELECT ten.id, gen_random_uuid(), n.number, 'TKT',
           ("""
    + WORDS
    + """::text[])[1 + k % 10] || ' trouble '
             || CASE WHEN k % 50000 = 17 THEN 'zeppelin' ELSE 'ticket ' || (k % 1000) END,
           'Seeded ticket ' || k,
           CASE WHEN k % 3 = 0 THEN 'service_request' ELSE 'incident' END,
           CASE WHEN k % 3 = 0 THEN 'itsm_service_request' ELSE 'itsm_incident' END,
           'itsm_default', s.status, s.category,
           (ARRAY['LOW','MEDIUM','HIGH','CRITICAL'])[1 + (k * 37 / 7) % 4],
           p.ids[1 + (k % array_length(p.ids, 1))],
           CASE WHEN s.status = 'open' OR k % 7 = 3 THEN NULL
                ELSE p.ids[1 + (k % LEAST(21, array_length(p.ids, 1)))] END,
           c.at, c.at + interval '2 hours',
           CASE WHEN s.status <> 'open' THEN c.at + interval '1 hour' END,
           CASE WHEN s.status IN ('resolved', 'closed') THEN c.at + interval '2 hours' END,
           CASE WHEN s.status = 'closed' THEN c.at + interval '2 hours' END
    FROM numbered n
    JOIN (SELECT id, row_number() OVER (ORDER BY slug) - 1 AS t FROM tenants) ten ON ten.t = n.t
    JOIN people p ON p.tenant_id = ten.id
    CROSS JOIN LATERAL (
      -- (k / 3) % 20: independent of the title word (k % 10) and of the priority.
      SELECT CASE (k / 3) % 20 WHEN 0 THEN 'open' WHEN 1 THEN 'in_progress'
                  WHEN 2 THEN 'resolved' WHEN 3 THEN 'cancelled'
                  ELSE 'closed' END AS status) s0
    CROSS JOIN LATERAL (
      SELECT s0.status, CASE s0.status WHEN 'open' THEN 'initial'
                          WHEN 'in_progress' THEN 'active' WHEN 'resolved' THEN 'active'
                          ELSE 'inactive' END AS category) s
    CROSS JOIN LATERAL (
      SELECT now() - interval '3 years' * (1 - n.number::float8 / n.total) AS at) c
    """,
    "UPDATE ticket_counters c SET last_number = m.top FROM (SELECT tenant_id, max(number) "
    "AS top FROM tickets GROUP BY tenant_id) m WHERE c.tenant_id = m.tenant_id",
    # ~5 audit events a ticket (created, assigned, transitioned x2, commented).
    """
    INSERT INTO ticket_events (tenant_id, ticket_id, kind, actor_id, data, created_at)
    SELECT t.tenant_id, t.id, e.kind, t.requester_id, '{}'::jsonb,
           t.created_at + e.n * interval '20 minutes'
    FROM tickets t
    CROSS JOIN (VALUES (0, 'created'), (1, 'assigned'), (2, 'transitioned'),
                       (3, 'commented'), (4, 'transitioned')) AS e(n, kind)
    """,
    """
    INSERT INTO ticket_comments (tenant_id, ticket_id, author_id, body, visibility, created_at)
    SELECT tenant_id, id, requester_id, 'Seeded comment', 'external',
           created_at + interval '1 hour'
    FROM tickets
    """,
    """
    INSERT INTO outbox (tenant_id, topic, payload, created_at, delivered_at)
    SELECT t.tenant_id, o.topic, jsonb_build_object('ticket_id', t.id), t.created_at,
           t.created_at + interval '1 second'
    FROM tickets t CROSS JOIN (VALUES ('ticket.created'), ('ticket.closed')) AS o(topic)
    """,
    # One ticket of the big tenant with 1,000 events.
    """
    INSERT INTO ticket_events (tenant_id, ticket_id, kind, actor_id, data, created_at)
    SELECT t.tenant_id, t.id, 'field_changed', t.requester_id, '{}'::jsonb,
           t.created_at + n * interval '1 minute'
    FROM (SELECT * FROM tickets WHERE tenant_id = $1 AND number = 1) t,
         generate_series(1, 995) AS n
    """,
]


@dataclass
class Shape:
    name: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    pages: int = 1  # follow the cursor to this page
    search: bool = False
    # Counts read every ticket they count: flagged only when they read the whole tenant.
    counts: bool = False


@dataclass
class Measured:
    name: str
    p50_ms: float
    p99_ms: float
    rows_read: int
    reads_whole_tenant: bool
    target_ms: float
    plan: list[str]


def _shapes(scale: float, me: str, requester: str) -> list[Shape]:
    t = "/v1/tickets"
    shapes = [
        Shape("default (open and active, newest first)", t),
        Shape("sort created", t, {"sort": "created"}),
        Shape("sort -created", t, {"sort": "-created"}),
        Shape("sort updated", t, {"sort": "-updated"}),
        Shape("sort priority", t, {"sort": "-priority"}),
        Shape("status=in_progress", t, {"status": "in_progress"}),
        Shape("status=closed (inactive, asked for)", t, {"status": "closed"}),
        Shape("status_category=active", t, {"status_category": "active"}),
        Shape("assignee=me", t, {"assignee": me}),
        Shape("assignee=none", t, {"assignee": "none"}),
        Shape("requester", t, {"requester": requester}),
        Shape("priority=CRITICAL", t, {"priority": "CRITICAL"}),
        Shape("type=service_request", t, {"type": "service_request"}),
        Shape("catalog_item=itsm_incident", t, {"catalog_item": "itsm_incident"}),
        Shape(
            "created in the last 30 days",
            t,
            {"created_after": _ago(30), "status_category": ["initial", "active", "inactive"]},
        ),
        Shape(
            "updated in a past week", t, {"updated_after": _ago(400), "updated_before": _ago(393)}
        ),
        Shape("resolved in the last 90 days", t, {"resolved_after": _ago(90), "status": "closed"}),
        Shape("q common word (printer)", t, {"q": "printer"}, search=True),
        Shape("q rare word (zeppelin)", t, {"q": "zeppelin"}, search=True),
        Shape("page 100 (default)", t, {}, pages=100),
        Shape("counts by status", f"{t}/counts", {"group_by": "status"}, counts=True),
        Shape("counts by assignee", f"{t}/counts", {"group_by": "assignee"}, counts=True),
    ]
    if scale >= 0.5:
        shapes.append(Shape("page 1000 (default)", t, {}, pages=1000))
    return shapes


def _ago(days: int) -> str:
    return datetime.fromtimestamp(time.time() - days * 86400, UTC).isoformat()


async def seed(url: str, scale: float) -> tuple[str, int]:
    tenants = max(10, round(1000 * scale))
    tickets = round(5_000_000 * scale)
    big = round(1_000_000 * scale)
    print(f"seeding {tenants:,} tenants, {tickets:,} tickets ({big:,} in the big tenant)")
    started = time.perf_counter()
    keys = await seed_flowdesk(
        url.replace("postgresql://", "postgresql+asyncpg://"), tenants, concurrency=2
    )
    conn = await asyncpg.connect(url)
    try:
        big_id = await conn.fetchval("SELECT id FROM tenants ORDER BY slug LIMIT 1")
        for sql in SEED_SQL:
            args: list[Any] = [big_id] if "$1" in sql else []
            if "$3" in sql:
                args = [tickets, big, tenants]
            step = time.perf_counter()
            await conn.execute(sql, *args)
            print(f"  {time.perf_counter() - step:6.1f} s  {' '.join(sql.split())[:70]}")
        step = time.perf_counter()
        await conn.execute("VACUUM ANALYZE")
        print(f"  {time.perf_counter() - step:6.1f} s  VACUUM ANALYZE")
    finally:
        await conn.close()
    print(f"seeded in {time.perf_counter() - started:.0f} s")
    return keys[0], big


async def measure(url: str, key: str, big: int, scale: float, requests: int) -> list[Measured]:
    app_url = url.replace("postgresql://", "postgresql+asyncpg://")
    app = create_app(Settings(database_url=app_url, seed_demo=False, relay_poll_seconds=0))
    logged: list[LoggedQuery] = []
    results: list[Measured] = []
    async with app.router.lifespan_context(app):
        db = app_runtime(app).db
        await db.add_query_logger(logged.append)
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            async with db.connection() as conn:
                requester = await conn.fetchval(
                    "SELECT requester_id FROM tickets WHERE tenant_id = $1 "
                    "GROUP BY requester_id ORDER BY count(*) DESC LIMIT 1",
                    await _tenant_of(conn, key),
                )
            shapes = _shapes(scale, "me", str(requester))
            event_ticket = (await client.get("/v1/tickets/TKT-000001", headers=headers)).json()[
                "id"
            ]
            shapes.append(
                Shape("events of a 1,000-event ticket", f"/v1/tickets/{event_ticket}/events")
            )
            for shape in shapes:
                results.append(await _one(client, headers, shape, logged, url, big, requests))
                r = results[-1]
                wide = "  > 10% OF THE TENANT" if r.reads_whole_tenant else ""
                print(
                    f"{r.name:45} p50 {r.p50_ms:8.1f} ms  p99 {r.p99_ms:8.1f} ms  "
                    f"rows read {r.rows_read:>9,}{wide}"
                )
    return results


async def _tenant_of(conn: Any, key: str) -> Any:
    import hashlib

    return await conn.fetchval(
        "SELECT tenant_id FROM api_keys WHERE key_hash = $1", hashlib.sha256(key.encode()).digest()
    )


async def _one(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    shape: Shape,
    logged: list[LoggedQuery],
    url: str,
    big: int,
    requests: int,
) -> Measured:
    # Walk to the page once, then time the page itself.
    params = dict(shape.params)
    for _ in range(shape.pages - 1):
        r = await client.get(shape.path, params=params, headers=headers)
        cursor = r.json().get("next_cursor")
        if not cursor:
            break
        params = {**shape.params, "cursor": cursor}
    page = Shape(shape.name, shape.path, params)
    times: list[float] = []
    for i in range(requests + 3):
        logged.clear()
        started = time.perf_counter()
        r = await client.get(page.path, params=page.params, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        assert r.status_code == 200, (shape.name, r.text)
        if i >= 3:
            times.append(elapsed)
    # The request's most expensive statement on tickets or their events.
    statement = max(
        (q for q in logged if re.search(r"\bFROM (tickets|ticket_events)\b", q.query)),
        key=lambda q: q.elapsed,
        default=None,
    )
    plan: list[str] = []
    rows_read = 0
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
        rows_read = _rows_read(plan)
    times.sort()
    return Measured(
        shape.name,
        round(statistics.median(times), 1),
        round(times[min(len(times) - 1, int(0.99 * len(times)))], 1),
        rows_read,
        rows_read > (0.9 * big if shape.counts else big / 10),
        SEARCH_TARGET_MS if shape.search else TARGET_MS,
        plan,
    )


def _rows_read(plan: list[str]) -> int:
    """The most rows one scan node of tickets produced, filtered ones included."""
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


def report(results: list[Measured], meta: dict[str, Any]) -> str:
    lines = [
        "# Growth benchmark",
        "",
        f"{meta['when']} at {meta['commit']}; scale {meta['scale']} ({meta['tickets']:,} "
        f"tickets, {meta['big']:,} in the big tenant); {meta['cpus']} CPUs; {meta['server']}; "
        f"load average at the start {meta['load']}.",
        "",
        "| list shape (big tenant, agent, 1 connection) | p50 ms | p99 ms | target | met | "
        "ticket rows read by the plan |",
        "|---|--:|--:|--:|---|--:|",
    ]
    for r in results:
        met = "yes" if r.p99_ms < r.target_ms and not r.reads_whole_tenant else "**MISS**"
        lines.append(
            f"| {r.name} | {r.p50_ms} | {r.p99_ms} | < {r.target_ms:.0f} | {met} | "
            f"{r.rows_read:,}{' (> 10% of the tenant)' if r.reads_whole_tenant else ''} |"
        )
    lines += ["", "## Plans", ""]
    for r in results:
        lines += [f"### {r.name}", "", "```", *r.plan, "```", ""]
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--reuse", action="store_true", help="measure the seeded database again")
    args = parser.parse_args()
    base = args.url.replace("postgresql+asyncpg://", "postgresql://")
    url = base.rsplit("/", 1)[0] + "/" + SCRATCH
    admin = await asyncpg.connect(base)
    try:
        server = await admin.fetchval("SELECT version()")
        if not args.reuse:
            await admin.execute(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{SCRATCH}"')
    finally:
        await admin.close()
    load = os.getloadavg()
    if args.reuse:
        key = KEY_FILE.read_text().strip()
        big = round(1_000_000 * args.scale)
    else:
        await asyncio.to_thread(
            migrate.upgrade, url.replace("postgresql://", "postgresql+asyncpg://")
        )
        key, big = await seed(url, args.scale)
        KEY_FILE.parent.mkdir(exist_ok=True)
        KEY_FILE.write_text(key + "\n")
    results = await measure(url, key, big, args.scale, args.requests)
    meta = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": os.environ.get("BENCH_COMMIT", "working tree"),
        "scale": args.scale,
        "tickets": round(5_000_000 * args.scale),
        "big": big,
        "cpus": os.cpu_count(),
        "server": str(server).split(" on ")[0],
        "load": [round(x, 1) for x in load],
    }
    text = report(results, meta)
    out = ROOT / "results"
    out.mkdir(exist_ok=True)
    (out / "growth.md").write_text(text)
    (out / "growth.json").write_text(
        json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2)
    )
    print(text.split("## Plans")[0])


if __name__ == "__main__":
    asyncio.run(main())
