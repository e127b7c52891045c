"""Use cases of tenant administration. Each runs inside the caller's transaction (the request's
unit of work, or the CLI's) and only flushes; committing is the caller's business."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from flowdesk.auth import keys
from flowdesk.auth.permissions import ALL_PERMISSIONS, ALL_SCOPES
from flowdesk.errors import Conflict, InvalidInput, NotFound
from flowdesk.itsm.quotas import check_agent_seats, grants_agent_seat, guard_agent_seats
from flowdesk.models import ApiKey, Group, Tenant, User
from flowdesk.tenants.repository import (
    ApiKeyRepository,
    GroupRepository,
    TenantRepository,
    UserRepository,
)

ADMIN_GROUP = "Administrators"


@dataclass(frozen=True, slots=True)
class NewKey:
    record: ApiKey
    secret: str


@dataclass(frozen=True, slots=True)
class NewTenant:
    tenant: Tenant
    admin: User
    key: NewKey


async def create_tenant(
    session: AsyncSession,
    slug: str,
    name: str,
    prefix: str = "TKT",
    admin_email: str | None = None,
) -> NewTenant:
    """A tenant with an administrators group, its first admin user and that admin's key."""
    tenants = TenantRepository(session)
    if await tenants.slug_taken(slug):
        raise Conflict(f"A tenant with slug '{slug}' already exists.")
    tenant = await tenants.create(slug, name, prefix)
    users = UserRepository(session, tenant.id)
    admin = await users.add(
        admin_email or f"admin@{slug}.example", f"{name} administrator", "person"
    )
    groups = GroupRepository(session, tenant.id)
    group = await groups.add(ADMIN_GROUP, sorted(ALL_PERMISSIONS))
    await groups.add_member(group.id, admin.id)
    key = await create_key(
        session, tenant.id, admin.id, "initial admin key", sorted(ALL_SCOPES), None
    )
    return NewTenant(tenant, admin, key)


async def update_tenant(
    session: AsyncSession, tenant_id: uuid.UUID, values: dict[str, Any]
) -> Tenant:
    tenants = TenantRepository(session)
    tenant = await tenants.get(tenant_id)
    if tenant is None:
        raise NotFound("No such tenant.")
    return await tenants.update(tenant, values) if values else tenant


# --- users ---------------------------------------------------------------------------------


