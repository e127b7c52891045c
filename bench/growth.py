"""The growth benchmark: what each request costs in a database of 5,000,000 tickets with a
1,000,000-ticket tenant, beside the same request on a small twin.

    make bench-growth                              # scale 1 (the seed alone takes a while)
    .venv/bin/python bench/growth.py --scale 0.05  # 250,000 tickets, the big tenant 50,000
    .venv/bin/python bench/growth.py --reuse       # measure the seeded databases again
    BENCH_DATABASE_URL=postgresql://… .venv/bin/python bench/growth.py

Two scratch databases on the server of BENCH_DATABASE_URL (else the local PostgreSQL at
127.0.0.1:5432), made anew and migrated to head unless `--reuse`:

- `bench_growth`: 1,000 tenants x scale, 5,000,000 x scale tickets, 1,000,000 x scale of them
  in the first tenant (the big one), mostly closed as a long-lived desk's are, created over
  three years, with ~5 audit events, a comment and 2 relayed outbox messages each, one ticket
  of the big tenant with 1,000 events (growthbench/seed.py);
- `bench_growth_small`, its twin at `make bench`'s size: the same seed, 5,000 tickets over
  1,000 tenants, 1,000 in the big one.

Phases (`--phases`, all by default):

1. `plans`: every list shape's statement in the big tenant under `EXPLAIN (ANALYZE,
   BUFFERS)`, and its in-process time (growthbench/plans.py).
2. `http`: `flowdesk serve` and `make bench`'s reference app on both databases, loaded by wrk
   at 1 and 32 connections: create (in the big tenant and spread), transition, get, and every
   list shape (growthbench/serve.py); then the audit trail's growth per ticket change
   (growthbench/audit.py).
3. `pooler`: the big database straight and through a real PgBouncer in transaction-pooling
   mode (growthbench/pooler.py), when pgbouncer is installed.

The report is printed and written to bench/results/growth.{md,json}. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from growthbench import audit, plans, pooler, serve  # noqa: E402
from growthbench.report import Run, render  # noqa: E402
from growthbench.seed import (  # noqa: E402
    Size,
    asyncpg_url,
    load_keys,
    recreate,
    save_keys,
    seed,
)
from loadbench import database  # noqa: E402
from loadbench.prepare import BODY  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# The twin at `make bench`'s size: 5,000 tickets over 1,000 tenants, 1,000 in the big one.
SMALL_SIZE = Size(5_000, 1_000, 1_000)
# Keys, seed timings, wrk's data files and the servers' logs (bench/results is committed).
WORK = ROOT / ".data" / "growth"
RESULTS = ROOT / "results"
PHASES = ("plans", "http", "pooler")


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


Databases = dict[str, tuple[str, list[str]]]  # "big"/"small" -> (postgresql:// URL, keys)


async def databases(
    server: database.Server, prefix: str, size: Size, small: Size, reuse: bool, work: Path, run: Run
) -> Databases:
    """The big database and its twin, seeded unless `reuse` finds them seeded."""
    made: Databases = {}
    for which, name, wanted in (("small", f"{prefix}_small", small), ("big", prefix, size)):
        url = server.dsn(name)
        keys_file = work / f"{name}.keys"
        steps_file = work / f"{name}.seed.json"
        if not (reuse and keys_file.exists() and await _exists(server, name)):
            log(f"{name}: a fresh database")
            url = await recreate(server, name)
            seeded = await seed(url, wanted)
            save_keys(keys_file, seeded.keys)
            steps_file.write_text(json.dumps(seeded.steps))
        label = f"{name} ({wanted.describe()})"
        if steps_file.exists():
            run.seed_steps[label] = [tuple(s) for s in json.loads(steps_file.read_text())]
        made[which] = (url, load_keys(keys_file))
    return made


async def _exists(server: database.Server, name: str) -> bool:
    conn = await asyncpg.connect(server.dsn("postgres"))
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def http_phase(
    made: Databases,
    size: Size,
    knobs: serve.Knobs,
    only: re.Pattern[str],
    audit_seconds: int,
    work: Path,
    run: Run,
) -> None:
    work = work / "http"
    work.mkdir(parents=True, exist_ok=True)
    tickets = max(knobs.connections) * serve.TICKETS_PER_CONNECTION
    (big_url, big_keys), (small_url, small_keys) = made["big"], made["small"]
    deep = size.big >= 500_000
    log("starting flowdesk and the reference on both databases")
    targets = [
        await serve.start_flowdesk("flowdesk small", small_url, small_keys, work, tickets, deep),
        await serve.start_flowdesk("flowdesk big", big_url, big_keys, work, tickets, deep),
    ]
    try:
        for label, url in (("reference small", small_url), ("reference big", big_url)):
            targets.append(await serve.start_reference(label, url, work, tickets))
        references = targets[2:]
        run.pages = {
            t.label: {name: r.page for name, r in t.urls.items()} for t in targets if t.urls
        }
        log("writes and single-ticket reads")
        one_ticket = [s for s in serve.ONE_TICKET if only.search(s)]
        run.points += await serve.measure(one_ticket, targets, knobs, log)
        for reference in references:
            reference.server.stop()
        targets = targets[:2]
        log("list shapes")
        shapes = [s for s in targets[1].urls if only.search(s)]
        run.points += await serve.measure(shapes, targets, knobs, log)
        log(f"the audit trail's growth over {audit_seconds} s of creates and transitions")
        before = await audit.snapshot(big_url)
        # As many connections as the transition tickets were prepared for (no two share one).
        changes = serve.Knobs([max(knobs.connections)], audit_seconds, 0, 1)
        await serve.measure(["create_spread", "transition"], [targets[1]], changes, log)
        run.audit = audit.growth(before, await audit.snapshot(big_url))
        if "pooler" in run.meta["phases"]:
            await pooler_phase(big_url, big_keys, targets[1], work, tickets, deep, knobs, only, run)
    finally:
        serve.stop(targets)


async def pooler_phase(
    big_url: str,
    big_keys: list[str],
    direct: serve.Target,
    work: Path,
    tickets: int,
    deep: bool,
    knobs: serve.Knobs,
    only: re.Pattern[str],
    run: Run,
) -> None:
    if pooler.binary() is None:
        log("pgbouncer is not installed: no figures through it (apt-get install pgbouncer)")
        return
    pool = 20  # flowdesk's default pool size: PgBouncer keeps as many server connections
    with pooler.pgbouncer(big_url, pool) as pooled_url:
        log(f"flowdesk through PgBouncer at {pooled_url}")
        settings = {
            "FLOWDESK_DATABASE_POOLER": "pgbouncer",
            "FLOWDESK_LISTEN_DATABASE_URL": asyncpg_url(big_url),
        }
        pooled = await serve.start_flowdesk(
            "flowdesk big via PgBouncer", pooled_url, big_keys, work, tickets, deep, settings
        )
        try:
            scenarios = [
                s
                for s in [*serve.ONE_TICKET, "default (open and active, newest first)"]
                if only.search(s)
            ]
            run.pooled += await serve.measure(scenarios, [direct, pooled], knobs, log)
        finally:
            pooled.server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument(
        "--reuse", action="store_true", help="measure the seeded databases again (seed the rest)"
    )
    parser.add_argument("--phases", default=",".join(PHASES), help=f"of {', '.join(PHASES)}")
    parser.add_argument("--requests", type=int, default=20, help="in-process, per list shape")
    parser.add_argument("--connections", default="1,32")
    parser.add_argument("--duration", type=int, default=3, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of load before a point")
    parser.add_argument("--repetitions", type=int, default=3, help="runs per point and system")
    parser.add_argument(
        "--only", default="", help="a regular expression: measure the scenarios it finds only"
    )
    parser.add_argument(
        "--audit-seconds", type=int, default=10, help="of creates, then of transitions"
    )
    parser.add_argument(
        "--small-tenants", type=int, default=SMALL_SIZE.tenants, help="of the small twin"
    )
    parser.add_argument("--work", default=str(WORK), help="keys, wrk's files, servers' logs")
    parser.add_argument("--results", default=str(RESULTS), help="where growth.{md,json} go")
    parser.add_argument("--url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument(
        "--database", default="bench_growth", help="the big database's name; its twin's + _small"
    )
    args = parser.parse_args()
    phases = [p for p in args.phases.split(",") if p]
    if unknown := set(phases) - set(PHASES):
        parser.error(f"unknown phases {sorted(unknown)}")
    knobs = serve.Knobs(
        [int(c) for c in args.connections.split(",")],
        args.duration,
        args.warmup,
        args.repetitions,
    )
    work, out = Path(args.work), Path(args.results)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    run = asyncio.run(measure_all(args, phases, knobs, work))
    text = render(run)
    (out / "growth.md").write_text(text + "\n")
    (out / "growth.json").write_text(
        json.dumps(
            {
                "meta": run.meta,
                "seed": run.seed_steps,
                "points": [p.as_dict() for p in run.points],
                "pooled": [p.as_dict() for p in run.pooled],
                "audit": run.audit.as_dict() if run.audit else None,
                "plans": [asdict(p) for p in run.plans],
            },
            indent=2,
        )
        + "\n"
    )
    print(text.split("## Plans\n")[0])


async def measure_all(
    args: argparse.Namespace, phases: list[str], knobs: serve.Knobs, work: Path
) -> Run:
    server = database.Server(make_url(args.url), embedded=False)
    size = Size.scaled(args.scale)
    small = Size(SMALL_SIZE.tickets, SMALL_SIZE.big, args.small_tenants)
    admin = await asyncpg.connect(server.dsn("postgres"))
    try:
        version = str(await admin.fetchval("SELECT version()")).split(" on ")[0]
    finally:
        await admin.close()
    run = Run(
        {
            "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": os.environ.get("BENCH_COMMIT", "the working tree"),
            "scale": args.scale,
            "big_size": size.describe(),
            "small_size": small.describe(),
            "cpus": os.cpu_count(),
            "server": version,
            "load": [round(x, 1) for x in os.getloadavg()],
            "phases": phases,
            "knobs": f"{knobs.warmup} s of warm-up, then the median of {knobs.repetitions} "
            f"runs of {knobs.duration} s per system",
            "request_body": BODY,
        }
    )
    made = await databases(server, args.database, size, small, args.reuse, work, run)
    if "plans" in phases:
        log("plans of every list shape, in the big tenant")
        big_url, big_keys = made["big"]
        run.plans = await plans.explain_all(big_url, big_keys[0], size.big, args.requests)
    if "http" in phases:
        only = re.compile(args.only)
        await http_phase(made, size, knobs, only, args.audit_seconds, work, run)
    return run


if __name__ == "__main__":
    main()
