"""What a benchmark run does: scenarios, connection counts, worker counts, durations.

Everything comes from the environment (so `make bench` and `BENCH_QUICK=1 make bench` work) and
can be overridden on the command line of bench/run.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[1]
ROOT = BENCH_DIR.parent

# name -> (wrk script, pgbench script or None)
SCENARIOS: dict[str, tuple[str, str | None]] = {
    "create_one": ("create.lua", "create_one.sql"),
    "create_spread": ("create.lua", "create_spread.sql"),
    "transition": ("transition.lua", "transition.sql"),
    "get": ("get.lua", None),
    "list": ("path.lua", None),
}
SCENARIO_TEXT = {
    "create_one": "POST /v1/tickets, every request in one hot tenant",
    "create_spread": "POST /v1/tickets, a random tenant of all seeded tenants per request",
    "transition": "POST /v1/tickets/{id}/transitions, resolve/reopen, own tickets per connection",
    "get": "GET /v1/tickets/{id}, a random ticket of the seeded tenants",
    "list": "GET /v1/tickets?limit=50, the hot tenant's first page (50 tickets)",
}


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.replace(" ", "").split(",") if part]


def _names(text: str) -> list[str]:
    names = [part for part in text.replace(" ", "").split(",") if part]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"bench: unknown scenarios {unknown}; choose from {sorted(SCENARIOS)}")
    return names


@dataclass
class Config:
    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    connections: list[int] = field(default_factory=lambda: [1, 8, 32])
    workers: list[int] = field(default_factory=lambda: [1, 2])
    # Worker counts above 1 are measured at these connection counts only (the full grid for
    # every worker count would not fit the time budget, and 32 is where a second worker shows).
    connections_multi: list[int] = field(default_factory=lambda: [32])
    duration: int = 5  # seconds per measured run (wrk takes whole seconds)
    warmup: int = 2  # seconds of load before the measured runs of each point (0: none)
    repetitions: int = 3  # measured runs per point; the report quotes the median
    tenants: int = 1000
    tickets_per_connection: int = 4
    pgbench: bool = True
    database_url: str | None = None  # None: the embedded PostgreSQL in data_dir
    data_dir: Path = BENCH_DIR / ".data"
    results_dir: Path = BENCH_DIR / "results"
    db_prefix: str = "bench"
    drop_databases: bool = False
    profile: bool = False
    profile_only: bool = False
    profile_scenarios: list[str] = field(default_factory=lambda: ["create_spread", "transition"])
    profile_seconds: int = 15

    def points(self, workers: int) -> list[int]:
        return self.connections if workers == 1 else self.connections_multi

    @property
    def all_connections(self) -> list[int]:
        """Every connection count some worker count is measured at (pgbench runs these)."""
        return sorted({c for w in self.workers for c in self.points(w)})

    @property
    def max_connections(self) -> int:
        return max(self.all_connections)

    @classmethod
    def from_env(cls) -> Config:
        env = os.environ
        quick = env.get("BENCH_QUICK", "0") not in ("", "0")
        cfg = cls()
        if quick:
            cfg.connections = [1, 8]
            cfg.connections_multi = [8]
            cfg.duration = 1
            cfg.warmup = 1
            cfg.repetitions = 1
            cfg.tenants = 20
        if "BENCH_SCENARIOS" in env:
            cfg.scenarios = _names(env["BENCH_SCENARIOS"])
        if "BENCH_CONNECTIONS" in env:
            cfg.connections = _ints(env["BENCH_CONNECTIONS"])
        if "BENCH_CONNECTIONS_MULTI" in env:
            cfg.connections_multi = _ints(env["BENCH_CONNECTIONS_MULTI"])
        if "BENCH_WORKERS" in env:
            cfg.workers = _ints(env["BENCH_WORKERS"])
        for name in ("duration", "warmup", "repetitions", "tenants", "profile_seconds"):
            if f"BENCH_{name.upper()}" in env:
                setattr(cfg, name, int(env[f"BENCH_{name.upper()}"]))
        if "BENCH_TICKETS_PER_CONNECTION" in env:
            cfg.tickets_per_connection = int(env["BENCH_TICKETS_PER_CONNECTION"])
        cfg.pgbench = env.get("BENCH_PGBENCH", "1") not in ("", "0")
        cfg.database_url = env.get("BENCH_DATABASE_URL") or None
        if env.get("BENCH_DATA_DIR"):
            cfg.data_dir = Path(env["BENCH_DATA_DIR"]).resolve()
        if env.get("BENCH_RESULTS_DIR"):
            cfg.results_dir = Path(env["BENCH_RESULTS_DIR"]).resolve()
        cfg.db_prefix = env.get("BENCH_DB_PREFIX", cfg.db_prefix)
        cfg.profile = env.get("BENCH_PROFILE", "0") not in ("", "0")
        if "BENCH_PROFILE_SCENARIOS" in env:
            cfg.profile_scenarios = _names(env["BENCH_PROFILE_SCENARIOS"])
        return cfg

    def validate(self) -> None:
        if not self.db_prefix.isidentifier():
            raise SystemExit(f"bench: BENCH_DB_PREFIX {self.db_prefix!r} is not an identifier")
        if self.duration < 1 or self.repetitions < 1 or self.warmup < 0:
            raise SystemExit("bench: duration and repetitions must be >= 1, warmup >= 0")
        if not self.workers or min(self.workers) < 1:
            raise SystemExit("bench: worker counts must be >= 1")
        if min(self.all_connections) < 1 or self.max_connections > 256:
            raise SystemExit("bench: connections must be between 1 and 256")
        if self.tenants < 1:
            raise SystemExit("bench: at least one tenant")
