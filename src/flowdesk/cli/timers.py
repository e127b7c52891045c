"""`flowdesk timers tick`: the catalog's timed moves (a status's `timeout`) once, from the
command line (registered by flowdesk.cli)."""

from __future__ import annotations

import json
from datetime import datetime

import click

from flowdesk.cli.common import fail, load_settings, prepared_database, with_database


@click.group("timers")
def timers_cli() -> None:
    """The catalog's timed moves (e.g. the ITSM auto-close of an unanswered resolution)."""


@timers_cli.command("tick")
@click.option(
    "--at",
    "at",
    default=None,
    metavar="TIMESTAMP",
    help="Act as if it were this time (ISO 8601 with a zone): replays a window missed during "
    "an outage. Default: the database's now.",
)
@click.option("--dry-run", is_flag=True, help="Print what would move; change nothing.")
def timers_tick(at: str | None, dry_run: bool) -> None:
    """Move every ticket whose status timed out, once; print what moved.

    Safe next to running servers: due tickets are claimed with FOR UPDATE SKIP LOCKED, so a
    ticket is moved by one process only."""
    from flowdesk.db.pool import Database
    from flowdesk.tickets.timers import Moved, preview, run_due
    from flowdesk.workflow import load_catalog

    when = None
    if at is not None:
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            fail(f"--at: '{at}' is not an ISO 8601 timestamp")
        if when.tzinfo is None:
            fail("--at: give a time zone (e.g. 2026-12-01T09:00:00Z)")
    settings = load_settings()
    catalog = load_catalog(settings.workflow_files)

    async def work(db: Database) -> list[Moved]:
        return await (preview if dry_run else run_due)(db, catalog, when)

    moved = with_database(prepared_database(settings), settings, work)
    click.echo(
        json.dumps(
            {
                "dry_run": dry_run,
                "moved": [
                    {
                        "ticket_id": str(m.ticket_id),
                        "action": m.action,
                        "from": m.from_status,
                        "to": m.to_status,
                        **({"dropped": m.reason} if m.action is None else {}),
                    }
                    for m in moved
                ],
            },
            indent=2,
        )
    )
