"""The load benchmark itself runs (bench/run.py, tiny load): servers start, seeding works, every
scenario's request is answered as the Lua scripts expect, wrk and pgbench output is parsed and
the report is written. No figure is checked: timing stays out of `make test`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (bench/setup.sh)")
def test_benchmark_runs_on_a_tiny_load(server_url: str, tmp_path: Path) -> None:
    prefix = f"bench_smoke_{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "BENCH_DATABASE_URL": server_url,
        "BENCH_DB_PREFIX": prefix,
        "BENCH_DATA_DIR": str(tmp_path / "data"),
        "BENCH_RESULTS_DIR": str(tmp_path / "results"),
        "BENCH_SCENARIOS": "create_spread,transition",
        "BENCH_CONNECTIONS": "2",
        "BENCH_WORKERS": "1",
        "BENCH_DURATION": "1",
        "BENCH_WARMUP": "0",
        "BENCH_REPETITIONS": "1",
        "BENCH_TENANTS": "3",
        "BENCH_TICKETS_PER_CONNECTION": "2",
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--drop"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    report = json.loads((tmp_path / "results" / "latest.json").read_text())
    rows = {row["id"]: row for row in report["scenarios"]}
    assert set(rows) == {"create_spread c2 w1", "transition c2 w1"}
    for row in rows.values():
        assert row["flowdesk_rps"] > 0
        assert row["reference_rps"] > 0
        assert row["ratio"] > 0
        assert row["flowdesk_errors"] == 0, row
        assert row["reference_errors"] == 0, row
        assert row["flowdesk_p99_ms"] > 0
    if shutil.which("pgbench") or (ROOT / ".venv").exists():
        assert rows["transition c2 w1"]["pgbench_tps"], "pgbench did not run"
    assert report["memory"]["workers_1"]["peak_worker_mb"] > 0
    assert (tmp_path / "results" / "latest.md").read_text().startswith("# flowdesk load benchmark")
