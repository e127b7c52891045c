"""HTTP endpoints of tenant administration (/v1/me, /v1/tenant, /v1/users, /v1/groups,
/v1/api-keys). All but /v1/me need the admin permission and scope."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from flowdesk.api.auth import AdminPrincipal, Authenticated
from flowdesk.api.db import Tx, after_commit
from flowdesk.api.headers import IDEMPOTENCY_KEY, documented
from flowdesk.api.idempotency import idempotent, json_response
from flowdesk.api.openapi import NAMED_IN_REQUEST
from flowdesk.api.params import cursor_page
from flowdesk.audit.log import Actor, State, record
from flowdesk.auth.principal import Principal
from flowdesk.db.query import Connection
from flowdesk.itsm.controls import default_policy
from flowdesk.itsm.schemas import TenantOut
from flowdesk.itsm.service import describe
from flowdesk.pagination import (
    Page,
    PageRequest,
    cursor_text,
    cursor_time,
    cursor_uuid,
    next_cursor,
)
from flowdesk.runtime import runtime_of
from flowdesk.schema_types import SHORT_NAME_LENGTH, QueryText
from flowdesk.tenants import service
from flowdesk.tenants.repository import GroupRow
from flowdesk.tenants.schemas import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    GroupIn,
    GroupMemberOut,
    GroupOut,
    GroupPatch,
    MeOut,
    MeTenant,
    TenantPatch,
    UserIn,
    UserOut,
    UserPatch,
)

router = APIRouter(prefix="/v1")


def _forget_keys_after_commit(request: Request, tenant_id: uuid.UUID) -> None:
    """A change to who may do what (a user, a group, a membership, a key) takes effect on this
    worker as soon as it commits, without waiting for the notification that tells every worker
    (flowdesk.db.listener). After the commit, so that no request can cache the old state in
    between."""
    authenticator = runtime_of(request).authenticator
    after_commit(request, lambda: authenticator.forget_tenant(tenant_id))


async def _access_changed(
    request: Request, tenant_id: uuid.UUID, change: Awaitable[object]
) -> Response:
    """Make the change; 204, and the tenant's cached keys forgotten once it commits."""
    await change
    _forget_keys_after_commit(request, tenant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _audit(
    conn: Connection,
    principal: Principal,
    action: str,
    target: tuple[str, object],
    *,
    before: State = None,
    after: State = None,
) -> None:
    """An entry of the admin audit log, in the request's transaction (flowdesk.audit)."""
    await record(
        conn, principal.tenant_id, Actor.of(principal), action, target, before=before, after=after
    )


def _group_state(group: GroupOut) -> dict[str, object]:
    """A group as the audit log keeps it: without its members (their changes are entries of
    their own)."""
    return group.model_dump(mode="json", exclude={"member_ids", "member_count"})


@router.get("/me", response_model=MeOut, tags=["identity"], summary="The caller")
async def me(principal: Authenticated, conn: Tx) -> MeOut:
    tenant = await service.get_tenant(conn, principal.tenant_id)
    user = await service.get_user(conn, principal.tenant_id, principal.user_id)
    return MeOut(
        tenant=MeTenant.model_validate(dict(tenant)),
        user=UserOut.model_validate(dict(user)),
        key_id=principal.key_id,
        scopes=sorted(principal.scopes),
        permissions=sorted(principal.permissions),
    )


# --- tenant --------------------------------------------------------------------------------


@router.get(
    "/tenant",
    response_model=TenantOut,
    tags=["administration"],
    summary="The tenant: settings, ITSM licence, flags, quotas and their use, rate limit",
)
async def get_tenant(request: Request, principal: AdminPrincipal, conn: Tx) -> TenantOut:
    tenant = await service.get_tenant(conn, principal.tenant_id)
    return await describe(conn, tenant, default_policy(runtime_of(request).settings))


@router.patch("/tenant", response_model=TenantOut, tags=["administration"])
async def patch_tenant(
    body: TenantPatch, request: Request, principal: AdminPrincipal, conn: Tx
) -> TenantOut:
    values = body.model_dump(exclude_unset=True)
    before = await service.get_tenant(conn, principal.tenant_id)
    tenant = await service.update_tenant(conn, principal.tenant_id, values)
    changed = [name for name in values if before.get(name) != tenant.get(name)]
    if changed:
        await _audit(
            conn,
            principal,
            "tenant.updated",
            ("tenant", principal.tenant_id),
            before={name: before.get(name) for name in changed},
            after={name: tenant.get(name) for name in changed},
        )
    if "allowed_origins" in values:  # in effect on this worker at once (others: the listener)
        origins = runtime_of(request).origins
        after_commit(request, lambda: origins.forget_tenant(principal.tenant_id))
    return await describe(conn, tenant, default_policy(runtime_of(request).settings))


# --- users ---------------------------------------------------------------------------------


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    tags=["administration"],
    openapi_extra=documented(IDEMPOTENCY_KEY),
)
async def create_user(
    body: UserIn, request: Request, principal: AdminPrincipal, conn: Tx
) -> Response:
    async def handler() -> Response:
        made = await service.create_user(
            conn, principal.tenant_id, body.email, body.name, body.kind, body.manager_id
        )
        user = UserOut.model_validate(dict(made))
        await _audit(conn, principal, "user.created", ("user", user.id), after=user)
        return json_response(user, status.HTTP_201_CREATED)

    return await idempotent(request, principal, conn, handler)


