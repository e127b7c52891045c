"""The idempotency records: claims, stored responses, their expiry.

A record is scoped to (tenant, API key, Idempotency-Key). It is claimed `in_flight` before the
request's work starts and completed `done` with the response in the work's own transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypedDict

from sqlalchemy import (
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Uuid,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert

from flowdesk.db.pool import Database
from flowdesk.db.query import Connection, Query, execute, row
from flowdesk.models import idempotency_keys

RETENTION = timedelta(hours=24)
IN_FLIGHT_LEASE = timedelta(seconds=30)

_k = idempotency_keys.c
_tenant = bindparam("tenant_id", type_=Uuid)
_api_key = bindparam("api_key_id", type_=Uuid)
_key = bindparam("key", type_=String)
_mine = and_(_k.tenant_id == _tenant, _k.api_key_id == _api_key, _k.key == _key)


def _seconds(name: str) -> Any:
    return func.make_interval(0, 0, 0, 0, 0, 0, bindparam(name, type_=Integer))


def _claim() -> Query:
    # A record past its expiry, or a claim whose request died without an answer (older than
    # the lease), may be claimed again.
    stmt = insert(idempotency_keys).values(
        tenant_id=_tenant,
        api_key_id=_api_key,
        key=_key,
        request_hash=bindparam("request_hash", type_=LargeBinary),
        state="in_flight",
        expires_at=func.now() + _seconds("keep_seconds"),
    )
    return Query(
        stmt.on_conflict_do_update(
            index_elements=[_k.tenant_id, _k.api_key_id, _k.key],
            set_={
                "request_hash": stmt.excluded.request_hash,
                "state": "in_flight",
                "created_at": func.now(),
                "expires_at": stmt.excluded.expires_at,
                "response_status": None,
                "response_body": None,
                "response_headers": None,
            },
            where=or_(
                _k.expires_at < func.now(),
                and_(
                    _k.state == "in_flight",
                    _k.created_at < func.now() - _seconds("lease_seconds"),
                ),
            ),
        ).returning(_k.key)
    )


_CLAIM = _claim()
_EXISTING = Query(
    select(
        _k.request_hash, _k.state, _k.response_status, _k.response_body, _k.response_headers
    ).where(_mine)
)
_COMPLETE = Query(
    update(idempotency_keys)
    .values(
        state="done",
        response_status=bindparam("status", type_=SmallInteger),
        response_body=bindparam("body", type_=LargeBinary),
        response_headers=bindparam("headers", type_=JSONB),
    )
    .where(_mine)
)
_RELEASE = Query(delete(idempotency_keys).where(_mine))
_PURGE = Query(delete(idempotency_keys).where(_k.expires_at < func.now()))


@dataclass(frozen=True, slots=True)
class Scope:
    tenant_id: uuid.UUID
    api_key_id: uuid.UUID
    key: str

    def values(self) -> dict[str, object]:
        return {"tenant_id": self.tenant_id, "api_key_id": self.api_key_id, "key": self.key}


class Record(TypedDict):
    request_hash: bytes
    state: str
    response_status: int | None
    response_body: bytes | None
    response_headers: dict[str, str] | None


class _Claimed(TypedDict):
    key: str


async def claim(conn: Connection, scope: Scope, request_hash: bytes) -> Record | None:
    """Claim the key for this request (None), or the record that holds it already."""
    claimed = await row(
        conn,
        _Claimed,
        _CLAIM,
        **scope.values(),
        request_hash=request_hash,
        keep_seconds=int(RETENTION.total_seconds()),
        lease_seconds=int(IN_FLIGHT_LEASE.total_seconds()),
    )
    if claimed is not None:
        return None
    return await row(conn, Record, _EXISTING, **scope.values())


async def complete(
    conn: Connection, scope: Scope, status: int, body: bytes, headers: dict[str, str]
) -> None:
    await execute(conn, _COMPLETE, **scope.values(), status=status, body=body, headers=headers)


async def release(conn: Connection, scope: Scope) -> None:
    await execute(conn, _RELEASE, **scope.values())


async def purge_expired(db: Database) -> int:
    async with db.connection() as conn:
        return await execute(conn, _PURGE)
