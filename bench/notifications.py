"""flowdesk's notifications benchmark: how fast one relay mails, and what relaying costs the
create benchmark.

    make bench-notifications              the full run (about 4-6 minutes)
    BENCH_QUICK=1 make bench-notifications   a smoke run (under a minute)
    .venv/bin/python bench/notifications.py --help

Three measurements on one fresh database (`<prefix>_notify`, on the embedded PostgreSQL of
bench/.data or BENCH_DATABASE_URL), with every mail going to an SMTP sink (aiosmtpd) in this
process that counts mails and keeps each Message-ID's arrival time:

1. mails/s: one tenant's outbox filled with ticket.created messages by bulk SQL, drained by one
   `flowdesk worker` process;
2. outbox lag (mail arrival - outbox.created_at) of the tickets the create benchmark makes
   (wrk, POST /v1/tickets over all seeded tenants) against `flowdesk serve` relaying in-process;
3. relay cost: the same create runs with the relay off and on, alternating.

The report goes to bench/results/notifications.{md,json}. See bench/README.md, "Notifications".
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from loadbench import database, prepare, seed, servers
from loadbench.config import ROOT, Config
from loadbench.load import LoadError, Sample, run_wrk, wrk_binary

_T0 = time.monotonic()

LAG_P99_TARGET_S = 2.0
RELAY_COST_TARGET = 0.90  # create throughput with the relay on / off, at least


def log(message: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", flush=True)


# --- configuration ----------------------------------------------------------------------------


@dataclass
class NotifyConfig:
    base: Config  # where: database, data and results directories, prefix, tenants
    quick: bool = False
    messages: int = 10_000  # outbox messages the worker drains
    mails_per_message: int = 2  # 2: the reporter's acknowledgement + the queue; 1: one address
    batch_size: int | None = None  # FLOWDESK_RELAY_BATCH_SIZE; None: flowdesk's default
    connections: int = 32
    duration: int = 10  # seconds per measured create run
    warmup: int = 2  # seconds of create load on each fresh server before it is measured
    repetitions: int = 2  # (off, on) pairs
    drain_timeout: float = 30.0  # seconds the relay gets to finish after the load
    worker_timeout: float = 300.0  # seconds for the worker to send every mail

    @classmethod
    def from_env(cls) -> NotifyConfig:
        env = os.environ
        quick = env.get("BENCH_QUICK", "0") not in ("", "0")
        cfg = cls(base=Config.from_env(), quick=quick)
        if quick:
            cfg.messages = 1_000
            cfg.connections = 8
            cfg.duration = 2
            cfg.warmup = 1
            cfg.repetitions = 1
            cfg.drain_timeout = 10.0
            cfg.worker_timeout = 60.0
        ints = {
            "messages": "BENCH_NOTIFY_MESSAGES",
            "mails_per_message": "BENCH_NOTIFY_MAILS_PER_MESSAGE",
            "connections": "BENCH_NOTIFY_CONNECTIONS",
            "duration": "BENCH_NOTIFY_DURATION",
            "warmup": "BENCH_NOTIFY_WARMUP",
            "repetitions": "BENCH_NOTIFY_REPETITIONS",
        }
        for attr, name in ints.items():
            if env.get(name):
                setattr(cfg, attr, int(env[name]))
        if env.get("BENCH_NOTIFY_BATCH_SIZE"):
            cfg.batch_size = int(env["BENCH_NOTIFY_BATCH_SIZE"])
        if env.get("BENCH_NOTIFY_DRAIN_TIMEOUT"):
            cfg.drain_timeout = float(env["BENCH_NOTIFY_DRAIN_TIMEOUT"])
        return cfg

    def validate(self) -> None:
        self.base.validate()
        if self.mails_per_message not in (1, 2):
            raise SystemExit("bench: BENCH_NOTIFY_MAILS_PER_MESSAGE must be 1 or 2")
        if self.messages < 1 or self.duration < 1 or self.repetitions < 1 or self.warmup < 0:
            raise SystemExit("bench: messages, duration and repetitions >= 1, warmup >= 0")
        if not 1 <= self.connections <= 256:
            raise SystemExit("bench: connections must be between 1 and 256")

    @property
    def database(self) -> str:
        return f"{self.base.db_prefix}_notify"


def parse_args(argv: list[str] | None) -> NotifyConfig:
    p = argparse.ArgumentParser(
        description="flowdesk notifications benchmark (see bench/README.md, Notifications)"
    )
    p.add_argument("--quick", action="store_true", help="smoke run (same as BENCH_QUICK=1)")
    p.add_argument("--messages", type=int, help="outbox messages for the worker (10000)")
    p.add_argument("--mails-per-message", type=int, choices=(1, 2), help="1 or 2 (default 2)")
    p.add_argument("--batch-size", type=int, help="FLOWDESK_RELAY_BATCH_SIZE (flowdesk's default)")
    p.add_argument("--connections", type=int, help="wrk connections of the create runs (32)")
    p.add_argument("--duration", type=int, help="seconds per measured create run (10)")
    p.add_argument("--warmup", type=int, help="seconds of create load before each run (2)")
    p.add_argument("--repetitions", type=int, help="(relay off, relay on) pairs (2)")
    p.add_argument("--tenants", type=int, help="tenants for the create runs (1000)")
    p.add_argument("--database-url", help="a PostgreSQL server to use instead of the embedded one")
    p.add_argument("--drop", action="store_true", help="drop the database at the end")
    args = p.parse_args(argv)
    if args.quick:
        os.environ["BENCH_QUICK"] = "1"
    cfg = NotifyConfig.from_env()
    for attr in (
        "messages",
        "mails_per_message",
        "batch_size",
        "connections",
        "duration",
        "warmup",
        "repetitions",
    ):
        if getattr(args, attr) is not None:
            setattr(cfg, attr, getattr(args, attr))
    if args.tenants is not None:
        cfg.base.tenants = args.tenants
    if args.database_url:
        cfg.base.database_url = args.database_url
    if args.drop:
        cfg.base.drop_databases = True
    cfg.validate()
    return cfg


# --- the SMTP sink ----------------------------------------------------------------------------

_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)


class Sink:
    """An aiosmtpd handler that accepts every mail, counts it and keeps the wall-clock time
    (time.time(), comparable with PostgreSQL's now()) each Message-ID first arrived; nothing
    else of the mail is parsed or kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.arrivals: dict[str, float] = {}
        self.mails = 0
        self.duplicates = 0
        self.without_id = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        now = time.time()
        content = envelope.content
        raw = content if isinstance(content, bytes) else str(content or "").encode()
        head = raw.split(b"\r\n\r\n", 1)[0]
        found = _MESSAGE_ID.search(head)
        with self._lock:
            self.mails += 1
            if found is None:
                self.without_id += 1
            else:
                message_id = found.group(1).decode("ascii", "replace")
                if message_id in self.arrivals:
                    self.duplicates += 1
                else:
                    self.arrivals[message_id] = now
        return "250 OK"

    def clear(self) -> None:
        with self._lock:
            self.arrivals = {}
            self.mails = self.duplicates = self.without_id = 0

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self.arrivals)