async def get_user(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> User:
    user = await UserRepository(session, tenant_id).get(user_id)
    if user is None:
        raise NotFound(f"No user {user_id}.")
    return user


async def create_user(
    session: AsyncSession, tenant_id: uuid.UUID, email: str, name: str, kind: str
) -> User:
    users = UserRepository(session, tenant_id)
    if await users.by_email(email) is not None:
        raise Conflict(f"A user with e-mail '{email}' already exists in this tenant.")
    return await users.add(email, name, kind)


async def update_user(
    session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, values: dict[str, Any]
) -> User:
    users = UserRepository(session, tenant_id)
    user = await get_user(session, tenant_id, user_id)
    email = str(values.get("email") or user.email)
    changes_email = email.lower() != user.email.lower()
    if changes_email and await users.by_email(email) is not None:
        raise Conflict(f"A user with e-mail '{email}' already exists in this tenant.")
    return await users.update(user, values) if values else user


async def delete_user(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    users = UserRepository(session, tenant_id)
    user = await get_user(session, tenant_id, user_id)
    await users.soft_delete(user)
    await _ensure_an_admin_remains(session, tenant_id)


async def _ensure_an_admin_remains(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Refuse a change that would lock the tenant out of its own administration (the caller's
    transaction then rolls it back)."""
    if await UserRepository(session, tenant_id).count_admins() == 0:
        raise Conflict("This change would leave the tenant without an administrator.")


# --- groups --------------------------------------------------------------------------------


async def get_group(session: AsyncSession, tenant_id: uuid.UUID, group_id: uuid.UUID) -> Group:
    group = await GroupRepository(session, tenant_id).get(group_id)
    if group is None:
        raise NotFound(f"No group {group_id}.")
    return group


async def create_group(
    session: AsyncSession, tenant_id: uuid.UUID, name: str, permissions: list[str]
) -> Group:
    groups = GroupRepository(session, tenant_id)
    if await groups.by_name(name) is not None:
        raise Conflict(f"A group named '{name}' already exists.")
    return await groups.add(name, sorted(set(permissions)))


async def update_group(
    session: AsyncSession, tenant_id: uuid.UUID, group_id: uuid.UUID, values: dict[str, Any]
) -> Group:
    groups = GroupRepository(session, tenant_id)
    group = await get_group(session, tenant_id, group_id)
    if "permissions" in values:
        values["permissions"] = sorted(set(values["permissions"]))
        if group.system and values["permissions"] != sorted(group.permissions):
            raise Conflict(f"'{group.name}' is a system group; its permissions are fixed.")
    name = values.get("name")
    if name is not None and name != group.name:
        if group.system:
            raise Conflict(f"'{group.name}' is a system group; it cannot be renamed.")
        if await groups.by_name(name) is not None:
            raise Conflict(f"A group named '{name}' already exists.")
    # Granting tickets:manage (or admin) to a group with members may take agent seats.
    guard = None
    if "permissions" in values and grants_agent_seat(values["permissions"]):
        guard = await guard_agent_seats(session, tenant_id)
    group = await groups.update(group, values) if values else group
    if guard is not None:
        await check_agent_seats(
            session,
            guard,
            {
                "action": "update_group",
                "group_id": str(group_id),
                "permissions": values["permissions"],
            },
        )
    await _ensure_an_admin_remains(session, tenant_id)
    return group


async def delete_group(session: AsyncSession, tenant_id: uuid.UUID, group_id: uuid.UUID) -> None:
    group = await get_group(session, tenant_id, group_id)
    if group.system:
        raise Conflict(f"'{group.name}' is a system group; it cannot be deleted.")
    await GroupRepository(session, tenant_id).delete(group)
    await _ensure_an_admin_remains(session, tenant_id)


async def add_member(
    session: AsyncSession, tenant_id: uuid.UUID, group_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    group = await get_group(session, tenant_id, group_id)
    await get_user(session, tenant_id, user_id)
    guard = (
        await guard_agent_seats(session, tenant_id)
        if grants_agent_seat(group.permissions)
        else None
    )
    added = await GroupRepository(session, tenant_id).add_member(group_id, user_id)
    if guard is not None and added:
        await check_agent_seats(
            session,
            guard,
            {"action": "add_member", "group_id": str(group_id), "user_id": str(user_id)},
        )
    return added


async def remove_member(
    session: AsyncSession, tenant_id: uuid.UUID, group_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    await get_group(session, tenant_id, group_id)
    if not await GroupRepository(session, tenant_id).remove_member(group_id, user_id):
        raise NotFound(f"User {user_id} is not a member of group {group_id}.")
    await _ensure_an_admin_remains(session, tenant_id)


# --- API keys ------------------------------------------------------------------------------


async def create_key(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    name: str,
    scopes: list[str],
    expires_at: datetime | None,
) -> NewKey:
    await get_user(session, tenant_id, user_id)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise InvalidInput(
                "expires_at needs a time zone.", [("/expires_at", "give a UTC offset, e.g. Z")]
            )
        if expires_at <= datetime.now(UTC):
            raise InvalidInput(
                "expires_at is in the past.", [("/expires_at", "must be in the future")]
            )
    secret = keys.generate_key()
    record = await ApiKeyRepository(session, tenant_id).add(
        user_id,
        name,
        keys.display_prefix(secret),
        keys.hash_key(secret),
        sorted(set(scopes)),
        expires_at,
    )
    return NewKey(record, secret)


async def get_key(session: AsyncSession, tenant_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
    key = await ApiKeyRepository(session, tenant_id).get(key_id)
    if key is None:
        raise NotFound(f"No API key {key_id}.")
    return key


async def revoke_key(session: AsyncSession, tenant_id: uuid.UUID, key_id: uuid.UUID) -> None:
    key = await get_key(session, tenant_id, key_id)
    await ApiKeyRepository(session, tenant_id).revoke(key)
