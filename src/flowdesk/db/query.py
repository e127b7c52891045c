"""SQLAlchemy Core statements, compiled for asyncpg and run on the pool's connections.

Every statement is written with SQLAlchemy Core over the tables in `flowdesk.models` (the ones
Alembic migrates), compiled by SQLAlchemy's asyncpg dialect, and executed on an asyncpg
connection from `flowdesk.db.pool`. Two forms, one compiler:

- `Query(statement)`, compiled once at import, for every statement whose shape is fixed (all
  of the hot paths): values are `bindparam("name")`s given by name at each call. asyncpg keeps
  it prepared on each connection, and PostgreSQL may run it with one generic plan after five
  calls; `Query(statement, planned_per_call=True)` is planned for each call's values instead
  (docs/adr/0023-lists-planned-per-call.md).
- a statement built for one call, with its values inside, compiled on that call: for
  administrative statements whose shape depends on the call.

Rows come back as asyncpg gives them and are typed by the caller's row type (a TypedDict read
by column name), at no cost. docs/adr/0003-compiled-core-statements.md says why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

import asyncpg
import orjson
from asyncpg import Record
from asyncpg.pool import PoolConnectionProxy
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Connection: TypeAlias = "PoolConnectionProxy[Record]"
"""A connection from the process's one pool (flowdesk.db.pool), a `PoolConnection`."""

RowT = TypeVar("RowT")
Statement: TypeAlias = "Query | ClauseElement"

_Processor = Callable[[Any], Any]


def _json(value: object) -> str:
    # default=str: asyncpg's UUIDs are a subclass orjson does not take as is.
    return orjson.dumps(value, default=str).decode()


# The one compiler. JSON values are serialised by SQLAlchemy's bind processors (with orjson);
# the pool's codec passes the JSON text through.
DIALECT = PGDialect_asyncpg(json_serializer=_json)  # type: ignore[no-untyped-call]  # SQLAlchemy leaves it unannotated


if TYPE_CHECKING:
    _AsyncpgConnection = asyncpg.Connection[Record]
else:  # generic in its stubs only
    _AsyncpgConnection = asyncpg.Connection


class PoolConnection(_AsyncpgConnection):
    """The pool's connections: asyncpg's, and a way to run a statement with a plan made for
    the call's values."""

    async def fetch_planned(self, sql: str, *args: Any) -> list[Record]:
        """The statement's rows, planned for these values: prepared unnamed, outside asyncpg's
        cache, as asyncpg runs every statement when its cache is off (so also through a
        transaction pooler). Told to the query loggers as `fetch` is."""
        # asyncpg's own timing and logging of a statement (private: it has no public way to
        # log a prepared statement's run; tests/db/test_distribution.py reads these logs).
        with self._time_and_log(sql, args, None):  # type: ignore[attr-defined]
            statement = await self.prepare(sql, name="")
            return await statement.fetch(*args)


class Query:
    """A statement compiled once and run many times with named values."""

    __slots__ = ("_fixed", "_names", "_processors", "_required", "planned_per_call", "sql")

    def __init__(
        self, statement: ClauseElement, *, expand: bool = False, planned_per_call: bool = False
    ) -> None:
        compiled = statement.compile(
            dialect=DIALECT, compile_kwargs={"render_postcompile": True} if expand else {}
        )
        assert isinstance(compiled, SQLCompiler)
        self.sql: str = compiled.string
        # A statement whose best plan depends on its values (a tenant's size, how common a
        # word is): a plan made once for all values reads a large tenant whole.
        self.planned_per_call = planned_per_call
        self._names: tuple[str, ...] = tuple(compiled.positiontup or ())
        # Values written into the statement (constants, or a per-call statement's values)
        # travel as parameters too; a call's values override them by name.
        self._fixed: dict[str, Any] = dict(compiled.params)
        self._required = frozenset(name for name, bind in compiled.binds.items() if bind.required)
        processors = cast(Mapping[str, _Processor], compiled._bind_processors)
        self._processors: tuple[_Processor | None, ...] = tuple(
            processors.get(name) for name in self._names
        )

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        """The positional arguments for asyncpg, in the statement's order."""
        missing = self._required.difference(values)
        if missing:
            raise TypeError(f"no value for the statement's parameters {sorted(missing)}")
        fixed = self._fixed
        return [
            value if process is None or value is None else process(value)
            for value, process in zip(
                [values[n] if n in values else fixed[n] for n in self._names],
                self._processors,
                strict=True,
            )
        ]


def _bound(statement: Statement, values: Mapping[str, Any]) -> tuple[str, list[Any]]:
    query = statement if isinstance(statement, Query) else Query(statement, expand=True)
    return query.sql, query.args(values)


async def rows(
    conn: Connection, row_type: type[RowT], statement: Statement, /, **values: Any
) -> list[RowT]:
    """Every row of the statement, read as `row_type`."""
    sql, args = _bound(statement, values)
    if isinstance(statement, Query) and statement.planned_per_call:
        # The pool's proxy hands attributes it lacks to its PoolConnection.
        return cast(list[RowT], await cast(PoolConnection, conn).fetch_planned(sql, *args))
    return cast(list[RowT], await conn.fetch(sql, *args))


async def row(
    conn: Connection, row_type: type[RowT], statement: Statement, /, **values: Any
) -> RowT | None:
    """The statement's first row, read as `row_type`, or None."""
    sql, args = _bound(statement, values)
    return cast(RowT | None, await conn.fetchrow(sql, *args))


async def value(conn: Connection, statement: Statement, /, **values: Any) -> object:
    """The first column of the statement's first row (None when there is no row)."""
    sql, args = _bound(statement, values)
    return cast(object, await conn.fetchval(sql, *args))


async def execute(conn: Connection, statement: Statement, /, **values: Any) -> int:
    """Run the statement; how many rows it wrote (0 for a statement that writes none)."""
    sql, args = _bound(statement, values)
    status = await conn.execute(sql, *args)
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0
