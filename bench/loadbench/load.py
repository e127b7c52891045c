"""The load generators, each a process of its own: wrk (HTTP, Lua scenario scripts) and
pgbench (the same transactions straight on the database)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadbench.config import BENCH_DIR


@dataclass
class Sample:
    """One measured run."""

    rps: float  # successful (non-error) responses or transactions per second
    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LoadError(RuntimeError):
    pass


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def run_wrk(base_url: str, script: str, args: list[str], connections: int, duration: int) -> Sample:
    """wrk with one thread per connection (each connection then has its own Lua state, which
    the transition script needs to own its tickets)."""
    wrk = wrk_binary()
    if wrk is None:
        raise LoadError("wrk is not installed; run bench/setup.sh (or: apt-get install wrk)")
    argv = [
        wrk,
        "-t",
        str(connections),
        "-c",
        str(connections),
        "-d",
        f"{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH_DIR / "wrk" / script),
        base_url,
        "--",
        *args,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise LoadError(
            f"wrk failed ({done.returncode}): {done.stdout[-1500:]}{done.stderr[-1500:]}"
        )
    data = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = data["duration_us"] / 1e6
    errors = {k: int(v) for k, v in data["errors"].items() if v}
    ok = data["requests"] - errors.get("status", 0)
    lat = data["latency_us"]
    return Sample(
        rps=ok / seconds if seconds else 0.0,
        requests=int(data["requests"]),
        duration_s=seconds,
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        errors=errors,
    )


_TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)


def run_pgbench(
    binary: str,
    conn_args: tuple[list[str], dict[str, str]],
    script: str,
    variables: dict[str, int],
    clients: int,
    duration: int,
    log_dir: Path,
) -> Sample:
    """pgbench -M prepared with a per-transaction log, from which p50/p90/p99 are computed."""
    args, extra_env = conn_args
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.glob("pgbench_log*"):
        old.unlink()
    argv = [
        binary,
        "-n",
        "-M",
        "prepared",
        "-c",
        str(clients),
        "-j",
        str(min(clients, os.cpu_count() or 1)),
        "-T",
        str(duration),
        "-f",
        str(BENCH_DIR / "pgbench" / script),
        "--log",
        f"--log-prefix={log_dir / 'pgbench_log'}",
    ]
    for name, value in variables.items():
        argv += ["-D", f"{name}={value}"]
    argv += args
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=False,
        env={**os.environ, **extra_env},
    )
    match = _TPS.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise LoadError(
            f"pgbench failed ({done.returncode}): {done.stdout[-1500:]}{done.stderr[-1500:]}"
        )
    latencies: list[int] = []
    for path in log_dir.glob("pgbench_log*"):
        for row in path.read_text().splitlines():
            parts = row.split()
            if len(parts) >= 3 and parts[2].isdigit():
                latencies.append(int(parts[2]))
        path.unlink()
    latencies.sort()
    failed = _FAILED.search(done.stdout)
    errors = {"failed": int(failed.group(1))} if failed and int(failed.group(1)) else {}
    return Sample(
        rps=float(match.group(1)),
        requests=len(latencies),
        duration_s=float(duration),
        p50_ms=percentile(latencies, 50) / 1000,
        p90_ms=percentile(latencies, 90) / 1000,
        p99_ms=percentile(latencies, 99) / 1000,
        errors=errors,
    )


def percentile(sorted_values: list[int], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return float(sorted_values[index])
