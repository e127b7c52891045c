"""Protocol behaviour every endpoint keeps: problem+json, 413, NUL bytes, ranges, request ids."""

from __future__ import annotations

import httpx

from tests.support import TenantCtx


async def test_validation_errors_are_problem_json_with_pointers(
    client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    r = await client.post(
        "/v1/users",
        json={"email": "nope", "name": "x" * 201, "kind": "robot"},
        headers=tenant.headers,
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == "/problems/validation-error" and body["status"] == 422
    assert {e["pointer"] for e in body["errors"]} == {"/email", "/name", "/kind"}


async def test_nul_bytes_and_huge_integers_are_422(
    client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    r = await client.post(
        "/v1/users", json={"email": "a@b.example", "name": "bad\u0000name"}, headers=tenant.headers
    )
    assert r.status_code == 422
    r = await client.post("/v1/groups", json={"name": "n\u0000"}, headers=tenant.headers)
    assert r.status_code == 422
    r = await client.get("/v1/users", params={"limit": 10**40}, headers=tenant.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/query/limit"
    r = await client.get("/v1/users", params={"cursor": "\x00"}, headers=tenant.headers)
    assert r.status_code == 422


async def test_malformed_json_is_422(client: httpx.AsyncClient, tenant: TenantCtx) -> None:
    r = await client.post(
        "/v1/users",
        content=b'{"email": ',
        headers=tenant.headers | {"content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


async def test_bodies_over_64_kib_are_413(client: httpx.AsyncClient, tenant: TenantCtx) -> None:
    big = {"email": "a@b.example", "name": "x" * (70 * 1024)}
    r = await client.post("/v1/users", json=big, headers=tenant.headers)
    assert r.status_code == 413
    assert r.json()["type"] == "/problems/payload-too-large"

    async def chunks() -> object:
        for _ in range(70):
            yield b"x" * 1024

    r = await client.post("/v1/users", content=chunks(), headers=tenant.headers)  # type: ignore[arg-type]
    assert r.status_code == 413
    users = (await client.get("/v1/users", headers=tenant.headers)).json()["items"]
    assert len(users) == 1


async def test_unknown_routes_and_methods_are_problem_json(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/nothing-here")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = await client.put("/healthz")
    assert r.status_code == 405 and r.json()["status"] == 405
    assert r.headers["allow"] == "GET"
    # Allow names every method of the resource, which several routes serve (RFC 9110).
    r = await client.delete("/v1/tickets/TKT-000001")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, PATCH"
    r = await client.post("/v1/assets/by-ref/AS-1")
    assert r.status_code == 405 and r.headers["allow"] == "PUT"
    # Only the resource's own: /v1/tickets/counts is not a ticket, though {ref} matches it
    # (found by the fuzzer, tests/http/test_fuzz.py).
    r = await client.options("/v1/tickets/counts")
    assert r.status_code == 405 and r.headers["allow"] == "GET"


async def test_bad_ids_in_paths_are_422(client: httpx.AsyncClient, tenant: TenantCtx) -> None:
    r = await client.get("/v1/users/not-a-uuid", headers=tenant.headers)
    assert r.status_code == 422


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert (
        r.headers["x-request-id"] != "bad id with spaces" and len(r.headers["x-request-id"]) == 32
    )


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}


async def test_a_body_is_judged_only_once_the_caller_is_known(
    client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    # FastAPI decodes the body before the endpoint's authentication: without a key, a body
    # that is not JSON (or not even text) is still the missing key's 401.
    json_type = {"content-type": "application/json"}
    for body in (b"{not json", b"\xff\xfe\x00"):
        r = await client.post("/v1/tickets", content=body, headers=json_type)
        assert r.status_code == 401, (body, r.text)
        r = await client.post(
            "/v1/tickets", content=body, headers=json_type | {"Authorization": "Bearer fdk_x"}
        )
        assert r.status_code == 401, (body, r.text)
        # With a key, both are the same 422.
        r = await client.post("/v1/tickets", content=body, headers=json_type | tenant.headers)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
