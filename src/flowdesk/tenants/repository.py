"""All SQL of tenant administration. Each repository is bound to one tenant and scopes every
query through `_mine`, so no query can reach another tenant's rows by forgetting a filter."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, any_, delete, func, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flowdesk.models import ApiKey, Group, GroupMember, Tenant, TicketCounter, User


class TenantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, slug: str, name: str, prefix: str) -> Tenant:
        tenant = Tenant(slug=slug, name=name, ticket_prefix=prefix)
        self.session.add(tenant)
        await self.session.flush()
        self.session.add(TicketCounter(tenant_id=tenant.id))
        await self.session.flush()
        await self.session.refresh(tenant)
        return tenant

    async def get(self, tenant_id: uuid.UUID) -> Tenant | None:
        return await self.session.get(Tenant, tenant_id)

    async def by_slug(self, slug: str) -> Tenant | None:
        return (await self.session.execute(select(Tenant).where(Tenant.slug == slug))).scalar()

    async def slug_taken(self, slug: str) -> bool:
        return await self.by_slug(slug) is not None

    async def update(self, tenant: Tenant, values: dict[str, Any]) -> Tenant:
        for key, value in values.items():
            setattr(tenant, key, value)
        tenant.updated_at = func.now()
        await self.session.flush()
        await self.session.refresh(tenant)
        return tenant

    async def count(self) -> int:
        return int(
            (await self.session.execute(select(func.count()).select_from(Tenant))).scalar_one()
        )


class _TenantScoped:
    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def _mine(
        self, model: type[User] | type[Group] | type[GroupMember] | type[ApiKey]
    ) -> ColumnElement[bool]:
        return model.tenant_id == self.tenant_id


class UserRepository(_TenantScoped):
    async def add(self, email: str, name: str, kind: str) -> User:
        user = User(tenant_id=self.tenant_id, email=email, name=name, kind=kind)
        self.session.add(user)
        await self.session.flush()
        await self.session.refresh(user)
        return user

    async def get(self, user_id: uuid.UUID) -> User | None:
        stmt = select(User).where(self._mine(User), User.id == user_id, User.deleted_at.is_(None))
        return (await self.session.execute(stmt)).scalar()

    async def by_email(self, email: str) -> User | None:
        stmt = select(User).where(
            self._mine(User), func.lower(User.email) == email.lower(), User.deleted_at.is_(None)
        )
        return (await self.session.execute(stmt)).scalar()

    async def page(self, limit: int, after: tuple[datetime, uuid.UUID] | None) -> Sequence[User]:
        stmt = select(User).where(self._mine(User), User.deleted_at.is_(None))
        if after is not None:
            stmt = stmt.where(tuple_(User.created_at, User.id) > tuple_(*after))
        stmt = stmt.order_by(User.created_at, User.id).limit(limit + 1)
        return (await self.session.execute(stmt)).scalars().all()

    async def update(self, user: User, values: dict[str, Any]) -> User:
        for key, value in values.items():
            setattr(user, key, value)
        user.updated_at = func.now()
        await self.session.flush()
        await self.session.refresh(user)
        return user

    async def soft_delete(self, user: User) -> None:
        user.deleted_at = func.now()
        await self.session.execute(
            delete(GroupMember).where(self._mine(GroupMember), GroupMember.user_id == user.id)
        )
        await self.session.execute(
            update(ApiKey)
            .where(self._mine(ApiKey), ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=func.now())
        )
        await self.session.flush()

    async def count_admins(self) -> int:
        stmt = (
            select(func.count(func.distinct(GroupMember.user_id)))
            .join(
                Group,
                (Group.tenant_id == GroupMember.tenant_id) & (Group.id == GroupMember.group_id),
            )
            .join(
                User, (User.tenant_id == GroupMember.tenant_id) & (User.id == GroupMember.user_id)
            )
            .where(
                self._mine(GroupMember),
                literal("admin") == any_(Group.permissions),
                User.deleted_at.is_(None),
            )
        )
        return int((await self.session.execute(stmt)).scalar_one())


class GroupRepository(_TenantScoped):
    async def add(self, name: str, permissions: list[str], *, system: bool = False) -> Group:
        group = Group(tenant_id=self.tenant_id, name=name, permissions=permissions, system=system)
        self.session.add(group)
        await self.session.flush()
        await self.session.refresh(group)
        return group

    async def get(self, group_id: uuid.UUID, *, for_update: bool = False) -> Group | None:
        stmt = select(Group).where(self._mine(Group), Group.id == group_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar()

    async def by_name(self, name: str) -> Group | None:
        stmt = select(Group).where(self._mine(Group), Group.name == name)
        return (await self.session.execute(stmt)).scalar()

    async def page(self, limit: int, after: tuple[str, uuid.UUID] | None) -> Sequence[Group]:
        stmt = select(Group).where(self._mine(Group))
        if after is not None:
            stmt = stmt.where(tuple_(Group.name, Group.id) > tuple_(*after))
        stmt = stmt.order_by(Group.name, Group.id).limit(limit + 1)
        return (await self.session.execute(stmt)).scalars().all()

    async def member_ids(self, group_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
        result: dict[uuid.UUID, list[uuid.UUID]] = {gid: [] for gid in group_ids}
        if not group_ids:
            return result
        stmt = (
            select(GroupMember.group_id, GroupMember.user_id)
            .where(self._mine(GroupMember), GroupMember.group_id.in_(group_ids))
            .order_by(GroupMember.created_at, GroupMember.user_id)
        )
        for group_id, user_id in (await self.session.execute(stmt)).all():
            result[group_id].append(user_id)
        return result

    async def update(self, group: Group, values: dict[str, Any]) -> Group:
        for key, value in values.items():
            setattr(group, key, value)
        group.updated_at = func.now()
        await self.session.flush()
        await self.session.refresh(group)
        return group

    async def delete(self, group: Group) -> None:
        await self.session.delete(group)
        await self.session.flush()

    async def add_member(self, group_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """True when the user was not a member before (PUT is idempotent)."""
        stmt = (
            pg_insert(GroupMember)
            .values(tenant_id=self.tenant_id, group_id=group_id, user_id=user_id)
            .on_conflict_do_nothing()
            .returning(GroupMember.user_id)
        )
        return (await self.session.execute(stmt)).first() is not None

    async def remove_member(self, group_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        stmt = (
            delete(GroupMember)
            .where(
                self._mine(GroupMember),
                GroupMember.group_id == group_id,
                GroupMember.user_id == user_id,
            )
            .returning(GroupMember.user_id)
        )
        return (await self.session.execute(stmt)).first() is not None


class ApiKeyRepository(_TenantScoped):
    async def add(
        self,
        user_id: uuid.UUID,
        name: str,
        prefix: str,
        key_hash: bytes,
        scopes: list[str],
        expires_at: datetime | None,
    ) -> ApiKey:
        key = ApiKey(
            tenant_id=self.tenant_id,
            user_id=user_id,
            name=name,
            prefix=prefix,
            key_hash=key_hash,
            scopes=scopes,
            expires_at=expires_at,
        )
        self.session.add(key)
        await self.session.flush()
        await self.session.refresh(key)
        return key

    async def get(self, key_id: uuid.UUID) -> ApiKey | None:
        stmt = select(ApiKey).where(self._mine(ApiKey), ApiKey.id == key_id)
        return (await self.session.execute(stmt)).scalar()

    async def page(
        self, limit: int, after: tuple[datetime, uuid.UUID] | None, user_id: uuid.UUID | None
    ) -> Sequence[ApiKey]:
        stmt = select(ApiKey).where(self._mine(ApiKey))
        if user_id is not None:
            stmt = stmt.where(ApiKey.user_id == user_id)
        if after is not None:
            stmt = stmt.where(tuple_(ApiKey.created_at, ApiKey.id) > tuple_(*after))
        stmt = stmt.order_by(ApiKey.created_at, ApiKey.id).limit(limit + 1)
        return (await self.session.execute(stmt)).scalars().all()

    async def revoke(self, key: ApiKey) -> None:
        if key.revoked_at is None:
            key.revoked_at = func.now()
            await self.session.flush()
            await self.session.refresh(key)
