"""Rate limits per API key and per tenant: 429 with Retry-After over the limit, the IETF
RateLimit fields on every response, an aggregate budget per tenant and channel that minting
keys does not multiply, in-process and shared through Redis, failing open.

The Redis tests need a server: 127.0.0.1:6379 by default, or FLOWDESK_TEST_REDIS_URL. Without
one they are skipped with a message saying so (see the README, "Rate limits")."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpx
import pytest

from flowdesk.app import create_app
from flowdesk.config import Settings
from flowdesk.usage.ratelimit import _budget, _MemoryStore
from tests.support import Member, Operator, TenantCtx, problem_type

REDIS_URL = os.environ.get("FLOWDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CLIENTS = 4
LIMIT = 60


def _redis_reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 0.5):
            return True
    except OSError:
        return False


needs_redis = pytest.mark.skipif(
    not _redis_reachable(REDIS_URL),
    reason=f"no Redis reachable at {REDIS_URL}: start one (redis-server) or set "
    "FLOWDESK_TEST_REDIS_URL to run the shared-budget tests",
)


@asynccontextmanager
async def replica(settings: Settings, **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    """Another app process on the same database (a replica behind the load balancer)."""
    app = create_app(settings.model_copy(update=overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica.test") as c:
            yield c


async def burst(clients: list[httpx.AsyncClient], member: Member, total: int) -> list[int]:
    """`total` requests from CLIENTS concurrent clients (round robin over `clients`)."""

    async def one_client(i: int) -> list[int]:
        c = clients[i % len(clients)]
        out = []
        for _ in range(total // CLIENTS):
            r = await c.get("/public/v1/tickets", params={"limit": 1}, headers=member.headers)
            out.append(r.status_code)
        return out

    results = await asyncio.gather(*[one_client(i) for i in range(CLIENTS)])
    return [s for chunk in results for s in chunk]


def assert_within_limit(statuses: list[int]) -> None:
    admitted = statuses.count(200)
    assert statuses.count(200) + statuses.count(429) == len(statuses), set(statuses)
    # Twice the limit sent within one window: what is admitted stays within 5% of the limit.
    assert abs(admitted - LIMIT) <= LIMIT * 0.05, admitted


async def test_headers_and_429(
    client: httpx.AsyncClient, tenant: TenantCtx, operator: Operator
) -> None:
    await operator.licence(tenant.slug, rate_limit={"requests": 3, "window_seconds": 60})
    member = await tenant.user("tickets:create", channel="public")
    seen = []
    for path in ["/public/v1/tickets", "/public/v1/tickets/TKT-999999", "/public/v1/tickets"]:
        r = await client.get(path, headers=member.headers)
        # The key's policy, then its tenant's aggregate (10 keys' worth by default).
        assert r.headers["ratelimit-policy"] == "3;w=60, 30;w=60"
        seen.append(r.headers["ratelimit"])
    # Every response, errors included, carries the fields (draft-07 syntax).
    assert [re.sub(r"reset=\d+", "reset=N", s) for s in seen] == [
        "limit=3, remaining=2, reset=N",
        "limit=3, remaining=1, reset=N",
        "limit=3, remaining=0, reset=N",
    ]
    r = await client.get("/public/v1/tickets", headers=member.headers)
    assert r.status_code == 429 and problem_type(r) == "rate-limited"
    retry_after = int(r.headers["retry-after"])
    # The window slides: a full one still counts into the next, so the wait may pass its end.
    assert 1 <= retry_after <= 2 * 60 and r.json()["retry_after"] == retry_after
    assert r.headers["ratelimit"].startswith("limit=3, remaining=0, reset=")
    # The budget is per key: the same user's other key, and other users, are untouched.
    other_key = await tenant.key(member.id, ["tickets:read"], channel="public")
    r = await client.get("/public/v1/tickets", headers={"Authorization": f"Bearer {other_key}"})
    assert r.status_code == 200
    # First-party keys have the deployment's first-party budget, whatever the licence says.
    first_party = await tenant.user("tickets:create")
    r = await client.get("/v1/tickets", headers=first_party.headers)
    assert r.status_code == 200 and r.headers["ratelimit-policy"] == "1200;w=60, 12000;w=60"
    # Back to the service default.
    out = await operator.licence(tenant.slug, rate_limit=None)
    assert out["rate_limit"] == {"requests": 600, "window_seconds": 60, "default": True}
    r = await client.get("/public/v1/tickets", headers=member.headers)
    assert r.status_code == 200 and r.headers["ratelimit-policy"] == "600;w=60, 6000;w=60"


async def test_four_concurrent_clients_in_process(
    client: httpx.AsyncClient, tenant: TenantCtx, operator: Operator
) -> None:
    await operator.licence(tenant.slug, rate_limit={"requests": LIMIT, "window_seconds": 300})
    member = await tenant.user("tickets:create", channel="public")
    assert_within_limit(await burst([client], member, 2 * LIMIT))


@needs_redis
async def test_four_concurrent_clients_on_two_replicas_share_one_budget_in_redis(
    settings: Settings, client: httpx.AsyncClient, tenant: TenantCtx, operator: Operator
) -> None:
    await operator.licence(tenant.slug, rate_limit={"requests": LIMIT, "window_seconds": 300})
    member = await tenant.user("tickets:create", channel="public")
    async with (
        replica(settings, redis_url=REDIS_URL) as a,
        replica(settings, redis_url=REDIS_URL) as b,
    ):
        statuses = await burst([a, b], member, 2 * LIMIT)
    # In memory, each replica would have admitted LIMIT: together twice the limit.
    assert_within_limit(statuses)


async def test_redis_down_fails_open_and_logs(
    settings: Settings,
    tenant: TenantCtx,
    operator: Operator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    await operator.licence(tenant.slug, rate_limit={"requests": 2, "window_seconds": 60})
    member = await tenant.user("tickets:create", channel="public")
    with caplog.at_level(logging.ERROR, logger="flowdesk.usage.ratelimit"):
        async with replica(settings, redis_url=dead) as c:
            statuses = [
                (await c.get("/public/v1/tickets", headers=member.headers)).status_code
                for _ in range(5)
            ]
            r = await c.get("/public/v1/tickets", headers=member.headers)
    assert statuses == [200] * 5  # beyond the limit of 2: nothing to count with, so served
    assert r.headers["ratelimit-policy"] == "2;w=60, 20;w=60" and "ratelimit" not in r.headers
    logged = [rec for rec in caplog.records if "storage failed" in rec.getMessage()]
    assert len(logged) == 1  # logged, but not once per request


async def _minted_keys_share_the_tenant_budget(
    clients: list[httpx.AsyncClient], tenant: TenantCtx, operator: Operator
) -> None:
    """Three keys of a tenant whose aggregate is two keys' worth: the third key's own budget
    is untouched, yet it is refused once the first two have used the tenant's."""
    await operator.licence(tenant.slug, rate_limit={"requests": 3, "window_seconds": 300})
    member = await tenant.user("tickets:create", channel="public")
    keys = [member.headers]
    for _ in range(2):
        key = await tenant.key(member.id, ["tickets:read"], channel="public")
        keys.append({"Authorization": f"Bearer {key}"})
    statuses = []
    for i, headers in enumerate(keys):
        for j in range(3):
            r = await clients[(i + j) % len(clients)].get("/public/v1/tickets", headers=headers)
            statuses.append(r.status_code)
    assert statuses == [200] * 6 + [429] * 3, statuses
    assert problem_type(r) == "rate-limited" and "tenant's aggregate" in r.json()["detail"]
    assert r.headers["ratelimit-policy"] == "3;w=300, 6;w=300"
    assert r.headers["ratelimit"].startswith("limit=6, remaining=0, reset=")
    # A full window keeps counting into the next one in proportion to their overlap: the
    # wait may pass the window's end, never a second window.
    assert 1 <= int(r.headers["retry-after"]) <= 2 * 300
    # The first-party channel has a budget of its own: the tenant's SPA users go on working.
    assert (await clients[0].get("/v1/tickets", headers=tenant.headers)).status_code == 200


