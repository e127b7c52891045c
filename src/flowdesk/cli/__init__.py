"""The `flowdesk` command: serve, worker, migrate, openapi, tenants (and their ITSM licence),
quotas, keys, workflows, mail. This module is the command group; it registers the sub-commands of
flowdesk.cli.itsm and flowdesk.workflow.cli, which share flowdesk.cli.common with it."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from flowdesk.cli.attachments import attachments_cli
from flowdesk.cli.common import (
    fail,
    load_settings,
    prepared_database,
    run_in_transaction,
)
from flowdesk.cli.identity import identity_provider_cli
from flowdesk.cli.itsm import license_command, quotas_cli
from flowdesk.cli.notifications import mail, worker
from flowdesk.cli.sla import sla_cli
from flowdesk.cli.timers import timers_cli
from flowdesk.logs import configure as configure_logging
from flowdesk.logs import logging_config
from flowdesk.workflow.cli import workflows_cli

if TYPE_CHECKING:  # imported when a command runs: the workflow commands stay quick
    from flowdesk.config import Settings
    from flowdesk.db.query import Connection
    from flowdesk.tenants.service import NewKey, NewTenant

DEMO_SLUG = "demo"


@click.group()
@click.version_option(package_name="flowdesk")
def main() -> None:
    """flowdesk: multi-tenant service-desk ticketing with workflows as configuration."""
    # Read here from the environment rather than through the settings: the workflow commands
    # stay quick. `serve` hands the same configuration to uvicorn's workers.
    configure_logging(os.environ.get("FLOWDESK_LOG_FORMAT", "text").strip().lower())


@main.command()
@click.option(
    "--host", envvar="FLOWDESK_HOST", default=None, help="Bind address (default 127.0.0.1)."
)
@click.option("--port", envvar="FLOWDESK_PORT", type=int, default=None, help="Port (default 8000).")
@click.option(
    "--workers", envvar="FLOWDESK_WORKERS", type=int, default=None, help="Worker processes."
)
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Migrate the database and serve the API (uvloop + httptools)."""
    import uvicorn

    settings = load_settings(host=host, port=port, workers=workers)
    if settings.metrics_enabled:
        _prepare_metrics_dir(settings)
    _check_catalog(settings)
    url = prepared_database(settings)
    # Only the embedded (development) database gets a demo tenant; a production database is
    # given its tenants with `flowdesk tenants create`.
    if settings.seed_demo and settings.database_url is None:
        _seed_demo_tenant(url, settings)
    # Worker processes read the URL from the environment, so the embedded server is started
    # once, here, and shared by all of them.
    os.environ["FLOWDESK_DATABASE_URL"] = url
    _exit_cleanly_on_signals()
    base = f"http://{settings.host}:{settings.port}"
    if settings.docs_enabled:
        click.echo(
            f"flowdesk: serving on {base} (OpenAPI docs: {base}/docs, schema: {base}/openapi.json)"
        )
    else:
        click.echo(f"flowdesk: serving on {base} (OpenAPI docs off)")
    uvicorn.run(
        "flowdesk.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        # httptools with a header deadline and a header budget (docs/deployment.md).
        http="flowdesk.api.protocol:LimitedHttpToolsProtocol",
        log_config=logging_config(settings.log_format),
        log_level=settings.log_level,
        access_log=settings.access_log,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        limit_concurrency=settings.limit_concurrency,
        # The same header budget, were uvicorn's h11 protocol ever chosen instead.
        h11_max_incomplete_event_size=settings.max_header_bytes,
        # On SIGTERM: stop accepting, let requests in flight finish for this long, then the
        # lifespan's shutdown (usage flush, pool close). docs/deployment.md relates it to the
        # container's stop grace period.
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_seconds),
        timeout_keep_alive=settings.keepalive_seconds,
    )


def _prepare_metrics_dir(settings: Settings) -> None:
    """Prometheus's multiprocess mode: every worker writes its samples to files in one
    directory, which /metrics adds up. Emptied at start (the files of a previous run would
    count again), and set in the environment before prometheus_client is first imported here
    or in a worker (it chooses its mode at import)."""
    directory = (settings.data_dir / "prometheus").resolve()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def _check_catalog(settings: Settings) -> None:
    """Refuse to start on a broken workflow catalog, saying where and what (file:line:col);
    print its warnings. Every worker compiles it again (create_app), identically."""
    from flowdesk.workflow import CatalogError, load_catalog

    try:
        catalog = load_catalog(settings.workflow_files)
    except CatalogError as exc:
        for diagnostic in exc.diagnostics:
            click.echo(f"flowdesk: {diagnostic}", err=True)
        fail("the workflow catalog has errors; not starting")
    for warning in catalog.warnings:
        click.echo(f"flowdesk: warning: {warning}", err=True)


def _exit_cleanly_on_signals() -> None:
    """uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal to the
    handler that was installed before it. Make that handler a normal exit, so that exit hooks
    run and the embedded PostgreSQL this process started is stopped rather than orphaned."""

    def exit_now(signum: int, _frame: object) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, exit_now)
    signal.signal(signal.SIGINT, exit_now)


