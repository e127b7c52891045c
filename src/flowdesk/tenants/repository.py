"""All SQL of tenant administration: tenants, users, groups, membership and API keys.

Every statement on a tenant's rows is scoped through `_mine` (`tenant_id = :tenant_id`), and
every function takes the tenant: no query can reach another tenant's rows by forgetting a
filter. Unique violations (a slug, an e-mail or a group name taken, perhaps by a concurrent
request) become `Conflict`s here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, TypedDict

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    String,
    Table,
    Uuid,
    any_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from flowdesk.db import like
from flowdesk.db.constraints import unique
from flowdesk.db.query import Connection, Query, row, rows, value
from flowdesk.itsm.repository import TenantRow
from flowdesk.models import api_keys, group_members, groups, tenants, ticket_counters, users
from flowdesk.vocabulary import ADMIN, FIRST_PARTY


class UserRow(TypedDict):
    id: uuid.UUID
    email: str
    name: str
    kind: str
    manager_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class GroupRow(TypedDict):
    id: uuid.UUID
    name: str
    permissions: list[str]
    system: bool
    created_at: datetime
    updated_at: datetime


class MemberRow(TypedDict):
    group_id: uuid.UUID
    user_id: uuid.UUID
    # How many members the group has (the rows are only the first of them).
    members: int


class GroupMemberRow(TypedDict):
    user_id: uuid.UUID
    joined_at: datetime


class ApiKeyRow(TypedDict):
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    created_by_key_id: uuid.UUID | None
    channel: str


_TENANT = tuple(tenants.c)
_USER = (
    users.c.id,
    users.c.email,
    users.c.name,
    users.c.kind,
    users.c.manager_id,
    users.c.created_at,
    users.c.updated_at,
)
_GROUP = (
    groups.c.id,
    groups.c.name,
    groups.c.permissions,
    groups.c.system,
    groups.c.created_at,
    groups.c.updated_at,
)
_API_KEY = (
    api_keys.c.id,
    api_keys.c.user_id,
    api_keys.c.name,
    api_keys.c.prefix,
    api_keys.c.scopes,
    api_keys.c.expires_at,
    api_keys.c.revoked_at,
    api_keys.c.last_used_at,
    api_keys.c.created_at,
    api_keys.c.created_by_key_id,
    api_keys.c.channel,
)


def _mine(table: Table) -> ColumnElement[bool]:
    return table.c.tenant_id == bindparam("tenant_id")


async def _count(conn: Connection, query: Query, **values: object) -> int:
    count = await value(conn, query, **values)
    assert isinstance(count, int)
    return count


# --- tenants -------------------------------------------------------------------------------

_new_tenant = (
    insert(tenants)
    .values(slug=bindparam("slug"), name=bindparam("name"), ticket_prefix=bindparam("prefix"))
    .returning(*_TENANT)
    .cte("new_tenant")
)
# The tenant and its ticket counter, in one statement.
_INSERT_TENANT = Query(
    select(_new_tenant).add_cte(
        insert(ticket_counters)
        .from_select(["tenant_id"], select(_new_tenant.c.id))
        .cte("new_counter")
    )
)
_GET_TENANT = Query(select(*_TENANT).where(tenants.c.id == bindparam("tenant_id")))
_COUNT_TENANTS = Query(select(func.count()).select_from(tenants))


async def insert_tenant(conn: Connection, slug: str, name: str, prefix: str) -> TenantRow:
    with unique("uq_tenants_slug", f"A tenant with slug '{slug}' already exists."):
        made = await row(conn, TenantRow, _INSERT_TENANT, slug=slug, name=name, prefix=prefix)
    assert made is not None
    return made


async def get_tenant(conn: Connection, tenant_id: uuid.UUID) -> TenantRow | None:
    return await row(conn, TenantRow, _GET_TENANT, tenant_id=tenant_id)


async def update_tenant(
    conn: Connection, tenant_id: uuid.UUID, values: Mapping[str, Any]
) -> TenantRow | None:
    """Set `values` (column name -> value or SQL expression) and updated_at."""
    stmt = (
        update(tenants)
        .where(tenants.c.id == tenant_id)
        .values(**values, updated_at=func.now())
        .returning(*_TENANT)
    )
    return await row(conn, TenantRow, stmt)


async def count_tenants(conn: Connection) -> int:
    return await _count(conn, _COUNT_TENANTS)


# --- users ---------------------------------------------------------------------------------

_live_user = (_mine(users), users.c.id == bindparam("user_id"), users.c.deleted_at.is_(None))

_INSERT_USER = Query(
    insert(users)
    .values(
        tenant_id=bindparam("tenant_id"),
        email=bindparam("email"),
        name=bindparam("name"),
        kind=bindparam("kind"),
        manager_id=bindparam("manager_id", type_=Uuid),
    )
    .returning(*_USER)
)
_GET_USER = Query(select(*_USER).where(*_live_user))
_USER_BY_EMAIL = Query(
    select(*_USER).where(
        _mine(users),
        func.lower(users.c.email) == func.lower(bindparam("email", type_=String)),
        users.c.deleted_at.is_(None),
    )
)

# A user is soft-deleted (tickets and the audit trail keep pointing at them) and, in the same
# statement, leaves their groups and loses their keys.
_deleted_user = (
    update(users)
    .where(*_live_user)
    .values(deleted_at=func.now())
    .returning(users.c.tenant_id, users.c.id)
    .cte("deleted_user")
)
_SOFT_DELETE_USER = Query(
    select(_deleted_user.c.id).add_cte(
        delete(group_members)
        .where(
            group_members.c.tenant_id == _deleted_user.c.tenant_id,
            group_members.c.user_id == _deleted_user.c.id,
        )
        .cte("left_groups"),
        update(api_keys)
        .where(
            api_keys.c.tenant_id == _deleted_user.c.tenant_id,
            api_keys.c.user_id == _deleted_user.c.id,
            api_keys.c.revoked_at.is_(None),
        )
        .values(revoked_at=func.now())
        .cte("revoked_keys"),
        # Their reports have no manager any more (a deleted user approves nothing).
        update(users)
        .where(
            users.c.tenant_id == _deleted_user.c.tenant_id,
            users.c.manager_id == _deleted_user.c.id,
        )
        .values(manager_id=None, updated_at=func.now())
        .cte("left_reports"),
    )
)
_COUNT_ADMINS = Query(
    select(func.count(func.distinct(group_members.c.user_id)))
    .select_from(
        group_members.join(
            groups,
            (groups.c.tenant_id == group_members.c.tenant_id)
            & (groups.c.id == group_members.c.group_id),
        ).join(
            users,
            (users.c.tenant_id == group_members.c.tenant_id)
            & (users.c.id == group_members.c.user_id),
        )
    )
    .where(
        _mine(group_members),
        literal(ADMIN) == any_(groups.c.permissions),
        users.c.deleted_at.is_(None),
    )
)


def _email_taken(email: str) -> AbstractContextManager[None]:
    return unique(
        "uq_users_tenant_id_email", f"A user with e-mail '{email}' already exists in this tenant."
    )


async def insert_user(
    conn: Connection,
    tenant_id: uuid.UUID,
    email: str,
    name: str,
    kind: str,
    manager_id: uuid.UUID | None = None,
) -> UserRow:
    with _email_taken(email):
        made = await row(
            conn,
            UserRow,
            _INSERT_USER,
            tenant_id=tenant_id,
            email=email,
            name=name,
            kind=kind,
            manager_id=manager_id,
        )
    assert made is not None
    return made


async def get_user(conn: Connection, tenant_id: uuid.UUID, user_id: uuid.UUID) -> UserRow | None:
    """The live user (a deleted one is gone for every purpose but history)."""
    return await row(conn, UserRow, _GET_USER, tenant_id=tenant_id, user_id=user_id)


async def user_by_email(conn: Connection, tenant_id: uuid.UUID, email: str) -> UserRow | None:
    """The live user with this e-mail, whatever its case."""
    return await row(conn, UserRow, _USER_BY_EMAIL, tenant_id=tenant_id, email=email)


async def users_page(
    conn: Connection,
    tenant_id: uuid.UUID,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
    q: str | None = None,
) -> list[UserRow]:
    """Live users by creation, `limit + 1` of them (the extra one says a page follows); with
    `q`, those whose name or e-mail contains it in any case (`%` and `_` literal)."""
    stmt = select(*_USER).where(_mine(users), users.c.deleted_at.is_(None))
    if q:
        pattern = bindparam("pattern", like.contains(q), type_=String)
        stmt = stmt.where(
            users.c.name.ilike(pattern, escape=like.ESCAPE)
            | users.c.email.ilike(pattern, escape=like.ESCAPE)
        )
    if after is not None:
        stmt = stmt.where(tuple_(users.c.created_at, users.c.id) > tuple_(*after))
    stmt = stmt.order_by(users.c.created_at, users.c.id).limit(limit + 1)
    return await rows(conn, UserRow, stmt, tenant_id=tenant_id)


async def update_user(
    conn: Connection, tenant_id: uuid.UUID, user_id: uuid.UUID, values: Mapping[str, Any]
) -> UserRow | None:
    """Set `values` (email, name, kind) and updated_at; None when there is no such user."""
    stmt = (
        update(users).where(*_live_user).values(**values, updated_at=func.now()).returning(*_USER)
    )
    with _email_taken(str(values.get("email"))):
        return await row(conn, UserRow, stmt, tenant_id=tenant_id, user_id=user_id)


# Whether `user_id` is `manager_id` or above it in the chain of managers: making `user_id`
# report to `manager_id` would close a cycle. (Bounded: a chain deeper than 100 is refused.)
_chain = (
    select(users.c.id, users.c.manager_id, literal(1).label("depth"))
    .where(_mine(users), users.c.id == bindparam("manager_id", type_=Uuid))
    .cte("chain", recursive=True)
)
_above = users.alias("above")
_chain = _chain.union_all(
    select(_above.c.id, _above.c.manager_id, (_chain.c.depth + 1).label("depth")).where(
        _above.c.tenant_id == bindparam("tenant_id"),
        _above.c.id == _chain.c.manager_id,
        _chain.c.depth < 100,
    )
)
_CLOSES_CYCLE = Query(
    select(
        func.bool_or((_chain.c.id == bindparam("user_id", type_=Uuid)) | (_chain.c.depth >= 100))
    )
)


async def closes_cycle(
    conn: Connection, tenant_id: uuid.UUID, user_id: uuid.UUID, manager_id: uuid.UUID
) -> bool:
    """Whether `manager_id` already reports, directly or not, to `user_id`."""
    found = await value(
        conn, _CLOSES_CYCLE, tenant_id=tenant_id, user_id=user_id, manager_id=manager_id
    )
    return bool(found)


async def soft_delete_user(conn: Connection, tenant_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Delete the user, their memberships and keys; False when there is no such user."""
    deleted = await value(conn, _SOFT_DELETE_USER, tenant_id=tenant_id, user_id=user_id)
    return deleted is not None


