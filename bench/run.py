"""flowdesk's load benchmark: flowdesk, the raw-asyncpg reference and pgbench, side by side.

    make bench                       the full run (about 15 minutes)
    BENCH_QUICK=1 make bench         a smoke run (about a minute)
    .venv/bin/python bench/run.py --help

One PostgreSQL server (the embedded one in bench/.data, or BENCH_DATABASE_URL) holds three fresh
databases: flowdesk's, the reference app's and pgbench's, all with flowdesk's schema. flowdesk
(`flowdesk serve`) and the reference app run as server processes; wrk and pgbench drive them
from processes of their own; the report goes to bench/results/latest.{md,json}. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadbench import database, prepare, profile, report, seed, servers
from loadbench.config import ROOT, SCENARIOS, Config
from loadbench.load import LoadError, Sample, run_pgbench, run_wrk, wrk_binary

HOT_TICKETS = 60  # the hot tenant's extra tickets, so that its first page of 50 is full
_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", flush=True)


def parse_args(argv: list[str] | None) -> Config:
    cfg = Config.from_env()
    p = argparse.ArgumentParser(description="flowdesk load benchmark (see bench/README.md)")
    p.add_argument("--quick", action="store_true", help="smoke run (same as BENCH_QUICK=1)")
    p.add_argument("--scenarios", help=f"comma-separated, of: {', '.join(SCENARIOS)}")
    p.add_argument("--connections", help="connection counts for one worker, e.g. 1,8,32")
    p.add_argument("--connections-multi", help="connection counts for more workers, e.g. 32")
    p.add_argument("--workers", help="worker counts, e.g. 1,2")
    p.add_argument("--duration", type=int, help="seconds per measured run")
    p.add_argument("--warmup", type=int, help="seconds of warm-up per point (0: none)")
    p.add_argument("--repetitions", type=int, help="measured runs per point (median reported)")
    p.add_argument("--tenants", type=int, help="tenants to seed (default 1000)")
    p.add_argument("--database-url", help="a PostgreSQL server to use instead of the embedded one")
    p.add_argument("--no-pgbench", action="store_true", help="leave pgbench out")
    p.add_argument("--profile", action="store_true", help="also profile a worker with py-spy")
    p.add_argument("--profile-only", action="store_true", help="seed, then only the py-spy profile")
    p.add_argument("--drop", action="store_true", help="drop the databases at the end")
    args = p.parse_args(argv)
    if args.quick:
        os.environ["BENCH_QUICK"] = "1"
        cfg = Config.from_env()
    env_overrides = {
        "scenarios": "BENCH_SCENARIOS",
        "connections": "BENCH_CONNECTIONS",
        "connections_multi": "BENCH_CONNECTIONS_MULTI",
        "workers": "BENCH_WORKERS",
    }
    for attr, name in env_overrides.items():
        if getattr(args, attr):
            os.environ[name] = getattr(args, attr)
    if any(getattr(args, a) for a in env_overrides):
        cfg = Config.from_env()
    for attr in ("duration", "warmup", "repetitions", "tenants"):
        if getattr(args, attr) is not None:
            setattr(cfg, attr, getattr(args, attr))
    if args.database_url:
        cfg.database_url = args.database_url
    if args.no_pgbench:
        cfg.pgbench = False
    if args.profile or args.profile_only:
        cfg.profile = True
    cfg.profile_only = args.profile_only
    if args.drop:
        cfg.drop_databases = True
    cfg.validate()
    return cfg


class Bench:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.results = report.Results()
        self.run_dir = cfg.data_dir / "run"
        self.log_dir = cfg.data_dir / "logs"
        self.names = {
            system: f"{cfg.db_prefix}_{system}" for system in ("flowdesk", "reference", "pgbench")
        }
        self.server: database.Server | None = None
        self.files: dict[str, dict[str, Path]] = {}

    # --- set-up ------------------------------------------------------------------------

    def lock(self, wait_seconds: float = 1200) -> None:
        """One run at a time per data directory: a second one would drop the first one's
        databases. Waits (bounded) for a run in progress to finish."""
        self.cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = (self.cfg.data_dir / "run.lock").open("w")
        deadline = time.monotonic() + wait_seconds
        told = False
        while True:
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"another benchmark run still holds {self.cfg.data_dir}; set "
                        "BENCH_DATA_DIR and BENCH_DB_PREFIX to run one beside it"
                    ) from None
                if not told:
                    log(f"another benchmark run is using {self.cfg.data_dir}; waiting for it")
                    told = True
                time.sleep(2)

    def setup(self) -> None:
        cfg = self.cfg
        self.lock()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log(f"PostgreSQL: {'BENCH_DATABASE_URL' if cfg.database_url else 'embedded'}")
        self.server = server = database.start(cfg.database_url, cfg.data_dir)
        asyncio.run(database.recreate(server, list(self.names.values())))
        from flowdesk.db import migrate

        for name in self.names.values():
            migrate.upgrade(server.sqlalchemy_url(name))
        log(f"migrated {', '.join(self.names.values())} on {server.describe()}")

        started = time.monotonic()
        keys = asyncio.run(
            seed.seed_flowdesk(server.sqlalchemy_url(self.names["flowdesk"]), cfg.tenants)
        )
        log(f"seeded {cfg.tenants} flowdesk tenants in {time.monotonic() - started:.1f}s")
        tokens = asyncio.run(
            seed.seed_plain(server.dsn(self.names["reference"]), cfg.tenants, tokens=True)
        )
        asyncio.run(seed.seed_plain(server.dsn(self.names["pgbench"]), cfg.tenants, tokens=False))
        pgbench_tickets = cfg.max_connections * cfg.tickets_per_connection
        asyncio.run(
            seed.seed_pgbench_tickets(
                server.dsn(self.names["pgbench"]), cfg.tenants, pgbench_tickets
            )
        )
        for system, secrets in (("flowdesk", keys), ("reference", tokens)):
            keys_file = self.run_dir / f"{system}_keys.txt"
            keys_file.write_text("\n".join(secrets) + "\n")
            tickets_file = self.run_dir / f"{system}_tickets.txt"
            tickets_file.unlink(missing_ok=True)  # a previous run's, in databases now gone
            self.files[system] = {"keys": keys_file, "tickets": tickets_file}
        log("seeded the reference and pgbench databases")
        # As pgbench does before it measures: without it, autovacuum and autoanalyze work
        # through the freshly seeded tables during the first points (flowdesk's, seeded
        # through its services, have the most rows), and the first point measured the
        # machine's housekeeping (create_one c1 at 0.51 of the reference, 1.01 when second).
        asyncio.run(database.vacuum_analyze(server, list(self.names.values())))
        log("vacuumed and analysed the three databases")
        self._meta()

    def _meta(self) -> None:
        assert self.server is not None
        cfg = self.cfg
        git = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        wrk_version = subprocess.run(
            [wrk_binary() or "wrk", "-v"], capture_output=True, text=True, check=False
        )
        self.results.meta = {
            "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "git": git + (" (src/ has uncommitted changes)" if dirty else ""),
            "machine": f"{os.cpu_count()} CPUs, {_memory_gb()} GB, {platform.platform()}",
            "cpu": _cpu_model(),
            "python": platform.python_version(),
            "postgres": f"PostgreSQL {asyncio.run(database.version(self.server))} "
            f"({'embedded' if self.server.embedded else 'BENCH_DATABASE_URL'})",
            "postgres_settings": asyncio.run(database.settings(self.server)),
            "wrk": (wrk_version.stdout + wrk_version.stderr).splitlines()[0] if wrk_version else "",
            "duration_s": cfg.duration,
            "warmup_s": cfg.warmup,
            "repetitions": cfg.repetitions,
            "tenants": cfg.tenants,
            "connections": cfg.connections,
            "connections_multi_worker": cfg.connections_multi,
            "workers": cfg.workers,
            "tickets_per_connection": cfg.tickets_per_connection,
            "pools": {str(w): _pools(w) for w in cfg.workers},
            "load_average_at_start": list(os.getloadavg()),
        }

    # --- HTTP scenarios ----------------------------------------------------------------

    def _script_args(self, system: str, scenario: str) -> list[str]:
        files = self.files[system]
        return {
            "create_one": [str(files["keys"]), "one"],
            "create_spread": [str(files["keys"]), "spread"],
            "transition": [str(files["tickets"]), str(self.cfg.tickets_per_connection)],
            "get": [str(files["tickets"])],
            "list": [str(files["keys"]), "/v1/tickets?limit=50"],
        }[scenario]

    def http_phase(self, workers: int, first: bool) -> None:
        assert self.server is not None
        cfg = self.cfg
        log(f"starting flowdesk and the reference with {workers} worker(s)")
        pools = _pools(workers)
        fd = servers.start_flowdesk(
            self.server.sqlalchemy_url(self.names["flowdesk"]),
            workers,
            self.log_dir,
            settings=pools["flowdesk_settings"],
        )
        try:
            ref = servers.start_reference(
                self.server.dsn(self.names["reference"]),
                workers,
                pools["reference_pool_size"],
                self.log_dir,
            )
        except Exception:
            fd.stop()
            raise
        targets = {"flowdesk": fd, "reference": ref}
        sampler = servers.RssSampler(fd).start()
        try:
            for system, proc in targets.items():
                files = self.files[system]
                keys = _lines(files["keys"])
                if first:
                    count = cfg.max_connections * cfg.tickets_per_connection
                    made = asyncio.run(prepare.prepare(proc.base_url, keys, count, HOT_TICKETS))
                    files["tickets"].write_text("\n".join(made) + "\n")
                tickets = _lines(files["tickets"])
                asyncio.run(prepare.reset(proc.base_url, tickets))
                asyncio.run(prepare.check(proc.base_url, keys, tickets))
                if system == "flowdesk":
                    asyncio.run(prepare.warm(proc.base_url, keys, passes=2 * workers))
            if first:
                for name in ("flowdesk", "reference"):
                    asyncio.run(seed.analyze(self.server.dsn(self.names[name])))
            pids = [p.pid for p in fd.workers()]
            log(f"both servers answer every scenario's request as expected; flowdesk pids {pids}")
            for scenario in cfg.scenarios:
                for conns in cfg.points(workers):
                    self.http_point(targets, scenario, conns, workers)
        finally:
            sampler.stop()
            fd.stop()
            ref.stop()
        self.results.memory[workers] = {
            "peak_worker_mb": round(sampler.peak_worker_bytes / report.MB, 1),
            "peak_total_mb": round(sampler.peak_total_bytes / report.MB, 1),
            "samples": sampler.samples,
        }
        peak = sampler.peak_worker_bytes / report.MB
        log(f"flowdesk RSS peak with {workers} worker(s): {peak:.0f} MB (largest worker)")

    def http_point(
        self, targets: dict[str, servers.ServerProcess], scenario: str, conns: int, workers: int
    ) -> None:
        cfg = self.cfg
        script = SCENARIOS[scenario][0]
        order = list(targets)

        def once(system: str, seconds: int) -> Sample:
            if scenario == "transition":
                # Requests wrk left in flight when it stopped finish on the server after it
                # exits; let them land before putting the tickets back in_progress.
                time.sleep(0.5)
                tickets = _lines(self.files[system]["tickets"])
                asyncio.run(prepare.reset(targets[system].base_url, tickets))
            return run_wrk(
                targets[system].base_url,
                script,
                self._script_args(system, scenario),
                conns,
                seconds,
            )

        if cfg.warmup:
            for system in order:
                once(system, cfg.warmup)
        for rep in range(cfg.repetitions):
            # Alternate who goes first, so that drift (table growth, autovacuum) is shared.
            for system in order if rep % 2 == 0 else order[::-1]:
                self.results.add(system, scenario, conns, workers, once(system, cfg.duration))
        fd = self.results.point("flowdesk", scenario, conns, workers)
        ref = self.results.point("reference", scenario, conns, workers)
        assert fd is not None
        assert ref is not None
        fd_rps, ref_rps = fd.median("rps") or 0.0, ref.median("rps") or 0.0
        ratio = fd_rps / ref_rps if ref_rps else 0.0
        errors = f", errors {fd.errors()}/{ref.errors()}" if fd.errors() or ref.errors() else ""
        log(
            f"{scenario:<13} c{conns:<3} w{workers}: "
            f"flowdesk {fd_rps:7.0f}/s p99 {fd.median('p99_ms') or 0:6.1f} ms | "
            f"reference {ref_rps:7.0f}/s p99 {ref.median('p99_ms') or 0:6.1f} ms | "
            f"ratio {ratio:.2f}{errors}"
        )

    # --- pgbench -----------------------------------------------------------------------

    def pgbench_phase(self) -> None:
        assert self.server is not None
        cfg = self.cfg
        binary = database.pgbench_binary()
        if binary is None:
            log("pgbench not found; skipping the pgbench ceiling")
            return
        conn_args = self.server.pgbench_args(self.names["pgbench"])
        variables = {"ntenants": cfg.tenants, "per_client": cfg.tickets_per_connection}
        for scenario in cfg.scenarios:
            script = SCENARIOS[scenario][1]
            if script is None:
                continue
            for clients in cfg.all_connections:
                if cfg.warmup:
                    run_pgbench(
                        binary, conn_args, script, variables, clients, cfg.warmup, self.log_dir
                    )
                for _ in range(cfg.repetitions):
                    sample = run_pgbench(
                        binary, conn_args, script, variables, clients, cfg.duration, self.log_dir
                    )
                    self.results.add("pgbench", scenario, clients, 0, sample)
                point = self.results.point("pgbench", scenario, clients, 0)
                assert point is not None
                tps, p99 = point.median("rps") or 0.0, point.median("p99_ms") or 0.0
                log(f"pgbench {scenario:<13} c{clients:<3}: {tps:7.0f} tps p99 {p99:6.1f} ms")

    # --- profile -----------------------------------------------------------------------

    def profile_phase(self) -> None:
        """py-spy on the one worker of a fresh flowdesk while wrk drives each profiled
        scenario at 32 connections."""
        assert self.server is not None
        cfg = self.cfg
        if profile.py_spy_binary() is None:
            log("py-spy is not installed; no profile (BENCH_PROFILE=1 make bench installs it)")
            return
        cfg.results_dir.mkdir(parents=True, exist_ok=True)
        fd = servers.start_flowdesk(
            self.server.sqlalchemy_url(self.names["flowdesk"]), 1, self.log_dir
        )
        try:
            files = self.files["flowdesk"]
            if not files["tickets"].exists():
                count = 32 * cfg.tickets_per_connection
                made = asyncio.run(prepare.prepare(fd.base_url, _lines(files["keys"]), count, 0))
                files["tickets"].write_text("\n".join(made) + "\n")
            asyncio.run(prepare.warm(fd.base_url, _lines(files["keys"]), passes=1))
            pid = fd.workers()[0].pid
            for scenario in cfg.profile_scenarios:
                self.results.profiles[scenario] = self._profile_one(fd, pid, scenario)
        finally:
            fd.stop()

    def _profile_one(self, fd: servers.ServerProcess, pid: int, scenario: str) -> dict[str, Any]:
        cfg = self.cfg
        if scenario == "transition":
            asyncio.run(prepare.reset(fd.base_url, _lines(self.files["flowdesk"]["tickets"])))
        out = cfg.results_dir / f"profile-{scenario}.collapsed.txt"
        out.unlink(missing_ok=True)
        thread = profile.record(pid, cfg.profile_seconds, out)
        sample = run_wrk(
            fd.base_url,
            SCENARIOS[scenario][0],
            self._script_args("flowdesk", scenario),
            32,
            cfg.profile_seconds + 4,
        )
        thread.join(cfg.profile_seconds + 60)
        if not out.exists():
            log("py-spy wrote no profile (does this system allow ptrace?)")
            return {}
        summary = profile.summarise(out)
        summary["rps_while_profiling"] = round(sample.rps, 1)
        summary["file"] = str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out)
        log(f"profile {scenario}: {summary['samples']} samples; by library: {summary['areas']}")
        return summary

    # --- all ---------------------------------------------------------------------------

    def run(self) -> int:
        cfg = self.cfg
        try:
            self.setup()
            for index, workers in enumerate([] if cfg.profile_only else cfg.workers):
                self.http_phase(workers, first=index == 0)
            if cfg.pgbench and not cfg.profile_only:
                self.pgbench_phase()
            if cfg.profile:
                self.profile_phase()
        finally:
            if cfg.drop_databases and self.server is not None:
                asyncio.run(database.drop(self.server, list(self.names.values())))
        self.results.meta["load_average_at_end"] = list(os.getloadavg())
        stem = "profile" if cfg.profile_only else "latest"
        json_path, md_path, text = report.write(self.results, cfg.results_dir, stem)
        print()
        print(text)
        log(f"wrote {json_path} and {md_path}")
        return 0


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line]


# Per-worker pools with more than one worker: the client connections shared by the workers.
_MULTI_WORKER_POOL = 16


def _pools(workers: int) -> dict[str, Any]:
    """The database pools of both systems for `workers` workers each.

    One worker: flowdesk's defaults, and a reference pool as large as flowdesk's hot-path
    pool may grow (size + overflow). More workers: both systems' connections must fit the
    server's max_connections (100 by default) together, since each keeps connections open
    while the other is measured. Each worker then gets 16 hot-path connections (32 client
    connections over 2 workers), flowdesk's other pool half as many without overflow (it
    opened up to 41 per worker, and the 2-worker list runs met "too many clients").
    """
    from flowdesk.config import Settings

    if workers == 1:
        settings = Settings()
        return {
            "flowdesk_settings": {},
            "reference_pool_size": settings.db_pool_size,
        }
    return {
        "flowdesk_settings": {
            "FLOWDESK_DB_POOL_SIZE": str(_MULTI_WORKER_POOL),
            "FLOWDESK_DB_MAX_OVERFLOW": "0",
        },
        "reference_pool_size": _MULTI_WORKER_POOL,
    }


def _memory_gb() -> int:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 1024**3)
    except ImportError:
        return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _stop_cleanly(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    # The servers this run started are stopped in `finally` blocks, and the embedded
    # PostgreSQL at exit: turn SIGTERM (and SIGINT, which a background job ignores) into an
    # exception so that they run.
    signal.signal(signal.SIGTERM, _stop_cleanly)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cfg = parse_args(argv)
    if wrk_binary() is None:
        print(
            "bench: wrk is not installed. Run `bench/setup.sh` (or `make bench`, which runs it),\n"
            "or install it yourself: apt-get install wrk",
            file=sys.stderr,
        )
        return 2
    try:
        return Bench(cfg).run()
    except (LoadError, prepare.HarnessError, RuntimeError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
