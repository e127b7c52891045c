"""flowdesk's live-updates benchmark: 1,000 event streams on one worker under the create load.

    make bench-streams                    the full run (about 2 minutes after seeding)
    BENCH_QUICK=1 make bench-streams      a smoke run (under a minute)
    .venv/bin/python bench/streams.py --help

On one fresh database (`<prefix>_streams`, on the embedded PostgreSQL of bench/.data or
BENCH_DATABASE_URL), seeded like `make bench` (1,000 tenants, each with its admin key), one
`flowdesk serve` worker:

1. delivery: `BENCH_STREAMS` (1,000) GET /v1/events/stream, stream i on tenant i mod tenants
   with that tenant's admin key (an agent: it sees every event of its tenant), opened by this
   process on raw sockets; then the create benchmark's load (wrk, bench/wrk/create.lua
   `spread`: a random tenant per request). Each event's delivery latency is its arrival at
   the stream's socket minus its `at` (ticket_events.created_at, the writing transaction's
   start on PostgreSQL's clock, which is this machine's); every event of the measured run
   must reach every stream of its tenant. The worker's RSS is sampled throughout.
2. the NOTIFY's cost on the hot path: the same create load with no stream open, with the
   trigger of migration 0008 disabled, enabled with no tenant watched (`live_tenants` empty:
   what a write costs where nobody has a stream open) and enabled with every tenant watched
   (a NOTIFY per event), in turn;
3. the same without the app: commits/s of 32 connections each inserting one row per
   autocommitted statement, with and without a pg_notify in it, on a scratch table.

The report goes to bench/results/streams.{md,json}. See bench/README.md, "Live updates".
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from loadbench import database, prepare, seed, servers
from loadbench.config import ROOT, Config
from loadbench.load import LoadError, Sample, run_wrk, wrk_binary

_T0 = time.monotonic()

P99_TARGET_S = 1.0
RSS_TARGET_MB = 150.0  # the one-worker budget of `make bench`


def log(message: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", flush=True)


@dataclass
class StreamsConfig:
    base: Config
    quick: bool = False
    streams: int = 1_000
    connections: int = 32  # wrk connections of the create load
    duration: int = 10  # seconds of measured load with the streams open
    warmup: int = 2
    repetitions: int = 3  # (trigger off, unwatched, watched) rounds of the NOTIFY cost runs
    cost_duration: int = 5
    drain_timeout: float = 10.0  # seconds the last events get to arrive after the load

    @classmethod
    def from_env(cls) -> StreamsConfig:
        env = os.environ
        quick = env.get("BENCH_QUICK", "0") not in ("", "0")
        cfg = cls(base=Config.from_env(), quick=quick)
        if quick:
            cfg.streams = 100
            cfg.connections = 8
            cfg.duration = 3
            cfg.warmup = 1
            cfg.repetitions = 1
            cfg.cost_duration = 2
        names = {
            "streams": "BENCH_STREAMS",
            "connections": "BENCH_STREAMS_CONNECTIONS",
            "duration": "BENCH_STREAMS_DURATION",
            "warmup": "BENCH_STREAMS_WARMUP",
            "repetitions": "BENCH_STREAMS_REPETITIONS",
            "cost_duration": "BENCH_STREAMS_COST_DURATION",
        }
        for attr, name in names.items():
            if env.get(name):
                setattr(cfg, attr, int(env[name]))
        return cfg

    def validate(self) -> None:
        self.base.validate()
        if self.streams < 1 or self.duration < 1 or self.cost_duration < 1:
            raise SystemExit("bench: streams, duration and cost duration must be >= 1")
        if not 1 <= self.connections <= 256:
            raise SystemExit("bench: connections must be between 1 and 256")

    @property
    def database(self) -> str:
        return f"{self.base.db_prefix}_streams"

    @property
    def per_key(self) -> int:
        return math.ceil(self.streams / self.base.tenants)


def parse_args(argv: list[str] | None) -> StreamsConfig:
    p = argparse.ArgumentParser(description="flowdesk live-updates benchmark (bench/README.md)")
    p.add_argument("--quick", action="store_true", help="smoke run (same as BENCH_QUICK=1)")
    p.add_argument("--streams", type=int, help="open streams (1000)")
    p.add_argument("--connections", type=int, help="wrk connections of the create load (32)")
    p.add_argument("--duration", type=int, help="seconds of measured load (10)")
    p.add_argument("--repetitions", type=int, help="NOTIFY off/on pairs (2)")
    p.add_argument("--tenants", type=int, help="tenants (1000)")
    p.add_argument("--database-url", help="a PostgreSQL server to use instead of the embedded one")
    args = p.parse_args(argv)
    if args.quick:
        os.environ["BENCH_QUICK"] = "1"
    cfg = StreamsConfig.from_env()
    for attr in ("streams", "connections", "duration", "repetitions"):
        if getattr(args, attr) is not None:
            setattr(cfg, attr, getattr(args, attr))
    if args.tenants is not None:
        cfg.base.tenants = args.tenants
    if args.database_url:
        cfg.base.database_url = args.database_url
    cfg.validate()
    return cfg


# --- the streams: raw HTTP/1.1 on asyncio, chunked text/event-stream ----------------------------


@dataclass
class Deliveries:
    """What every stream received: (event id, arrival - at in seconds) per stream."""

    received: list[list[tuple[int, float]]] = field(default_factory=list)
    heartbeats: int = 0
    ended: int = 0


class StreamError(RuntimeError):
    pass


async def _open_stream(
    port: int, key: str, into: list[tuple[int, float]], deliveries: Deliveries
) -> asyncio.Task[None]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"GET /v1/events/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
    )
    status = await reader.readline()
    if b" 200 " not in status:
        rest = await asyncio.wait_for(reader.read(2000), 5)
        writer.close()
        raise StreamError(f"stream refused: {status!r} {rest!r}")
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    opened = asyncio.get_running_loop().create_future()

    async def read() -> None:
        buffer = b""
        try:
            while True:
                size = int((await reader.readline()).strip() or b"0", 16)
                if size == 0:
                    return
                chunk = await reader.readexactly(size + 2)
                now = time.time()
                buffer += chunk[:-2]
                *frames, buffer = buffer.split(b"\n\n")
                for frame in frames:
                    if not opened.done():
                        opened.set_result(None)
                    if frame.startswith(b":"):
                        deliveries.heartbeats += 1
                        continue
                    data = next((x for x in frame.split(b"\n") if x.startswith(b"data: ")), None)
                    if data is None:
                        continue
                    event = orjson.loads(data[6:])
                    if "event_id" in event:
                        at = datetime.fromisoformat(event["at"]).timestamp()
                        into.append((int(event["event_id"]), now - at))
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            deliveries.ended += 1
            writer.close()

    task = asyncio.create_task(read())
    await asyncio.wait_for(opened, 30)  # the opening `retry:` frame: subscribed
    return task


# --- helpers ------------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return math.nan
    index = min(len(values) - 1, max(0, math.ceil(pct / 100 * len(values)) - 1))
    return values[index]


def _mb(value: int) -> float:
    return round(value / 1e6, 1)


def _git() -> str:
    def run(*argv: str) -> str:
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = run("git", "rev-parse", "--short", "HEAD")
    dirty = run("git", "status", "--porcelain", "--", "src")
    return commit + (" (src/ has uncommitted changes)" if dirty else "")


class StreamsBench:
    def __init__(self, cfg: StreamsConfig) -> None:
        self.cfg = cfg
        self.data_dir = cfg.base.data_dir
        self.log_dir = self.data_dir / "logs" / "streams"
        self.run_dir = self.data_dir / "run"
        self.keys_file = self.run_dir / "streams_keys.txt"
        self.server: database.Server | None = None
        self.results: dict[str, Any] = {}

    @property
    def dsn(self) -> str:
        assert self.server is not None
        return self.server.dsn(self.cfg.database)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.sqlalchemy_url(self.cfg.database)

    def lock(self, wait_seconds: float = 1800) -> None:
        """bench/run.py's lock: one run at a time per data directory."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = (self.data_dir / "run.lock").open("w")
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"another benchmark run holds {self.data_dir}") from None
                time.sleep(2)

    def setup(self) -> list[str]:
        cfg = self.cfg
        self.lock()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.server = server = database.start(cfg.base.database_url, self.data_dir)
        asyncio.run(database.recreate(server, [cfg.database]))
        from flowdesk.db import migrate

        migrate.upgrade(self.url)
        started = time.monotonic()
        keys = asyncio.run(seed.seed_flowdesk(self.url, cfg.base.tenants))
        self.keys_file.write_text("\n".join(keys) + "\n")
        asyncio.run(database.vacuum_analyze(server, [cfg.database]))
        log(f"seeded {cfg.base.tenants} tenants in {time.monotonic() - started:.1f}s")
        self.results["meta"] = {
            "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "git": _git(),
            "machine": f"{os.cpu_count()} CPUs, {platform.platform()}",
            "python": platform.python_version(),
            "postgres": f"PostgreSQL {asyncio.run(database.version(server))} "
            f"({'embedded' if server.embedded else 'BENCH_DATABASE_URL'})",
            "postgres_settings": asyncio.run(database.settings(server)),
            "quick": cfg.quick,
            "tenants": cfg.base.tenants,
            "streams": cfg.streams,
            "connections": cfg.connections,
            "duration_s": cfg.duration,
            "warmup_s": cfg.warmup,
            "cost_repetitions": cfg.repetitions,
            "cost_duration_s": cfg.cost_duration,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        }
        return keys

    def _serve(self) -> servers.ServerProcess:
        return servers.start_flowdesk(
            self.url,
            1,
            self.log_dir,
            settings={
                # The relay is measured by bench/notifications.py; here it would only add noise.
                "FLOWDESK_RELAY_POLL_SECONDS": "0",
                "FLOWDESK_STREAM_MAX_PER_KEY": str(self.cfg.per_key),
                # uvicorn's cap on open connections per worker must leave room for the
                # streams and the load.
                "FLOWDESK_LIMIT_CONCURRENCY": str(self.cfg.streams + 1000),
            },
        )

    def _wrk(self, fd: servers.ServerProcess, seconds: int) -> Sample:
        return run_wrk(
            fd.base_url,
            "create.lua",
            [str(self.keys_file), "spread"],
            self.cfg.connections,
            seconds,
        )

    # --- 1. delivery under load --------------------------------------------------------------

    def delivery(self, keys: list[str]) -> None:
        fd = self._serve()
        rss = servers.RssSampler(fd).start()
        try:
            asyncio.run(prepare.warm(fd.base_url, keys, passes=1))
            rss.sample()
            self.results["rss_before_streams_mb"] = _mb(rss.peak_worker_bytes)
            self.results["delivery"] = asyncio.run(self._delivery(fd, keys, rss))
            alive = fd.process.poll() is None
        finally:
            rss.stop()
            fd.stop()
        self.results["delivery"]["worker_alive_at_end"] = alive
        self.results["rss_peak_mb"] = _mb(rss.peak_worker_bytes)
        d = self.results["delivery"]
        log(
            f"delivery: {d['delivered']:,}/{d['expected']:,} events to {d['streams']} streams, "
            f"latency p50 {d['p50_ms']} ms p99 {d['p99_ms']} ms max {d['max_ms']} ms; "
            f"{d['creates_per_s']:,.0f} creates/s; worker RSS peak {self.results['rss_peak_mb']} MB"
        )

    async def _delivery(
        self, fd: servers.ServerProcess, keys: list[str], rss: servers.RssSampler
    ) -> dict[str, Any]:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        if cfg.warmup:
            await loop.run_in_executor(None, self._wrk, fd, cfg.warmup)
        # The same load on the same worker before any stream is open: what the streams cost.
        bare = await loop.run_in_executor(None, self._wrk, fd, cfg.duration)
        log(f"creates with no stream open: {bare.rps:,.0f}/s, p99 {bare.p99_ms:.1f} ms")
        deliveries = Deliveries()
        tenants_of: list[int] = []
        tasks: list[asyncio.Task[None]] = []
        started = time.monotonic()
        sem = asyncio.Semaphore(50)

        async def one(i: int) -> None:
            into: list[tuple[int, float]] = []
            deliveries.received.append(into)
            tenants_of.append(i % len(keys))
            async with sem:
                tasks.append(await _open_stream(fd.port, keys[i % len(keys)], into, deliveries))

        await asyncio.gather(*(one(i) for i in range(cfg.streams)))
        opened_s = time.monotonic() - started
        await asyncio.sleep(1)
        rss.sample()
        rss_streams = _mb(max((p.memory_info().rss for p in fd.workers()), default=0))
        log(f"{cfg.streams} streams open in {opened_s:.1f}s; worker RSS {rss_streams} MB")
        low = await self._max_event_id()
        started_wall = time.time()
        sample = await loop.run_in_executor(None, self._wrk, fd, cfg.duration)
        load_s = time.time() - started_wall
        high = await self._max_event_id()
        per_tenant = await self._events_per_tenant(low, high)
        streams_per_tenant = Counter(tenants_of)
        tenant_index = {t: i for i, t in enumerate(await self._tenant_order())}
        expected = sum(
            n * streams_per_tenant.get(tenant_index[t], 0) for t, n in per_tenant.items()
        )

        def counted() -> int:
            return sum(1 for got in deliveries.received for e, _ in got if low < e <= high)

        deadline = time.monotonic() + cfg.drain_timeout
        # Polls a count the reading tasks fill in; bounded by the deadline.
        while counted() < expected and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        latencies = sorted(lag for got in deliveries.received for e, lag in got if low < e <= high)
        ended_early = deliveries.ended
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return {
            "streams": cfg.streams,
            "streams_per_key": cfg.per_key,
            "seconds_to_open_streams": round(opened_s, 2),
            "rss_streams_open_idle_mb": rss_streams,
            "creates_per_s_no_streams": round(bare.rps, 1),
            "create_p99_ms_no_streams": round(bare.p99_ms, 2),
            "creates_per_s": round(sample.rps, 1),
            "create_p50_ms": round(sample.p50_ms, 2),
            "create_p99_ms": round(sample.p99_ms, 2),
            "create_errors": sample.errors,
            "load_seconds": round(load_s, 2),
            "events": sum(per_tenant.values()),
            "expected": expected,
            "delivered": len(latencies),
            "complete": len(latencies) >= expected,
            "streams_ended_during_run": ended_early,
            "p50_ms": round(percentile(latencies, 50) * 1000, 1),
            "p90_ms": round(percentile(latencies, 90) * 1000, 1),
            "p99_ms": round(percentile(latencies, 99) * 1000, 1),
            "max_ms": round((latencies[-1] if latencies else math.nan) * 1000, 1),
            "deliveries_per_s": round(len(latencies) / load_s, 1) if load_s else None,
        }

    async def _max_event_id(self) -> int:
        conn = await asyncpg.connect(self.dsn)
        try:
            return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM ticket_events"))
        finally:
            await conn.close()

    async def _events_per_tenant(self, low: int, high: int) -> dict[Any, int]:
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch(
                "SELECT tenant_id, count(*) AS n FROM ticket_events WHERE id > $1 AND id <= $2 "
                "GROUP BY tenant_id",
                low,
                high,
            )
            return {r["tenant_id"]: int(r["n"]) for r in rows}
        finally:
            await conn.close()

    async def _tenant_order(self) -> list[Any]:
        """Tenant ids in the order of the keys file (seed.seed_flowdesk's: by index)."""
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch(
                "SELECT id FROM tenants ORDER BY substring(slug from '[0-9]+$')::int"
            )
            return [r["id"] for r in rows]
        finally:
            await conn.close()

    # --- 2. what the NOTIFY costs a create -----------------------------------------------------

    def notify_cost(self, keys: list[str]) -> None:
        cfg = self.cfg
        runs: list[dict[str, Any]] = []
        fd = self._serve()
        try:
            asyncio.run(prepare.warm(fd.base_url, keys, passes=1))
            self._wrk(fd, max(cfg.warmup, 1))
            for rep in range(cfg.repetitions):
                for notify in ("off", "unwatched", "on"):
                    asyncio.run(self._notifying(notify))
                    sample = self._wrk(fd, cfg.cost_duration)
                    run = {
                        "notify": notify,
                        "repetition": rep + 1,
                        "creates_per_s": round(sample.rps, 1),
                        "p50_ms": round(sample.p50_ms, 2),
                        "p99_ms": round(sample.p99_ms, 2),
                        "errors": sample.errors,
                    }
                    runs.append(run)
                    log(
                        f"create c{cfg.connections} NOTIFY {notify:<3} #{rep + 1}: "
                        f"{run['creates_per_s']:7.0f}/s p99 {run['p99_ms']:6.1f} ms"
                    )
        finally:
            asyncio.run(self._notifying("unwatched"))
            fd.stop()

        def mean(state: str) -> float:
            return statistics.fmean(r["creates_per_s"] for r in runs if r["notify"] == state)

        on, off, unwatched = mean("on"), mean("off"), mean("unwatched")
        self.results["notify_cost"] = {
            "runs": runs,
            "on_mean": round(on, 1),
            "off_mean": round(off, 1),
            "unwatched_mean": round(unwatched, 1),
            "ratio": round(on / off, 3),
            "unwatched_ratio": round(unwatched / off, 3),
        }

    async def _notifying(self, state: str) -> None:
        """off: the trigger disabled; unwatched: enabled, no tenant watched (what a write
        costs where no stream is open: the trigger's lookup); on: every tenant watched, so
        every event is NOTIFYed (what a write costs where a screen is open)."""
        conn = await asyncpg.connect(self.dsn)
        try:
            verb = "DISABLE" if state == "off" else "ENABLE"
            await conn.execute(f"ALTER TABLE ticket_events {verb} TRIGGER notify_ticket_events")
            await conn.execute("DELETE FROM live_tenants")
            if state == "on":
                await conn.execute(
                    "INSERT INTO live_tenants SELECT id, now() + interval '1 day' FROM tenants"
                )
        finally:
            await conn.close()

    # --- 3. what the NOTIFY costs a commit, without the app -------------------------------------

    def commit_cost(self) -> None:
        seconds = self.cfg.cost_duration
        runs = asyncio.run(self._commit_runs(seconds))
        on = [r["commits_per_s"] for r in runs if r["notify"] == "on"]
        off = [r["commits_per_s"] for r in runs if r["notify"] == "off"]
        self.results["commit_cost"] = {
            "connections": 32,
            "seconds": seconds,
            "runs": runs,
            "on_mean": round(statistics.fmean(on), 1),
            "off_mean": round(statistics.fmean(off), 1),
            "ratio": round(statistics.fmean(on) / statistics.fmean(off), 3),
        }
        c = self.results["commit_cost"]
        log(f"commits/s, NOTIFY on / off: {c['on_mean']:,.0f} / {c['off_mean']:,.0f}")

    async def _commit_runs(self, seconds: int) -> list[dict[str, Any]]:
        setup = await asyncpg.connect(self.dsn)
        await setup.execute(
            "CREATE TABLE IF NOT EXISTS bench_scratch "
            "(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)"
        )
        conns = [await asyncpg.connect(self.dsn) for _ in range(32)]
        runs: list[dict[str, Any]] = []
        try:
            for rep in range(self.cfg.repetitions):
                for notify in ("off", "on"):
                    tail = (
                        "SELECT pg_notify('bench_scratch', i.id::text) FROM i"
                        if notify == "on"
                        else "SELECT id FROM i"
                    )
                    sql = (
                        f"WITH i AS (INSERT INTO bench_scratch (v) VALUES ($1) RETURNING id) {tail}"
                    )
                    done = 0
                    stop = time.monotonic() + seconds

                    async def loop(
                        conn: asyncpg.Connection, sql: str = sql, stop: float = stop
                    ) -> None:
                        nonlocal done
                        while time.monotonic() < stop:
                            await conn.fetchval(sql, "x" * 300)
                            done += 1

                    await asyncio.gather(*(loop(c) for c in conns))
                    runs.append(
                        {"notify": notify, "repetition": rep + 1, "commits_per_s": done / seconds}
                    )
        finally:
            for conn in conns:
                await conn.close()
            await setup.execute("DROP TABLE IF EXISTS bench_scratch")
            await setup.close()
        return runs

    # --- the report ------------------------------------------------------------------------------

    def run(self) -> int:
        keys = self.setup()
        try:
            self.delivery(keys)
            self.notify_cost(keys)
            self.commit_cost()
        finally:
            if self.cfg.base.drop_databases and self.server is not None:
                asyncio.run(database.drop(self.server, [self.cfg.database]))
        json_path, md_path, text = write(self.results, self.cfg.base.results_dir)
        print(text)
        log(f"wrote {json_path} and {md_path}")
        return 0


