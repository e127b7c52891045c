"""Idempotency-Key for POST: a retry gets the first response back.

The key is claimed in its own autocommitted statement before the work starts, so a concurrent
duplicate sees "in flight" (409) at once instead of waiting on a lock. The work and its stored
response then share one transaction, so the two commit (or vanish) together. A refusal (4xx)
is kept for replay after the work rolled back; any other failure frees the key for a retry.

Claims are fenced (flowdesk.idempotency.repository): a claim whose request died without an
answer is taken over after its lease with a new token, and a request whose claim was taken
over cannot complete it: its completion is refused inside its own transaction, which rolls its
work back (409). A failure after the commit never frees a completed key.

Two ways to hold the request's connection: the ticket endpoints take a connection outside any
transaction, and claim, work and complete on it; the administrative endpoints get theirs
inside the request's transaction (`Tx`), so the claim, a refusal or a release go through a
short second connection of the pool, and a commit that fails frees the claim.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta

from fastapi import Request
from pydantic import BaseModel
from starlette.responses import Response

from flowdesk.api.db import after_rollback
from flowdesk.api.headers import IDEMPOTENCY_KEY
from flowdesk.api.problems import error_response
from flowdesk.auth.principal import Principal
from flowdesk.db.pool import Database
from flowdesk.db.query import Connection
from flowdesk.errors import AppError, Conflict, InvalidInput
from flowdesk.idempotency import repository as records
from flowdesk.runtime import runtime_of

MAX_KEY_LENGTH = IDEMPOTENCY_KEY.max_length

# Headers of the first response that a replay repeats.
_KEPT_HEADERS = ("etag", "location")

Handler = Callable[[], Awaitable[Response]]


class ClaimLost(Conflict):
    """The request outlived its claim's lease and a retry took the key over: its work is
    rolled back, the retry's answer stands."""

    def __init__(self) -> None:
        super().__init__(
            "A retry with this Idempotency-Key took the request over; this attempt was "
            "rolled back. Retry to get the answer.",
            headers={"Retry-After": "1"},
        )


async def idempotent(
    request: Request,
    principal: Principal,
    conn: Connection,
    handler: Handler,
    *,
    digest: bytes | None = None,
) -> Response:
    """Run `handler` once per Idempotency-Key (the request's header); replay its response to
    retries. Without the header, just run it.

    `conn` is the request's connection, the one `handler` works on: in a transaction (`Tx`)
    or not (the ticket endpoints). Routes that call this document the header with
    `openapi_extra=documented(IDEMPOTENCY_KEY)`. `digest` stands for the request when its
    body was streamed and is gone (an upload: flowdesk.api.uploads.upload_digest).
    """
    key = request.headers.get(IDEMPOTENCY_KEY.name)
    if key is None:
        return await handler()
    if not IDEMPOTENCY_KEY.valid(key):
        raise InvalidInput(
            "Invalid Idempotency-Key.",
            [(IDEMPOTENCY_KEY.pointer, f"1 to {MAX_KEY_LENGTH} printable characters")],
        )
    scope = records.Scope(principal.tenant_id, principal.key_id, key)
    if digest is None:
        request_line = request.method.encode() + b" " + request.url.path.encode()
        digest = hashlib.sha256(request_line + b"\n" + await request.body()).digest()
    runtime = runtime_of(request)
    lease_for = records.lease(runtime.settings)
    if conn.is_in_transaction():
        return await _in_transaction(request, runtime.db, conn, scope, digest, lease_for, handler)

    held = await records.claim(conn, scope, digest, lease_for)
    if not isinstance(held, records.Claim):
        return _replay_or_refuse(held, digest)
    try:
        async with conn.transaction():
            response = await handler()
            await _complete(conn, held, response)
    except ClaimLost:
        raise
    except AppError as exc:
        # The work rolled back. A refusal (4xx) is still the first answer and is kept for
        # replay; anything the client cannot be blamed for frees the key for a retry.
        await _settle_refused(conn, held, exc)
        raise
    except BaseException:
        # The connection may be the thing that failed: then the claim stays until its lease
        # runs out, and a retry after that runs the request again. A commit that went through
        # left a `done` record, which the release does not touch.
        with contextlib.suppress(Exception):
            await records.release(conn, held)
        raise
    return response


async def _in_transaction(
    request: Request,
    db: Database,
    conn: Connection,
    scope: records.Scope,
    digest: bytes,
    lease_for: timedelta,
    handler: Handler,
) -> Response:
    """The same, for a handler working in the request's transaction (`Tx`), which commits
    after the endpoint returns."""
    async with db.connection() as side:
        held = await records.claim(side, scope, digest, lease_for)
    if not isinstance(held, records.Claim):
        return _replay_or_refuse(held, digest)
    try:
        response = await handler()
        await _complete(conn, held, response)
    except ClaimLost:
        raise
    except AppError as exc:
        async with db.connection() as side:
            await _settle_refused(side, held, exc)
        raise
    except BaseException:
        with contextlib.suppress(Exception):
            async with db.connection() as side:
                await records.release(side, held)
        raise

    async def release_if_rolled_back() -> None:
        async with db.connection() as side:
            await records.release(side, held)

    after_rollback(request, release_if_rolled_back)
    return response


async def _complete(conn: Connection, held: records.Claim, response: Response) -> None:
    if not await records.complete(
        conn, held, response.status_code, bytes(response.body), _kept(response.headers)
    ):
        raise ClaimLost()


async def _settle_refused(conn: Connection, held: records.Claim, exc: AppError) -> None:
    if 400 <= exc.status < 500:
        await records.complete(conn, held, exc.status, bytes(error_response(exc).body), {})
    else:
        await records.release(conn, held)


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
    if status == 204:  # no body, no content type
        return Response(status_code=status, headers=headers)
    return Response(bytes(body), status_code=status, headers=headers, media_type=media)


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    """A handler's answer from a response model (what FastAPI would have sent for it), whole,
    so that it can be stored for replay."""
    return Response(
        model.model_dump_json().encode(), status_code=status_code, media_type="application/json"
    )
