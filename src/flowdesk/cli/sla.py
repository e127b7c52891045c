"""`flowdesk sla tick`: the SLA clocks' timed marks and automatic actions once, from the
command line (registered by flowdesk.cli)."""

from __future__ import annotations

import json

import click

from flowdesk.cli.common import run_tick, tick_options


@click.group("sla")
def sla_cli() -> None:
    """SLA clocks (the catalog's `sla_policies`): reminders, warnings, breaches."""


@sla_cli.command("tick")
@tick_options
def sla_tick(at: str | None, dry_run: bool) -> None:
    """Do every SLA mark and breach action that is due, once; print what was done.

    Safe next to running servers: due clocks are claimed with FOR UPDATE SKIP LOCKED, so each
    mark is done by one process only."""
    from flowdesk.tickets.sla_tick import preview, run_due

    fired = run_tick(at, dry_run, run_due, preview)
    click.echo(
        json.dumps(
            {
                "dry_run": dry_run,
                "fired": [
                    {
                        "ticket_id": str(f.ticket_id),
                        "clock": f.clock,
                        "marks": list(f.marks),
                        "action": f.action,
                        "to": f.to_status,
                        **({"note": f.note} if f.note else {}),
                    }
                    for f in fired
                ],
            },
            indent=2,
        )
    )
