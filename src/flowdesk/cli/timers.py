"""`flowdesk timers tick`: the catalog's timed moves (a status's `timeout`) once, from the
command line (registered by flowdesk.cli)."""

from __future__ import annotations

import json

import click

from flowdesk.cli.common import run_tick, tick_options


@click.group("timers")
def timers_cli() -> None:
    """The catalog's timed moves (e.g. the ITSM auto-close of an unanswered resolution)."""


@timers_cli.command("tick")
@tick_options
def timers_tick(at: str | None, dry_run: bool) -> None:
    """Move every ticket whose status timed out, once; print what moved.

    Safe next to running servers: due tickets are claimed with FOR UPDATE SKIP LOCKED, so a
    ticket is moved by one process only."""
    from flowdesk.tickets.timers import preview, run_due

    moved = run_tick(at, dry_run, run_due, preview)
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
