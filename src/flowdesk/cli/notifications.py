"""The notification commands: `flowdesk worker` (a relay process on its own, for deployments
that keep it apart from the API processes) and `flowdesk mail list|show` (the mails written to
the Maildir when no SMTP server is configured). Registered by flowdesk.cli."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import click

from flowdesk.cli.common import fail, load_settings, prepared_database

# The worker's poll interval when the environment turned relaying off (for the API processes
# of a deployment that runs workers).
DEFAULT_POLL_SECONDS = 0.5


@click.command()
@click.option("--once", is_flag=True, help="Relay everything due now, then exit.")
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0.01),
    default=None,
    help="How often to look for work when idle (default: FLOWDESK_RELAY_POLL_SECONDS).",
)
def worker(once: bool, poll_seconds: float | None) -> None:
    """Relay notifications (e-mail, webhooks) until stopped (SIGTERM, Ctrl-C)."""
    from flowdesk.db.pool import Database
    from flowdesk.notifications.relay import Relay, purge_job
    from flowdesk.workflow import CatalogError, load_catalog

    settings = load_settings()
    poll = poll_seconds or settings.relay_poll_seconds or DEFAULT_POLL_SECONDS
    settings = settings.model_copy(update={"relay_poll_seconds": poll})
    try:
        catalog = load_catalog(settings.workflow_files)
    except CatalogError as exc:
        fail(f"the workflow catalog has errors: {exc}")
    url = prepared_database(settings)

    async def run() -> None:
        db = await Database.open(url, settings, size=4)
        relay = Relay(db, settings, catalog)
        purge = purge_job(db, settings)
        try:
            if once:
                await relay.drain()
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            relay.start()
            purge.start()
            click.echo(f"flowdesk: worker relaying notifications (pid {os.getpid()})")
            await stop.wait()
        finally:
            await purge.stop()
            await relay.stop()
            await db.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


@click.group()
def mail() -> None:
    """The mails written to the Maildir (FLOWDESK_DATA_DIR/mail) when no SMTP server is set."""


@mail.command("list")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
def mail_list(limit: int) -> None:
    """The newest mails: id, date, recipient, subject."""
    from flowdesk.notifications.mail import list_maildir

    settings = load_settings()
    stored = list_maildir(settings.data_dir / "mail", limit)
    if not stored:
        click.echo(f"flowdesk: no mail in {settings.data_dir / 'mail'}")
        return
    for item in stored:
        click.echo(f"{item.key}  {item.date}  {item.to}  {item.subject}")


@mail.command("show")
@click.argument("mail_id")
def mail_show(mail_id: str) -> None:
    """One mail, by the id `flowdesk mail list` prints (or its Message-ID)."""
    from flowdesk.notifications.mail import show_maildir

    settings = load_settings()
    text = show_maildir(settings.data_dir / "mail", mail_id)
    if text is None:
        fail(f"no mail {mail_id!r} in {settings.data_dir / 'mail'}")
    click.echo(text)
