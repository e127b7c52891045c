"""`flowdesk tenants identity-provider set|list|delete`: the OpenID providers a tenant trusts,
for the operator (the same use cases as /v1/tenant/identity-providers). Registered by
flowdesk.cli."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from flowdesk.cli.common import fail, load_settings, prepared_database, run_in_transaction

if TYPE_CHECKING:
    from flowdesk.auth.identity import ProviderRow
    from flowdesk.db.query import Connection


def _show(provider: ProviderRow) -> str:
    from flowdesk.auth.identity_schemas import IdentityProviderOut

    return IdentityProviderOut.of(provider).model_dump_json()


@click.group("identity-provider")
def identity_provider_cli() -> None:
    """The OpenID providers whose tokens sign people in to a tenant."""


@identity_provider_cli.command("set")
@click.argument("slug")
@click.argument("name")
@click.option("--issuer", required=True, help="The issuer (iss): https, or http on loopback.")
@click.option("--audience", required=True, help="The audience (aud) its tokens carry.")
@click.option("--jwks-uri", default=None, help="Default: from the issuer's discovery document.")
@click.option("--email-claim", default="email", show_default=True)
@click.option("--name-claim", default="name", show_default=True)
@click.option("--groups-claim", default=None)
@click.option(
    "--map-group",
    "mapped",
    multiple=True,
    metavar="VALUE=GROUP_ID",
    help="A groups-claim value and the group it grants (repeatable).",
)
@click.option("--default-group", "default_group", default=None, help="Group id of first sign-in.")
def identity_provider_set(
    slug: str,
    name: str,
    issuer: str,
    audience: str,
    jwks_uri: str | None,
    email_claim: str,
    name_claim: str,
    groups_claim: str | None,
    mapped: tuple[str, ...],
    default_group: str | None,
) -> None:
    """Make tenant SLUG trust the provider NAME (created or replaced); print it as JSON."""
    from pydantic import TypeAdapter, ValidationError

    from flowdesk.auth import identity
    from flowdesk.auth.identity_schemas import IdentityProviderIn, ProviderName
    from flowdesk.errors import AppError, InvalidInput
    from flowdesk.itsm.service import tenant_by_slug

    group_map: dict[str, str] = {}
    for pair in mapped:
        value, sep, group_id = pair.partition("=")
        if not sep or not value:
            fail(f"--map-group {pair!r}: give VALUE=GROUP_ID")
        group_map[value] = group_id
    try:
        name = TypeAdapter(ProviderName).validate_python(name)
        body = IdentityProviderIn.model_validate(
            {
                "issuer": issuer,
                "audience": audience,
                "jwks_uri": jwks_uri,
                "email_claim": email_claim,
                "name_claim": name_claim,
                "groups_claim": groups_claim,
                "group_map": group_map or None,
                "default_group_id": default_group,
            }
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        fail(f"invalid input: {'.'.join(map(str, error['loc']))}: {error['msg']}")

    async def work(conn: Connection) -> ProviderRow:
        tenant = await tenant_by_slug(conn, slug)
        return await identity.put_provider(conn, tenant["id"], name, body.settings())

    settings = load_settings()
    try:
        saved = run_in_transaction(prepared_database(settings), settings, work)
    except InvalidInput as exc:
        problems = "; ".join(f"{e['pointer']} {e['detail']}" for e in exc.extra["errors"])
        fail(f"{exc.detail} {problems}")
    except AppError as exc:
        fail(exc.detail)
    click.echo(_show(saved))


@identity_provider_cli.command("list")
@click.argument("slug")
def identity_provider_list(slug: str) -> None:
    """Print tenant SLUG's providers, one JSON object a line."""
    from flowdesk.auth import identity
    from flowdesk.errors import AppError
    from flowdesk.itsm.service import tenant_by_slug

    async def work(conn: Connection) -> list[ProviderRow]:
        tenant = await tenant_by_slug(conn, slug)
        return await identity.list_providers(conn, tenant["id"])

    settings = load_settings()
    try:
        found = run_in_transaction(prepared_database(settings), settings, work)
    except AppError as exc:
        fail(exc.detail)
    for provider in found:
        click.echo(_show(provider))


@identity_provider_cli.command("delete")
@click.argument("slug")
@click.argument("name")
def identity_provider_delete(slug: str, name: str) -> None:
    """Make tenant SLUG stop trusting the provider NAME (its users stay)."""
    from flowdesk.auth import identity
    from flowdesk.errors import AppError
    from flowdesk.itsm.service import tenant_by_slug

    async def work(conn: Connection) -> None:
        tenant = await tenant_by_slug(conn, slug)
        await identity.delete_provider(conn, tenant["id"], name)

    settings = load_settings()
    try:
        run_in_transaction(prepared_database(settings), settings, work)
    except AppError as exc:
        fail(exc.detail)
    click.echo(f"flowdesk: tenant '{slug}' no longer trusts identity provider '{name}'")