async def count_admins(conn: Connection, tenant_id: uuid.UUID) -> int:
    """The tenant's live users holding `admin` through a group."""
    return await _count(conn, _COUNT_ADMINS, tenant_id=tenant_id)


# --- groups --------------------------------------------------------------------------------

_INSERT_GROUP = Query(
    insert(groups)
    .values(
        tenant_id=bindparam("tenant_id"),
        name=bindparam("name"),
        permissions=bindparam("permissions"),
        system=bindparam("system"),
    )
    .returning(*_GROUP)
)
_GET_GROUP = Query(select(*_GROUP).where(_mine(groups), groups.c.id == bindparam("group_id")))
_joined = (group_members.c.created_at, group_members.c.user_id)
_ranked = (
    select(
        group_members.c.group_id,
        group_members.c.user_id,
        func.row_number()
        .over(partition_by=group_members.c.group_id, order_by=_joined)
        .label("rank"),
        func.count().over(partition_by=group_members.c.group_id).label("members"),
    )
    .where(
        _mine(group_members),
        group_members.c.group_id == any_(cast(bindparam("group_ids"), ARRAY(Uuid))),
    )
    .subquery("m")
)
# The first `shown` members of each group, and how many it has.
_MEMBERS = Query(
    select(_ranked.c.group_id, _ranked.c.user_id, _ranked.c.members)
    .where(_ranked.c.rank <= bindparam("shown", type_=Integer))
    .order_by(_ranked.c.group_id, _ranked.c.rank)
)
# A page of one group's members, in the order they joined.
_MEMBERS_PAGE = Query(
    select(group_members.c.user_id, group_members.c.created_at.label("joined_at"))
    .where(
        _mine(group_members),
        group_members.c.group_id == bindparam("group_id"),
        tuple_(*_joined)
        > tuple_(
            bindparam("after_at", type_=group_members.c.created_at.type),
            bindparam("after_id", type_=Uuid),
        ),
    )
    .order_by(*_joined)
    .limit(bindparam("limit", type_=Integer))
)
_DELETE_GROUP = Query(
    delete(groups).where(_mine(groups), groups.c.id == bindparam("group_id")).returning(groups.c.id)
)
_ADD_MEMBER = Query(
    pg_insert(group_members)
    .values(
        tenant_id=bindparam("tenant_id"),
        group_id=bindparam("group_id"),
        user_id=bindparam("user_id"),
    )
    .on_conflict_do_nothing()
    .returning(group_members.c.user_id)
)
_REMOVE_MEMBER = Query(
    delete(group_members)
    .where(
        _mine(group_members),
        group_members.c.group_id == bindparam("group_id"),
        group_members.c.user_id == bindparam("user_id"),
    )
    .returning(group_members.c.user_id)
)


