"""Plain SQL for test set-up and checks, on the app's own pool (positional $n parameters)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from asyncpg import Record
from fastapi import FastAPI

from tests.support import runtime


async def fetch(app: FastAPI, sql: str, *args: object) -> list[Record]:
    async with runtime(app).db.connection() as conn:
        return await conn.fetch(sql, *args)


async def fetchval(app: FastAPI, sql: str, *args: object) -> object:
    async with runtime(app).db.connection() as conn:
        return await conn.fetchval(sql, *args)


async def execute(app: FastAPI, *statements: str, args: tuple[object, ...] = ()) -> None:
    """Run the statements in one transaction (each with `args`, when given)."""
    async with runtime(app).db.transaction() as conn:
        for statement in statements:
            await conn.execute(statement, *args)


@contextlib.asynccontextmanager
async def failing_writes(app: FastAPI, table: str, *, on: str = "INSERT") -> AsyncIterator[None]:
    """While inside, every `on` (INSERT, UPDATE, DELETE) into `table` fails: a fault injected
    after a use case's first write, to prove it leaves nothing half-written."""
    await execute(
        app,
        "CREATE OR REPLACE FUNCTION test_injected_fault() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
        f"CREATE TRIGGER test_injected_fault BEFORE {on} ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION test_injected_fault()",
    )
    try:
        yield
    finally:
        await execute(app, f"DROP TRIGGER test_injected_fault ON {table}")
