"""/platform/v1: the operator's credential, tenants and their licences, alerts."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from flowdesk.auth.platform import PlatformGuard
from flowdesk.errors import PlatformDisabled, Unauthorized
from flowdesk.pagination import encode_cursor
from tests.support import PLATFORM_TOKEN, Operator, TenantCtx, bearer, problem_type


async def test_only_the_platform_token_opens_it(
    client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    path = f"/platform/v1/tenants/{tenant.slug}"
    for headers in [{}, bearer("not-the-token"), tenant.headers, bearer(PLATFORM_TOKEN + "x")]:
        r = await client.get(path, headers=headers)
        assert r.status_code == 401 and problem_type(r) == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert (await client.get(path, headers=bearer(PLATFORM_TOKEN))).status_code == 200
    # And the platform token is no tenant key.
    assert (await client.get("/v1/me", headers=bearer(PLATFORM_TOKEN))).status_code == 401


def test_unconfigured_platform_api_is_closed() -> None:
    with pytest.raises(PlatformDisabled) as caught:
        PlatformGuard(None).check("")
    assert caught.value.status == 503
    with pytest.raises(PlatformDisabled):
        PlatformGuard(SecretStr("")).check("anything")
    guard = PlatformGuard(SecretStr("s3cret-token"))
    for presented in (None, "", "s3cret-token "):
        with pytest.raises(Unauthorized):
            guard.check(presented)
    guard.check("s3cret-token")


async def test_tenants_list_and_get(
    client: httpx.AsyncClient, tenant: TenantCtx, other_tenant: TenantCtx, operator: Operator
) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        r = await operator.get("/tenants", **params)
        assert r.status_code == 200
        seen += [t["slug"] for t in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and {tenant.slug, other_tenant.slug} <= set(seen)
    r = await operator.get(f"/tenants/{tenant.slug}")
    body = r.json()
    assert body["licence"]["active"] is True
    assert body["quota_usage"]["max_agents"] == {"limit": None, "current": 1}
    assert body["rate_limit"]["default"] is True
    assert (await operator.get("/tenants/no-such-tenant")).status_code == 404
    r = await client.patch(
        "/platform/v1/tenants/no-such-tenant/licence",
        json={"active": True},
        headers=operator.headers,
    )
    assert r.status_code == 404


async def test_licence_patch_validation_and_log(
    client: httpx.AsyncClient, tenant: TenantCtx, operator: Operator
) -> None:
    url = f"/platform/v1/tenants/{tenant.slug}/licence"
    for body in [
        {"quotas": {"max_seats": 3}},
        {"rate_limit": {"requests": 0, "window_seconds": 60}},
        {"active": "maybe"},
        {"licence": True},
    ]:
        r = await client.patch(url, json=body, headers=operator.headers)
        assert r.status_code == 422, body
    out = await operator.licence(
        tenant.slug,
        flags={"email_templates": False},
        quotas={"max_agents": 7},
        rate_limit={"requests": 100, "window_seconds": 10},
    )
    assert out["rate_limit"] == {"requests": 100, "window_seconds": 10, "default": False}
    # A no-op change logs nothing.
    await operator.licence(tenant.slug, quotas={"max_agents": 7})
    r = await operator.get(f"/tenants/{tenant.slug}/licence/events", limit=1)
    events = r.json()["items"]
    assert events[0]["changes"] == {
        "flags": {"email_templates": [True, False]},
        "quotas": {"max_agents": [None, 7]},
        "rate_limit": [None, [100, 10]],
    }
    older = await operator.get(
        f"/tenants/{tenant.slug}/licence/events", cursor=r.json()["next_cursor"]
    )
    assert older.json()["items"][0]["actor"] == "tests"  # the test tenant's own activation
    assert (await operator.get("/quota-alerts", cursor="bogus")).status_code == 422
    assert (await operator.get("/quota-alerts", kind="bogus")).status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"rate_limit": {"requests": True, "window_seconds": 60}},
        {"rate_limit": {"requests": 100, "window_seconds": "60"}},
        {"rate_limit": {"requests": 100.0, "window_seconds": 60}},
        {"quotas": {"max_agents": "5"}},
        {"quotas": {"max_emails_month": True}},
        {"active": 1},
        {"active": "true"},
        {"flags": {"public_api": 0}},
        {"flags": {"public_api": "on"}},
    ],
)
async def test_licence_patch_parses_strictly(
    client: httpx.AsyncClient, tenant: TenantCtx, operator: Operator, body: dict[str, object]
) -> None:
    """A boolean or an integer must be one: `"requests": true` would otherwise become a rate
    limit of one request, `"max_agents": "5"` a quota of five."""
    url = f"/platform/v1/tenants/{tenant.slug}/licence"
    before = (await operator.get(f"/tenants/{tenant.slug}")).json()
    r = await client.patch(url, json=body, headers=operator.headers)
    assert r.status_code == 422, r.text
    assert problem_type(r) == "validation-error"
    assert (await operator.get(f"/tenants/{tenant.slug}")).json() == before


async def test_forged_platform_cursors_are_422(operator: Operator, tenant: TenantCtx) -> None:
    forged = [encode_cursor([v]) for v in ("x", True, 2**63, 1.5, None)]
    for cursor in forged:
        for path in ("/quota-alerts", f"/tenants/{tenant.slug}/licence/events"):
            r = await operator.get(path, cursor=cursor)
            assert r.status_code == 422, (path, cursor, r.text)
    for cursor in [encode_cursor([v]) for v in ("a\x00b", 7, "x" * 64)]:
        r = await operator.get("/tenants", cursor=cursor)
        assert r.status_code == 422, (cursor, r.text)
    # A NUL in a slug finds no tenant; it is no error of the database.
    assert (await operator.get("/tenants/a%00b")).status_code == 404
    assert (await operator.get("/quota-alerts", tenant="a\x00b")).status_code == 422
