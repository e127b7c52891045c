"""`flowdesk attachments sweep`: delete the bucket's objects that no attachment names
(registered by flowdesk.cli; ADR 0017)."""

from __future__ import annotations

import json
from datetime import timedelta

import click

from flowdesk.cli.common import fail, load_settings, prepared_database, with_database


@click.group("attachments")
def attachments_cli() -> None:
    """Attachments' storage."""


@attachments_cli.command("sweep")
@click.option(
    "--older-than-hours",
    type=click.FloatRange(min=0),
    default=24.0,
    show_default=True,
    help="Leave younger objects alone (an upload in flight has its object, not yet its row).",
)
@click.option("--dry-run", is_flag=True, help="Print the orphans; delete nothing.")
def attachments_sweep(older_than_hours: float, dry_run: bool) -> None:
    """Delete the objects under attachments/ in FLOWDESK_ATTACHMENT_S3_BUCKET that no
    attachment names (left by a crash between an upload and its commit, or by a deleted
    ticket or tenant); print them."""
    from flowdesk.attachments.storage import S3Store
    from flowdesk.attachments.sweep import Swept, sweep_orphans
    from flowdesk.db.pool import Database

    settings = load_settings()
    if not settings.attachment_s3_bucket:
        fail("no bucket: attachments are kept in PostgreSQL (FLOWDESK_ATTACHMENT_S3_BUCKET)")
    store = S3Store.from_settings(settings)

    async def work(db: Database) -> Swept:
        return await sweep_orphans(db, store, timedelta(hours=older_than_hours), dry_run=dry_run)

    swept = with_database(prepared_database(settings), settings, work)
    click.echo(
        json.dumps(
            {"dry_run": dry_run, "examined": swept.examined, "orphans": swept.orphans}, indent=2
        )
    )
