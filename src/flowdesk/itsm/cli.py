"""The operator's commands for the ITSM add-on: `flowdesk tenants license` and
`flowdesk quotas check` (registered by flowdesk.cli)."""

from __future__ import annotations

import asyncio
import json

import click


def _parse_flag(value: str) -> tuple[str, bool]:
    from flowdesk.itsm.vocabulary import FLAGS

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
    from sqlalchemy.ext.asyncio import AsyncSession

    from flowdesk.cli import _fail, _prepared_database, _run_in_session, _settings
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
    settings = _settings()

    async def work(session: AsyncSession) -> str:
        tenant = await tenant_by_slug(session, slug)
        result = await update_licence(session, tenant.id, change, "cli")
        out = await describe(session, result.tenant, default_policy(settings), result.agents)
        return out.model_dump_json(indent=2)

    try:
        click.echo(_run_in_session(_prepared_database(settings), settings, work))
    except AppError as exc:
        _fail(exc.detail)


@click.group("quotas")
def quotas_cli() -> None:
    """Quota checks of the ITSM licences."""


@quotas_cli.command("check")
def quotas_check() -> None:
    """Run the background quota check once; print the tenants over quota.

    Safe next to running servers: they and this command take turns through an advisory lock,
    and alerts are recorded once per tenant and quota."""
    from flowdesk.cli import _prepared_database, _settings
    from flowdesk.db.engine import make_engine
    from flowdesk.itsm.quotas import QuotaCheckResult, run_quota_check

    settings = _settings()
    url = _prepared_database(settings)

    async def runner() -> QuotaCheckResult:
        engine = make_engine(url, settings, pool_size=1)
        try:
            return await run_quota_check(engine)
        finally:
            await engine.dispose()

    result = asyncio.run(runner())
    if not result.ran:
        click.echo("flowdesk: another process is running the quota check; try again shortly")
        return
    click.echo(
        json.dumps(
            {"tenants_checked": result.tenants_checked, "over_quota": result.over_quota},
            indent=2,
        )
    )
