"""Migrations against a real database: up, down, up again, and no drift from the tables in
flowdesk.models (columns, types, indexes, constraints and server defaults)."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from flowdesk.db import migrate
from flowdesk.db.pool import asyncpg_dsn
from flowdesk.models import metadata


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


def _compare(conn: Connection) -> list[object]:
    # Server defaults are compared too: every row id is made by the database (migration 0005),
    # and a table whose id lost its default would take no insert without one.
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "compare_server_default": True}
    )
    with warnings.catch_warnings():
        # Alembic says of a generated column that it cannot change its expression; it still
        # compares everything else of it.
        warnings.filterwarnings("ignore", "Computed default on", UserWarning)
        diff: list[object] = compare_metadata(context, metadata)
    return diff


async def _diff(url: str) -> list[object]:
    """Alembic's autogenerate diff, on a SQLAlchemy connection as Alembic's own env.py takes
    one (the service itself runs on the asyncpg pool, flowdesk.db.pool)."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_compare)
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade(create_database: Callable[[], str]) -> None:
    url = create_database()
    await asyncio.to_thread(migrate.upgrade, url)
    assert set(metadata.tables) <= await _tables(url)
    await asyncio.to_thread(migrate.downgrade, url, "base")
    assert await _tables(url) == {"alembic_version"}
    await asyncio.to_thread(migrate.upgrade, url)
    assert set(metadata.tables) <= await _tables(url)
    # Upgrading an up-to-date database is a no-op.
    await asyncio.to_thread(migrate.upgrade, url)


async def test_autogenerate_finds_no_difference(database_url: str) -> None:
    assert await _diff(database_url) == []
