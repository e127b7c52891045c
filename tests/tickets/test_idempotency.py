"""Idempotency-Key on ticket creation, transitions and comments."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

from fastapi import FastAPI

from tests.sql import execute, fetch, fetchval
from tests.support import runtime
from tests.tickets.conftest import Desk


async def test_a_retry_returns_the_first_response(desk: Desk) -> None:
    h = desk.requester.headers | {"Idempotency-Key": "create-1"}
    body = {"title": "Idempotent", "catalog_item": "incident"}
    first = await desk.client.post("/v1/tickets", json=body, headers=h)
    again = await desk.client.post("/v1/tickets", json=body, headers=h)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["etag"] == first.headers["etag"]
    listed = (await desk.client.get("/v1/tickets", headers=desk.requester.headers)).json()["items"]
    assert len(listed) == 1
    # The same key with another body is refused; the key is per API key, so another caller's
    # identical key is independent.
    r = await desk.client.post("/v1/tickets", json={**body, "title": "Other"}, headers=h)
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"pointer": "/header/Idempotency-Key", "detail": "reused with another body"}
    ]
    r = await desk.client.post(
        "/v1/tickets", json=body, headers=desk.agent.headers | {"Idempotency-Key": "create-1"}
    )
    assert r.status_code == 201 and r.json()["id"] != first.json()["id"]


async def test_a_refusal_is_replayed_too(desk: Desk) -> None:
    ticket = await desk.open()
    h = desk.requester.headers | {"Idempotency-Key": "t-1"}
    url = f"/v1/tickets/{ticket['id']}/transitions"
    first = await desk.client.post(url, json={"action": "start"}, headers=h)
    again = await desk.client.post(url, json={"action": "start"}, headers=h)
    assert first.status_code == again.status_code == 409
    assert first.json() == again.json()
    assert again.headers["content-type"] == "application/problem+json"


async def test_comments_are_idempotent(desk: Desk) -> None:
    ticket = await desk.open()
    url = f"/v1/tickets/{ticket['id']}/comments"
    h = desk.requester.headers | {"Idempotency-Key": "c-1"}
    a = await desk.client.post(url, json={"body": "hello"}, headers=h)
    b = await desk.client.post(url, json={"body": "hello"}, headers=h)
    assert a.json() == b.json()
    assert len((await desk.client.get(url, headers=h)).json()["items"]) == 1


async def test_in_flight_is_409(desk: Desk, app: FastAPI) -> None:
    body = b'{"title":"x","catalog_item":"incident"}'
    digest = hashlib.sha256(b"POST /v1/tickets\n" + body).digest()
    key_id = await fetchval(
        app, "SELECT id FROM api_keys WHERE user_id = $1::uuid", desk.requester.id
    )
    await execute(
        app,
        "INSERT INTO idempotency_keys "
        "(tenant_id, api_key_id, key, request_hash, state, expires_at) "
        "VALUES ($1, $2, 'busy', $3, 'in_flight', now() + interval '1 day')",
        args=(desk.tenant.id, key_id, digest),
    )
    h = desk.requester.headers | {"Idempotency-Key": "busy", "content-type": "application/json"}
    r = await desk.client.post("/v1/tickets", content=body, headers=h)
    assert r.status_code == 409 and r.headers["retry-after"] == "1"


async def test_concurrent_retries_create_one_ticket(desk: Desk) -> None:
    key = str(uuid.uuid4())
    h = desk.requester.headers | {"Idempotency-Key": key}
    body = {"title": "Storm", "catalog_item": "incident"}
    results = await asyncio.gather(
        *[desk.client.post("/v1/tickets", json=body, headers=h) for _ in range(8)]
    )
    created = {r.json()["id"] for r in results if r.status_code == 201}
    assert len(created) == 1
    assert all(r.status_code in (201, 409) for r in results)
    listed = (await desk.client.get("/v1/tickets", headers=desk.requester.headers)).json()["items"]
    assert [t["id"] for t in listed] == list(created)


async def test_bad_keys_are_422(desk: Desk) -> None:
    for key in ("k" * 256, "", "tab\there"):
        r = await desk.client.post(
            "/v1/tickets",
            json={"title": "x", "catalog_item": "incident"},
            headers=desk.requester.headers | {"Idempotency-Key": key},
        )
        assert r.status_code == 422, key
        assert r.json()["errors"][0]["pointer"] == "/header/Idempotency-Key"
    # Nothing was filed by the refused requests.
    listed = await desk.client.get("/v1/tickets", headers=desk.requester.headers)
    assert listed.json()["items"] == []


async def test_expired_records_are_purged(desk: Desk, app: FastAPI) -> None:
    from flowdesk.idempotency.repository import purge_expired

    h = desk.requester.headers
    await desk.client.post(
        "/v1/tickets",
        json={"title": "a", "catalog_item": "incident"},
        headers=h | {"Idempotency-Key": "old"},
    )
    await desk.client.post(
        "/v1/tickets",
        json={"title": "b", "catalog_item": "incident"},
        headers=h | {"Idempotency-Key": "new"},
    )
    await execute(
        app,
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' "
        "WHERE key = 'old' AND tenant_id = $1",
        args=(desk.tenant.id,),
    )
    assert await purge_expired(runtime(app).db) >= 1
    rows = await fetch(app, "SELECT key FROM idempotency_keys WHERE tenant_id = $1", desk.tenant.id)
    assert [r["key"] for r in rows] == ["new"]
    # An expired key is free again: the same key makes a new ticket.
    r = await desk.client.post(
        "/v1/tickets",
        json={"title": "a2", "catalog_item": "incident"},
        headers=h | {"Idempotency-Key": "old"},
    )
    assert r.status_code == 201 and "idempotent-replayed" not in r.headers


async def test_links_unlinks_and_approvals_are_idempotent(desk: Desk) -> None:
    """Issue 16: a retried link, unlink or approval gets the first answer, and nothing is
    done twice (the second link would be 409, the second unlink 404, the second approval a
    second row)."""
    a, b = await desk.open(), await desk.open()
    c, h = desk.client, desk.agent.headers
    url = f"/v1/tickets/{a['id']}"
    link = {"kind": "blocked_by", "target": b["id"]}
    first = await c.post(f"{url}/links", json=link, headers=h | {"Idempotency-Key": "l-1"})
    again = await c.post(f"{url}/links", json=link, headers=h | {"Idempotency-Key": "l-1"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and again.headers["idempotent-replayed"] == "true"

    unlink = f"{url}/links/{first.json()['id']}"
    gone = await c.delete(unlink, headers=h | {"Idempotency-Key": "u-1"})
    gone_again = await c.delete(unlink, headers=h | {"Idempotency-Key": "u-1"})
    assert gone.status_code == gone_again.status_code == 204
    assert gone_again.headers["idempotent-replayed"] == "true"

    approve = {"name": "infra"}
    await desk.join("INFRA approvers", desk.agent)  # who may give it (the catalog's policy)
    first = await c.post(f"{url}/approvals", json=approve, headers=h | {"Idempotency-Key": "a-1"})
    again = await c.post(f"{url}/approvals", json=approve, headers=h | {"Idempotency-Key": "a-1"})
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    approvals = (await c.get(f"{url}/approvals", headers=h)).json()
    assert len(approvals) == 1
    kinds = [e["kind"] for e in (await c.get(f"{url}/events", headers=h)).json()["items"]]
    assert kinds == ["created", "linked", "unlinked", "approved"]
