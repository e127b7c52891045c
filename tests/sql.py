"""Plain SQL for test set-up and checks, on the app's own pool (positional $n parameters)."""

from __future__ import annotations

from asyncpg import Record
from fastapi import FastAPI

from flowdesk.runtime import Runtime


def runtime(app: FastAPI) -> Runtime:
    found: Runtime = app.state.runtime
    return found


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
