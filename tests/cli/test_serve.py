"""The real thing: `flowdesk serve` as a process, on its own embedded PostgreSQL, over TCP."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import httpx

from tests.servers import free_port, start_serve, stop, wait_healthy

KEY_LINE = re.compile(r"^FLOWDESK_ADMIN_KEY=(fdk_[A-Za-z0-9]+)$", re.MULTILINE)


def start_embedded(data_dir: Path, port: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    return start_serve(port, log, FLOWDESK_DATA_DIR=str(data_dir), **env)


def postmaster_running(data_dir: Path) -> bool:
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().splitlines()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serve_on_embedded_postgres_prints_a_working_admin_key_and_keeps_data(
    tmp_path: Path,
) -> None:
    data_dir, port, log = tmp_path / "data", free_port(), tmp_path / "serve.log"
    proc = start_embedded(data_dir, port, log)
    try:
        wait_healthy(proc, port, log)
        match = KEY_LINE.search(log.read_text())
        assert match, log.read_text()
        key = match.group(1)
        r = httpx.get(f"http://127.0.0.1:{port}/v1/me", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.json()["tenant"]["slug"] == "demo"
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        assert "/docs" in log.read_text()
    finally:
        assert stop(proc) == 0
    # The embedded server stops with the service that started it.
    assert not postmaster_running(data_dir)

    # A restart keeps the data: no new demo tenant, and the old key still works.
    log2 = tmp_path / "serve2.log"
    proc = start_embedded(data_dir, port, log2, FLOWDESK_WORKERS="2")
    try:
        wait_healthy(proc, port, log2)
        assert KEY_LINE.search(log2.read_text()) is None
        for _ in range(4):  # whichever worker answers
            r = httpx.get(
                f"http://127.0.0.1:{port}/v1/me", headers={"Authorization": f"Bearer {key}"}
            )
            assert r.status_code == 200
    finally:
        assert stop(proc) == 0
    assert not postmaster_running(data_dir)
