"""/readyz asks PostgreSQL over a connection of its own (flowdesk.db.readiness): a saturated
request pool leaves the process ready, probes take no request connection, and a burst of
probes asks the database once."""

from __future__ import annotations

import asyncio

import httpx

from flowdesk.app import create_app
from flowdesk.config import Settings
from flowdesk.db.pool import asyncpg_dsn
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


async def test_a_cancel_landing_as_the_close_ends_is_not_lost(database_url: str) -> None:
    """A cancel of the task closing the probe (the app's shutdown, cancelled by whoever runs
    it) that lands in the instant the connection finishes closing is either refused (the close
    had already returned) or delivered, never accepted and then dropped. On 3.11,
    `asyncio.wait_for` returned the close's result instead (CPython gh-86296), and the
    cancelled shutdown went on."""
    probe = ReadinessProbe(asyncpg_dsn(database_url), timeout=2.0, cache_seconds=0.0)
    assert await probe.ready() is True
    conn = probe._conn
    assert conn is not None
    closing = asyncio.create_task(probe.close())
    accepted: list[bool] = []
    # asyncpg calls its termination listeners in the loop iteration after the close ends.
    conn.add_termination_listener(lambda _conn: accepted.append(closing.cancel()))
    await asyncio.wait({closing}, timeout=5.0)
    assert closing.done(), "the close did not end within 5 s"
    assert accepted, "the connection's termination was not reported"
    assert conn.is_closed()
    if accepted[0]:
        assert closing.cancelled(), "an accepted cancel was dropped: the task went on"
    else:
        closing.result()
