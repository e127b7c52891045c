"""Licence use cases: activate, deactivate, set flags, quotas and the rate-limit policy, and
the view of a tenant with its licence.

Only the platform operator changes a licence (the platform API and the CLI); no tenant
endpoint calls `update_licence`. Each use case runs on the caller's connection, inside the
caller's transaction (it writes several rows: the tenant, the system group, the log entry,
the quota alert).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from flowdesk.audit import log as audit_log
from flowdesk.db.query import Connection
from flowdesk.errors import InvalidInput, found
from flowdesk.itsm import repository as repo
from flowdesk.itsm.controls import RatePolicy, rate_policy
from flowdesk.itsm.quotas import reconcile_agent_alert
from flowdesk.itsm.repository import GroupRow, LicenceColumns, TenantRow
from flowdesk.itsm.schemas import LicenceOut, QuotaUse, RateLimitOut, TenantOut
from flowdesk.itsm.vocabulary import (
    ITSM_AGENT_GROUP,
    ITSM_AGENT_PERMISSIONS,
    resolved_flags,
    resolved_quotas,
)
from flowdesk.vocabulary import FLAGS, QUOTAS

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
    tenant: TenantRow
    flags: dict[str, bool]
    quotas: dict[str, int | None]
    agents: int


async def tenant_by_slug(conn: Connection, slug: str) -> TenantRow:
    # No slug holds a NUL (PostgreSQL text cannot store one, so it cannot be looked up either).
    tenant = None if "\x00" in slug else await repo.tenant_by_slug(conn, slug)
    return found(tenant, f"No tenant '{slug}'.")


async def view(conn: Connection, tenant: TenantRow, agents: int | None = None) -> LicenceView:
    return LicenceView(
        tenant,
        resolved_flags(tenant["flags"]),
        resolved_quotas(tenant["quotas"]),
        agents if agents is not None else await repo.count_agents(conn, tenant["id"]),
    )


async def describe(
    conn: Connection, tenant: TenantRow, default_policy: RatePolicy, agents: int | None = None
) -> TenantOut:
    """The tenant with its licence, flags, quotas (and their use) and rate-limit policy: what
    its admins see at GET /v1/tenant and the operator at /platform/v1/tenants. `agents`, when
    the caller has counted them already, saves the count."""
    current = await view(conn, tenant, agents)
    policy = rate_policy(
        tenant["rate_limit_requests"], tenant["rate_limit_window_seconds"], default_policy
    )
    return TenantOut(
        id=tenant["id"],
        slug=tenant["slug"],
        name=tenant["name"],
        ticket_prefix=tenant["ticket_prefix"],
        queue_email=tenant["queue_email"],
        mail_from_name=tenant["mail_from_name"],
        allowed_origins=tenant["allowed_origins"],
        licence=LicenceOut(
            active=tenant["licence_active"],
            activated_at=tenant["licence_activated_at"],
            deactivated_at=tenant["licence_deactivated_at"],
        ),
        flags=current.flags,
        quotas=current.quotas,
        quota_usage={
            "max_agents": QuotaUse(limit=current.quotas["max_agents"], current=current.agents),
            "max_emails_month": QuotaUse(
                limit=current.quotas["max_emails_month"],
                current=await repo.emails_this_month(conn, tenant["id"]),
            ),
        },
        rate_limit=RateLimitOut(
            requests=policy.requests,
            window_seconds=policy.window_seconds,
            default=policy is default_policy,
        ),
        created_at=tenant["created_at"],
        updated_at=tenant["updated_at"],
    )


async def tenants_page(
    conn: Connection, limit: int, after: str | None
) -> list[repo.TenantAgentsRow]:
    """Tenants by slug after `after`, each with its agent count (for `describe`); one more
    than `limit` when there is a next page."""
    return await repo.tenants_page(conn, limit, after)


async def licence_log(
    conn: Connection, tenant_id: uuid.UUID, limit: int, before: int | None
) -> list[repo.LicenceEventRow]:
    """The tenant's licence changes, newest first, before the event `before`; one more than
    `limit` when there is a next page."""
    return await repo.licence_events_page(conn, tenant_id, limit, before)


async def quota_alerts(
    conn: Connection,
    *,
    tenant_slug: str | None,
    kind: str | None,
    open_only: bool,
    limit: int,
    before: int | None,
) -> list[repo.AlertRow]:
    """Quota alerts, newest first, before the alert `before`, of one tenant (by slug) or all;
    one more than `limit` when there is a next page."""
    tenant_id = (await tenant_by_slug(conn, tenant_slug))["id"] if tenant_slug else None
    return await repo.alerts_page(
        conn, tenant_id=tenant_id, kind=kind, open_only=open_only, limit=limit, before=before
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
    conn: Connection, tenant_id: uuid.UUID, change: LicenceChange, actor: str
) -> LicenceView:
    """Apply the change, log what it changed and reconcile the max_agents alert. Run it in a
    transaction: it locks the tenant's row and writes several rows."""
    _validate(change)
    tenant = found(await repo.lock_tenant(conn, tenant_id), "No such tenant.")
    changes: dict[str, object] = {}
    columns: LicenceColumns = {}

    if change.active is not None and change.active != tenant["licence_active"]:
        columns["licence_active"] = change.active
        changes["active"] = [tenant["licence_active"], change.active]

    flags = resolved_flags(tenant["flags"])
    new_flags = flags | change.flags
    if new_flags != tenant["flags"]:  # also stores the defaults explicitly on first activation
        columns["flags"] = new_flags
    flag_changes = {k: [flags[k], v] for k, v in new_flags.items() if flags[k] != v}
    if flag_changes:
        changes["flags"] = flag_changes

    quotas = resolved_quotas(tenant["quotas"])
    new_quotas = quotas | change.quotas
    if new_quotas != quotas:
        columns["quotas"] = {k: v for k, v in new_quotas.items() if v is not None}
        changes["quotas"] = {k: [quotas[k], v] for k, v in new_quotas.items() if quotas[k] != v}

    if change.rate_limit != UNCHANGED:
        old_requests = tenant["rate_limit_requests"]
        old_window = tenant["rate_limit_window_seconds"]
        old = (old_requests, old_window) if old_requests and old_window is not None else None
        new = change.rate_limit
        if new != old:
            columns["rate_limit_requests"] = new[0] if new else None
            columns["rate_limit_window_seconds"] = new[1] if new else None
            changes["rate_limit"] = [list(old) if old else None, list(new) if new else None]

    if columns:
        tenant = await repo.update_licence_columns(conn, tenant_id, columns)
    if tenant["licence_active"]:
        await ensure_itsm_agent_group(conn, tenant_id)
    if changes:
        await repo.add_licence_event(conn, tenant_id, actor, changes)
        # The tenant's admins see it in their audit log too (the operator's name stays in the
        # licence log: the tenant learns only that the platform or an operator changed it).
        await audit_log.record(
            conn,
            tenant_id,
            audit_log.PLATFORM if actor == "platform-api" else audit_log.OPERATOR,
            "licence.updated",
            ("licence", tenant_id),
            before={k: _side(v, 0) for k, v in changes.items()},
            after={k: _side(v, 1) for k, v in changes.items()},
        )
    result = await view(conn, tenant)
    # A lowered quota shows up as an alert at once, not only at the next background check.
    await reconcile_agent_alert(conn, tenant_id, result.quotas["max_agents"], result.agents)
    return result


