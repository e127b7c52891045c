"""The growth benchmark itself runs (bench/growth.py, a tiny seed, one-second points): both
databases are seeded and migrated, every list shape resolves to a page that answers 200 and has
a plan, `flowdesk serve` and the reference answer every scenario wrk sends, the audit trail's
growth is read, PgBouncer serves where it is installed, and the report is written. No figure
is checked: timing stays out of `make test`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from flowdesk.db.pool import asyncpg_dsn

ROOT = Path(__file__).resolve().parents[2]
PGBOUNCER = shutil.which("pgbouncer") or os.access("/usr/sbin/pgbouncer", os.X_OK)


@pytest.fixture
def growth_database(server_url: str) -> Iterator[str]:
    name = f"growth_smoke_{uuid.uuid4().hex[:8]}"
    yield name

    async def drop() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(server_url))
        try:
            for db in (name, f"{name}_small"):
                await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (bench/setup.sh)")
def test_growth_benchmark_runs_on_a_tiny_seed(
    server_url: str, growth_database: str, tmp_path: Path
) -> None:
    argv = [
        sys.executable,
        str(ROOT / "bench" / "growth.py"),
        "--scale=0.0005",  # 2,500 tickets, 500 in the big tenant, 10 tenants
        f"--database={growth_database}",
        f"--url={server_url}",
        f"--work={tmp_path / 'work'}",
        f"--results={tmp_path / 'results'}",
        "--requests=1",
        "--connections=2",
        "--duration=1",
        "--warmup=0",
        "--repetitions=1",
        "--audit-seconds=1",
        "--small-tenants=20",
        # One write and one list shape through every server; the rest are the same code.
        "--only=transition|q common",
    ]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    report = json.loads((tmp_path / "results" / "growth.json").read_text())
    # Every list shape resolved, answered and has a plan of its statement.
    assert len(report["plans"]) >= 20
    assert all(p["plan"] for p in report["plans"]), [p["name"] for p in report["plans"]]
    points = {(p["scenario"], p["label"]): p["median"] for p in report["points"]}
    labels = ["flowdesk small", "flowdesk big", "reference small", "reference big"]
    for label in labels:
        assert points[("transition", label)]["rps"] > 0, label
        assert not points[("transition", label)]["errors"], label
    for label in labels[:2]:
        assert points[("q common word (printer)", label)]["rps"] > 0, label
        assert not points[("q common word (printer)", label)]["errors"], label
    assert report["audit"]["changes"] > 0
    assert report["audit"]["per_change"]["ticket_events"]["heap"] > 0
    if PGBOUNCER:
        pooled = {(p["scenario"], p["label"]) for p in report["pooled"]}
        assert ("transition", "flowdesk big via PgBouncer") in pooled
    markdown = (tmp_path / "results" / "growth.md").read_text()
    assert "## List shapes in the big tenant" in markdown
    assert "## The audit trail's growth per ticket change" in markdown
