"""A real PgBouncer in transaction-pooling mode in front of a growth database, configured as
docs/scaling.md tells a deployment to, with a config of its own in a temporary directory."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loadbench.servers import free_port
from sqlalchemy.engine import make_url

# PgBouncer's name for the database it fronts.
ALIAS = "flowdesk"


def binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
    )


@contextmanager
def pgbouncer(url: str, server_pool: int) -> Iterator[str]:
    """PgBouncer in front of `url` (postgresql://user@host:port/db, trust auth), keeping at most
    `server_pool` server connections; yields its postgresql:// URL."""
    found = binary()
    if found is None:
        raise RuntimeError("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    target = make_url(url)
    user = target.username or "postgres"
    here = Path(tempfile.mkdtemp(prefix="growth-pgbouncer-"))
    port = free_port()
    # An embedded server listens on a Unix socket only (`?host=/dir`).
    socket_dir = target.query.get("host")
    host = socket_dir if isinstance(socket_dir, str) else target.host or "127.0.0.1"
    server = f"host={host} port={target.port or 5432} dbname={target.database} user={user}"
    (here / "userlist.txt").write_text(f'"{user}" ""\n')
    (here / "pgbouncer.ini").write_text(
        f"""[databases]
; What FLOWDESK_DATABASE_POOLER=pgbouncer leaves out of the startup packet (docs/scaling.md).
{ALIAS} = {server} connect_query='SET jit = off'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {here / "userlist.txt"}
pool_mode = transaction
default_pool_size = {server_pool}
max_client_conn = 1000
logfile = {here / "pgbouncer.log"}
pidfile = {here / "pgbouncer.pid"}
"""
    )
    command = [found, str(here / "pgbouncer.ini")]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root: it runs as the server's own user when the server
        # is reached by its socket (whose directory only that user may enter), else postgres.
        runner = Path(host).owner() if host.startswith("/") else "postgres"
        shutil.chown(here, runner)
        for path in here.iterdir():
            shutil.chown(path, runner)
        command[1:1] = ["-u", runner]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(proc, port, here / "pgbouncer.log")
        yield f"postgresql://{user}@127.0.0.1:{port}/{ALIAS}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(here, ignore_errors=True)


def _wait_for_port(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pgbouncer exited: {log.read_text() if log.exists() else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("pgbouncer did not listen")
