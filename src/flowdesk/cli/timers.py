"""`flowdesk timers tick`: the catalog's timed moves (a status's `timeout`) once, from the
command line (registered by flowdesk.cli)."""

from __future__ import annotations

import json

import click

from flowdesk.cli.common import (
    load_settings,
    parse_at,
    prepared_database,
    tick_options,
    with_database,
)


@click.group("timers")
def timers_cli() -> None:
    """The catalog's timed moves (e.g. the ITSM auto-close of an unanswered resolution)."""


@timers_cli.command("tick")
@tick_options
def timers_tick(at: str | None, dry_run: bool) -> None:
    """Move every ticket whose status timed out, once; print what moved.

    Safe next to running servers: due tickets are claimed with FOR UPDATE SKIP LOCKED, so a
    ticket is moved by one process only."""
    from flowdesk.db.pool import Database
    from flowdesk.tickets.timers import Moved, preview, run_due
    from flowdesk.workflow import load_catalog

    when = parse_at(at)
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
