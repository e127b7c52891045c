"""Licence use cases: activate, deactivate, set flags, quotas and the rate-limit policy.

Only the platform operator reaches these (the platform API and the CLI); no tenant endpoint
calls them. Each runs in the caller's transaction and only flushes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from flowdesk.errors import InvalidInput, NotFound
from flowdesk.itsm import repository as repo
from flowdesk.itsm.controls import RatePolicy
from flowdesk.itsm.quotas import reconcile_agent_alert
from flowdesk.itsm.schemas import LicenceOut, QuotaUse, RateLimitOut
from flowdesk.itsm.vocabulary import (
    FLAGS,
    ITSM_AGENT_GROUP,
    ITSM_AGENT_PERMISSIONS,
    QUOTAS,
    resolved_flags,
    resolved_quotas,
)
from flowdesk.models import Group, Tenant
from flowdesk.tenants.repository import GroupRepository, TenantRepository
from flowdesk.tenants.schemas import TenantOut

Unset = Literal["unchanged"]
UNCHANGED: Unset = "unchanged"


@dataclass(frozen=True, slots=True)
class LicenceChange:
    """What to change; anything left out stays as it is."""

    active: bool | None = None
    flags: dict[str, bool] = field(default_factory=dict)
    # A quota set to None becomes unlimited.
    quotas: dict[str, int | None] = field(default_factory=dict)
    # (requests, window_seconds), None for the service default, or unchanged.
    rate_limit: tuple[int, int] | Unset | None = UNCHANGED


@dataclass(frozen=True, slots=True)
class LicenceView:
    tenant: Tenant
    flags: dict[str, bool]
    quotas: dict[str, int | None]
    agents: int


async def tenant_by_slug(session: AsyncSession, slug: str) -> Tenant:
    tenant = await TenantRepository(session).by_slug(slug)
    if tenant is None:
        raise NotFound(f"No tenant '{slug}'.")
    return tenant


async def view(session: AsyncSession, tenant: Tenant, agents: int | None = None) -> LicenceView:
    return LicenceView(
        tenant,
        resolved_flags(tenant.flags),
        resolved_quotas(tenant.quotas),
        agents if agents is not None else await repo.count_agents(session, tenant.id),
    )


async def describe(
    session: AsyncSession, tenant: Tenant, default_policy: RatePolicy, agents: int | None = None
) -> TenantOut:
    """The tenant with its licence, flags, quotas (and their use) and rate-limit policy: what
    its admins see at GET /v1/tenant and the operator at /platform/v1/tenants."""
    current = await view(session, tenant, agents)
    custom = bool(tenant.rate_limit_requests and tenant.rate_limit_window_seconds)
    return TenantOut(
        id=tenant.id,
        slug=tenant.slug,
        name=tenant.name,
        ticket_prefix=tenant.ticket_prefix,
        licence=LicenceOut(
            active=tenant.licence_active,
            activated_at=tenant.licence_activated_at,
            deactivated_at=tenant.licence_deactivated_at,
        ),
        flags=current.flags,
        quotas=current.quotas,
        quota_usage={
            "max_agents": QuotaUse(limit=current.quotas["max_agents"], current=current.agents),
            "max_emails_month": QuotaUse(limit=current.quotas["max_emails_month"], current=None),
        },
        rate_limit=RateLimitOut(
            requests=tenant.rate_limit_requests if custom else default_policy.requests,
            window_seconds=tenant.rate_limit_window_seconds
            if custom
            else default_policy.window_seconds,
            default=not custom,
        ),
        created_at=tenant.created_at,
        updated_at=tenant.updated_at,
    )


def _validate(change: LicenceChange) -> None:
    errors = [(f"/flags/{k}", "unknown feature flag") for k in change.flags if k not in FLAGS]
    errors += [(f"/quotas/{k}", "unknown quota") for k in change.quotas if k not in QUOTAS]
    errors += [
        (f"/quotas/{k}", "must be zero or more")
        for k, v in change.quotas.items()
        if v is not None and v < 0
    ]
    if errors:
        raise InvalidInput("The licence change is not valid; see errors.", errors)


async def update_licence(
    session: AsyncSession, tenant_id: uuid.UUID, change: LicenceChange, actor: str
) -> LicenceView:
    _validate(change)
    tenant = await repo.lock_tenant(session, tenant_id)
    if tenant is None:
        raise NotFound("No such tenant.")
    changes: dict[str, Any] = {}
    values: dict[str, Any] = {}

    if change.active is not None and change.active != tenant.licence_active:
        values["licence_active"] = change.active
        values["licence_activated_at" if change.active else "licence_deactivated_at"] = func.now()
        changes["active"] = [tenant.licence_active, change.active]

    flags = resolved_flags(tenant.flags)
    new_flags = flags | change.flags
    if new_flags != tenant.flags:  # also stores the defaults explicitly on first activation
        values["flags"] = new_flags
    flag_changes = {k: [flags[k], v] for k, v in new_flags.items() if flags[k] != v}
    if flag_changes:
        changes["flags"] = flag_changes

    quotas = resolved_quotas(tenant.quotas)
    new_quotas = quotas | change.quotas
    if new_quotas != quotas:
        values["quotas"] = {k: v for k, v in new_quotas.items() if v is not None}
        changes["quotas"] = {k: [quotas[k], v] for k, v in new_quotas.items() if quotas[k] != v}

    if change.rate_limit != UNCHANGED:
        old = (
            (tenant.rate_limit_requests, tenant.rate_limit_window_seconds)
            if tenant.rate_limit_requests
            else None
        )
        new = change.rate_limit
        if new != old:
            values["rate_limit_requests"] = new[0] if new else None
            values["rate_limit_window_seconds"] = new[1] if new else None
            changes["rate_limit"] = [list(old) if old else None, list(new) if new else None]

    if values:
        tenant = await TenantRepository(session).update(tenant, values)
    if tenant.licence_active:
        await ensure_itsm_agent_group(session, tenant.id)
    if changes:
        await repo.add_licence_event(session, tenant.id, actor, changes)
    result = await view(session, tenant)
    # A lowered quota shows up as an alert at once, not only at the next background check.
    await reconcile_agent_alert(session, tenant.id, result.quotas["max_agents"], result.agents)
    return result


async def ensure_itsm_agent_group(session: AsyncSession, tenant_id: uuid.UUID) -> Group:
    """The "ITSM Agent" system group (seed 004), made on first activation and kept after a
    deactivation so that its members are still there when the licence comes back.

    A group the tenant made itself under that name keeps its members and permissions under a
    new name ("ITSM Agent (custom)"): the system group's permissions are fixed, so taking the
    tenant's group over could silently change what its members may do.
    """
    groups = GroupRepository(session, tenant_id)
    existing = await groups.by_name(ITSM_AGENT_GROUP)
    if existing is not None and existing.system:
        return existing
    if existing is not None:
        new_name = f"{ITSM_AGENT_GROUP} (custom)"
        if await groups.by_name(new_name) is not None:
            new_name = f"{new_name} {existing.id.hex[:8]}"
        await groups.update(existing, {"name": new_name})
    return await groups.add(ITSM_AGENT_GROUP, sorted(ITSM_AGENT_PERMISSIONS), system=True)
