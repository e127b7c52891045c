"""CORS for browser SPAs: the deployment's origins and each tenant's own (flowdesk.api.cors).

A preflight is answered for an origin the deployment or any tenant allows; the actual response
carries the CORS headers for the deployment's origins and for the caller's tenant's only;
errors carry them too (else a browser cannot read a 401), and nothing does for an origin
nobody allows. The app here trusts cached origins for an hour, so a change made by SQL (by
another process) can only reach it through the access listener's notification.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from flowdesk.api.cors import EXPOSED_HEADERS, MAX_AGE
from flowdesk.app import create_app
from flowdesk.config import Settings
from flowdesk.db.pool import asyncpg_dsn
from flowdesk.origins import normalise_origin
from tests.support import PLATFORM_TOKEN, TenantCtx, bearer, new_tenant, problem_type, runtime

SPA = "https://spa.example"  # the deployment's
NOBODY = "https://evil.example"  # nobody's


@pytest.fixture(scope="module")
async def cors_app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(
        settings.model_copy(
            update={
                "cors_origins": [SPA, "http://localhost:5173"],
                "auth_cache_seconds": 3600,
                "access_cache_seconds": 3600,
                "licence_cache_seconds": 3600,
            }
        )
    )
    async with app.router.lifespan_context(app):
        await _until(lambda: runtime(app).listener.listening, "the listener connects")
        yield app


@pytest.fixture
async def cors_client(cors_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=cors_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://flowdesk.test") as c:
        yield c


@pytest.fixture
def operator_headers() -> dict[str, str]:
    return bearer(PLATFORM_TOKEN)


@pytest.fixture
async def tenant_a(cors_app: FastAPI, cors_client: httpx.AsyncClient) -> TenantCtx:
    return await new_tenant(cors_app, cors_client)


async def _until(
    condition: Callable[[], bool | Awaitable[bool]], what: str, deadline: float = 10.0
) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


def _preflight_headers(origin: str, method: str = "PATCH") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, if-match",
    }


def _cors(r: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.lower().startswith("access-control-")}


def _allows(r: httpx.Response, origin: str) -> bool:
    return bool(r.headers.get("access-control-allow-origin") == origin)


def _varies(r: httpx.Response) -> bool:
    return "origin" in [v.strip().lower() for v in r.headers.get("vary", "").split(",")]


async def _set_origins(
    tenant: TenantCtx, client: httpx.AsyncClient, origins: object
) -> httpx.Response:
    return await client.patch(
        "/v1/tenant", json={"allowed_origins": origins}, headers=tenant.headers
    )


# --- preflights ------------------------------------------------------------------------------


async def test_a_preflight_from_the_deployments_origin_is_answered_and_cached(
    cors_client: httpx.AsyncClient,
) -> None:
    r = await cors_client.options("/v1/tickets/TKT-000001", headers=_preflight_headers(SPA))
    assert r.status_code == 204, r.text
    assert _allows(r, SPA)
    methods = {m.strip() for m in r.headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "POST", "PUT", "PATCH", "DELETE"}
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "if-match", "if-none-match", "idempotency-key"} <= (
        allowed
    )
    assert r.headers["access-control-max-age"] == str(MAX_AGE)
    assert "access-control-allow-credentials" not in r.headers  # bearer tokens, no cookies
    assert _varies(r)


async def test_a_preflight_from_an_origin_nobody_allows_gets_no_cors_headers(
    cors_client: httpx.AsyncClient,
) -> None:
    r = await cors_client.options("/v1/tickets", headers=_preflight_headers(NOBODY))
    assert r.status_code == 403
    assert problem_type(r) == "origin-not-allowed"
    assert _cors(r) == {}
    assert _varies(r)
    # Nor does a lookalike of an allowed one: origins are exact.
    for lookalike in ("https://spa.example.evil.example", "http://spa.example", "null"):
        r = await cors_client.options("/v1/tickets", headers=_preflight_headers(lookalike))
        assert r.status_code == 403, lookalike
        assert _cors(r) == {}


async def test_a_plain_options_request_is_not_a_preflight(cors_client: httpx.AsyncClient) -> None:
    r = await cors_client.options("/v1/tickets", headers={"Origin": SPA})
    assert r.status_code == 405  # the app's answer; CORS only decorates it
    assert _allows(r, SPA)


# --- actual requests -------------------------------------------------------------------------


async def test_responses_to_the_deployments_origin_carry_cors_headers_errors_included(
    cors_client: httpx.AsyncClient, tenant_a: TenantCtx, operator_headers: dict[str, str]
) -> None:
    origin = {"Origin": SPA}
    r = await cors_client.get("/v1/me", headers={**tenant_a.headers, **origin})
    assert r.status_code == 200
    assert _allows(r, SPA)
    exposed = {h.strip() for h in r.headers["access-control-expose-headers"].split(",")}
    assert exposed == {h.strip() for h in EXPOSED_HEADERS.split(",")}
    assert {"ETag", "Location", "Retry-After", "RateLimit", "RateLimit-Policy", "X-Request-ID"} <= (
        exposed
    )
    assert _varies(r)

    # 401: no key, a bad key.
    for headers in (origin, {**origin, "Authorization": "Bearer fdk_nonsense"}):
        r = await cors_client.get("/v1/me", headers=headers)
        assert r.status_code == 401
        assert problem_type(r) == "unauthorized"
        assert _allows(r, SPA)
    # 403: a read-only key writing.
    reader = await tenant_a.user("tickets:create", scopes=["tickets:read"])
    r = await cors_client.post(
        "/v1/tickets",
        json={"title": "x", "catalog_item": "itsm_incident"},
        headers={**reader.headers, **origin},
    )
    assert r.status_code == 403
    assert _allows(r, SPA)
    # 422
    r = await cors_client.patch(
        "/v1/tenant", json={"allowed_origins": ["ftp://x"]}, headers={**tenant_a.headers, **origin}
    )
    assert r.status_code == 422
    assert _allows(r, SPA)
    # 429 from the rate limiter, answered before the app: one request a minute.
    r = await cors_client.patch(
        f"/platform/v1/tenants/{tenant_a.slug}/licence",
        json={"rate_limit": {"requests": 1, "window_seconds": 60}},
        headers=operator_headers,
    )
    assert r.status_code == 200, r.text
    statuses = []
    public = await tenant_a.public(tenant_a.admin)
    for _ in range(3):
        r = await cors_client.get("/public/v1/tickets", headers={**public.headers, **origin})
        statuses.append(r.status_code)
        assert _allows(r, SPA), r.status_code
    assert 429 in statuses
    assert "retry-after" in r.headers


async def test_no_origin_no_cors_headers_but_vary(
    cors_client: httpx.AsyncClient, tenant_a: TenantCtx
) -> None:
    r = await cors_client.get("/v1/me", headers=tenant_a.headers)
    assert r.status_code == 200
    assert _cors(r) == {}
    assert _varies(r)


async def test_an_origin_nobody_allows_gets_no_cors_headers_on_any_response(
    cors_client: httpx.AsyncClient, tenant_a: TenantCtx
) -> None:
    origin = {"Origin": NOBODY}
    for r in (
        await cors_client.get("/v1/me", headers={**tenant_a.headers, **origin}),
        await cors_client.get("/v1/me", headers=origin),
        await cors_client.get("/healthz", headers=origin),
    ):
        assert _cors(r) == {}
        assert _varies(r)


# --- a tenant's own origins ------------------------------------------------------------------


async def test_a_tenants_origins_are_for_its_own_callers_only(
    cors_app: FastAPI, cors_client: httpx.AsyncClient, tenant_a: TenantCtx
) -> None:
    mine = "https://desk.tenant-a.example"
    tenant_b = await new_tenant(cors_app, cors_client)
    r = await _set_origins(tenant_a, cors_client, [mine, "https://Agents.Tenant-A.example:443"])
    assert r.status_code == 200, r.text
    assert r.json()["allowed_origins"] == [mine, "https://agents.tenant-a.example"]
    r = await cors_client.get("/v1/tenant", headers=tenant_a.headers)
    assert r.json()["allowed_origins"] == [mine, "https://agents.tenant-a.example"]

    # The preflight carries no credentials: answered for any tenant's origin.
    r = await cors_client.options("/v1/me", headers=_preflight_headers(mine))
    assert r.status_code == 204
    assert _allows(r, mine)
    # The actual request: tenant A's caller may read from A's origin, B's may not.
    origin = {"Origin": mine}
    r = await cors_client.get("/v1/me", headers={**tenant_a.headers, **origin})
    assert r.status_code == 200
    assert _allows(r, mine)
    assert "access-control-expose-headers" in r.headers
    r = await cors_client.get("/v1/me", headers={**tenant_b.headers, **origin})
    assert r.status_code == 200
    assert _cors(r) == {}
    assert _varies(r)
    # Without a caller: an error is readable (the 401), anything else is not.
    r = await cors_client.get("/v1/me", headers=origin)
    assert r.status_code == 401
    assert _allows(r, mine)
    r = await cors_client.get("/healthz", headers=origin)
    assert r.status_code == 200
    assert _cors(r) == {}

    # Taken back: at once on this worker.
    r = await _set_origins(tenant_a, cors_client, [])
    assert r.status_code == 200
    assert r.json()["allowed_origins"] == []
    r = await cors_client.options("/v1/me", headers=_preflight_headers(mine))
    assert r.status_code == 403
    r = await cors_client.get("/v1/me", headers={**tenant_a.headers, **origin})
    assert _cors(r) == {}


async def test_a_change_made_elsewhere_reaches_the_origins_through_the_listener(
    cors_client: httpx.AsyncClient, tenant_a: TenantCtx, database_url: str
) -> None:
    origin = f"https://{tenant_a.slug}.example"
    r = await cors_client.options("/v1/me", headers=_preflight_headers(origin))
    assert r.status_code == 403  # read (and cached for an hour) before the change
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            "UPDATE tenants SET allowed_origins = $1 WHERE id = $2", [origin], tenant_a.id
        )

        async def answered() -> bool:
            r = await cors_client.options("/v1/me", headers=_preflight_headers(origin))
            return r.status_code == 204

        await _until(answered, "the preflight is answered")
        r = await cors_client.get("/v1/me", headers={**tenant_a.headers, "Origin": origin})
        assert _allows(r, origin)
        await conn.execute("UPDATE tenants SET allowed_origins = '{}' WHERE id = $1", tenant_a.id)

        async def refused() -> bool:
            r = await cors_client.get("/v1/me", headers={**tenant_a.headers, "Origin": origin})
            return "access-control-allow-origin" not in r.headers

        await _until(refused, "the origin is taken back")
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "origins",
    [
        ["http://desk.example"],  # http off loopback
        ["https://desk.example/"],  # a path, even "/"
        ["https://desk.example/app"],
        ["https://*.desk.example"],
        ["*"],
        ["https://desk.example?x=1"],
        ["https://desk.example#top"],
        ["https://user:pw@desk.example"],
        ["ftp://desk.example"],
        ["desk.example"],
        ["null"],
        ["https://desk.example:99999"],
        ["https://dësk.example"],
        ["https://desk_x.example"],
        [""],
        None,
        "https://desk.example",
        [f"https://{i}.desk.example" for i in range(21)],
    ],
)
async def test_bad_origins_are_refused_and_nothing_is_written(
    cors_client: httpx.AsyncClient, tenant_a: TenantCtx, origins: object
) -> None:
    r = await _set_origins(tenant_a, cors_client, origins)
    assert r.status_code == 422, r.text
    assert problem_type(r) == "validation-error"
    r = await cors_client.get("/v1/tenant", headers=tenant_a.headers)
    assert r.json()["allowed_origins"] == []


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("http://localhost:5173", "http://localhost:5173"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("HTTPS://Desk.Example:443", "https://desk.example"),
        ("https://desk.example:8443", "https://desk.example:8443"),
        ("http://app.localhost", "http://app.localhost"),
    ],
)
def test_origins_are_stored_as_browsers_send_them(given: str, stored: str) -> None:
    assert normalise_origin(given) == stored


def test_the_deployments_origins_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOWDESK_CORS_ORIGINS", "https://a.example, http://localhost:5173,")
    assert Settings().cors_origins == ["https://a.example", "http://localhost:5173"]
    monkeypatch.setenv("FLOWDESK_CORS_ORIGINS", "https://a.example,http://b.example")
    with pytest.raises(ValidationError, match="https"):
        Settings()
