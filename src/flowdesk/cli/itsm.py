"""The operator's commands for the ITSM add-on: `flowdesk tenants license` and
`flowdesk quotas check` (registered by flowdesk.cli)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from flowdesk.cli.common import (
    fail,
    load_settings,
    prepared_database,
    run_in_transaction,
    with_database,
)
from flowdesk.vocabulary import FLAGS

if TYPE_CHECKING:
    from flowdesk.db.query import Connection


def _parse_flag(value: str) -> tuple[str, bool]:
    name, sep, state = value.partition("=")
    if not sep or state.lower() not in {"on", "off"}:
        raise click.BadParameter(f"{value!r}: give NAME=on or NAME=off")
    if name not in FLAGS:
        raise click.BadParameter(f"unknown flag {name!r}; choose from {', '.join(FLAGS)}")
    return name, state.lower() == "on"


def _parse_quota(value: str | None) -> int | str | None:
    """An integer, None for "unlimited", or "keep" when the option was not given."""
    if value is None:
        return "keep"
    if value.lower() == "unlimited":
        return None
    if not value.isdigit():
        raise click.BadParameter(f"{value!r}: give a number of zero or more, or 'unlimited'")
    return int(value)


def _parse_rate_limit(value: str | None) -> tuple[int, int] | str | None:
    """REQUESTS/SECONDS (e.g. 600/60), or "default"; "keep" when not given."""
    if value is None:
        return "keep"
    if value.lower() == "default":
        return None
    requests, sep, seconds = value.partition("/")
    if not (sep and requests.isdigit() and seconds.isdigit()) or not (
        int(requests) >= 1 and 1 <= int(seconds) <= 86_400
    ):
        raise click.BadParameter(f"{value!r}: give REQUESTS/SECONDS, e.g. 600/60, or 'default'")
    return int(requests), int(seconds)


@click.command("license")
@click.argument("slug")
@click.option("--activate/--deactivate", default=None, help="Turn the ITSM add-on on or off.")
@click.option(
    "--flag",
    "flags",
    multiple=True,
    metavar="NAME=on|off",
    help="Set a feature flag (repeatable).",
)
@click.option("--max-agents", default=None, metavar="N|unlimited", help="Agent seats.")
@click.option(
    "--max-emails-month", default=None, metavar="N|unlimited", help="Outbound e-mails a month."
)
@click.option(
    "--rate-limit",
    default=None,
    metavar="REQUESTS/SECONDS|default",
    help="Rate limit per API key, e.g. 600/60.",
)
def license_command(
    slug: str,
    activate: bool | None,
    flags: tuple[str, ...],
    max_agents: str | None,
    max_emails_month: str | None,
    rate_limit: str | None,
) -> None:
    """Activate, deactivate or shape a tenant's ITSM licence (platform operators only).

    With no option, prints the tenant's licence as it is. Every change is logged.
    """
    from flowdesk.errors import AppError
    from flowdesk.itsm.controls import default_policy
    from flowdesk.itsm.service import (
        UNCHANGED,
        LicenceChange,
        describe,
        tenant_by_slug,
        update_licence,
    )

    quotas: dict[str, int | None] = {}
    for name, raw in (("max_agents", max_agents), ("max_emails_month", max_emails_month)):
        parsed = _parse_quota(raw)
        if parsed != "keep":
            quotas[name] = parsed if isinstance(parsed, int) else None
    limit = _parse_rate_limit(rate_limit)
    change = LicenceChange(
        active=activate,
        flags=dict(_parse_flag(f) for f in flags),
        quotas=quotas,
        rate_limit=UNCHANGED if limit == "keep" else (limit if isinstance(limit, tuple) else None),
    )
    settings = load_settings()

    async def work(conn: Connection) -> str:
        tenant = await tenant_by_slug(conn, slug)
        result = await update_licence(conn, tenant["id"], change, "cli")
        out = await describe(conn, result.tenant, default_policy(settings), result.agents)
        return out.model_dump_json(indent=2)

    try:
        click.echo(run_in_transaction(prepared_database(settings), settings, work))
    except AppError as exc:
        fail(exc.detail)


@click.group("quotas")
def quotas_cli() -> None:
    """Quota checks of the ITSM licences."""


@quotas_cli.command("check")
def quotas_check() -> None:
    """Run the background quota check once; print the tenants over quota.

    Safe next to running servers: they and this command take turns through an advisory lock,
    and alerts are recorded once per tenant and quota."""
    from flowdesk.itsm.quotas import run_quota_check

    settings = load_settings()
    result = with_database(prepared_database(settings), settings, run_quota_check)
    if not result.ran:
        click.echo("flowdesk: another process is running the quota check; try again shortly")
        return
    click.echo(
        json.dumps(
            {"tenants_checked": result.tenants_checked, "over_quota": result.over_quota},
            indent=2,
        )
    )