def _seed_demo_tenant(url: str, settings: Settings) -> None:
    """On an empty database, a demo tenant and its admin key, printed once."""
    from flowdesk.itsm.service import LicenceChange, update_licence
    from flowdesk.tenants.service import count_tenants, create_tenant
    from flowdesk.vocabulary import FLAGS

    async def work(conn: Connection) -> NewTenant | None:
        if await count_tenants(conn) > 0:
            return None
        created = await create_tenant(conn, DEMO_SLUG, "Demo", "TKT")
        # The demo is a working desk: the ITSM add-on licensed with every feature on.
        everything = LicenceChange(active=True, flags=dict.fromkeys(FLAGS, True))
        await update_licence(conn, created.tenant["id"], everything, "demo-seed")
        return created

    created = run_in_transaction(url, settings, work)
    if created is not None:
        click.echo(
            f"flowdesk: created the demo tenant '{DEMO_SLUG}' with admin {created.admin['email']}"
        )
        click.echo("flowdesk: its admin API key (shown once, keep it):")
        click.echo(f"FLOWDESK_ADMIN_KEY={created.key.secret}")


@main.command()
def migrate() -> None:
    """Upgrade the database schema to the latest revision (as FLOWDESK_MIGRATION_DATABASE_URL's
    role when set, else FLOWDESK_DATABASE_URL's), whatever FLOWDESK_AUTO_MIGRATE says."""
    settings = load_settings()
    if settings.migration_database_url:
        # The migration job needs no other URL (nor an embedded server started for nothing).
        from flowdesk.db import migrate as migrations

        migrations.upgrade(settings.migration_database_url)
    else:
        prepared_database(settings, migrate=True)
    click.echo("flowdesk: database is at the latest revision")


@main.command()
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("openapi/openapi.json"),
)
@click.option(
    "--check", is_flag=True, help="Exit 1 if the file differs from what the app generates."
)
def openapi(output: Path, check: bool) -> None:
    """Write the OpenAPI document (or check the committed one for drift)."""
    from flowdesk.app import create_app

    document = (
        json.dumps(create_app(load_settings()).openapi(), indent=2, ensure_ascii=False) + "\n"
    )
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != document:
            fail(f"{output} is out of date; run `flowdesk openapi` and commit it")
        click.echo(f"flowdesk: {output} is up to date")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(document, encoding="utf-8")
    click.echo(f"flowdesk: wrote {output}")


@main.group()
def tenants() -> None:
    """Create and manage tenants."""


@tenants.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="Display name.")
@click.option("--prefix", default="TKT", show_default=True, help="Ticket number prefix.")
@click.option("--admin-email", default=None, help="E-mail of the first admin.")
def tenants_create(slug: str, name: str, prefix: str, admin_email: str | None) -> None:
    """Create a tenant and its admin; print the admin's API key."""
    from pydantic import TypeAdapter, ValidationError

    from flowdesk.errors import AppError
    from flowdesk.schema_types import Name, Slug, TicketPrefix
    from flowdesk.tenants.service import create_tenant

    try:
        slug = TypeAdapter(Slug).validate_python(slug)
        name = TypeAdapter(Name).validate_python(name)
        prefix = TypeAdapter(TicketPrefix).validate_python(prefix)
    except ValidationError as exc:
        fail(f"invalid input: {exc.errors()[0]['msg']}")

    async def work(conn: Connection) -> NewTenant:
        return await create_tenant(conn, slug, name, prefix, admin_email)

    settings = load_settings()
    try:
        created = run_in_transaction(prepared_database(settings), settings, work)
    except AppError as exc:
        fail(exc.detail)
    click.echo(f"flowdesk: created tenant '{slug}' with admin {created.admin['email']}")
    click.echo(
        f"flowdesk: the ITSM add-on is not licensed yet: `flowdesk tenants license {slug} "
        "--activate`"
    )
    click.echo(f"FLOWDESK_ADMIN_KEY={created.key.secret}")


@main.group()
def keys() -> None:
    """Manage API keys."""


@keys.command("create")
@click.option("--tenant", "slug", required=True, help="Tenant slug.")
@click.option("--user", "email", required=True, help="E-mail of the key's user.")
@click.option("--scopes", required=True, help="Comma-separated: tickets:read,tickets:write,admin")
@click.option("--name", default="cli key", show_default=True)
@click.option(
    "--channel",
    type=click.Choice(["first_party", "public"]),
    default="first_party",
    show_default=True,
    help="The API the key is for: first_party (/v1) or public (/public/v1).",
)
def keys_create(slug: str, email: str, scopes: str, name: str, channel: str) -> None:
    """Create an API key for a user; print it (shown once)."""
    from flowdesk.audit import log as audit_log
    from flowdesk.errors import AppError
    from flowdesk.itsm.service import tenant_by_slug
    from flowdesk.tenants.service import create_key, user_by_email
    from flowdesk.vocabulary import SCOPES

    wanted = sorted({s.strip() for s in scopes.split(",") if s.strip()})
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown or not wanted:
        fail(f"unknown scopes {unknown}; choose from {sorted(SCOPES)}")

    async def work(conn: Connection) -> NewKey:
        tenant = await tenant_by_slug(conn, slug)
        user = await user_by_email(conn, tenant["id"], email)
        new = await create_key(conn, tenant["id"], user["id"], name, wanted, None, channel=channel)
        # The tenant's admins see the operator's key in their audit log (flowdesk.audit).
        await audit_log.record(
            conn,
            tenant["id"],
            audit_log.OPERATOR,
            "api_key.created",
            ("api_key", new.record["id"]),
            after=new.record,
        )
        return new

    settings = load_settings()
    try:
        new = run_in_transaction(prepared_database(settings), settings, work)
    except AppError as exc:
        fail(exc.detail)
    click.echo(new.secret)


main.add_command(workflows_cli, "workflows")
main.add_command(attachments_cli, "attachments")
tenants.add_command(license_command, "license")
tenants.add_command(identity_provider_cli, "identity-provider")
main.add_command(quotas_cli, "quotas")
main.add_command(timers_cli, "timers")
main.add_command(sla_cli, "sla")
main.add_command(worker, "worker")
main.add_command(mail, "mail")