async def test_minted_keys_share_the_tenant_budget_in_process(
    settings: Settings, tenant: TenantCtx, operator: Operator
) -> None:
    async with replica(settings, tenant_rate_limit_factor=2) as c:
        await _minted_keys_share_the_tenant_budget([c], tenant, operator)


@needs_redis
async def test_minted_keys_share_the_tenant_budget_across_replicas_in_redis(
    settings: Settings, tenant: TenantCtx, operator: Operator
) -> None:
    async with (
        replica(settings, redis_url=REDIS_URL, tenant_rate_limit_factor=2) as a,
        replica(settings, redis_url=REDIS_URL, tenant_rate_limit_factor=2) as b,
    ):
        await _minted_keys_share_the_tenant_budget([a, b], tenant, operator)


async def test_a_key_issued_for_the_public_api_is_refused_on_v1_and_the_reverse(
    client: httpx.AsyncClient, tenant: TenantCtx, operator: Operator
) -> None:
    """Issue 16, item 5: the key a public-API refusal (flag off, budget used up) applies to
    cannot be taken to /v1 instead, nor a first-party key to /public/v1."""
    member = await tenant.user("tickets:create")
    public = await tenant.public(member)
    r = await client.get("/v1/tickets", headers=public.headers)
    assert r.status_code == 403 and problem_type(r) == "key-channel"
    assert r.json()["key_channel"] == "public" and r.json()["channel"] == "first_party"
    r = await client.get("/public/v1/tickets", headers=member.headers)
    assert r.status_code == 403 and problem_type(r) == "key-channel"
    # Before the body: a malformed body with the wrong key is still the channel's 403.
    r = await client.post(
        "/v1/tickets", content=b"{", headers=public.headers | {"content-type": "application/json"}
    )
    assert r.status_code == 403 and problem_type(r) == "key-channel"
    # The public key's refusals stay refusals: with the flag off there is no way around.
    await operator.flags(tenant.slug, public_api=False)
    assert (await client.get("/public/v1/tickets", headers=public.headers)).status_code == 403
    assert (await client.get("/v1/tickets", headers=public.headers)).status_code == 403
    assert (await client.get("/v1/tickets", headers=member.headers)).status_code == 200