def start_sink() -> tuple[Controller, Sink, int]:
    sink = Sink()
    port = servers.free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10.0)
    controller.start()
    return controller, sink, port


# --- helpers ----------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of sorted `values` (inf stands for a mail that never came)."""
    if not values:
        return math.nan
    index = min(len(values) - 1, max(0, math.ceil(pct / 100 * len(values)) - 1))
    return values[index]


def _round(value: float, digits: int = 3) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else round(value, digits)


def _fmt_s(value: float | None, limit: float | None = None) -> str:
    if value is None:
        return f"> {limit:.0f} s (not all sent)" if limit else "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


async def _one(dsn: str, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


def _git() -> str:
    def run(*argv: str) -> str:
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = run("git", "rev-parse", "--short", "HEAD")
    dirty = run("git", "status", "--porcelain", "--", "src")
    return commit + (" (src/ has uncommitted changes)" if dirty else "")


# --- the benchmark ----------------------------------------------------------------------------


class NotifyBench:
    def __init__(self, cfg: NotifyConfig) -> None:
        self.cfg = cfg
        self.data_dir = cfg.base.data_dir
        self.log_dir = self.data_dir / "logs" / "notifications"
        self.run_dir = self.data_dir / "run"
        self.server: database.Server | None = None
        self.sink: Sink | None = None
        self.smtp_port = 0
        self.keys_file = self.run_dir / "notify_keys.txt"
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
        """The same lock as bench/run.py's: one run at a time per data directory (they share
        the embedded PostgreSQL and its list of users)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = (self.data_dir / "run.lock").open("w")
        deadline = time.monotonic() + wait_seconds
        told = False
        while True:
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"another benchmark run still holds {self.data_dir}"
                    ) from None
                if not told:
                    log(f"another benchmark run is using {self.data_dir}; waiting for it")
                    told = True
                time.sleep(2)

    # --- set-up -------------------------------------------------------------------------

    def setup(self) -> list[str]:
        cfg = self.cfg
        self.lock()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.server = server = database.start(cfg.base.database_url, self.data_dir)
        asyncio.run(database.recreate(server, [cfg.database]))
        from flowdesk.db import migrate

        migrate.upgrade(self.url)
        log(f"migrated {cfg.database} on {server.describe()}")
        started = time.monotonic()
        keys = asyncio.run(seed.seed_flowdesk(self.url, cfg.base.tenants))
        self.keys_file.write_text("\n".join(keys) + "\n")
        asyncio.run(self._queue_addresses())
        log(
            f"seeded {cfg.base.tenants} tenants (licence on, every flag on, "
            f"{cfg.mails_per_message} mail(s) per new ticket) in "
            f"{time.monotonic() - started:.1f}s"
        )
        self.results["meta"] = self._meta()
        return keys

    async def _queue_addresses(self) -> None:
        """Each tenant's queue address: its own (2 mails per new ticket: the reporter's
        acknowledgement and the queue's), or its admin's, the reporter of every benchmark
        ticket (1: the relay mails an address once per message)."""
        mailbox = "queue" if self.cfg.mails_per_message == 2 else "admin"
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(
                "UPDATE tenants SET queue_email = $1 || '@' || slug || '.example'", mailbox
            )
            missing = await conn.fetchval(
                """SELECT count(*) FROM tenants t WHERE NOT EXISTS (
                       SELECT 1 FROM users u WHERE u.tenant_id = t.id
                       AND u.email = 'admin@' || t.slug || '.example')"""
            )
            if missing:
                raise RuntimeError(
                    f"{missing} tenants have no admin@<slug>.example user: "
                    "the mails-per-message setting would not hold"
                )
        finally:
            await conn.close()

    def _meta(self) -> dict[str, Any]:
        assert self.server is not None
        from flowdesk.config import Settings

        cfg = self.cfg
        defaults = Settings.model_fields
        return {
            "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "git": _git(),
            "machine": f"{os.cpu_count()} CPUs, {platform.platform()}",
            "python": platform.python_version(),
            "postgres": f"PostgreSQL {asyncio.run(database.version(self.server))} "
            f"({'embedded' if self.server.embedded else 'BENCH_DATABASE_URL'})",
            "postgres_settings": asyncio.run(database.settings(self.server)),
            "quick": cfg.quick,
            "tenants": cfg.base.tenants,
            "messages": cfg.messages,
            "mails_per_message": cfg.mails_per_message,
            "relay_batch_size": cfg.batch_size or defaults["relay_batch_size"].default,
            "relay_poll_seconds": defaults["relay_poll_seconds"].default,
            "connections": cfg.connections,
            "duration_s": cfg.duration,
            "warmup_s": cfg.warmup,
            "repetitions": cfg.repetitions,
            "drain_timeout_s": cfg.drain_timeout,
            "sink": "aiosmtpd in a thread of the benchmark process",
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        }

    def _worker_env(self) -> dict[str, str]:
        env = {
            "FLOWDESK_SMTP_URL": f"smtp://127.0.0.1:{self.smtp_port}",
            "FLOWDESK_SEED_DEMO": "0",
        }
        if self.cfg.batch_size:
            env["FLOWDESK_RELAY_BATCH_SIZE"] = str(self.cfg.batch_size)
        return env

    # --- 1. mails per second, one worker ------------------------------------------------

    async def _queue_messages(self) -> tuple[int, str]:
        """One ticket and one ticket.created message per requested message, in the first
        tenant, by bulk SQL (what POST /v1/tickets writes, without the audit event, which
        the relay does not read)."""
        conn = await asyncpg.connect(self.dsn)
        try:
            async with conn.transaction():
                tenant = await conn.fetchrow("SELECT id, slug FROM tenants ORDER BY slug LIMIT 1")
                if tenant is None:
                    raise RuntimeError("no tenant to queue messages for")
                tenant_id, slug = tenant["id"], str(tenant["slug"])
                requester = await conn.fetchval(
                    "SELECT id FROM users WHERE tenant_id = $1 AND email = $2",
                    tenant_id,
                    f"admin@{slug}.example",
                )
                await conn.execute(
                    """
                    WITH counter AS (
                        UPDATE ticket_counters SET last_number = last_number + $3
                        WHERE tenant_id = $1 RETURNING last_number - $3 AS first
                    ), made AS (
                        INSERT INTO tickets (tenant_id, number, prefix, title, description,
                                             type, catalog_item, workflow, status,
                                             status_category, priority, requester_id)
                        SELECT $1, counter.first + g, 'TKT', 'Printer on fire #' || g,
                               'The printer on the third floor is on fire again.',
                               'incident', 'itsm_incident', 'itsm_default', 'open',
                               'initial', 'HIGH', $2
                        FROM counter, generate_series(1, $3) AS g
                        RETURNING tenant_id, id, number
                    )
                    INSERT INTO outbox (tenant_id, topic, payload)
                    SELECT tenant_id, 'ticket.created',
                           jsonb_build_object('ticket_id', id, 'actor_id', $2::uuid)
                    FROM made ORDER BY number
                    """,
                    tenant_id,
                    requester,
                    self.cfg.messages,
                )
            await conn.execute("VACUUM ANALYZE tickets")
            await conn.execute("VACUUM ANALYZE outbox")
            return int(await conn.fetchval("SELECT count(*) FROM outbox")), slug
        finally:
            await conn.close()

    def mails_per_second(self) -> None:
        assert self.sink is not None
        cfg = self.cfg
        started = time.monotonic()
        queued, slug = asyncio.run(self._queue_messages())
        expected = queued * cfg.mails_per_message
        log(
            f"queued {queued} ticket.created messages for tenant {slug} in "
            f"{time.monotonic() - started:.1f}s; starting one `flowdesk worker`"
        )
        self.sink.clear()
        env = {**os.environ, "FLOWDESK_DATABASE_URL": self.url, **self._worker_env()}
        flowdesk = Path(sys.executable).with_name("flowdesk")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / "worker.log"
        with log_path.open("ab") as out:
            spawned = time.time()
            worker = subprocess.Popen(
                [str(flowdesk), "worker"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            deadline = time.monotonic() + cfg.worker_timeout
            while len(self.sink.arrivals) < expected and time.monotonic() < deadline:
                if worker.poll() is not None:
                    raise RuntimeError(f"flowdesk worker exited ({log_path})")
                time.sleep(0.05)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(5)
        arrivals = sorted(self.sink.snapshot().values())
        states = asyncio.run(self._delivery_states())
        mails = len(arrivals)
        if not arrivals:
            raise RuntimeError(f"no mail arrived from the worker ({log_path})")
        first, last = arrivals[0], arrivals[-1]
        from_start = last - spawned
        steady = last - first
        result = {
            "messages": queued,
            "mails_expected": expected,
            "mails": mails,
            "duplicates": self.sink.duplicates,
            "complete": mails >= expected,
            "seconds_from_worker_start": round(from_start, 3),
            "seconds_to_first_mail": round(first - spawned, 3),
            "seconds_first_to_last_mail": round(steady, 3),
            "mails_per_s": round(mails / from_start, 1),
            "messages_per_s": round(mails / cfg.mails_per_message / from_start, 1),
            "mails_per_s_first_to_last": round((mails - 1) / steady, 1) if steady else None,
            "delivery_states": states,
        }
        self.results["worker"] = result
        log(
            f"worker: {mails}/{expected} mails in {from_start:.1f}s from its start "
            f"({result['mails_per_s']:.0f} mails/s, {result['messages_per_s']:.0f} messages/s; "
            f"{result['mails_per_s_first_to_last']} mails/s from the first mail); "
            f"deliveries {states}"
        )
        if not result["complete"]:
            raise RuntimeError(f"the worker sent {mails} of {expected} mails ({log_path})")

    async def _delivery_states(self) -> dict[str, int]:
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch("SELECT state, count(*) FROM deliveries GROUP BY state")
            return {r["state"]: int(r["count"]) for r in rows}
        finally:
            await conn.close()

    # --- 2 and 3. the create benchmark with the relay off and on ---------------------------

    def create_runs(self, keys: list[str]) -> None:
        cfg = self.cfg
        runs: list[dict[str, Any]] = []
        for rep in range(cfg.repetitions):
            for relay in ("off", "on"):
                runs.append(self._create_run(keys, relay, rep + 1))
        self.results["create_runs"] = runs

    def _create_run(self, keys: list[str], relay: str, rep: int) -> dict[str, Any]:
        from flowdesk.config import Settings

        assert self.sink is not None
        cfg = self.cfg
        poll = "0" if relay == "off" else str(Settings.model_fields["relay_poll_seconds"].default)
        settings = {
            "FLOWDESK_SMTP_URL": f"smtp://127.0.0.1:{self.smtp_port}",
            "FLOWDESK_RELAY_POLL_SECONDS": poll,
        }
        if cfg.batch_size:
            settings["FLOWDESK_RELAY_BATCH_SIZE"] = str(cfg.batch_size)
        fd = servers.start_flowdesk(self.url, 1, self.log_dir, settings=settings)
        try:
            asyncio.run(prepare.warm(fd.base_url, keys, passes=1))
            if cfg.warmup:
                self._wrk(fd, cfg.warmup)
            # Measure from an empty queue: what the warm-up left unsent is skipped.
            asyncio.run(self._empty_queue(relaying=relay == "on"))
            self.sink.clear()
            low = asyncio.run(_one(self.dsn, "SELECT coalesce(max(id), 0) FROM outbox"))
            started = time.time()
            sample = self._wrk(fd, cfg.duration)
            ended = time.time()
            high = asyncio.run(_one(self.dsn, "SELECT coalesce(max(id), 0) FROM outbox"))
            run: dict[str, Any] = {
                "relay": relay,
                "repetition": rep,
                "creates_per_s": round(sample.rps, 1),
                "requests": sample.requests,
                "p50_ms": round(sample.p50_ms, 2),
                "p99_ms": round(sample.p99_ms, 2),
                "errors": sample.errors,
                "messages": high - low,
            }
            if relay == "on":
                drained = asyncio.run(self._wait_drained(low, high, cfg.drain_timeout))
                run.update(self._lag(low, high, started, ended, drained))
        finally:
            fd.stop()
        # Nothing relays now: whatever is left unsent is skipped, so that the next server
        # starts from an empty queue (a relaying one would otherwise take it on first).
        asyncio.run(self._empty_queue(relaying=False))
        text = f"create c{cfg.connections} relay {relay:<3} #{rep}: {run['creates_per_s']:7.0f}/s"
        text += f" p99 {run['p99_ms']:6.1f} ms"
        if relay == "on":
            text += (
                f" | lag p50 {_fmt_s(run['lag_p50_s'], cfg.drain_timeout)} p99 "
                f"{_fmt_s(run['lag_p99_s'], cfg.drain_timeout)}; "
                f"{run['mails']}/{run['mails_expected']} mails sent, "
                f"{run['mails_per_s_during_load']:.0f} mails/s under load, "
                f"{run['mails_per_s_after_load']:.0f} mails/s after it"
            )
        if sample.failed:
            text += f" | errors {sample.errors}"
        log(text)
        return run

    def _wrk(self, fd: servers.ServerProcess, seconds: int) -> Sample:
        return run_wrk(
            fd.base_url,
            "create.lua",
            [str(self.keys_file), "spread"],
            self.cfg.connections,
            seconds,
        )

    async def _empty_queue(self, *, relaying: bool) -> None:
        """Mark every waiting outbox message relayed and every pending delivery dropped (by
        SQL: the benchmark's own bookkeeping, not flowdesk's). While a relay runs, a batch it
        had claimed may still add deliveries: repeat until a pass finds nothing."""
        conn = await asyncpg.connect(self.dsn)
        try:
            for _ in range(20):
                try:
                    skipped = await conn.fetchval(
                        """
                        WITH m AS (
                            UPDATE outbox SET delivered_at = now()
                            WHERE delivered_at IS NULL RETURNING 1
                        ), d AS (
                            UPDATE deliveries SET state = 'dropped', updated_at = now(),
                                                  last_error = 'skipped by the benchmark'
                            WHERE state = 'pending' RETURNING 1
                        )
                        SELECT (SELECT count(*) FROM m) + (SELECT count(*) FROM d)
                        """
                    )
                except asyncpg.DeadlockDetectedError:
                    # A running relay locks the same rows in another order: try again.
                    await asyncio.sleep(0.3)
                    continue
                if not relaying or not skipped:
                    return
                await asyncio.sleep(0.3)
        finally:
            await conn.close()

    async def _wait_drained(self, low: int, high: int, within_s: float) -> bool:
        """Wait (bounded) until every message of the run is relayed and none of its deliveries
        is pending; whether it got there."""
        conn = await asyncpg.connect(self.dsn)
        try:
            deadline = time.monotonic() + within_s
            while time.monotonic() < deadline:
                busy = await conn.fetchval(
                    """SELECT EXISTS (SELECT 1 FROM outbox
                                      WHERE delivered_at IS NULL AND id > $1 AND id <= $2)
                           OR EXISTS (SELECT 1 FROM deliveries WHERE state = 'pending'
                                      AND outbox_id > $1 AND outbox_id <= $2)""",
                    low,
                    high,
                )
                if not busy:
                    return True
                await asyncio.sleep(0.25)
            return False
        finally:
            await conn.close()

    def _lag(
        self, low: int, high: int, started: float, ended: float, drained: bool
    ) -> dict[str, Any]:
        """Per message (its last mail) and per mail: arrival at the sink - outbox.created_at,
        for the messages the measured run made. A mail that had not come when the wait
        ended counts as infinitely late."""
        assert self.sink is not None
        arrivals = self.sink.snapshot()
        rows, unrelayed = asyncio.run(self._mails_of(low, high))
        per_mail: list[float] = []
        came: list[float] = []
        per_message: dict[int, float] = {}
        for outbox_id, created, message_id in rows:
            if message_id is None:  # not fanned out yet: no delivery row
                per_message[outbox_id] = math.inf
                continue
            arrived = arrivals.get(message_id)
            lag = arrived - created if arrived is not None else math.inf
            if arrived is not None:
                came.append(arrived)
            per_mail.append(lag)
            per_message[outbox_id] = max(per_message.get(outbox_id, -math.inf), lag)
        per_mail.sort()
        messages = sorted(per_message.values())
        during = sum(1 for t in came if t <= ended)
        last = max(came, default=ended)
        expected = len(per_mail) + unrelayed * self.cfg.mails_per_message
        return {
            "drained": drained,
            "wait_s": self.cfg.drain_timeout,
            "messages_unrelayed": unrelayed,
            "mails_expected": expected,
            "mails": len(came),
            "duplicates": self.sink.duplicates,
            "lag_p50_s": _round(percentile(messages, 50)),
            "lag_p99_s": _round(percentile(messages, 99)),
            "lag_max_s": _round(messages[-1] if messages else math.nan),
            "mail_lag_p50_s": _round(percentile(per_mail, 50)),
            "mail_lag_p99_s": _round(percentile(per_mail, 99)),
            "mails_per_s_during_load": round(during / (ended - started), 1),
            "mails_per_s_after_load": round((len(came) - during) / (last - ended), 1)
            if last > ended
            else 0.0,
            "backlog_at_end_of_load": expected - during,
            "seconds_after_load_to_last_mail": round(max(last - ended, 0.0), 2),
        }

    async def _mails_of(
        self, low: int, high: int
    ) -> tuple[list[tuple[int, float, str | None]], int]:
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch(
                """
                SELECT o.id, extract(epoch FROM o.created_at)::float8 AS created, d.message_id
                FROM outbox o
                LEFT JOIN deliveries d ON d.tenant_id = o.tenant_id AND d.outbox_id = o.id
                                      AND d.channel = 'email'
                WHERE o.id > $1 AND o.id <= $2
                """,
                low,
                high,
            )
            unrelayed = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE id > $1 AND id <= $2 AND delivered_at IS NULL",
                low,
                high,
            )
            return [(r["id"], r["created"], r["message_id"]) for r in rows], int(unrelayed)
        finally:
            await conn.close()

    # --- all --------------------------------------------------------------------------------

    def run(self) -> int:
        cfg = self.cfg
        controller, self.sink, self.smtp_port = start_sink()
        log(f"SMTP sink (aiosmtpd) on 127.0.0.1:{self.smtp_port}")
        try:
            keys = self.setup()
            self.mails_per_second()
            self.create_runs(keys)
        finally:
            controller.stop()
            if cfg.base.drop_databases and self.server is not None:
                asyncio.run(database.drop(self.server, [cfg.database]))
        self.results["meta"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        self.results["targets"] = targets(self.results)
        json_path, md_path, text = write(self.results, cfg.base.results_dir)
        print()
        print(text)
        log(f"wrote {json_path} and {md_path}")
        return 0


# --- report -----------------------------------------------------------------------------------


def _runs(results: dict[str, Any], relay: str) -> list[dict[str, Any]]:
    return [r for r in results.get("create_runs", []) if r["relay"] == relay]


def relay_cost(results: dict[str, Any]) -> dict[str, Any]:
    off = [r["creates_per_s"] for r in _runs(results, "off")]
    on = [r["creates_per_s"] for r in _runs(results, "on")]
    if not off or not on:
        return {}
    pairs = [round(b / a, 3) if a else None for a, b in zip(off, on, strict=False)]
    return {
        "off_creates_per_s": off,
        "on_creates_per_s": on,
        "off_mean": round(statistics.fmean(off), 1),
        "on_mean": round(statistics.fmean(on), 1),
        "ratio": round(statistics.fmean(on) / statistics.fmean(off), 3),
        "pair_ratios": pairs,
    }


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    on = _runs(results, "on")
    if on:
        worst = [r["lag_p99_s"] for r in on]
        measured = None if any(x is None for x in worst) else max(worst)
        out.append(
            {
                "name": "outbox lag p99 (queued -> mail at the sink) at the create "
                "benchmark's rate, worst run",
                "wanted": f"< {LAG_P99_TARGET_S:g} s",
                "measured": measured,
                "unit": "s",
                "met": measured is not None and measured < LAG_P99_TARGET_S,
            }
        )
    cost = relay_cost(results)
    if cost:
        out.append(
            {
                "name": "create throughput with the relay on / off (mean of the runs)",
                "wanted": f">= {RELAY_COST_TARGET:.2f}",
                "measured": cost["ratio"],
                "unit": "",
                "met": cost["ratio"] >= RELAY_COST_TARGET,
            }
        )
    return out


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    worker = results.get("worker", {})
    lines = [
        "# flowdesk notifications benchmark",
        "",
        f"{meta['started']} · git {meta['git']} · {meta['machine']} · {meta['postgres']}"
        + (" · **quick run**" if meta["quick"] else ""),
        f"Load average at start {meta['load_average_at_start']}, at end "
        f"{meta.get('load_average_at_end')}. Relay batch size {meta['relay_batch_size']}, "
        f"poll {meta['relay_poll_seconds']} s; {meta['mails_per_message']} mail(s) per "
        "ticket.created message (the reporter's acknowledgement"
        + (" and the tenant's queue address" if meta["mails_per_message"] == 2 else "")
        + f"); SMTP sink: {meta['sink']}.",
        "",
        "## Targets",
        "",
        "| target | wanted | measured | met |",
        "|---|---|--:|---|",
    ]
    for goal in results.get("targets", []):
        value = goal["measured"]
        shown = (
            "not all sent"
            if value is None
            else f"{value:g}{' ' + goal['unit'] if goal['unit'] else ''}"
        )
        met = "PASS" if goal["met"] else "**MISS**"
        lines.append(f"| {goal['name']} | {goal['wanted']} | {shown} | {met} |")
    if worker:
        lines += [
            "",
            "## One worker draining the outbox",
            "",
            f"{worker['messages']:,} ticket.created messages queued by SQL in one tenant, "
            f"then one `flowdesk worker` (SMTP to the sink) started; timed from its start to "
            "the last mail's arrival.",
            "",
            "| mails | from worker start | mails/s | messages/s | to first mail | "
            "mails/s first→last | duplicates | deliveries |",
            "|--:|--:|--:|--:|--:|--:|--:|---|",
            f"| {worker['mails']:,} / {worker['mails_expected']:,} | "
            f"{worker['seconds_from_worker_start']:.1f} s | {worker['mails_per_s']:,.0f} | "
            f"{worker['messages_per_s']:,.0f} | {worker['seconds_to_first_mail']:.2f} s | "
            f"{worker['mails_per_s_first_to_last'] or 0:,.0f} | {worker['duplicates']} | "
            f"{worker['delivery_states']} |",
        ]
    runs = results.get("create_runs", [])
    if runs:
        wait = meta.get("drain_timeout_s")
        lines += [
            "",
            "## The create benchmark with the relay off and on",
            "",
            f"`POST /v1/tickets` by wrk, {meta['connections']} connections, a random tenant of "
            f"{meta['tenants']:,} per request, one `flowdesk serve` worker started fresh for "
            f"each run ({meta['warmup_s']} s of warm-up load, the queue then emptied by SQL, "
            f"{meta['duration_s']} s measured), in the order shown. Relay off: "
            "FLOWDESK_RELAY_POLL_SECONDS=0. Lag: mail arrival at the sink - outbox.created_at, "
            "per message (its last mail) and per mail, over every message the measured run "
            f"made; after the load the relay gets up to {wait:g} s to finish, and a mail not "
            "sent by then counts as infinitely late.",
            "",
            "| # | relay | creates/s | p50 / p99 ms | errors | messages | lag p50 | lag p99 | "
            "mail lag p50 / p99 | mails sent | mails/s under load / after | backlog at end |",
            "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for r in runs:
            errors = sum(r["errors"].values())
            if r["relay"] == "on":
                lag = (
                    f"{_fmt_s(r['lag_p50_s'], wait)} | **{_fmt_s(r['lag_p99_s'], wait)}** | "
                    f"{_fmt_s(r['mail_lag_p50_s'], wait)} / {_fmt_s(r['mail_lag_p99_s'], wait)} | "
                    f"{r['mails']:,} / {r['mails_expected']:,} | "
                    f"{r['mails_per_s_during_load']:,.0f} / {r['mails_per_s_after_load']:,.0f} | "
                    f"{r['backlog_at_end_of_load']:,} mails"
                )
            else:
                lag = "- | - | - | - | - | -"
            lines.append(
                f"| {r['repetition']} | {r['relay']} | {r['creates_per_s']:,.0f} | "
                f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} | {errors} | {r['messages']:,} | {lag} |"
            )
        cost = relay_cost(results)
        if cost:
            lines += [
                "",
                f"Relay on / off: {cost['on_mean']:,.0f} / {cost['off_mean']:,.0f} creates/s = "
                f"**{cost['ratio']:.2f}** (pairs: "
                + ", ".join(f"{x:.2f}" for x in cost["pair_ratios"] if x is not None)
                + ").",
            ]
        on = _runs(results, "on")
        if on:
            rate = statistics.fmean(r["mails_per_s_during_load"] for r in on)
            per = meta["mails_per_message"]
            lines += [
                "",
                f"Under that load the in-process relay sent {rate:,.0f} mails/s, i.e. kept up "
                f"with about {rate / per:,.0f} creates/s at {per} mail(s) each; the load made "
                f"{statistics.fmean(r['creates_per_s'] for r in on):,.0f}/s.",
            ]
    return "\n".join(lines) + "\n"


def write(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "notifications.json"
    md_path = out_dir / "notifications.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    md_path.write_text(text)
    return json_path, md_path, text


def _stop_cleanly(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    # Servers and the worker are stopped in `finally` blocks, the embedded PostgreSQL at exit.
    signal.signal(signal.SIGTERM, _stop_cleanly)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cfg = parse_args(argv)
    if wrk_binary() is None:
        print(
            "bench: wrk is not installed. Run `bench/setup.sh` (or `make bench-notifications`),\n"
            "or install it yourself: apt-get install wrk",
            file=sys.stderr,
        )
        return 2
    try:
        return NotifyBench(cfg).run()
    except (LoadError, prepare.HarnessError, RuntimeError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
