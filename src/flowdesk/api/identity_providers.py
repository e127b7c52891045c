"""HTTP endpoints of the tenant's OpenID providers (/v1/tenant/identity-providers): whose
tokens flowdesk accepts for this tenant, and how a person signing in becomes a user. Admin."""

from __future__ import annotations

import contextlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response, status

from flowdesk.api.auth import AdminPrincipal
from flowdesk.api.db import Tx, after_commit
from flowdesk.audit.log import Actor, record
from flowdesk.auth import identity
from flowdesk.auth.identity_schemas import (
    IdentityProviderIn,
    IdentityProviderList,
    IdentityProviderOut,
    ProviderName,
)
from flowdesk.errors import NotFound
from flowdesk.runtime import runtime_of

router = APIRouter(prefix="/v1/tenant/identity-providers", tags=["administration"])

NamePath = Annotated[ProviderName, Path(description="The provider's name in this tenant.")]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid API key or token"},
    403: {"description": "The caller is not an administrator"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such provider"}}
PUT_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "Another provider (of any tenant) has this issuer and audience"},
    422: {
        "description": "An issuer or JWKS URL not https off loopback, or a group that is not "
        "the tenant's"
    },
}


def forget_after_commit(request: Request, tenant_id: uuid.UUID) -> None:
    """A provider change takes effect on this worker at commit, before the notification that
    tells every worker arrives (flowdesk.db.listener)."""
    authenticator = runtime_of(request).authenticator
    after_commit(request, lambda: authenticator.forget_tenant(tenant_id))


@router.get(
    "",
    response_model=IdentityProviderList,
    summary="The OpenID providers whose tokens sign people in to this tenant",
    responses=ERRORS,
)
async def list_providers(principal: AdminPrincipal, conn: Tx) -> IdentityProviderList:
    found = await identity.list_providers(conn, principal.tenant_id)
    return IdentityProviderList(items=[IdentityProviderOut.of(p) for p in found])


@router.get(
    "/{name}",
    response_model=IdentityProviderOut,
    summary="An OpenID provider",
    responses={**ERRORS, **NOT_FOUND},
)
async def get_provider(name: NamePath, principal: AdminPrincipal, conn: Tx) -> IdentityProviderOut:
    return IdentityProviderOut.of(await identity.get_provider(conn, principal.tenant_id, name))


@router.put(
    "/{name}",
    response_model=IdentityProviderOut,
    summary="Trust an OpenID provider, or change how it is trusted",
    description=(
        "Tokens whose `iss` and `aud` are this provider's issuer and audience, signed by a key "
        "of its JWKS (RS256, ES256 or EdDSA), sign people in to this tenant as "
        "`Authorization: Bearer <JWT>`. A person's first sign-in makes a user from the "
        "token's claims, in `default_group_id`; each sign-in refreshes their name and e-mail "
        "and, with `groups_claim` and `group_map`, sets their memberships of the mapped groups."
    ),
    responses={**ERRORS, **PUT_ERRORS},
)
async def put_provider(
    name: NamePath,
    body: IdentityProviderIn,
    request: Request,
    principal: AdminPrincipal,
    conn: Tx,
) -> IdentityProviderOut:
    before: IdentityProviderOut | None = None
    with contextlib.suppress(NotFound):
        before = IdentityProviderOut.of(
            await identity.get_provider(conn, principal.tenant_id, name)
        )
    saved = await identity.put_provider(conn, principal.tenant_id, name, body.settings())
    forget_after_commit(request, principal.tenant_id)
    after = IdentityProviderOut.of(saved)
    await record(
        conn,
        principal.tenant_id,
        Actor.of(principal),
        "identity_provider.created" if before is None else "identity_provider.updated",
        ("identity_provider", name),
        before=before,
        after=after,
    )
    return after


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop trusting an OpenID provider (its users stay)",
    responses={**ERRORS, **NOT_FOUND},
)
async def delete_provider(
    name: NamePath, request: Request, principal: AdminPrincipal, conn: Tx
) -> Response:
    before = IdentityProviderOut.of(await identity.get_provider(conn, principal.tenant_id, name))
    await identity.delete_provider(conn, principal.tenant_id, name)
    await record(
        conn,
        principal.tenant_id,
        Actor.of(principal),
        "identity_provider.deleted",
        ("identity_provider", name),
        before=before,
    )
    forget_after_commit(request, principal.tenant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
