"""The idempotency records: claims, stored responses, their expiry.

A record is scoped to (tenant, API key, Idempotency-Key). It is claimed `in_flight` before the
request's work starts and completed `done` with the response in the work's own transaction.

Claims are fenced: each claim draws a random token, and completing or releasing the claim
needs that token and an `in_flight` record. A claim whose request died without an answer is
taken over once its lease has run out, with a new token, so that the first request, if it was
only slow, can neither complete (its work is rolled back with the refused completion) nor
release the claim it no longer owns. Release deletes only an in-flight claim: never a `done`
record, whatever error came after the commit (docs/adr/0018-admin-audit-and-idempotency-fencing.md).
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

from flowdesk.config import Settings
from flowdesk.db.batches import delete_in_batches
from flowdesk.db.pool import Database
from flowdesk.db.query import Connection, Query, execute, row
from flowdesk.models import idempotency_keys

RETENTION = timedelta(hours=24)
# The shortest lease, whatever the settings say (see `lease`).
MIN_LEASE = timedelta(seconds=60)
# With no statement timeout, no request's length is bounded by the database: this long.
UNBOUNDED_LEASE = timedelta(minutes=10)
# The statements a request's work may run, at most, one after the other (each within the
# statement timeout): a claim is taken over only after they all could have run.
_STATEMENTS_PER_REQUEST = 4

_k = idempotency_keys.c
_tenant = bindparam("tenant_id", type_=Uuid)
_api_key = bindparam("api_key_id", type_=Uuid)
_key = bindparam("key", type_=String)
_token = bindparam("fence", type_=Uuid)
_mine = and_(_k.tenant_id == _tenant, _k.api_key_id == _api_key, _k.key == _key)
# The claim this request holds: still in flight, and not taken over since.
_owned = and_(_mine, _k.state == "in_flight", _k.claim_token == _token)


def lease(settings: Settings) -> timedelta:
    """How long an in-flight claim is its request's alone: longer than the longest request
    (the statements its work may run, each within the statement timeout, and the wait for a
    connection), and never under a minute. The fence keeps a request that outlives it from
    completing anyway; the lease decides how soon a retry may run a request that died."""
    if not settings.idempotency_lease_seconds and not settings.db_statement_timeout_ms:
        return UNBOUNDED_LEASE
    if settings.idempotency_lease_seconds:
        return timedelta(seconds=settings.idempotency_lease_seconds)
    longest = (
        _STATEMENTS_PER_REQUEST * settings.db_statement_timeout_ms / 1000 + settings.db_pool_timeout
    )
    return max(MIN_LEASE, timedelta(seconds=longest))


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
        claim_token=_token,
        expires_at=func.now() + _seconds("keep_seconds"),
    )
    return Query(
        stmt.on_conflict_do_update(
            index_elements=[_k.tenant_id, _k.api_key_id, _k.key],
            set_={
                "request_hash": stmt.excluded.request_hash,
                "state": "in_flight",
                "claim_token": stmt.excluded.claim_token,
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
        ).returning(_k.claim_token)
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
        claim_token=None,
    )
    .where(_owned)
)
_RELEASE = Query(delete(idempotency_keys).where(_owned))


def _purge() -> Query:
    # Bounded batches (flowdesk.db.batches): a day of keys is deleted without a long lock.
    old = (
        select(_k.tenant_id, _k.api_key_id, _k.key)
        .where(_k.expires_at < func.now())
        # In the index's order: a batch steps over the entries the batches before it killed,
        # instead of a scan over every dead row they left (bench/purge.py).
        .order_by(_k.expires_at)
        .limit(bindparam("batch", type_=Integer))
        .with_for_update(skip_locked=True)
        .cte("old")
    )
    return Query(
        delete(idempotency_keys).where(
            _k.tenant_id == old.c.tenant_id, _k.api_key_id == old.c.api_key_id, _k.key == old.c.key
        )
    )


_PURGE = _purge()


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
    claim_token: uuid.UUID


@dataclass(frozen=True, slots=True)
class Claim:
    """This request holds the key: complete or release it with this token."""

    scope: Scope
    token: uuid.UUID


async def claim(
    conn: Connection, scope: Scope, request_hash: bytes, lease_for: timedelta
) -> Claim | Record:
    """Claim the key for this request, or the record that holds it already."""
    claimed = await row(
        conn,
        _Claimed,
        _CLAIM,
        **scope.values(),
        request_hash=request_hash,
        fence=uuid.uuid4(),
        keep_seconds=int(RETENTION.total_seconds()),
        lease_seconds=max(1, int(lease_for.total_seconds())),
    )
    if claimed is not None:
        return Claim(scope, claimed["claim_token"])
    existing = await row(conn, Record, _EXISTING, **scope.values())
    if existing is None:  # purged between the two statements: claim it afresh
        return await claim(conn, scope, request_hash, lease_for)
    return existing


async def complete(
    conn: Connection, held: Claim, status: int, body: bytes, headers: dict[str, str]
) -> bool:
    """Store the response; False (nothing stored) when the claim is no longer this
    request's: taken over after its lease, or completed or released already."""
    done = await execute(
        conn,
        _COMPLETE,
        **held.scope.values(),
        fence=held.token,
        status=status,
        body=body,
        headers=headers,
    )
    return done == 1


async def release(conn: Connection, held: Claim) -> bool:
    """Free the key for a retry, if this request still holds it in flight (a `done` record is
    never deleted: its work committed)."""
    return await execute(conn, _RELEASE, **held.scope.values(), fence=held.token) == 1


async def purge_expired(db: Database) -> int:
    """Delete the records past their expiry, a batch at a time; how many went."""
    return await delete_in_batches(db, _PURGE)
