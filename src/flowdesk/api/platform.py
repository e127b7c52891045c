"""/platform/v1: what the platform operator (not a tenant) does: list tenants, activate and
shape their ITSM licences, read quota alerts and API usage. Tag "platform"."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from flowdesk.db.session import DbSession, after_commit
from flowdesk.errors import InvalidInput
from flowdesk.api.pagination import DEFAULT_LIMIT, Page, decode_cursor, next_cursor
from flowdesk.api.types import Limit
from flowdesk.itsm import repository as itsm_repo
from flowdesk.itsm.controls import default_policy
from flowdesk.itsm.quotas import run_quota_check
from flowdesk.itsm.schemas import (
    LicenceEventOut,
    LicencePatch,
    QuotaAlertOut,
    QuotaCheckOut,
)
from flowdesk.itsm.service import (
    UNCHANGED,
    LicenceChange,
    describe,
    tenant_by_slug,
    update_licence,
)
from flowdesk.models import QuotaAlert
from flowdesk.api.platform_auth import PlatformOperator
from flowdesk.tenants.schemas import TenantOut
from flowdesk.api.usage import FromDay, ToDay
from flowdesk.usage.schemas import UsageReport
from flowdesk.usage.service import usage_report

router = APIRouter(prefix="/platform/v1", tags=["platform"])
Cursor = Annotated[str | None, Query(max_length=512)]


@router.get("/tenants", response_model=Page[TenantOut], summary="Every tenant, by slug")
async def list_tenants(
    operator: PlatformOperator,
    request: Request,
    session: DbSession,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[TenantOut]:
    after = str(decode_cursor(cursor, 1)[0]) if cursor else None
    rows = await itsm_repo.tenants_page(session, limit, after)
    policy = default_policy(request.app.state.settings)
    items = [await describe(session, t, policy, agents) for t, agents in rows[:limit]]
    cursor_out = next_cursor(rows, limit, lambda r: [r[0].slug])
    return Page[TenantOut](items=items, next_cursor=cursor_out)


@router.get("/tenants/{slug}", response_model=TenantOut, summary="A tenant and its licence")
async def get_tenant(
    slug: str, operator: PlatformOperator, request: Request, session: DbSession
) -> TenantOut:
    tenant = await tenant_by_slug(session, slug)
    return await describe(session, tenant, default_policy(request.app.state.settings))


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
    session: DbSession,
) -> TenantOut:
    tenant = await tenant_by_slug(session, slug)
    change = LicenceChange(
        active=body.active,
        flags={str(k): v for k, v in (body.flags or {}).items()},
        quotas=body.quotas.model_dump(exclude_unset=True) if body.quotas else {},
        rate_limit=(
            UNCHANGED
            if "rate_limit" not in body.model_fields_set
            else (body.rate_limit.requests, body.rate_limit.window_seconds)
            if body.rate_limit
            else None
        ),
    )
    result = await update_licence(session, tenant.id, change, operator)
    controls = request.app.state.controls
    after_commit(request, lambda: controls.forget_tenant(tenant.id))
    return await describe(
        session, result.tenant, default_policy(request.app.state.settings), result.agents
    )


@router.get(
    "/tenants/{slug}/licence/events",
    response_model=Page[LicenceEventOut],
    summary="The log of a tenant's licence changes, newest first",
)
async def licence_events(
    slug: str,
    operator: PlatformOperator,
    session: DbSession,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[LicenceEventOut]:
    tenant = await tenant_by_slug(session, slug)
    before = _int_cursor(cursor)
    rows = await itsm_repo.licence_events(session, tenant.id, limit, before)
    items = [LicenceEventOut.model_validate(e) for e in rows[:limit]]
    cursor_out = next_cursor(rows, limit, lambda r: [r.id])
    return Page[LicenceEventOut](items=items, next_cursor=cursor_out)


@router.get(
    "/quota-alerts",
    response_model=Page[QuotaAlertOut],
    summary="Quota alerts: refused overruns and tenants found over quota, newest first",
)
async def list_quota_alerts(
    operator: PlatformOperator,
    session: DbSession,
    tenant: Annotated[str | None, Query(description="A tenant's slug.", max_length=63)] = None,
    kind: Annotated[str | None, Query(pattern="^(refused|over_quota)$")] = None,
    open_only: Annotated[bool, Query(alias="open", description="Only unresolved alerts.")] = False,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[QuotaAlertOut]:
    tenant_id: uuid.UUID | None = None
    if tenant is not None:
        tenant_id = (await tenant_by_slug(session, tenant)).id
    flt = itsm_repo.AlertFilter(tenant_id=tenant_id, kind=kind, open_only=open_only)
    rows = await itsm_repo.alerts_page(session, flt, limit, _int_cursor(cursor))
    items = [_alert_out(alert, slug) for alert, slug in rows[:limit]]
    cursor_out = next_cursor(rows, limit, lambda r: [r[0].id])
    return Page[QuotaAlertOut](items=items, next_cursor=cursor_out)


@router.post(
    "/quota-checks",
    response_model=QuotaCheckOut,
    summary="Run the background quota check now",
)
async def run_quota_check_now(operator: PlatformOperator, request: Request) -> QuotaCheckOut:
    result = await run_quota_check(request.app.state.engine)
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
    session: DbSession,
    first: FromDay = None,
    last: ToDay = None,
    api_key_id: uuid.UUID | None = None,
) -> UsageReport:
    tenant = await tenant_by_slug(session, slug)
    return await usage_report(session, tenant.id, first, last, api_key_id)


def _int_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    value = decode_cursor(cursor, 1)[0]
    if not isinstance(value, int):
        raise InvalidInput("The cursor is not valid.", [("/query/cursor", "malformed")])
    return value


def _alert_out(alert: QuotaAlert, slug: str) -> QuotaAlertOut:
    return QuotaAlertOut(
        id=alert.id,
        tenant_id=alert.tenant_id,
        tenant_slug=slug,
        quota=alert.quota,
        kind=alert.kind,
        limit=alert.quota_limit,
        current=alert.current_use,
        detail=alert.detail,
        open=alert.resolved_at is None,
        created_at=alert.created_at,
        last_seen_at=alert.last_seen_at,
        resolved_at=alert.resolved_at,
    )
