"""A plain asyncpg pool for the hot paths (the ticket endpoints).

Outside an explicit transaction every statement commits on its own, so a write that is one
statement (a CTE) costs one round trip: no BEGIN, no COMMIT, and row locks held for the
statement only. asyncpg's own pool is used rather than SQLAlchemy's: a checkout through
SQLAlchemy's async layer costs greenlet switches on every request (measured in bench/), and
these paths never use SQLAlchemy's features.

The pool keeps SQLAlchemy's pool's promises: a bounded size, a deadline on acquiring (503
instead of a queue that grows while the database is away), a per-connection deadline, and
recovery by itself when the database comes back (broken connections are replaced).
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from fastapi import Request
from sqlalchemy.engine import make_url

from flowdesk.config import Settings


def asyncpg_dsn(url: str) -> str:
    """postgresql+asyncpg://… (SQLAlchemy's spelling) -> postgresql://… (asyncpg's)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _init(conn: Any) -> None:
    # jsonb in as a JSON string (the statements cast it), out as Python objects.
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=str, decoder=orjson.loads, schema="pg_catalog", format="text"
        )


async def _reset(conn: Any) -> None:
    """On release: only undo what a request could leave behind (an open transaction). The
    default reset (RESET ALL, UNLISTEN *, …) would cost a round trip per request."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_pool(url: str, settings: Settings) -> Any:
    server_settings = {"application_name": "flowdesk", "jit": "off"}
    if settings.db_statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    return await asyncpg.create_pool(
        asyncpg_dsn(url),
        # No connection at start: the service starts (and answers 503) while the database is
        # away, and connects when it comes back.
        min_size=0,
        max_size=settings.db_pool_size,
        max_inactive_connection_lifetime=300,
        timeout=settings.db_connect_timeout,
        server_settings=server_settings,
        init=_init,
        reset=_reset,
    )


def connection(request: Request) -> Any:
    """The request's connection: `async with connection(request) as conn:`.

    A plain async context manager in the endpoint rather than a yield dependency: FastAPI
    runs a yield dependency through an exit stack and a shielded exit per request, which cost
    the ticket endpoints more CPU than the acquire itself (bench/request_cpu.py). Waiting
    longer than the pool timeout raises TimeoutError, answered 503 (flowdesk.errors); the
    connection goes back to the pool as the block ends, before the response is written.
    """
    state = request.app.state
    return state.pgpool.acquire(timeout=state.settings.db_pool_timeout)
