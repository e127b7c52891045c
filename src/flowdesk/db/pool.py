"""The process's one connection pool (asyncpg) and the two ways to use it.

- `db.connection()`: one connection, outside a transaction. Each statement commits on its
  own, so a use case written as one statement (a CTE) costs one round trip.
- `db.transaction()`: one connection in a transaction, for a use case of several statements:
  committed when the block ends, rolled back when it raises.

The pool keeps the promises of a production pool: a bounded size, a deadline on acquiring
(TimeoutError, answered 503 with Retry-After instead of a queue that grows while the
database is away), a per-statement deadline, and recovery by itself when the database comes
back (broken connections are replaced). docs/adr/0002-one-pool.md says why it is asyncpg's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol, runtime_checkable

import asyncpg
import orjson
from asyncpg import Record
from asyncpg.pool import Pool, PoolAcquireContext
from sqlalchemy.engine import make_url

from flowdesk.config import Settings
from flowdesk.db.query import Connection, PoolConnection


def asyncpg_dsn(url: str) -> str:
    """postgresql+asyncpg://… (SQLAlchemy's spelling, used in settings) -> postgresql://…"""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _json_text(value: object) -> str:
    # SQLAlchemy's bind processors have serialised every JSON value already.
    if not isinstance(value, str):
        raise TypeError(f"a JSON parameter must be serialised first, not {type(value)}")
    return value


async def _init(conn: asyncpg.Connection[Record]) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name,
            encoder=_json_text,
            decoder=orjson.loads,
            schema="pg_catalog",
            format="text",
        )


async def _reset(conn: asyncpg.Connection[Record]) -> None:
    """On release, undo only what a request can leave behind (an open transaction): the
    default reset (RESET ALL, UNLISTEN *, …) costs a round trip per request."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


@runtime_checkable
class KeptOnRollback(Protocol):
    """An error that refuses a use case but must leave a record of the refusal (a refused
    quota overrun): `Database.transaction` rolls the work back, then lets the error write its
    record on the same connection, committed on its own."""

    async def record(self, conn: Connection) -> None: ...


QueryLogger = Callable[[asyncpg.connection.LoggedQuery], None]


def statement_cache_size(settings: Settings) -> int:
    """asyncpg's prepared statements per connection: its default of 100 directly, none behind
    a transaction pooler unless told otherwise (docs/scaling.md)."""
    if settings.database_statement_cache_size is not None:
        return settings.database_statement_cache_size
    return 0 if settings.database_pooler == "pgbouncer" else 100


def server_settings(settings: Settings) -> dict[str, str]:
    """The session settings sent at connection start. PgBouncer refuses a startup packet
    carrying parameters it does not track (jit, statement_timeout), so behind it only the
    application name goes, and the role carries the rest (ALTER ROLE … SET, docs/scaling.md)."""
    sent = {"application_name": "flowdesk"}
    if settings.database_pooler == "pgbouncer":
        return sent
    sent["jit"] = "off"
    if settings.db_statement_timeout_ms:
        sent["statement_timeout"] = str(settings.db_statement_timeout_ms)
    return sent


class Database:
    """The pool, with the acquire deadline every caller gets."""

    def __init__(
        self,
        pool: Pool[Record],
        acquire_timeout: float,
        query_loggers: list[QueryLogger] | None = None,
    ) -> None:
        self.pool = pool
        self._acquire_timeout = acquire_timeout
        self._query_loggers = query_loggers if query_loggers is not None else []

    @classmethod
    async def open(cls, url: str, settings: Settings, *, size: int | None = None) -> Database:
        query_loggers: list[QueryLogger] = []

        async def init(conn: asyncpg.Connection[Record]) -> None:
            await _init(conn)
            for logger in query_loggers:
                conn.add_query_logger(logger)

        pool = await asyncpg.create_pool(
            asyncpg_dsn(url),
            # No connection at start: the service starts (and answers 503) while the
            # database is away, and connects when it comes back.
            min_size=0,
            max_size=size or settings.db_pool_size,
            max_inactive_connection_lifetime=300,
            timeout=settings.db_connect_timeout,
            server_settings=server_settings(settings),
            statement_cache_size=statement_cache_size(settings),
            init=init,
            reset=_reset,
            connection_class=PoolConnection,
        )
        return cls(pool, settings.db_pool_timeout, query_loggers)

    async def add_query_logger(self, logger: QueryLogger) -> None:
        """Have `logger` told of every statement any connection of the pool runs from now on
        (asyncpg's query loggers; tests/db/test_distribution.py reads the app's SQL with it).
        Connections already open are replaced as they come back, so none is missed."""
        self._query_loggers.append(logger)
        await self.pool.expire_connections()

    def connection(self) -> PoolAcquireContext[Record]:
        """`async with db.connection() as conn:` autocommitted statements.

        A plain async context manager rather than a FastAPI yield dependency: FastAPI runs
        those through an exit stack and a shielded exit per request, which cost the ticket
        endpoints more CPU than the acquire itself (docs/adr/0005-flat-routes-and-headers.md).
        """
        return self.pool.acquire(timeout=self._acquire_timeout)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """`async with db.transaction() as conn:` all or nothing (but see KeptOnRollback)."""
        async with self.connection() as conn:
            try:
                async with conn.transaction():
                    yield conn
            except Exception as exc:
                if isinstance(exc, KeptOnRollback):
                    await exc.record(conn)
                raise

    async def close(self) -> None:
        await self.pool.close()
