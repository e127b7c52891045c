"""The servers under test, each a real process of its own: `flowdesk serve` and the reference
app, on free ports of 127.0.0.1, with their output in log files; and the RSS sampler."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from loadbench.config import BENCH_DIR, ROOT


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[psutil.Process]:
        """The processes that serve requests: uvicorn's worker children when it has any,
        else the server process itself (uvicorn runs one worker in-process)."""
        try:
            root = psutil.Process(self.process.pid)
            children = [
                p
                for p in root.children(recursive=True)
                if "resource_tracker" not in " ".join(p.cmdline())
            ]
        except psutil.Error:
            return []
        return children or [root]

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def _spawn(
    name: str, argv: list[str], env: dict[str, str], log_dir: Path
) -> subprocess.Popen[bytes]:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = (log_dir / f"{name}.log").open("ab")
    try:
        return subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    finally:
        log.close()


def _wait_healthy(server: ServerProcess, workers: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{server.name} exited on start ({server.log_path}):\n{tail}")
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=1.0).status_code == 200 and (
                workers == 1 or len(server.workers()) >= workers
            ):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(
        f"{server.name} did not become healthy in {timeout:.0f}s ({server.log_path})"
    )


def start_flowdesk(
    database_url: str, workers: int, log_dir: Path, settings: dict[str, str] | None = None
) -> ServerProcess:
    """`flowdesk serve` with its defaults, but for `settings` (FLOWDESK_* variables)."""
    port = free_port()
    env = dict(os.environ)
    env.update(
        FLOWDESK_DATABASE_URL=database_url,
        FLOWDESK_HOST="127.0.0.1",
        FLOWDESK_PORT=str(port),
        FLOWDESK_WORKERS=str(workers),
        FLOWDESK_SEED_DEMO="0",
        # The load is one client far above any key's budget: the limiter still runs on every
        # request (its cost is measured), but never refuses one.
        FLOWDESK_FIRST_PARTY_RATE_LIMIT_REQUESTS=str(10**9),
        **(settings or {}),
    )
    flowdesk = Path(sys.executable).with_name("flowdesk")
    argv = [str(flowdesk), "serve"] if flowdesk.exists() else [sys.executable, "-m", "flowdesk.cli"]
    name = f"flowdesk-w{workers}"
    server = ServerProcess(name, _spawn(name, argv, env, log_dir), port, log_dir / f"{name}.log")
    _wait_healthy(server, workers)
    return server


def start_reference(dsn: str, workers: int, pool_size: int, log_dir: Path) -> ServerProcess:
    port = free_port()
    argv = [
        sys.executable,
        str(BENCH_DIR / "reference_app.py"),
        "--dsn",
        dsn,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--pool-size",
        str(pool_size),
    ]
    name = f"reference-w{workers}"
    server = ServerProcess(
        name, _spawn(name, argv, dict(os.environ), log_dir), port, log_dir / f"{name}.log"
    )
    _wait_healthy(server, workers)
    return server


@dataclass
class RssSampler:
    """Samples the RSS of a server's worker processes every `interval` seconds in a thread;
    keeps the peak of any one worker and of their sum."""

    server: ServerProcess
    interval: float = 0.25
    peak_worker_bytes: int = 0
    peak_total_bytes: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        sizes = []
        for proc in self.server.workers():
            try:
                sizes.append(proc.memory_info().rss)
            except psutil.Error:
                continue
        if sizes:
            self.samples += 1
            self.peak_worker_bytes = max(self.peak_worker_bytes, *sizes)
            self.peak_total_bytes = max(self.peak_total_bytes, sum(sizes))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sample()
