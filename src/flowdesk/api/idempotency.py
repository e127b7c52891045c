"""Idempotency-Key for POST: a retry gets the first response back.

The key is claimed in its own committed transaction before the work starts, so a concurrent
duplicate sees "in flight" (409) at once instead of waiting on a lock. The response is stored
in the same transaction as the work it describes, so the two commit (or vanish) together. A
claim whose request died without an answer is taken over after `IN_FLIGHT_LEASE`.
Keys are scoped to the tenant and the API key, and kept for `RETENTION`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from fastapi import Request
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response

from flowdesk.auth.principal import Principal
from flowdesk.db.sql import Statement
from flowdesk.errors import AppError, Conflict, InvalidInput, problem_response
from flowdesk.api.headers import IDEMPOTENCY_KEY

RETENTION = timedelta(hours=24)
IN_FLIGHT_LEASE = timedelta(seconds=30)
MAX_KEY_LENGTH = IDEMPOTENCY_KEY.max_length

_CLAIM = text(
    """
INSERT INTO idempotency_keys (tenant_id, api_key_id, key, request_hash, state, expires_at)
VALUES (:tenant_id, :api_key_id, :key, :hash, 'in_flight', now() + make_interval(secs => :keep))
ON CONFLICT (tenant_id, api_key_id, key) DO UPDATE
SET request_hash = EXCLUDED.request_hash, state = 'in_flight', created_at = now(),
    expires_at = EXCLUDED.expires_at, response_status = NULL, response_body = NULL,
    response_headers = NULL
WHERE idempotency_keys.expires_at < now()
   OR (idempotency_keys.state = 'in_flight'
       AND idempotency_keys.created_at < now() - make_interval(secs => :lease))
RETURNING 1
"""
)
_EXISTING = text(
    """
SELECT request_hash, state, response_status, response_body, response_headers
FROM idempotency_keys WHERE tenant_id = :tenant_id AND api_key_id = :api_key_id AND key = :key
"""
).columns(response_headers=JSONB)
_COMPLETE = text(
    """
UPDATE idempotency_keys SET state = 'done', response_status = :status, response_body = :body,
       response_headers = CAST(:headers AS jsonb)
WHERE tenant_id = :tenant_id AND api_key_id = :api_key_id AND key = :key
"""
)
# The same, on the request's own asyncpg connection, inside the work's transaction.
_COMPLETE_IN_WORK = Statement(
    """
UPDATE idempotency_keys SET state = 'done', response_status = :status::smallint,
       response_body = :body::bytea, response_headers = :headers::jsonb
WHERE tenant_id = :tenant_id::uuid AND api_key_id = :api_key_id::uuid AND key = :key::text
"""
)
_RELEASE = text(
    "DELETE FROM idempotency_keys "
    "WHERE tenant_id = :tenant_id AND api_key_id = :api_key_id AND key = :key"
)
_PURGE = text("DELETE FROM idempotency_keys WHERE expires_at < now()")

# Headers of the first response that a replay repeats.
_KEPT_HEADERS = ("etag", "location")


@dataclass(frozen=True, slots=True)
class _Scope:
    tenant_id: object
    api_key_id: object
    key: str

    def params(self) -> dict[str, object]:
        return {"tenant_id": self.tenant_id, "api_key_id": self.api_key_id, "key": self.key}


Handler = Callable[[], Awaitable[Response]]


async def idempotent(
    request: Request, principal: Principal, conn: Any, handler: Handler
) -> Response:
    """Run `handler` once per Idempotency-Key (the request's header); replay its response to
    retries. Without the header, just run it.

    `conn` is the request's asyncpg connection (flowdesk.db.raw): with a key, the handler's
    statements and the stored response share one transaction on it. Routes that call this
    document the header with `openapi_extra=documented(IDEMPOTENCY_KEY)`.
    """
    key = request.headers.get(IDEMPOTENCY_KEY.name)
    if key is None:
        return await handler()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(
            "Invalid Idempotency-Key.",
            [(IDEMPOTENCY_KEY.pointer, f"1 to {MAX_KEY_LENGTH} printable characters")],
        )
    engine: AsyncEngine = request.app.state.engine
    scope = _Scope(principal.tenant_id, principal.key_id, key)
    digest = hashlib.sha256(
        request.method.encode() + b" " + request.url.path.encode() + b"\n" + await request.body()
    ).digest()
    async with engine.begin() as claimer:
        claim = {
            **scope.params(),
            "hash": digest,
            "keep": RETENTION.total_seconds(),
            "lease": IN_FLIGHT_LEASE.total_seconds(),
        }
        claimed = (await claimer.execute(_CLAIM, claim)).first()
        existing = (
            None
            if claimed
            else (await claimer.execute(_EXISTING, scope.params())).mappings().first()
        )
    if existing is not None:
        return _replay_or_refuse(existing, digest)

    try:
        async with conn.transaction():
            response = await handler()
            stored = _stored(response.status_code, bytes(response.body), response.headers)
            await conn.execute(
                _COMPLETE_IN_WORK.sql, *_COMPLETE_IN_WORK.args({**scope.params(), **stored})
            )
    except AppError as exc:
        # The work rolled back; a refusal (4xx) is still the first answer and is kept for
        # replay, while anything the client cannot be blamed for frees the key for a retry.
        await _finish_out_of_band(engine, scope, exc)
        raise
    except BaseException:
        async with engine.begin() as release:
            await release.execute(_RELEASE, scope.params())
        raise
    return response


def _stored(status: int, body: bytes, headers: Mapping[str, str]) -> dict[str, object]:
    kept = {h: headers[h] for h in _KEPT_HEADERS if h in headers}
    return {"status": status, "body": body, "headers": orjson.dumps(kept).decode()}


async def _finish_out_of_band(engine: AsyncEngine, scope: _Scope, exc: AppError) -> None:
    async with engine.begin() as conn:
        if 400 <= exc.status < 500:
            response = problem_response(
                exc.status, exc.slug, exc.title, exc.detail, extra=exc.extra, headers=exc.headers
            )
            await conn.execute(
                _COMPLETE, {**scope.params(), **_stored(exc.status, bytes(response.body), {})}
            )
        else:
            await conn.execute(_RELEASE, scope.params())


def _replay_or_refuse(row: RowMapping, digest: bytes) -> Response:
    if bytes(row["request_hash"]) != digest:
        raise InvalidInput(
            "This Idempotency-Key was used with a different request.",
            [(IDEMPOTENCY_KEY.pointer, "reused with another body")],
        )
    if row["state"] != "done":
        raise Conflict(
            "A request with this Idempotency-Key is still in flight; retry shortly.",
            headers={"Retry-After": "1"},
        )
    status = int(row["response_status"])
    headers = dict(row["response_headers"] or {})
    headers["Idempotent-Replayed"] = "true"
    media = "application/problem+json" if status >= 400 else "application/json"
    return Response(
        bytes(row["response_body"]), status_code=status, headers=headers, media_type=media
    )


async def purge_expired(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(_PURGE)
    return int(getattr(result, "rowcount", 0) or 0)
