"""What every `flowdesk` command shares: the settings, the database (migrated), a unit of work
on it, and how a command fails.

Every command that touches the database uses the same one as `serve`: FLOWDESK_DATABASE_URL
when set, else the embedded server of FLOWDESK_DATA_DIR (joining the one `serve` runs, or
starting it for the command and stopping it afterwards).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, NoReturn, TypeVar

import click

if TYPE_CHECKING:  # imported when a command runs: `flowdesk --help` and the workflow commands
    # (run in loops and editors) stay quick
    from flowdesk.config import Settings
    from flowdesk.db.pool import Database
    from flowdesk.db.query import Connection

T = TypeVar("T")


def load_settings(**overrides: object) -> Settings:
    """The settings from the environment, with the options given on the command line."""
    from flowdesk.config import get_settings

    base = get_settings()
    values = {k: v for k, v in overrides.items() if v is not None}
    return base.model_copy(update=values) if values else base


def prepared_database(settings: Settings) -> str:
    """The URL of the database, migrated to head."""
    from flowdesk.app import database_url
    from flowdesk.db import migrate

    url = database_url(settings)
    migrate.upgrade(url)
    return url


def with_database(url: str, settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work(db)` on a pool of one connection, closed afterwards."""

    from flowdesk.db.pool import Database

    async def runner() -> T:
        db = await Database.open(url, settings, size=1)
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(runner())


def run_in_transaction(
    url: str, settings: Settings, work: Callable[[Connection], Awaitable[T]]
) -> T:
    """Run `work(conn)` in one transaction (the command's unit of work): committed when it
    returns, rolled back when it raises."""

    async def in_transaction(db: Database) -> T:
        async with db.transaction() as conn:
            return await work(conn)

    return with_database(url, settings, in_transaction)


def fail(message: str) -> NoReturn:
    click.echo(f"flowdesk: {message}", err=True)
    sys.exit(1)
