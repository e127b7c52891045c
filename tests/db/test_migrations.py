"""Migrations against a real database: up, down, up again, and no drift from the models."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from flowdesk.db import migrate
from flowdesk.models import metadata


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            return {r[0] for r in rows}
    finally:
        await engine.dispose()


async def _diff(url: str) -> list[object]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), metadata
                )
            )
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
