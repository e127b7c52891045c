"""Rate limits per API key on the public API: 429 with Retry-After over the limit, the IETF
RateLimit fields on every response, in-process and shared through Redis, failing open.

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
    member = await tenant.user("tickets:create")
    seen = []
    for path in ["/public/v1/tickets", "/public/v1/tickets/TKT-999999", "/public/v1/tickets"]:
        r = await client.get(path, headers=member.headers)
        assert r.headers["ratelimit-policy"] == "3;w=60"
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
    assert 1 <= retry_after <= 60 and r.json()["retry_after"] == retry_after
    assert r.headers["ratelimit"].startswith("limit=3, remaining=0, reset=")
    # The budget is per key: the same user's other key, and other users, are untouched.
    other_key = await tenant.key(member.id, ["tickets:read"])
    r = await client.get("/public/v1/tickets", headers={"Authorization": f"Bearer {other_key}"})
    assert r.status_code == 200
    # The first-party API is not rate limited by default (FLOWDESK_RATE_LIMIT_PATHS).
    r = await client.get("/v1/tickets", headers=member.headers)
    assert r.status_code == 200 and "ratelimit" not in r.headers
    # Back to the service default.
    out = await operator.licence(tenant.slug, rate_limit=None)
    assert out["rate_limit"] == {"requests": 600, "window_seconds": 60, "default": True}
    r = await client.get("/public/v1/tickets", headers=member.headers)
    assert r.status_code == 200 and r.headers["ratelimit-policy"] == "600;w=60"


async def test_four_concurrent_clients_in_process(
    client: httpx.AsyncClient, tenant: TenantCtx, operator: Operator
) -> None:
    await operator.licence(tenant.slug, rate_limit={"requests": LIMIT, "window_seconds": 300})
    member = await tenant.user("tickets:create")
    assert_within_limit(await burst([client], member, 2 * LIMIT))


@needs_redis
async def test_four_concurrent_clients_on_two_replicas_share_one_budget_in_redis(
    settings: Settings, client: httpx.AsyncClient, tenant: TenantCtx, operator: Operator
) -> None:
    await operator.licence(tenant.slug, rate_limit={"requests": LIMIT, "window_seconds": 300})
    member = await tenant.user("tickets:create")
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
    member = await tenant.user("tickets:create")
    with caplog.at_level(logging.ERROR, logger="flowdesk.usage.ratelimit"):
        async with replica(settings, redis_url=dead) as c:
            statuses = [
                (await c.get("/public/v1/tickets", headers=member.headers)).status_code
                for _ in range(5)
            ]
            r = await c.get("/public/v1/tickets", headers=member.headers)
    assert statuses == [200] * 5  # beyond the limit of 2: nothing to count with, so served
    assert r.headers["ratelimit-policy"] == "2;w=60" and "ratelimit" not in r.headers
    logged = [rec for rec in caplog.records if "storage failed" in rec.getMessage()]
    assert len(logged) == 1  # logged, but not once per request
