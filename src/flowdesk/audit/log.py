"""Writing and reading the admin audit log (table admin_audit_log, migration 0014).

`record` is called by the code making an administrative change, on the connection and in the
transaction of that change, so the entry and the change commit (or vanish) together. Before
and after are what the API shows of the target (its response models), never a secret: no key
hash or key, no webhook signing secret, no client secret. The table refuses UPDATE and
DELETE (a trigger), so an entry once committed stays.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from pydantic import BaseModel
from sqlalchemy import Select, and_, bindparam, insert, select

from flowdesk.auth.principal import Principal
from flowdesk.db.query import Connection, Query, execute, rows
from flowdesk.logs import request_id_var
from flowdesk.models import admin_audit_log

_a = admin_audit_log.c

# Whatever the JSON of a before or after, the names that must never be written.
_SECRET_NAMES = frozenset({"key", "key_hash", "secret", "client_secret", "password", "token"})


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made the change: a user through an API key or sign-in (`user`), the platform
    operator through the platform API (`platform`), or the CLI (`operator`)."""

    type: str
    user_id: uuid.UUID | None = None
    key_id: uuid.UUID | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        return cls("user", principal.user_id, principal.key_id)


PLATFORM = Actor("platform")
OPERATOR = Actor("operator")

State = BaseModel | Mapping[str, Any] | None


def _json(state: State) -> dict[str, Any] | None:
    if state is None:
        return None
    shown = state.model_dump(mode="json") if isinstance(state, BaseModel) else _plain(state)
    return {k: v for k, v in shown.items() if k not in _SECRET_NAMES}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


_RECORD = Query(
    insert(admin_audit_log).values(
        tenant_id=bindparam("tenant_id"),
        actor_type=bindparam("actor_type"),
        actor_user_id=bindparam("actor_user_id"),
        actor_key_id=bindparam("actor_key_id"),
        action=bindparam("action"),
        target_type=bindparam("target_type"),
        target_id=bindparam("target_id"),
        before=bindparam("before", type_=admin_audit_log.c.before.type),
        after=bindparam("after", type_=admin_audit_log.c.after.type),
        request_id=bindparam("request_id"),
    )
)


async def record(
    conn: Connection,
    tenant_id: uuid.UUID,
    actor: Actor,
    action: str,
    target: tuple[str, object],
    *,
    before: State = None,
    after: State = None,
) -> None:
    """Append an entry: `action` (`<target type>.<verb>`, e.g. `api_key.created`) done by
    `actor` to `target` (its type and id), from `before` to `after`."""
    target_type, target_id = target
    request_id = request_id_var.get()
    await execute(
        conn,
        _RECORD,
        tenant_id=tenant_id,
        actor_type=actor.type,
        actor_user_id=actor.user_id,
        actor_key_id=actor.key_id,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        before=_json(before),
        after=_json(after),
        request_id=None if request_id == "-" else request_id[:128],
    )


class EntryRow(TypedDict):
    id: int
    created_at: datetime
    actor_type: str
    actor_user_id: uuid.UUID | None
    actor_key_id: uuid.UUID | None
    action: str
    target_type: str
    target_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None


@dataclass(frozen=True, slots=True)
class Filters:
    action: str | None = None
    actor_user_id: uuid.UUID | None = None
    actor_key_id: uuid.UUID | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _page(tenant_id: uuid.UUID, filters: Filters, before_id: int | None, limit: int) -> Select[Any]:
    conditions = [_a.tenant_id == tenant_id]
    if before_id is not None:
        conditions.append(_a.id < before_id)
    if filters.action is not None:
        conditions.append(_a.action == filters.action)
    if filters.actor_user_id is not None:
        conditions.append(_a.actor_user_id == filters.actor_user_id)
    if filters.actor_key_id is not None:
        conditions.append(_a.actor_key_id == filters.actor_key_id)
    if filters.target_type is not None:
        conditions.append(_a.target_type == filters.target_type)
    if filters.target_id is not None:
        conditions.append(_a.target_id == filters.target_id)
    if filters.since is not None:
        conditions.append(_a.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(_a.created_at < filters.until)
    return (
        select(
            _a.id,
            _a.created_at,
            _a.actor_type,
            _a.actor_user_id,
            _a.actor_key_id,
            _a.action,
            _a.target_type,
            _a.target_id,
            _a.before,
            _a.after,
            _a.request_id,
        )
        .where(and_(*conditions))
        .order_by(_a.id.desc())
        .limit(limit + 1)
    )


async def entries(
    conn: Connection, tenant_id: uuid.UUID, filters: Filters, before_id: int | None, limit: int
) -> list[EntryRow]:
    """A page of the tenant's entries, newest first, and one more when another page follows."""
    return await rows(conn, EntryRow, _page(tenant_id, filters, before_id, limit))
