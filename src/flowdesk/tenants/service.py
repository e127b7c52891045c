"""Use cases of tenant administration: tenants, users, groups and membership, API keys.

Each runs on the caller's connection. Those that write more than one statement, or may refuse
a change after writing it (the last administrator, an agent seat beyond the quota), run in the
caller's transaction (the request's, or the CLI's), which a refusal rolls back.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flowdesk.auth import keys
from flowdesk.db.query import Connection
from flowdesk.errors import Conflict, Forbidden, InvalidInput, NotFound, found
from flowdesk.itsm.quotas import SeatGuard, check_agent_seats, grants_agent_seat, guard_agent_seats
from flowdesk.itsm.repository import TenantRow
from flowdesk.tenants import repository as repo
from flowdesk.tenants.repository import ApiKeyRow, GroupMemberRow, GroupRow, UserRow
from flowdesk.vocabulary import FIRST_PARTY, PERMISSIONS, SCOPES
from flowdesk.workflow import Catalog

ADMIN_GROUP = "Administrators"
# A group's answer lists at most this many member ids (GET …/members pages through them all).
MEMBER_IDS_SHOWN = 100


@dataclass(frozen=True, slots=True)
class NewKey:
    record: ApiKeyRow
    secret: str


@dataclass(frozen=True, slots=True)
class NewTenant:
    tenant: TenantRow
    admin: UserRow
    key: NewKey


@dataclass(frozen=True, slots=True)
class GroupView:
    group: GroupRow
    # The first MEMBER_IDS_SHOWN members; all of them page by page with `members_page`.
    member_ids: list[uuid.UUID]
    member_count: int


def _in_transaction(conn: Connection) -> None:
    # Without one, a refusal after the first write would leave that write committed.
    if not conn.is_in_transaction():
        raise RuntimeError("this use case writes several statements: run it in a transaction")


# --- tenants -------------------------------------------------------------------------------


async def create_tenant(
    conn: Connection,
    slug: str,
    name: str,
    prefix: str = "TKT",
    admin_email: str | None = None,
) -> NewTenant:
    """A tenant with an administrators group, its first admin user and that admin's key."""
    _in_transaction(conn)
    tenant = await repo.insert_tenant(conn, slug, name, prefix)
    admin = await repo.insert_user(
        conn,
        tenant["id"],
        admin_email or f"admin@{slug}.example",
        f"{name} administrator",
        "person",
    )
    group = await repo.insert_group(conn, tenant["id"], ADMIN_GROUP, sorted(PERMISSIONS))
    await repo.add_member(conn, tenant["id"], group["id"], admin["id"])
    key = await _insert_key(conn, tenant["id"], admin["id"], "initial admin key", SCOPES, None)
    return NewTenant(tenant, admin, key)


async def count_tenants(conn: Connection) -> int:
    return await repo.count_tenants(conn)


async def get_tenant(conn: Connection, tenant_id: uuid.UUID) -> TenantRow:
    return found(await repo.get_tenant(conn, tenant_id), "No such tenant.")


async def update_tenant(
    conn: Connection, tenant_id: uuid.UUID, values: Mapping[str, Any]
) -> TenantRow:
    """Change the tenant's own settings (name, ticket prefix, the agent queue's address, the
    display name of its mails). The last two may be cleared with null; the first two not."""
    cleared = [
        name
        for name in ("name", "ticket_prefix", "allowed_origins")
        if name in values and values[name] is None
    ]
    if cleared:
        raise InvalidInput(
            "The tenant's name, ticket prefix and allowed origins cannot be removed "
            "(allowed_origins: [] allows none).",
            [(f"/{n}", "must not be null") for n in cleared],
        )
    if "allowed_origins" in values:  # as browsers send them, once each (flowdesk.origins)
        values = {**values, "allowed_origins": list(dict.fromkeys(values["allowed_origins"]))}
    if not values:
        return await get_tenant(conn, tenant_id)
    return found(await repo.update_tenant(conn, tenant_id, values), "No such tenant.")


