"""HTTP endpoints of tenant administration (/v1/me, /v1/tenant, /v1/users, /v1/groups,
/v1/api-keys). All but /v1/me need the admin permission and scope."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from flowdesk.api.auth import AdminPrincipal, Authenticated
from flowdesk.db.session import DbSession, after_commit
from flowdesk.api.pagination import (
    DEFAULT_LIMIT,
    Page,
    cursor_time,
    cursor_uuid,
    decode_cursor,
    next_cursor,
)
from flowdesk.api.types import Limit
from flowdesk.itsm.controls import default_policy
from flowdesk.itsm.service import describe
from flowdesk.models import Group
from flowdesk.tenants import service
from flowdesk.tenants.repository import (
    ApiKeyRepository,
    GroupRepository,
    TenantRepository,
    UserRepository,
)
from flowdesk.tenants.schemas import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    GroupIn,
    GroupOut,
    GroupPatch,
    MeOut,
    MeTenant,
    TenantOut,
    TenantPatch,
    UserIn,
    UserOut,
    UserPatch,
)

router = APIRouter(prefix="/v1")
Cursor = Annotated[str | None, Query(max_length=512)]


def _invalidate_auth(request: Request, tenant_id: uuid.UUID) -> None:
    """Permission or key changes take effect on this worker as soon as they commit, without
    waiting for the notification that tells every worker (flowdesk.db.listener). Runs after
    the commit, so that no request can cache the old state in between."""
    authenticator = request.app.state.authenticator
    after_commit(request, lambda: authenticator.forget_tenant(tenant_id))


@router.get("/me", response_model=MeOut, tags=["identity"], summary="The caller")
async def me(principal: Authenticated, session: DbSession) -> MeOut:
    tenant = await TenantRepository(session).get(principal.tenant_id)
    user = await service.get_user(session, principal.tenant_id, principal.user_id)
    assert tenant is not None
    return MeOut(
        tenant=MeTenant(id=tenant.id, slug=tenant.slug, name=tenant.name),
        user=UserOut.model_validate(user),
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
async def get_tenant(request: Request, principal: AdminPrincipal, session: DbSession) -> TenantOut:
    tenant = await service.update_tenant(session, principal.tenant_id, {})
    return await describe(session, tenant, default_policy(request.app.state.settings))


@router.patch("/tenant", response_model=TenantOut, tags=["administration"])
async def patch_tenant(
    body: TenantPatch, request: Request, principal: AdminPrincipal, session: DbSession
) -> TenantOut:
    tenant = await service.update_tenant(
        session, principal.tenant_id, body.model_dump(exclude_unset=True)
    )
    return await describe(session, tenant, default_policy(request.app.state.settings))


# --- users ---------------------------------------------------------------------------------


@router.post(
    "/users", status_code=status.HTTP_201_CREATED, response_model=UserOut, tags=["administration"]
)
async def create_user(body: UserIn, principal: AdminPrincipal, session: DbSession) -> UserOut:
    user = await service.create_user(session, principal.tenant_id, body.email, body.name, body.kind)
    return UserOut.model_validate(user)


@router.get("/users", response_model=Page[UserOut], tags=["administration"])
async def list_users(
    principal: AdminPrincipal,
    session: DbSession,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[UserOut]:
    after = None
    if cursor:
        created, ident = decode_cursor(cursor, 2)
        after = (cursor_time(created), cursor_uuid(ident))
    rows = await UserRepository(session, principal.tenant_id).page(limit, after)
    items = [UserOut.model_validate(u) for u in rows[:limit]]
    cursor_out = next_cursor(rows, limit, lambda r: [r.created_at, r.id])
    return Page[UserOut](items=items, next_cursor=cursor_out)


@router.get("/users/{user_id}", response_model=UserOut, tags=["administration"])
async def get_user(user_id: uuid.UUID, principal: AdminPrincipal, session: DbSession) -> UserOut:
    return UserOut.model_validate(await service.get_user(session, principal.tenant_id, user_id))


@router.patch("/users/{user_id}", response_model=UserOut, tags=["administration"])
async def patch_user(
    user_id: uuid.UUID, body: UserPatch, principal: AdminPrincipal, session: DbSession
) -> UserOut:
    values = body.model_dump(exclude_unset=True, exclude_none=True)
    return UserOut.model_validate(
        await service.update_user(session, principal.tenant_id, user_id, values)
    )


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["administration"])
async def delete_user(
    user_id: uuid.UUID, request: Request, principal: AdminPrincipal, session: DbSession
) -> Response:
    await service.delete_user(session, principal.tenant_id, user_id)
    _invalidate_auth(request, principal.tenant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- groups --------------------------------------------------------------------------------


async def _group_out(
    session: DbSession, tenant_id: uuid.UUID, groups: list[Group]
) -> list[GroupOut]:
    members = await GroupRepository(session, tenant_id).member_ids([g.id for g in groups])
    return [
        GroupOut(
            id=g.id,
            name=g.name,
            permissions=list(g.permissions),
            system=g.system,
            member_ids=members[g.id],
            created_at=g.created_at,
            updated_at=g.updated_at,
        )
        for g in groups
    ]


@router.post(
    "/groups", status_code=status.HTTP_201_CREATED, response_model=GroupOut, tags=["administration"]
)
async def create_group(body: GroupIn, principal: AdminPrincipal, session: DbSession) -> GroupOut:
    group = await service.create_group(
        session, principal.tenant_id, body.name, list(body.permissions)
    )
    return (await _group_out(session, principal.tenant_id, [group]))[0]


@router.get("/groups", response_model=Page[GroupOut], tags=["administration"])
async def list_groups(
    principal: AdminPrincipal,
    session: DbSession,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[GroupOut]:
    after = None
    if cursor:
        name, ident = decode_cursor(cursor, 2)
        after = (str(name), cursor_uuid(ident))
    rows = list(await GroupRepository(session, principal.tenant_id).page(limit, after))
    items = await _group_out(session, principal.tenant_id, rows[:limit])
    cursor_out = next_cursor(rows, limit, lambda r: [r.name, r.id])
    return Page[GroupOut](items=items, next_cursor=cursor_out)


@router.get("/groups/{group_id}", response_model=GroupOut, tags=["administration"])
async def get_group(group_id: uuid.UUID, principal: AdminPrincipal, session: DbSession) -> GroupOut:
    group = await service.get_group(session, principal.tenant_id, group_id)
    return (await _group_out(session, principal.tenant_id, [group]))[0]


@router.patch("/groups/{group_id}", response_model=GroupOut, tags=["administration"])
async def patch_group(
    group_id: uuid.UUID,
    body: GroupPatch,
    request: Request,
    principal: AdminPrincipal,
    session: DbSession,
) -> GroupOut:
    values = body.model_dump(exclude_unset=True, exclude_none=True)
    group = await service.update_group(session, principal.tenant_id, group_id, values)
    _invalidate_auth(request, principal.tenant_id)
    return (await _group_out(session, principal.tenant_id, [group]))[0]


@router.delete(
    "/groups/{group_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["administration"]
)
async def delete_group(
    group_id: uuid.UUID, request: Request, principal: AdminPrincipal, session: DbSession
) -> Response:
    await service.delete_group(session, principal.tenant_id, group_id)
    _invalidate_auth(request, principal.tenant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


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
    session: DbSession,
) -> Response:
    await service.add_member(session, principal.tenant_id, group_id, user_id)
    _invalidate_auth(request, principal.tenant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


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
    session: DbSession,
) -> Response:
    await service.remove_member(session, principal.tenant_id, group_id, user_id)
    _invalidate_auth(request, principal.tenant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- API keys ------------------------------------------------------------------------------


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    tags=["administration"],
)
async def create_key(
    body: ApiKeyIn, principal: AdminPrincipal, session: DbSession
) -> ApiKeyCreated:
    new = await service.create_key(
        session, principal.tenant_id, body.user_id, body.name, list(body.scopes), body.expires_at
    )
    out = ApiKeyOut.model_validate(new.record)
    return ApiKeyCreated(**out.model_dump(), key=new.secret)


@router.get("/api-keys", response_model=Page[ApiKeyOut], tags=["administration"])
async def list_keys(
    principal: AdminPrincipal,
    session: DbSession,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    user_id: uuid.UUID | None = None,
) -> Page[ApiKeyOut]:
    after = None
    if cursor:
        created, ident = decode_cursor(cursor, 2)
        after = (cursor_time(created), cursor_uuid(ident))
    rows = await ApiKeyRepository(session, principal.tenant_id).page(limit, after, user_id)
    items = [ApiKeyOut.model_validate(k) for k in rows[:limit]]
    cursor_out = next_cursor(rows, limit, lambda r: [r.created_at, r.id])
    return Page[ApiKeyOut](items=items, next_cursor=cursor_out)


@router.get("/api-keys/{key_id}", response_model=ApiKeyOut, tags=["administration"])
async def get_key(key_id: uuid.UUID, principal: AdminPrincipal, session: DbSession) -> ApiKeyOut:
    return ApiKeyOut.model_validate(await service.get_key(session, principal.tenant_id, key_id))


@router.delete(
    "/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["administration"]
)
async def revoke_key(
    key_id: uuid.UUID, request: Request, principal: AdminPrincipal, session: DbSession
) -> Response:
    await service.revoke_key(session, principal.tenant_id, key_id)
    _invalidate_auth(request, principal.tenant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
