"""/platform/v1: what the platform operator (not a tenant) does: list tenants, activate and
shape their ITSM licences, read quota alerts and API usage. Tag "platform"."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import AfterValidator

from flowdesk.api.db import Tx, after_commit
from flowdesk.api.identity_providers import NamePath, forget_after_commit
from flowdesk.api.openapi import NAMED_IN_REQUEST
from flowdesk.api.params import FromDay, ToDay, cursor_page
from flowdesk.api.platform_auth import PlatformOperator
from flowdesk.auth import identity
from flowdesk.auth.identity_schemas import (
    IdentityProviderIn,
    IdentityProviderList,
    IdentityProviderOut,
)
from flowdesk.itsm import service
from flowdesk.itsm.controls import default_policy
from flowdesk.itsm.quotas import run_quota_check
from flowdesk.itsm.repository import AlertRow
from flowdesk.itsm.schemas import (
    LicenceEventOut,
    LicencePatch,
    QuotaAlertOut,
    QuotaCheckOut,
    TenantOut,
)
from flowdesk.pagination import (
    Page,
    PageRequest,
    cursor_int,
    cursor_text,
    next_cursor,
)
from flowdesk.runtime import runtime_of
from flowdesk.schema_types import SLUG_LENGTH, no_nul
from flowdesk.usage.schemas import UsageReport
from flowdesk.usage.service import usage_report

router = APIRouter(prefix="/platform/v1", tags=["platform"])


@router.get("/tenants", response_model=Page[TenantOut], summary="Every tenant, by slug")
async def list_tenants(
    operator: PlatformOperator,
    request: Request,
    conn: Tx,
    page: PageRequest = cursor_page(cursor_text(SLUG_LENGTH)),
) -> Page[TenantOut]:
    limit = page.limit
    rows = await service.tenants_page(conn, limit, page.after_key)
    policy = default_policy(runtime_of(request).settings)
    items = [await service.describe(conn, t, policy, t["agents"]) for t in rows[:limit]]
    cursor_out = next_cursor(rows, limit, lambda t: [t["slug"]])
    return Page[TenantOut](items=items, next_cursor=cursor_out)


@router.get("/tenants/{slug}", response_model=TenantOut, summary="A tenant and its licence")
async def get_tenant(
    slug: str, operator: PlatformOperator, request: Request, conn: Tx
) -> TenantOut:
    tenant = await service.tenant_by_slug(conn, slug)
    return await service.describe(conn, tenant, default_policy(runtime_of(request).settings))


@router.patch(
    "/tenants/{slug}/licence",
    response_model=TenantOut,
    summary="Activate or deactivate the ITSM licence; set its flags, quotas and rate limit",
    description=(
        "Every field is optional. `active: true` activates the add-on (and creates the "
        "tenant's \"ITSM Agent\" system group), `false` closes the tenant's ticket endpoints. "
        "`flags` and `quotas` change only the entries given (a quota of null is unlimited); "
        "`rate_limit: null` returns the tenant to the service's default policy. Every change "
        "is written to the licence log. A quota lowered below current use opens a quota alert."
    ),
)
async def patch_licence(
    slug: str,
    body: LicencePatch,
    operator: PlatformOperator,
    request: Request,
    conn: Tx,
) -> TenantOut:
    tenant = await service.tenant_by_slug(conn, slug)
    change = service.LicenceChange(
        active=body.active,
        flags={str(k): v for k, v in (body.flags or {}).items()},
        quotas=body.quotas.model_dump(exclude_unset=True) if body.quotas else {},
        rate_limit=(
            service.UNCHANGED
            if "rate_limit" not in body.model_fields_set
            else (body.rate_limit.requests, body.rate_limit.window_seconds)
            if body.rate_limit
            else None
        ),
    )
    result = await service.update_licence(conn, tenant["id"], change, operator)
    runtime = runtime_of(request)
    after_commit(request, lambda: runtime.controls.forget_tenant(tenant["id"]))
    policy = default_policy(runtime.settings)
    return await service.describe(conn, result.tenant, policy, result.agents)


@router.get(
    "/tenants/{slug}/licence/events",
    response_model=Page[LicenceEventOut],
    summary="The log of a tenant's licence changes, newest first",
)
async def licence_events(
    slug: str,
    operator: PlatformOperator,
    conn: Tx,
    page: PageRequest = cursor_page(cursor_int),
) -> Page[LicenceEventOut]:
    tenant = await service.tenant_by_slug(conn, slug)
    limit = page.limit
    rows = await service.licence_log(conn, tenant["id"], limit, page.after_key)
    items = [LicenceEventOut.model_validate(dict(e)) for e in rows[:limit]]
    cursor_out = next_cursor(rows, limit, lambda e: [e["id"]])
    return Page[LicenceEventOut](items=items, next_cursor=cursor_out)


@router.get(
    "/quota-alerts",
    response_model=Page[QuotaAlertOut],
    summary="Quota alerts: refused overruns and tenants found over quota, newest first",
    responses=NAMED_IN_REQUEST,
)
async def list_quota_alerts(
    operator: PlatformOperator,
    conn: Tx,
    tenant: Annotated[
        str | None, Query(description="A tenant's slug.", max_length=63), AfterValidator(no_nul)
    ] = None,
    kind: Annotated[str | None, Query(pattern="^(refused|over_quota)$")] = None,
    open_only: Annotated[bool, Query(alias="open", description="Only unresolved alerts.")] = False,
    page: PageRequest = cursor_page(cursor_int),
) -> Page[QuotaAlertOut]:
    limit = page.limit
    rows = await service.quota_alerts(
        conn,
        tenant_slug=tenant,
        kind=kind,
        open_only=open_only,
        limit=limit,
        before=page.after_key,
    )
    items = [_alert_out(alert) for alert in rows[:limit]]
    cursor_out = next_cursor(rows, limit, lambda a: [a["id"]])
    return Page[QuotaAlertOut](items=items, next_cursor=cursor_out)


@router.post(
    "/quota-checks",
    response_model=QuotaCheckOut,
    summary="Run the background quota check now",
)
async def run_quota_check_now(operator: PlatformOperator, request: Request) -> QuotaCheckOut:
    result = await run_quota_check(runtime_of(request).db)
    return QuotaCheckOut(
        ran=result.ran, tenants_checked=result.tenants_checked, over_quota=result.over_quota
    )


@router.get(
    "/tenants/{slug}/usage",
    response_model=UsageReport,
    summary="A tenant's API requests per key per day, by endpoint family and status class",
)
async def tenant_usage(
    slug: str,
    operator: PlatformOperator,
    conn: Tx,
    first: FromDay = None,
    last: ToDay = None,
    api_key_id: uuid.UUID | None = None,
) -> UsageReport:
    tenant = await service.tenant_by_slug(conn, slug)
    return await usage_report(conn, tenant["id"], first, last, api_key_id)


# --- a tenant's identity providers (as /v1/tenant/identity-providers, for the operator) -----


@router.get(
    "/tenants/{slug}/identity-providers",
    response_model=IdentityProviderList,
    summary="A tenant's OpenID providers",
)
async def list_identity_providers(
    slug: str, operator: PlatformOperator, conn: Tx
) -> IdentityProviderList:
    tenant = await service.tenant_by_slug(conn, slug)
    found = await identity.list_providers(conn, tenant["id"])
    return IdentityProviderList(items=[IdentityProviderOut.of(p) for p in found])


@router.get(
    "/tenants/{slug}/identity-providers/{name}",
    response_model=IdentityProviderOut,
    summary="A tenant's OpenID provider",
)
async def get_identity_provider(
    slug: str, name: NamePath, operator: PlatformOperator, conn: Tx
) -> IdentityProviderOut:
    tenant = await service.tenant_by_slug(conn, slug)
    return IdentityProviderOut.of(await identity.get_provider(conn, tenant["id"], name))


@router.put(
    "/tenants/{slug}/identity-providers/{name}",
    response_model=IdentityProviderOut,
    summary="Make a tenant trust an OpenID provider, or change how it is trusted",
    responses={
        409: {"description": "Another provider (of any tenant) has this issuer and audience"},
        422: {"description": "An issuer or JWKS URL not https off loopback, or a foreign group"},
    },
)
async def put_identity_provider(
    slug: str,
    name: NamePath,
    body: IdentityProviderIn,
    operator: PlatformOperator,
    request: Request,
    conn: Tx,
) -> IdentityProviderOut:
    tenant = await service.tenant_by_slug(conn, slug)
    saved = await identity.put_provider(conn, tenant["id"], name, body.settings())
    forget_after_commit(request, tenant["id"])
    return IdentityProviderOut.of(saved)


@router.delete(
    "/tenants/{slug}/identity-providers/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Make a tenant stop trusting an OpenID provider",
)
async def delete_identity_provider(
    slug: str, name: NamePath, operator: PlatformOperator, request: Request, conn: Tx
) -> Response:
    tenant = await service.tenant_by_slug(conn, slug)
    await identity.delete_provider(conn, tenant["id"], name)
    forget_after_commit(request, tenant["id"])
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _alert_out(alert: AlertRow) -> QuotaAlertOut:
    return QuotaAlertOut(
        id=alert["id"],
        tenant_id=alert["tenant_id"],
        tenant_slug=alert["tenant_slug"],
        quota=alert["quota"],
        kind=alert["kind"],
        limit=alert["quota_limit"],
        current=alert["current_use"],
        detail=alert["detail"],
        open=alert["resolved_at"] is None,
        created_at=alert["created_at"],
        last_seen_at=alert["last_seen_at"],
        resolved_at=alert["resolved_at"],
    )