def _side(change: object, side: int) -> object:
    """One side (0: before, 1: after) of a licence log change: `[old, new]`, or a mapping of
    them (flags, quotas)."""
    if isinstance(change, dict):
        return {k: v[side] for k, v in change.items()}
    assert isinstance(change, list)
    return change[side]


async def ensure_itsm_agent_group(conn: Connection, tenant_id: uuid.UUID) -> GroupRow:
    """The "ITSM Agent" system group (seed 004), made on first activation and kept after a
    deactivation so that its members are still there when the licence comes back.

    A group the tenant made itself under that name keeps its members and permissions under a
    new name ("ITSM Agent (custom)"): the system group's permissions are fixed, so taking the
    tenant's group over could silently change what its members may do.
    """
    existing = await repo.group_by_name(conn, tenant_id, ITSM_AGENT_GROUP)
    if existing is not None and existing["system"]:
        return existing
    if existing is not None:
        new_name = f"{ITSM_AGENT_GROUP} (custom)"
        if await repo.group_by_name(conn, tenant_id, new_name) is not None:
            new_name = f"{new_name} {existing['id'].hex[:8]}"
        await repo.rename_group(conn, tenant_id, existing["id"], new_name)
    return await repo.add_system_group(
        conn, tenant_id, ITSM_AGENT_GROUP, sorted(ITSM_AGENT_PERMISSIONS)
    )
