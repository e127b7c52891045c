"""Idempotency-Key for POST: a retry gets the first response back.

All of it happens on the request's one connection. The key is claimed in its own autocommitted
statement before the work starts, so a concurrent duplicate sees "in flight" (409) at once
instead of waiting on a lock. The work and its stored response then share one transaction, so
the two commit (or vanish) together. A refusal (4xx) is kept for replay after the work rolled
back; any other failure frees the key for a retry. A claim whose request died without an
answer is taken over after the lease (flowdesk.idempotency.repository).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Mapping

from fastapi import Request
from starlette.responses import Response

from flowdesk.api.headers import IDEMPOTENCY_KEY
from flowdesk.api.problems import error_response
from flowdesk.auth.principal import Principal
from flowdesk.db.query import Connection
from flowdesk.errors import AppError, Conflict, InvalidInput
from flowdesk.idempotency import repository as records

MAX_KEY_LENGTH = IDEMPOTENCY_KEY.max_length

# Headers of the first response that a replay repeats.
_KEPT_HEADERS = ("etag", "location")

Handler = Callable[[], Awaitable[Response]]


async def idempotent(
    request: Request, principal: Principal, conn: Connection, handler: Handler
) -> Response:
    """Run `handler` once per Idempotency-Key (the request's header); replay its response to
    retries. Without the header, just run it.

    `conn` is the request's connection: with a key, the handler's statements and the stored
    response share one transaction on it. Routes that call this document the header with
    `openapi_extra=documented(IDEMPOTENCY_KEY)`.
    """
    key = request.headers.get(IDEMPOTENCY_KEY.name)
    if key is None:
        return await handler()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(
            "Invalid Idempotency-Key.",
            [(IDEMPOTENCY_KEY.pointer, f"1 to {MAX_KEY_LENGTH} printable characters")],
        )
    scope = records.Scope(principal.tenant_id, principal.key_id, key)
    digest = hashlib.sha256(
        request.method.encode() + b" " + request.url.path.encode() + b"\n" + await request.body()
    ).digest()
    existing = await records.claim(conn, scope, digest)
    if existing is not None:
        return _replay_or_refuse(existing, digest)

    try:
        async with conn.transaction():
            response = await handler()
            await records.complete(
                conn, scope, response.status_code, bytes(response.body), _kept(response.headers)
            )
    except AppError as exc:
        # The work rolled back. A refusal (4xx) is still the first answer and is kept for
        # replay; anything the client cannot be blamed for frees the key for a retry.
        if 400 <= exc.status < 500:
            await records.complete(conn, scope, exc.status, bytes(error_response(exc).body), {})
        else:
            await records.release(conn, scope)
        raise
    except BaseException:
        # The connection may be the thing that failed: then the claim stays until its lease
        # runs out, and a retry after that runs the request again.
        with contextlib.suppress(Exception):
            await records.release(conn, scope)
        raise
    return response


def _kept(headers: Mapping[str, str]) -> dict[str, str]:
    return {h: headers[h] for h in _KEPT_HEADERS if h in headers}


def _replay_or_refuse(record: records.Record, digest: bytes) -> Response:
    if bytes(record["request_hash"]) != digest:
        raise InvalidInput(
            "This Idempotency-Key was used with a different request.",
            [(IDEMPOTENCY_KEY.pointer, "reused with another body")],
        )
    status = record["response_status"]
    body = record["response_body"]
    if record["state"] != "done" or status is None or body is None:
        raise Conflict(
            "A request with this Idempotency-Key is still in flight; retry shortly.",
            headers={"Retry-After": "1"},
        )
    headers = dict(record["response_headers"] or {})
    headers["Idempotent-Replayed"] = "true"
    media = "application/problem+json" if status >= 400 else "application/json"
    return Response(bytes(body), status_code=status, headers=headers, media_type=media)