# --- users ---------------------------------------------------------------------------------


async def get_user(conn: Connection, tenant_id: uuid.UUID, user_id: uuid.UUID) -> UserRow:
    return found(await repo.get_user(conn, tenant_id, user_id), f"No user {user_id}.")


async def user_by_email(conn: Connection, tenant_id: uuid.UUID, email: str) -> UserRow:
    return found(
        await repo.user_by_email(conn, tenant_id, email), f"No user '{email}' in this tenant."
    )


async def list_users(
    conn: Connection,
    tenant_id: uuid.UUID,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
    q: str | None = None,
) -> list[UserRow]:
    """A page of live users by creation, and one more when another page follows; with `q`,
    those whose name or e-mail contains it."""
    return await repo.users_page(conn, tenant_id, limit, after, q)


async def create_user(
    conn: Connection,
    tenant_id: uuid.UUID,
    email: str,
    name: str,
    kind: str,
    manager_id: uuid.UUID | None = None,
) -> UserRow:
    """Conflict when a live user of the tenant has the e-mail (in any case); 422 for a
    manager who is no live user of the tenant."""
    if manager_id is not None:
        await _check_manager(conn, tenant_id, None, manager_id)
    return await repo.insert_user(conn, tenant_id, email, name, kind, manager_id)


async def update_user(
    conn: Connection, tenant_id: uuid.UUID, user_id: uuid.UUID, values: Mapping[str, Any]
) -> UserRow:
    """Change email, name, kind or manager_id (None: no manager)."""
    if not values:
        return await get_user(conn, tenant_id, user_id)
    manager_id = values.get("manager_id")
    if manager_id is not None:
        await get_user(conn, tenant_id, user_id)  # 404 before judging the manager
        await _check_manager(conn, tenant_id, user_id, manager_id)
    return found(await repo.update_user(conn, tenant_id, user_id, values), f"No user {user_id}.")


async def _check_manager(
    conn: Connection, tenant_id: uuid.UUID, user_id: uuid.UUID | None, manager_id: uuid.UUID
) -> None:
    """A user's manager (who gives seed 003's manager approval) is another live user of the
    tenant, and not one who reports to them, directly or not: a cycle would make people
    approve their managers' requests as their manager."""
    if manager_id == user_id:
        raise InvalidInput("A user cannot be their own manager.", [("/manager_id", "the user")])
    if await repo.get_user(conn, tenant_id, manager_id) is None:
        raise InvalidInput(
            f"No user {manager_id} in this tenant.", [("/manager_id", "no such user")]
        )
    if user_id is not None and await repo.closes_cycle(conn, tenant_id, user_id, manager_id):
        raise InvalidInput(
            "The manager reports to this user (directly or not): that would be a cycle.",
            [("/manager_id", "reports to the user")],
        )