async def test_keys_are_issued_for_a_channel(client: httpx.AsyncClient, tenant: TenantCtx) -> None:
    body = {"user_id": tenant.admin.id, "name": "k", "scopes": ["tickets:read"]}
    r = await client.post("/v1/api-keys", json=body, headers=tenant.headers)
    assert r.status_code == 201 and r.json()["channel"] == "first_party"
    r = await client.post("/v1/api-keys", json=body | {"channel": "public"}, headers=tenant.headers)
    assert r.status_code == 201 and r.json()["channel"] == "public"
    listed = await client.get(f"/v1/api-keys/{r.json()['id']}", headers=tenant.headers)
    assert listed.json()["channel"] == "public"
    r = await client.post("/v1/api-keys", json=body | {"channel": "both"}, headers=tenant.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/channel"


def test_the_sliding_window_counts_the_previous_window_by_its_overlap() -> None:
    """Two budgets of 4 per 10 s drawn together: a burst at the end of one window still
    counts at the start of the next, in proportion to how much of it the sliding window
    still covers, and a refused request draws from neither."""
    store = _MemoryStore()
    budgets = [("key", 4, 10_000), ("tenant", 100, 10_000)]
    t0 = 1_000_000_000_000  # a window's start
    for _ in range(4):
        admitted, counts = store.draw(t0 + 9_000, budgets)
        assert admitted
    admitted, counts = store.draw(t0 + 9_500, budgets)
    assert not admitted and counts == [0, 4, 0, 4]  # the tenant's was not drawn from
    # 1 s into the next window, 90% of the previous one (4) still counts: 3.6 + 1 > 4.
    admitted, _ = store.draw(t0 + 11_000, budgets)
    assert not admitted
    # 8 s in, 20% of it does: 0.8 + 1 <= 4, three times over (0.8 + 3 = 3.8), not a fourth.
    assert [store.draw(t0 + 18_000, budgets)[0] for _ in range(4)] == [True] * 3 + [False]
    # Two windows later nothing is left of either.
    admitted, counts = store.draw(t0 + 40_000, budgets)
    assert admitted and counts == [0, 1, 0, 1]


def test_retry_after_is_when_a_request_would_be_admitted() -> None:
    # 4 used at the end of the previous window, none now, 1 s in: wait until the overlap of
    # the previous window is at most 3/4, that is 2.5 s into this one.
    assert _budget(4, 10.0, 1.0, 4, 0, admitted=False).reset_seconds == 2
    # This window full (4 of 4): into the next until its share is 3/4 (2.5 s in).
    budget = _budget(4, 10.0, 6.0, 0, 4, admitted=False)
    assert budget.remaining == 0 and budget.reset_seconds == 7  # 4 s + 2.5 s, rounded up
    assert _budget(4, 10.0, 6.0, 0, 2, admitted=True).remaining == 2
