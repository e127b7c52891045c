"""/readyz asks PostgreSQL over a connection of its own (flowdesk.db.readiness): a saturated
request pool leaves the process ready, probes take no request connection, and a burst of
probes asks the database once."""

from __future__ import annotations

import asyncio

import httpx

from flowdesk.app import create_app
from flowdesk.config import Settings
from flowdesk.db.readiness import ReadinessProbe
from tests.servers import free_port
from tests.support import runtime


async def test_readyz_stays_ready_with_the_request_pool_exhausted(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"db_pool_size": 1, "db_pool_timeout": 0.5}))
    async with app.router.lifespan_context(app):
        pool = runtime(app).db.pool
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            # Every request connection is taken (a busy worker).
            async with runtime(app).db.connection():
                r = await client.get("/readyz")
                assert r.status_code == 200, r.text
                # A request that needs the pool waits out its deadline meanwhile.
                r = await client.get("/v1/me", headers={"Authorization": "Bearer fdk_x"})
                assert r.status_code in (401, 503)
            # Probes never opened a connection of the request pool beyond the one held.
            for _ in range(5):
                assert (await client.get("/readyz")).status_code == 200
            assert pool.get_size() <= 1


async def test_a_burst_of_probes_asks_the_database_once(settings: Settings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answers = await asyncio.gather(*(client.get("/readyz") for _ in range(20)))
        assert {r.status_code for r in answers} == {200}
        assert runtime(app).readiness.checks == 1
        # Twenty probes at once opened no request connections: at most the one the
        # background work of a starting process takes (the listener's marker NOTIFY, the
        # periodic ticks' probes go through the pool).
        assert runtime(app).db.pool.get_size() <= 1


async def test_an_unreachable_database_is_not_ready_and_is_asked_again() -> None:
    nobody = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    probe = ReadinessProbe(nobody, timeout=1.0, cache_seconds=0.0)
    try:
        assert await probe.ready() is False
        assert await probe.ready() is False
        assert probe.checks == 2
    finally:
        await probe.close()


async def test_readyz_answers_503_when_the_database_is_away(settings: Settings) -> None:
    away = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/postgres"
    app = create_app(settings.model_copy(update={"database_url": away}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["type"] == "/problems/service-unavailable"