def _group_name_taken(name: str) -> AbstractContextManager[None]:
    return unique("uq_groups_tenant_id_name", f"A group named '{name}' already exists.")


async def insert_group(
    conn: Connection,
    tenant_id: uuid.UUID,
    name: str,
    permissions: Sequence[str],
    *,
    system: bool = False,
) -> GroupRow:
    with _group_name_taken(name):
        made = await row(
            conn,
            GroupRow,
            _INSERT_GROUP,
            tenant_id=tenant_id,
            name=name,
            permissions=list(permissions),
            system=system,
        )
    assert made is not None
    return made


async def get_group(conn: Connection, tenant_id: uuid.UUID, group_id: uuid.UUID) -> GroupRow | None:
    return await row(conn, GroupRow, _GET_GROUP, tenant_id=tenant_id, group_id=group_id)


async def groups_page(
    conn: Connection, tenant_id: uuid.UUID, limit: int, after: tuple[str, uuid.UUID] | None
) -> list[GroupRow]:
    """Groups by name, `limit + 1` of them (the extra one says a page follows)."""
    stmt = select(*_GROUP).where(_mine(groups))
    if after is not None:
        stmt = stmt.where(tuple_(groups.c.name, groups.c.id) > tuple_(*after))
    stmt = stmt.order_by(groups.c.name, groups.c.id).limit(limit + 1)
    return await rows(conn, GroupRow, stmt, tenant_id=tenant_id)


