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
from datetime import datetime
from typing import TYPE_CHECKING, NoReturn, TypeVar

import click

if TYPE_CHECKING:  # imported when a command runs: `flowdesk --help` and the workflow commands
    # (run in loops and editors) stay quick
    from flowdesk.config import Settings
    from flowdesk.db.pool import Database
    from flowdesk.db.query import Connection
    from flowdesk.workflow import Catalog

T = TypeVar("T")
if TYPE_CHECKING:
    # A timed job's run: what it did (or would do) at a time, None for the database's now.
    Tick = Callable[[Database, Catalog, datetime | None], Awaitable[list[T]]]
F = TypeVar("F", bound=Callable[..., object])


def load_settings(**overrides: object) -> Settings:
    """The settings from the environment, with the options given on the command line."""
    from flowdesk.config import get_settings

    base = get_settings()
    values = {k: v for k, v in overrides.items() if v is not None}
    return base.model_copy(update=values) if values else base


def prepared_database(settings: Settings, *, migrate: bool | None = None) -> str:
    """The URL of the database, migrated to head (`migrate`, by default the `auto_migrate`
    setting) as the migration role when one is configured; not migrated, it is checked not to
    be behind this release (a deployment that migrates in a job of its own)."""
    from flowdesk.app import database_url
    from flowdesk.db import migrate as migrations

    url = database_url(settings)
    if settings.auto_migrate if migrate is None else migrate:
        migrations.upgrade(settings.migration_database_url or url)
    else:
        _check_schema_current(url)
    return url


def _check_schema_current(url: str) -> None:
    """Refuse to work on a schema older than this release's migrations: the job that runs
    `flowdesk migrate` has not run yet. A schema newer than this release (a revision it does
    not know: a release being rolled back, or replicas of the previous release during an
    upgrade) is served, as the expand/contract rule allows (README, Operations)."""
    import asyncpg
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from flowdesk.db import migrate as migrations
    from flowdesk.db.pool import asyncpg_dsn

    async def current() -> set[str]:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            rows = await conn.fetch("SELECT version_num FROM alembic_version")
        except asyncpg.UndefinedTableError:
            return set()
        finally:
            await conn.close()
        return {str(r["version_num"]) for r in rows}

    script = ScriptDirectory.from_config(migrations.alembic_config(url))
    heads = set(script.get_heads())
    revisions = asyncio.run(current())
    if revisions == heads:
        return
    for revision in revisions:
        try:
            script.get_revision(revision)
        except CommandError:
            click.echo(
                f"flowdesk: warning: the schema is at {revision}, newer than this release "
                f"({', '.join(sorted(heads))}); serving",
                err=True,
            )
            return
    fail(
        f"the schema is at {', '.join(sorted(revisions)) or 'no revision'}, behind this "
        f"release ({', '.join(sorted(heads))}); run `flowdesk migrate` first "
        "(FLOWDESK_AUTO_MIGRATE is false)"
    )


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


def tick_options(command: F) -> F:
    """`--at` and `--dry-run`, as every timed job's `tick` command takes them."""
    command = click.option(
        "--dry-run", is_flag=True, help="Print what would happen; change nothing."
    )(command)
    return click.option(
        "--at",
        "at",
        default=None,
        metavar="TIMESTAMP",
        help="Act as if it were this time (ISO 8601 with a zone): replays a window missed "
        "during an outage. Default: the database's now.",
    )(command)


def parse_at(at: str | None) -> datetime | None:
    """The `--at` of a tick: an ISO 8601 time with its zone, or None for the database's now."""
    if at is None:
        return None
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        fail(f"--at: '{at}' is not an ISO 8601 timestamp")
    if when.tzinfo is None:
        fail("--at: give a time zone (e.g. 2026-12-01T09:00:00Z)")
    return when


def run_tick(at: str | None, dry_run: bool, tick: Tick[T], preview: Tick[T]) -> list[T]:
    """One run of a timed job (`tick`, or with `--dry-run` its `preview`) against the catalog
    and database `serve` uses, as if at `--at`; what it did, or would do."""
    from flowdesk.workflow import load_catalog

    when = parse_at(at)
    settings = load_settings()
    catalog = load_catalog(settings.workflow_files)

    async def work(db: Database) -> list[T]:
        return await (preview if dry_run else tick)(db, catalog, when)

    return with_database(prepared_database(settings), settings, work)