def targets(results: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    d = results["delivery"]
    cost = results["notify_cost"]
    return [
        (
            f"delivery latency p99, {d['streams']:,} streams, create load",
            f"< {P99_TARGET_S * 1000:.0f} ms",
            f"{d['p99_ms']:,} ms",
            d["p99_ms"] < P99_TARGET_S * 1000,
        ),
        (
            "every event reached every stream of its tenant",
            "all",
            f"{d['delivered']:,} / {d['expected']:,}",
            bool(d["complete"]),
        ),
        (
            "worker RSS peak, streams open and load running",
            f"report (`make bench`'s one-worker budget: {RSS_TARGET_MB:.0f} MB)",
            f"{results['rss_peak_mb']} MB",
            True,
        ),
        (
            "create throughput, tenants unwatched / trigger off (no streams: `make bench`)",
            "≥ 0.95",
            f"{cost['unwatched_ratio']:.2f}",
            cost["unwatched_ratio"] >= 0.95,
        ),
        (
            "create throughput, every tenant watched / trigger off (a NOTIFY per event)",
            "report",
            f"{cost['ratio']:.2f}",
            True,
        ),
        (
            "commits/s of one-row inserts, NOTIFY on / off (no app)",
            "report",
            f"{results['commit_cost']['ratio']:.2f}",
            True,
        ),
    ]


def markdown(results: dict[str, Any]) -> str:
    meta, d, cost = results["meta"], results["delivery"], results["notify_cost"]
    lines = [
        "# flowdesk live updates benchmark",
        "",
        f"{meta['started']}, git {meta['git']}; {meta['machine']}; Python {meta['python']}; "
        f"{meta['postgres']}; load average at start {meta['load_average_at_start']}.",
        f"{meta['tenants']:,} tenants, {meta['streams']:,} streams on one `flowdesk serve` "
        f"worker, create load (wrk `create.lua spread`) at {meta['connections']} connections "
        f"for {meta['duration_s']} s" + (" (quick run)" if meta["quick"] else "") + ".",
        "",
        "| target | wanted | measured | met |",
        "|---|---|--:|---|",
    ]
    for what, wanted, measured, met in targets(results):
        lines.append(f"| {what} | {wanted} | {measured} | {'yes' if met else '**MISS**'} |")
    lines += [
        "",
        "| delivery | |",
        "|---|--:|",
        f"| streams (per key) | {d['streams']:,} ({d['streams_per_key']}) |",
        f"| time to open them | {d['seconds_to_open_streams']} s |",
        f"| events written in the measured run | {d['events']:,} |",
        f"| deliveries expected / made | {d['expected']:,} / {d['delivered']:,} |",
        f"| deliveries/s | {d['deliveries_per_s']:,} |",
        f"| latency p50 / p90 / p99 / max | {d['p50_ms']} / {d['p90_ms']} / {d['p99_ms']} / "
        f"{d['max_ms']} ms |",
        f"| creates/s with the streams open (p50 / p99) | {d['creates_per_s']:,.0f} "
        f"({d['create_p50_ms']} / {d['create_p99_ms']} ms) |",
        f"| creates/s on the same worker before the streams opened (p99) | "
        f"{d['creates_per_s_no_streams']:,.0f} ({d['create_p99_ms_no_streams']} ms) |",
        f"| worker RSS: warm, no stream / streams open, idle / peak | "
        f"{results['rss_before_streams_mb']} / {d['rss_streams_open_idle_mb']} / "
        f"{results['rss_peak_mb']} MB |",
        "",
        "| NOTIFY cost run | trigger | creates/s | p50 / p99 ms | errors |",
        "|--:|---|--:|--:|---|",
    ]
    for r in cost["runs"]:
        lines.append(
            f"| {r['repetition']} | {r['notify']} | {r['creates_per_s']:,.0f} | "
            f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} | {r['errors'] or 0} |"
        )
    commits = results["commit_cost"]
    lines += [
        "",
        f"Trigger off {cost['off_mean']:,.0f}, tenants unwatched {cost['unwatched_mean']:,.0f} "
        f"(**{cost['unwatched_ratio']:.2f}**), every tenant watched {cost['on_mean']:,.0f} "
        f"(**{cost['ratio']:.2f}**) creates/s.",
        "",
        f"Without the app ({commits['connections']} connections, one-row autocommitted "
        f"inserts, {commits['seconds']} s each): "
        + ", ".join(f"{r['notify']} {r['commits_per_s']:,.0f}" for r in commits["runs"])
        + f" commits/s; on / off = **{commits['ratio']:.2f}**.",
    ]
    return "\n".join(lines) + "\n"


def write(results: dict[str, Any], out_dir: Any) -> tuple[Any, Any, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "streams.json"
    md_path = out_dir / "streams.md"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    text = markdown(results)
    md_path.write_text(text)
    return json_path, md_path, text


def _stop_cleanly(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop_cleanly)
    cfg = parse_args(argv)
    if wrk_binary() is None:
        print(
            "bench: wrk is not installed. Run `bench/setup.sh` (apt-get install wrk)",
            file=sys.stderr,
        )
        return 2
    try:
        return StreamsBench(cfg).run()
    except (LoadError, prepare.HarnessError, RuntimeError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