@router.get("/users", response_model=Page[UserOut], tags=["administration"])
async def list_users(
    principal: AdminPrincipal,
    conn: Tx,
    page: PageRequest = cursor_page(cursor_time, cursor_uuid),
    q: Annotated[
        QueryText | None, Query(description="Name or e-mail contains (in any case)")
    ] = None,
) -> Page[UserOut]:
    limit = page.limit
    rows = await service.list_users(conn, principal.tenant_id, limit, page.after, q)
    return Page[UserOut](
        items=[UserOut.model_validate(dict(u)) for u in rows[:limit]],
        next_cursor=next_cursor(rows, limit, lambda u: [u["created_at"], u["id"]]),
    )


@router.get("/users/{user_id}", response_model=UserOut, tags=["administration"])
async def get_user(user_id: uuid.UUID, principal: AdminPrincipal, conn: Tx) -> UserOut:
    return UserOut.model_validate(dict(await service.get_user(conn, principal.tenant_id, user_id)))


@router.patch("/users/{user_id}", response_model=UserOut, tags=["administration"])
async def patch_user(
    user_id: uuid.UUID, body: UserPatch, principal: AdminPrincipal, conn: Tx
) -> UserOut:
    values = body.model_dump(exclude_unset=True, exclude_none=True)
    if "manager_id" in body.model_fields_set:  # null removes the manager
        values["manager_id"] = body.manager_id
    before = UserOut.model_validate(
        dict(await service.get_user(conn, principal.tenant_id, user_id))
    )
    user = UserOut.model_validate(
        dict(await service.update_user(conn, principal.tenant_id, user_id, values))
    )
    if user.model_dump(exclude={"updated_at"}) != before.model_dump(exclude={"updated_at"}):
        await _audit(conn, principal, "user.updated", ("user", user_id), before=before, after=user)
    return user


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["administration"])
async def delete_user(
    user_id: uuid.UUID, request: Request, principal: AdminPrincipal, conn: Tx
) -> Response:
    before = UserOut.model_validate(
        dict(await service.get_user(conn, principal.tenant_id, user_id))
    )
    await _audit(conn, principal, "user.deleted", ("user", user_id), before=before)
    return await _access_changed(
        request, principal.tenant_id, service.delete_user(conn, principal.tenant_id, user_id)
    )


# --- groups --------------------------------------------------------------------------------


async def _groups_out(
    conn: Connection, tenant_id: uuid.UUID, groups: list[GroupRow]
) -> list[GroupOut]:
    return [
        GroupOut.model_validate(
            dict(view.group) | {"member_ids": view.member_ids, "member_count": view.member_count}
        )
        for view in await service.with_members(conn, tenant_id, groups)
    ]


