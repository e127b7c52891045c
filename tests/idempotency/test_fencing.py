"""Idempotency claims are fenced (issue 16, item 6): a claim taken over after its lease changes
its token, so the first owner can neither complete nor release it; a release never deletes a
`done` record; a commit that fails frees the claim. Against the real database, through the
repository and through the HTTP API."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from flowdesk.api.idempotency import ClaimLost, idempotent
from flowdesk.auth.principal import Principal
from flowdesk.config import Settings
from flowdesk.idempotency import repository as records
from tests.sql import execute, fetch, fetchval
from tests.support import TenantCtx, runtime

LEASE = timedelta(seconds=60)


async def _admin_key_id(tenant: TenantCtx) -> uuid.UUID:
    r = await tenant.client.get("/v1/me", headers=tenant.headers)
    return uuid.UUID(r.json()["key_id"])


async def _scope(tenant: TenantCtx, key: str) -> records.Scope:
    return records.Scope(tenant.id, await _admin_key_id(tenant), key)


async def _expire_lease(app: FastAPI, scope: records.Scope) -> None:
    """The claim's request started longer ago than its lease (as if it were still running, or
    had died)."""
    await execute(
        app,
        "UPDATE idempotency_keys SET created_at = now() - interval '1 hour' "
        "WHERE tenant_id = $1 AND api_key_id = $2 AND key = $3",
        args=(scope.tenant_id, scope.api_key_id, scope.key),
    )


async def test_an_expired_claim_is_taken_over_and_its_first_owner_is_fenced_off(
    app: FastAPI, tenant: TenantCtx
) -> None:
    scope = await _scope(tenant, "fenced")
    async with runtime(app).db.connection() as conn:
        first = await records.claim(conn, scope, b"h" * 32, LEASE)
        assert isinstance(first, records.Claim)
        # Within the lease the claim is the first request's: a retry sees it in flight.
        busy = await records.claim(conn, scope, b"h" * 32, LEASE)
        assert not isinstance(busy, records.Claim) and busy["state"] == "in_flight"

        await _expire_lease(app, scope)
        second = await records.claim(conn, scope, b"h" * 32, LEASE)
        assert isinstance(second, records.Claim) and second.token != first.token

        # The first request was only slow: its answer and its release are both refused.
        assert not await records.complete(conn, first, 201, b'{"first": true}', {})
        assert not await records.release(conn, first)
        assert await records.complete(conn, second, 201, b'{"second": true}', {})

    stored = await fetch(
        app,
        "SELECT state, response_body FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
        tenant.id,
        "fenced",
    )
    assert [(r["state"], bytes(r["response_body"])) for r in stored] == [
        ("done", b'{"second": true}')
    ]


async def test_a_release_after_the_commit_leaves_the_done_record(
    app: FastAPI, tenant: TenantCtx
) -> None:
    """An error after the commit (an acknowledgement lost with the connection) must not free
    a key whose work committed: the retry would run it a second time."""
    body = b'{"email": "once@example.com", "name": "Once", "kind": "person"}'
    digest = hashlib.sha256(b"POST /v1/users\n" + body).digest()
    scope = await _scope(tenant, "committed")
    async with runtime(app).db.connection() as conn:
        held = await records.claim(conn, scope, digest, LEASE)
        assert isinstance(held, records.Claim)
        async with conn.transaction():
            assert await records.complete(conn, held, 201, b'{"stored": "answer"}', {})
        assert not await records.release(conn, held)

    # The retry gets the stored answer, and nothing runs again.
    r = await tenant.client.post(
        "/v1/users",
        content=body,
        headers=tenant.headers
        | {"Idempotency-Key": "committed", "content-type": "application/json"},
    )
    assert r.status_code == 201 and r.json() == {"stored": "answer"}
    assert r.headers["idempotent-replayed"] == "true"
    assert (
        await fetchval(
            app,
            "SELECT count(*) FROM users WHERE tenant_id = $1 AND email = $2",
            tenant.id,
            "once@example.com",
        )
        == 0
    )


def _request(app: FastAPI, path: str, key: str, body: bytes) -> Request:
    scope = {
        "type": "http",
        "app": app,
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"idempotency-key", key.encode()), (b"content-type", b"application/json")],
    }

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


async def test_a_request_whose_claim_was_taken_over_rolls_its_work_back(
    app: FastAPI, tenant: TenantCtx
) -> None:
    """The slow first request finishes after a retry took its claim over: its completion is
    refused inside its own transaction, so its work does not commit (409), and the retry's
    answer stands."""
    key_id = await _admin_key_id(tenant)
    principal = Principal(
        tenant_id=tenant.id,
        tenant_slug=tenant.slug,
        user_id=uuid.UUID(tenant.admin.id),
        user_kind="person",
        key_id=key_id,
        scopes=frozenset({"admin"}),
        permissions=frozenset({"admin"}),
    )
    scope = records.Scope(tenant.id, key_id, "slow")
    body = b'{"name": "slow"}'
    retry: list[records.Claim] = []

    async with runtime(app).db.connection() as conn:

        async def slow_handler() -> Response:
            await conn.execute(
                "UPDATE tenants SET name = 'changed by the slow one' WHERE id = $1", tenant.id
            )
            # Meanwhile the lease ran out and the client's retry took the key over.
            await _expire_lease(app, scope)
            async with runtime(app).db.connection() as other:
                digest = hashlib.sha256(b"POST /x\n" + body).digest()
                taken = await records.claim(other, scope, digest, LEASE)
                assert isinstance(taken, records.Claim)
                retry.append(taken)
            return Response(b"{}", status_code=201, media_type="application/json")

        with pytest.raises(ClaimLost):
            await idempotent(_request(app, "/x", "slow", body), principal, conn, slow_handler)

    name = await fetchval(app, "SELECT name FROM tenants WHERE id = $1", tenant.id)
    assert name != "changed by the slow one"
    # The retry still owns the claim (the loser did not release it).
    async with runtime(app).db.connection() as conn:
        assert await records.complete(conn, retry[0], 201, b"{}", {})


async def test_a_failed_commit_frees_the_claim(app: FastAPI, tenant: TenantCtx) -> None:
    """An administrative POST whose commit fails (here a deferred constraint trigger) leaves
    no claim behind: the retry runs it at once instead of getting 409 until the lease ends."""
    await execute(
        app,
        "CREATE OR REPLACE FUNCTION test_refuse_at_commit() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN IF NEW.name = 'refused at commit' THEN "
        "RAISE EXCEPTION 'refused at commit'; END IF; RETURN NULL; END $$",
        "CREATE CONSTRAINT TRIGGER test_refuse_at_commit AFTER INSERT ON groups "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_refuse_at_commit()",
    )
    h = tenant.headers | {"Idempotency-Key": "commit-fails"}
    # The server's error answer, as a client sees it (not the exception, as the test client).
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://flowdesk.test") as c:
            r = await c.post(
                "/v1/groups", json={"name": "refused at commit", "permissions": []}, headers=h
            )
        assert r.status_code >= 500
    finally:
        await execute(app, "DROP TRIGGER test_refuse_at_commit ON groups")
    left = await fetchval(
        app,
        "SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
        tenant.id,
        "commit-fails",
    )
    assert left == 0
    r = await tenant.client.post(
        "/v1/groups", json={"name": "refused at commit", "permissions": []}, headers=h
    )
    assert r.status_code == 201


def test_the_lease_outlasts_the_longest_request() -> None:
    """Derived from the statement and pool timeouts, never under a minute; set explicitly, as
    set; without a statement timeout, long."""
    base = Settings(database_url="postgresql+asyncpg://x/y")
    assert records.lease(base.model_copy(update={"db_statement_timeout_ms": 15_000})) >= timedelta(
        seconds=4 * 15 + 2
    )
    assert records.lease(base.model_copy(update={"db_statement_timeout_ms": 1_000})) == (
        records.MIN_LEASE
    )
    assert records.lease(base.model_copy(update={"db_statement_timeout_ms": 0})) == (
        records.UNBOUNDED_LEASE
    )
    assert records.lease(base.model_copy(update={"idempotency_lease_seconds": 90})) == timedelta(
        seconds=90
    )