async def member_ids(
    conn: Connection, tenant_id: uuid.UUID, group_ids: Sequence[uuid.UUID], shown: int
) -> dict[uuid.UUID, tuple[list[uuid.UUID], int]]:
    """Each group's first `shown` members, in the order they joined, and how many it has."""
    result: dict[uuid.UUID, tuple[list[uuid.UUID], int]] = {
        group_id: ([], 0) for group_id in group_ids
    }
    if not group_ids:
        return result
    for member in await rows(
        conn, MemberRow, _MEMBERS, tenant_id=tenant_id, group_ids=list(group_ids), shown=shown
    ):
        ids, _ = result[member["group_id"]]
        ids.append(member["user_id"])
        result[member["group_id"]] = (ids, member["members"])
    return result


async def members_page(
    conn: Connection,
    tenant_id: uuid.UUID,
    group_id: uuid.UUID,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[GroupMemberRow]:
    """`limit` members of the group who joined after `after` (joined_at, user id)."""
    after_at, after_id = after or (datetime(1970, 1, 1, tzinfo=UTC), uuid.UUID(int=0))
    return await rows(
        conn,
        GroupMemberRow,
        _MEMBERS_PAGE,
        tenant_id=tenant_id,
        group_id=group_id,
        after_at=after_at,
        after_id=after_id,
        limit=limit,
    )


async def update_group(
    conn: Connection, tenant_id: uuid.UUID, group_id: uuid.UUID, values: Mapping[str, Any]
) -> GroupRow | None:
    """Set `values` (name, permissions) and updated_at; None when there is no such group."""
    stmt = (
        update(groups)
        .where(_mine(groups), groups.c.id == bindparam("group_id"))
        .values(**values, updated_at=func.now())
        .returning(*_GROUP)
    )
    with _group_name_taken(str(values.get("name"))):
        return await row(conn, GroupRow, stmt, tenant_id=tenant_id, group_id=group_id)


async def delete_group(conn: Connection, tenant_id: uuid.UUID, group_id: uuid.UUID) -> bool:
    """Delete the group (its memberships go with it); False when there is no such group."""
    deleted = await value(conn, _DELETE_GROUP, tenant_id=tenant_id, group_id=group_id)
    return deleted is not None


async def add_member(
    conn: Connection, tenant_id: uuid.UUID, group_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    """True when the user was not a member before (PUT is idempotent)."""
    added = await value(conn, _ADD_MEMBER, tenant_id=tenant_id, group_id=group_id, user_id=user_id)
    return added is not None


async def remove_member(
    conn: Connection, tenant_id: uuid.UUID, group_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    """True when the user was a member."""
    removed = await value(
        conn, _REMOVE_MEMBER, tenant_id=tenant_id, group_id=group_id, user_id=user_id
    )
    return removed is not None


# --- API keys ------------------------------------------------------------------------------

_INSERT_KEY = Query(
    insert(api_keys)
    .values(
        tenant_id=bindparam("tenant_id"),
        user_id=bindparam("user_id"),
        name=bindparam("name"),
        prefix=bindparam("prefix"),
        key_hash=bindparam("key_hash"),
        scopes=bindparam("scopes"),
        expires_at=bindparam("expires_at"),
        created_by_key_id=bindparam("created_by_key_id", type_=api_keys.c.id.type),
        channel=bindparam("channel"),
    )
    .returning(*_API_KEY)
)
_GET_KEY = Query(select(*_API_KEY).where(_mine(api_keys), api_keys.c.id == bindparam("key_id")))
_REVOKE_KEY = Query(
    update(api_keys)
    .where(_mine(api_keys), api_keys.c.id == bindparam("key_id"), api_keys.c.revoked_at.is_(None))
    .values(revoked_at=func.now())
    .returning(api_keys.c.id)
)


async def insert_key(
    conn: Connection,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    name: str,
    prefix: str,
    key_hash: bytes,
    scopes: Sequence[str],
    expires_at: datetime | None,
    created_by_key_id: uuid.UUID | None = None,
    channel: str = FIRST_PARTY,
) -> ApiKeyRow:
    made = await row(
        conn,
        ApiKeyRow,
        _INSERT_KEY,
        tenant_id=tenant_id,
        user_id=user_id,
        name=name,
        prefix=prefix,
        key_hash=key_hash,
        scopes=list(scopes),
        expires_at=expires_at,
        created_by_key_id=created_by_key_id,
        channel=channel,
    )
    assert made is not None
    return made


async def get_key(conn: Connection, tenant_id: uuid.UUID, key_id: uuid.UUID) -> ApiKeyRow | None:
    return await row(conn, ApiKeyRow, _GET_KEY, tenant_id=tenant_id, key_id=key_id)


async def keys_page(
    conn: Connection,
    tenant_id: uuid.UUID,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
    user_id: uuid.UUID | None,
) -> list[ApiKeyRow]:
    """Keys by creation (of one user, or all), `limit + 1` of them."""
    stmt = select(*_API_KEY).where(_mine(api_keys))
    if user_id is not None:
        stmt = stmt.where(api_keys.c.user_id == user_id)
    if after is not None:
        stmt = stmt.where(tuple_(api_keys.c.created_at, api_keys.c.id) > tuple_(*after))
    stmt = stmt.order_by(api_keys.c.created_at, api_keys.c.id).limit(limit + 1)
    return await rows(conn, ApiKeyRow, stmt, tenant_id=tenant_id)


async def revoke_key(conn: Connection, tenant_id: uuid.UUID, key_id: uuid.UUID) -> bool:
    """True when the key was live and is now revoked (an earlier revocation's time is kept)."""
    revoked = await value(conn, _REVOKE_KEY, tenant_id=tenant_id, key_id=key_id)
    return revoked is not None