@router.post(
    "/groups",
    status_code=status.HTTP_201_CREATED,
    response_model=GroupOut,
    tags=["administration"],
    openapi_extra=documented(IDEMPOTENCY_KEY),
)
async def create_group(
    body: GroupIn, request: Request, principal: AdminPrincipal, conn: Tx
) -> Response:
    async def handler() -> Response:
        made = await service.create_group(
            conn, runtime_of(request).catalog, principal.tenant_id, body.name, body.permissions
        )
        group = (await _groups_out(conn, principal.tenant_id, [made]))[0]
        await _audit(
            conn, principal, "group.created", ("group", group.id), after=_group_state(group)
        )
        return json_response(group, status.HTTP_201_CREATED)

    return await idempotent(request, principal, conn, handler)


@router.get("/groups", response_model=Page[GroupOut], tags=["administration"])
async def list_groups(
    principal: AdminPrincipal,
    conn: Tx,
    page: PageRequest = cursor_page(cursor_text(SHORT_NAME_LENGTH), cursor_uuid),
) -> Page[GroupOut]:
    limit = page.limit
    rows = await service.list_groups(conn, principal.tenant_id, limit, page.after)
    return Page[GroupOut](
        items=await _groups_out(conn, principal.tenant_id, rows[:limit]),
        next_cursor=next_cursor(rows, limit, lambda g: [g["name"], g["id"]]),
    )


@router.get("/groups/{group_id}", response_model=GroupOut, tags=["administration"])
async def get_group(group_id: uuid.UUID, principal: AdminPrincipal, conn: Tx) -> GroupOut:
    group = await service.get_group(conn, principal.tenant_id, group_id)
    return (await _groups_out(conn, principal.tenant_id, [group]))[0]


@router.patch("/groups/{group_id}", response_model=GroupOut, tags=["administration"])
async def patch_group(
    group_id: uuid.UUID,
    body: GroupPatch,
    request: Request,
    principal: AdminPrincipal,
    conn: Tx,
) -> GroupOut:
    values = body.model_dump(exclude_unset=True, exclude_none=True)
    before = await service.get_group(conn, principal.tenant_id, group_id)
    group = await service.update_group(
        conn, runtime_of(request).catalog, principal.tenant_id, group_id, values
    )
    _forget_keys_after_commit(request, principal.tenant_id)
    was, now = await _groups_out(conn, principal.tenant_id, [before, group])
    unchanged = {"updated_at": None}
    if _group_state(was) | unchanged != _group_state(now) | unchanged:
        await _audit(
            conn,
            principal,
            "group.updated",
            ("group", group_id),
            before=_group_state(was),
            after=_group_state(now),
        )
    return now


@router.delete(
    "/groups/{group_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["administration"]
)
async def delete_group(
    group_id: uuid.UUID, request: Request, principal: AdminPrincipal, conn: Tx
) -> Response:
    before = await service.get_group(conn, principal.tenant_id, group_id)
    was = (await _groups_out(conn, principal.tenant_id, [before]))[0]
    await _audit(conn, principal, "group.deleted", ("group", group_id), before=_group_state(was))
    return await _access_changed(
        request, principal.tenant_id, service.delete_group(conn, principal.tenant_id, group_id)
    )


@router.get(
    "/groups/{group_id}/members",
    response_model=Page[GroupMemberOut],
    tags=["administration"],
    summary="A group's members, in the order they joined",
)
async def list_members(
    group_id: uuid.UUID,
    principal: AdminPrincipal,
    conn: Tx,
    page: PageRequest = cursor_page(cursor_time, cursor_uuid),
) -> Page[GroupMemberOut]:
    found = await service.members_page(conn, principal.tenant_id, group_id, page.after, page.limit)
    return Page[GroupMemberOut](
        items=[GroupMemberOut.model_validate(dict(m)) for m in found[: page.limit]],
        next_cursor=next_cursor(found, page.limit, lambda m: [m["joined_at"], m["user_id"]]),
    )