async def delete_user(conn: Connection, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Soft-delete the user; their memberships and keys go with them."""
    _in_transaction(conn)
    if not await repo.soft_delete_user(conn, tenant_id, user_id):
        raise NotFound(f"No user {user_id}.")
    await _ensure_an_admin_remains(conn, tenant_id)


async def _ensure_an_admin_remains(conn: Connection, tenant_id: uuid.UUID) -> None:
    """Refuse a change that would lock the tenant out of its own administration (the caller's
    transaction then rolls it back)."""
    if await repo.count_admins(conn, tenant_id) == 0:
        raise Conflict("This change would leave the tenant without an administrator.")


# --- groups --------------------------------------------------------------------------------


async def get_group(conn: Connection, tenant_id: uuid.UUID, group_id: uuid.UUID) -> GroupRow:
    return found(await repo.get_group(conn, tenant_id, group_id), f"No group {group_id}.")


async def list_groups(
    conn: Connection, tenant_id: uuid.UUID, limit: int, after: tuple[str, uuid.UUID] | None
) -> list[GroupRow]:
    """A page of groups by name, and one more when another page follows."""
    return await repo.groups_page(conn, tenant_id, limit, after)


async def with_members(
    conn: Connection, tenant_id: uuid.UUID, groups: Sequence[GroupRow]
) -> list[GroupView]:
    """The groups with their first members' ids and member counts (one query for all)."""
    members = await repo.member_ids(conn, tenant_id, [g["id"] for g in groups], MEMBER_IDS_SHOWN)
    return [GroupView(g, *members[g["id"]]) for g in groups]


async def members_page(
    conn: Connection,
    tenant_id: uuid.UUID,
    group_id: uuid.UUID,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[GroupMemberRow]:
    """A page of the group's members in the order they joined, and one more when another
    page follows; 404 for no such group."""
    await get_group(conn, tenant_id, group_id)
    return await repo.members_page(conn, tenant_id, group_id, after, limit + 1)


def check_grants(catalog: Catalog, permissions: Sequence[str]) -> None:
    """A group holds flowdesk's permissions and the workflow rights the catalog declares
    (RT's rights, e.g. `ApproveOrder`), each everywhere or for one catalog item (RT's
    queues: `ApproveOrder@orders`). Anything else is a 422 naming what may be held."""
    rights = catalog.rights()
    problems: list[tuple[str, str]] = []
    for index, granted in enumerate(permissions):
        name, scoped, item = granted.partition("@")
        if name in PERMISSIONS and not scoped:
            continue
        if name in PERMISSIONS:
            problem = f"'{name}' is flowdesk's own permission: it is held everywhere or not"
        elif name not in rights:
            known = ", ".join(sorted(rights)) or "none"
            problem = f"unknown right '{name}' (the catalog's rights: {known})"
        elif scoped and item not in catalog.items:
            problem = f"unknown catalog item '{item}'"
        else:
            continue
        problems.append((f"/permissions/{index}", problem))
    if problems:
        raise InvalidInput("A group can hold only what the catalog knows.", problems)


async def create_group(
    conn: Connection,
    catalog: Catalog,
    tenant_id: uuid.UUID,
    name: str,
    permissions: Sequence[str],
) -> GroupRow:
    """Conflict when the tenant has a group of that name."""
    check_grants(catalog, permissions)
    return await repo.insert_group(conn, tenant_id, name, sorted(set(permissions)))


async def update_group(
    conn: Connection,
    catalog: Catalog,
    tenant_id: uuid.UUID,
    group_id: uuid.UUID,
    values: Mapping[str, Any],
) -> GroupRow:
    _in_transaction(conn)
    group = await get_group(conn, tenant_id, group_id)
    values = dict(values)
    if "permissions" in values:
        check_grants(catalog, values["permissions"])
        values["permissions"] = sorted(set(values["permissions"]))
        if group["system"] and values["permissions"] != sorted(group["permissions"]):
            raise Conflict(f"'{group['name']}' is a system group; its permissions are fixed.")
    name = values.get("name")
    if name is not None and name != group["name"] and group["system"]:
        raise Conflict(f"'{group['name']}' is a system group; it cannot be renamed.")
    if not values:
        return group
    # Granting tickets:manage (or admin) to a group with members may take agent seats.
    guard: SeatGuard | None = None
    if "permissions" in values and grants_agent_seat(values["permissions"]):
        guard = await guard_agent_seats(conn, tenant_id)
    updated = found(
        await repo.update_group(conn, tenant_id, group_id, values), f"No group {group_id}."
    )
    if guard is not None:
        await check_agent_seats(
            conn,
            guard,
            {
                "action": "update_group",
                "group_id": str(group_id),
                "permissions": values["permissions"],
            },
        )
    await _ensure_an_admin_remains(conn, tenant_id)
    return updated


async def delete_group(conn: Connection, tenant_id: uuid.UUID, group_id: uuid.UUID) -> None:
    _in_transaction(conn)
    group = await get_group(conn, tenant_id, group_id)
    if group["system"]:
        raise Conflict(f"'{group['name']}' is a system group; it cannot be deleted.")
    await repo.delete_group(conn, tenant_id, group_id)
    await _ensure_an_admin_remains(conn, tenant_id)


async def add_member(
    conn: Connection, tenant_id: uuid.UUID, group_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    """Make the user a member; False when they were one already (PUT is idempotent)."""
    _in_transaction(conn)
    # The tenant is locked first, whatever the group grants now: a concurrent change that
    # grants tickets:manage to this group holds the same lock, so the group is read below
    # as that change left it (a member added under a grant made meanwhile overshot the
    # quota: issue 16 measured 3 agents of 2).
    guard = await guard_agent_seats(conn, tenant_id)
    group = await get_group(conn, tenant_id, group_id)
    await get_user(conn, tenant_id, user_id)
    added = await repo.add_member(conn, tenant_id, group_id, user_id)
    if added and grants_agent_seat(group["permissions"]):
        await check_agent_seats(
            conn,
            guard,
            {"action": "add_member", "group_id": str(group_id), "user_id": str(user_id)},
        )
    return added


async def remove_member(
    conn: Connection, tenant_id: uuid.UUID, group_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    _in_transaction(conn)
    await get_group(conn, tenant_id, group_id)
    if not await repo.remove_member(conn, tenant_id, group_id, user_id):
        raise NotFound(f"User {user_id} is not a member of group {group_id}.")
    await _ensure_an_admin_remains(conn, tenant_id)


# --- API keys ------------------------------------------------------------------------------


async def create_key(
    conn: Connection,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    name: str,
    scopes: Sequence[str],
    expires_at: datetime | None,
    *,
    within: frozenset[str] | None = None,
    created_by_key_id: uuid.UUID | None = None,
    channel: str = FIRST_PARTY,
) -> NewKey:
    """A key for a live user of the tenant; its secret is in the result and nowhere else.
    `within`: the scopes of the key asking (a key never mints one that may do more than
    itself); None for the operator (the CLI). `created_by_key_id`: the key asking, recorded
    on the new one."""
    beyond = sorted(set(scopes) - within) if within is not None else []
    if beyond:
        raise Forbidden(
            f"This key cannot give scopes it does not have: {', '.join(beyond)}.",
            extra={"scopes": beyond},
        )
    await get_user(conn, tenant_id, user_id)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise InvalidInput(
                "expires_at needs a time zone.", [("/expires_at", "give a UTC offset, e.g. Z")]
            )
        if expires_at <= datetime.now(UTC):
            raise InvalidInput(
                "expires_at is in the past.", [("/expires_at", "must be in the future")]
            )
    return await _insert_key(
        conn, tenant_id, user_id, name, scopes, expires_at, created_by_key_id, channel
    )


async def _insert_key(
    conn: Connection,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    name: str,
    scopes: Sequence[str],
    expires_at: datetime | None,
    created_by_key_id: uuid.UUID | None = None,
    channel: str = FIRST_PARTY,
) -> NewKey:
    secret = keys.generate_key()
    record = await repo.insert_key(
        conn,
        tenant_id,
        user_id,
        name,
        keys.display_prefix(secret),
        keys.hash_key(secret),
        sorted(set(scopes)),
        expires_at,
        created_by_key_id,
        channel,
    )
    return NewKey(record, secret)


async def get_key(conn: Connection, tenant_id: uuid.UUID, key_id: uuid.UUID) -> ApiKeyRow:
    return found(await repo.get_key(conn, tenant_id, key_id), f"No API key {key_id}.")


async def list_keys(
    conn: Connection,
    tenant_id: uuid.UUID,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
    user_id: uuid.UUID | None,
) -> list[ApiKeyRow]:
    """A page of keys (of one user, or all) by creation, and one more when another follows."""
    return await repo.keys_page(conn, tenant_id, limit, after, user_id)


async def revoke_key(conn: Connection, tenant_id: uuid.UUID, key_id: uuid.UUID) -> None:
    """Revoke the key; revoking a revoked key changes nothing (and is no error)."""
    if not await repo.revoke_key(conn, tenant_id, key_id):
        await get_key(conn, tenant_id, key_id)
