"""HTTP endpoints of tenant administration (/v1/me, /v1/tenant, /v1/users, /v1/groups,
/v1/api-keys). All but /v1/me need the admin permission and scope."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from flowdesk.api.auth import AdminPrincipal, Authenticated
from flowdesk.api.db import Tx, after_commit
from flowdesk.api.params import cursor_page
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
    tenant = await service.update_tenant(conn, principal.tenant_id, values)
    if "allowed_origins" in values:  # in effect on this worker at once (others: the listener)
        origins = runtime_of(request).origins
        after_commit(request, lambda: origins.forget_tenant(principal.tenant_id))
    return await describe(conn, tenant, default_policy(runtime_of(request).settings))


# --- users ---------------------------------------------------------------------------------


@router.post(
    "/users", status_code=status.HTTP_201_CREATED, response_model=UserOut, tags=["administration"]
)
async def create_user(body: UserIn, principal: AdminPrincipal, conn: Tx) -> UserOut:
    user = await service.create_user(conn, principal.tenant_id, body.email, body.name, body.kind)
    return UserOut.model_validate(dict(user))


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
    user = await service.update_user(conn, principal.tenant_id, user_id, values)
    return UserOut.model_validate(dict(user))


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["administration"])
async def delete_user(
    user_id: uuid.UUID, request: Request, principal: AdminPrincipal, conn: Tx
) -> Response:
    return await _access_changed(
        request, principal.tenant_id, service.delete_user(conn, principal.tenant_id, user_id)
    )


# --- groups --------------------------------------------------------------------------------


async def _groups_out(
    conn: Connection, tenant_id: uuid.UUID, groups: list[GroupRow]
) -> list[GroupOut]:
    return [
        GroupOut.model_validate(dict(view.group) | {"member_ids": view.member_ids})
        for view in await service.with_members(conn, tenant_id, groups)
    ]


@router.post(
    "/groups", status_code=status.HTTP_201_CREATED, response_model=GroupOut, tags=["administration"]
)
async def create_group(
    body: GroupIn, request: Request, principal: AdminPrincipal, conn: Tx
) -> GroupOut:
    group = await service.create_group(
        conn, runtime_of(request).catalog, principal.tenant_id, body.name, body.permissions
    )
    return (await _groups_out(conn, principal.tenant_id, [group]))[0]


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
    group = await service.update_group(
        conn, runtime_of(request).catalog, principal.tenant_id, group_id, values
    )
    _forget_keys_after_commit(request, principal.tenant_id)
    return (await _groups_out(conn, principal.tenant_id, [group]))[0]


@router.delete(
    "/groups/{group_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["administration"]
)
async def delete_group(
    group_id: uuid.UUID, request: Request, principal: AdminPrincipal, conn: Tx
) -> Response:
    return await _access_changed(
        request, principal.tenant_id, service.delete_group(conn, principal.tenant_id, group_id)
    )


@router.put(
    "/groups/{group_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["administration"],
)
async def add_member(
    group_id: uuid.UUID,
    user_id: uuid.UUID,
    request: Request,
    principal: AdminPrincipal,
    conn: Tx,
) -> Response:
    return await _access_changed(
        request,
        principal.tenant_id,
        service.add_member(conn, principal.tenant_id, group_id, user_id),
    )


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
    return await _access_changed(
        request,
        principal.tenant_id,
        service.remove_member(conn, principal.tenant_id, group_id, user_id),
    )


# --- API keys ------------------------------------------------------------------------------


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    tags=["administration"],
)
async def create_key(body: ApiKeyIn, principal: AdminPrincipal, conn: Tx) -> ApiKeyCreated:
    new = await service.create_key(
        conn,
        principal.tenant_id,
        body.user_id,
        body.name,
        body.scopes,
        body.expires_at,
        within=principal.scopes,
    )
    return ApiKeyCreated.model_validate(dict(new.record) | {"key": new.secret})


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
    return await _access_changed(
        request, principal.tenant_id, service.revoke_key(conn, principal.tenant_id, key_id)
    )