@router.put(
    "/groups/{group_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["administration"],
    openapi_extra=documented(IDEMPOTENCY_KEY),
)
async def add_member(
    group_id: uuid.UUID,
    user_id: uuid.UUID,
    request: Request,
    principal: AdminPrincipal,
    conn: Tx,
) -> Response:
    async def handler() -> Response:
        if await service.add_member(conn, principal.tenant_id, group_id, user_id):
            await _audit(
                conn,
                principal,
                "group.member_added",
                ("group", group_id),
                after={"user_id": user_id},
            )
        _forget_keys_after_commit(request, principal.tenant_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return await idempotent(request, principal, conn, handler)


@router.delete(
    "/groups/{group_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["administration"],
)
async def remove_member(
    group_id: uuid.UUID,
    user_id: uuid.UUID,
    request: Request,
    principal: AdminPrincipal,
    conn: Tx,
) -> Response:
    await service.remove_member(conn, principal.tenant_id, group_id, user_id)
    await _audit(
        conn, principal, "group.member_removed", ("group", group_id), before={"user_id": user_id}
    )
    _forget_keys_after_commit(request, principal.tenant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- API keys ------------------------------------------------------------------------------


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    tags=["administration"],
    responses=NAMED_IN_REQUEST,
    openapi_extra=documented(IDEMPOTENCY_KEY),
)
async def create_key(
    body: ApiKeyIn, request: Request, principal: AdminPrincipal, conn: Tx
) -> Response:
    async def handler() -> Response:
        new = await service.create_key(
            conn,
            principal.tenant_id,
            body.user_id,
            body.name,
            body.scopes,
            body.expires_at,
            within=principal.scopes,
            created_by_key_id=principal.key_id,
            channel=body.channel,
        )
        shown = ApiKeyOut.model_validate(dict(new.record))  # never the secret
        await _audit(conn, principal, "api_key.created", ("api_key", shown.id), after=shown)
        created = ApiKeyCreated.model_validate(dict(new.record) | {"key": new.secret})
        return json_response(created, status.HTTP_201_CREATED)

    return await idempotent(request, principal, conn, handler)


@router.get("/api-keys", response_model=Page[ApiKeyOut], tags=["administration"])
async def list_keys(
    principal: AdminPrincipal,
    conn: Tx,
    page: PageRequest = cursor_page(cursor_time, cursor_uuid),
    user_id: uuid.UUID | None = None,
) -> Page[ApiKeyOut]:
    limit = page.limit
    rows = await service.list_keys(conn, principal.tenant_id, limit, page.after, user_id)
    return Page[ApiKeyOut](
        items=[ApiKeyOut.model_validate(dict(k)) for k in rows[:limit]],
        next_cursor=next_cursor(rows, limit, lambda k: [k["created_at"], k["id"]]),
    )


@router.get("/api-keys/{key_id}", response_model=ApiKeyOut, tags=["administration"])
async def get_key(key_id: uuid.UUID, principal: AdminPrincipal, conn: Tx) -> ApiKeyOut:
    return ApiKeyOut.model_validate(dict(await service.get_key(conn, principal.tenant_id, key_id)))


@router.delete(
    "/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["administration"]
)
async def revoke_key(
    key_id: uuid.UUID, request: Request, principal: AdminPrincipal, conn: Tx
) -> Response:
    before = ApiKeyOut.model_validate(
        dict(await service.get_key(conn, principal.tenant_id, key_id))
    )
    await service.revoke_key(conn, principal.tenant_id, key_id)
    if before.revoked_at is None:  # revoking a revoked key changes nothing
        now = await service.get_key(conn, principal.tenant_id, key_id)
        await _audit(
            conn,
            principal,
            "api_key.revoked",
            ("api_key", key_id),
            before=before,
            after=ApiKeyOut.model_validate(dict(now)),
        )
    _forget_keys_after_commit(request, principal.tenant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
