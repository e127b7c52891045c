"""The cache listener proves that it hears (issue 16, item 7): behind a pooling proxy LISTEN
succeeds but nothing arrives, and the caches must not trust their entries for minutes then.
Real listeners against real databases: a deaf one listens on another database than the pool
it sends its markers through, so no marker ever reaches it (as behind a pooler)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
from fastapi import FastAPI

from flowdesk.db.listener import AccessListener
from flowdesk.db.pool import asyncpg_dsn
from tests.support import runtime, until

LONG, SHORT = 300.0, 5.0


@pytest.fixture
async def listeners(app: FastAPI) -> AsyncIterator[list[AccessListener]]:
    made: list[AccessListener] = []
    yield made
    for listener in made:
        await asyncio.wait_for(listener.stop(), 10.0)


def _listener(app: FastAPI, dsn: str, made: list[AccessListener]) -> AccessListener:
    listener = AccessListener(
        dsn,
        long_ttl=LONG,
        db=runtime(app).db,
        ping_seconds=0.1,
        heartbeat_seconds=0.3,
        marker_timeout=1.0,
    )
    made.append(listener)
    listener.start()
    return listener


def _ttl_now(listener: AccessListener) -> float:
    return listener.ttl_policy(SHORT)(time.monotonic())


async def test_a_listener_that_hears_its_marker_trusts_the_long_ttl(
    app: FastAPI, database_url: str, listeners: list[AccessListener]
) -> None:
    listener = _listener(app, asyncpg_dsn(database_url), listeners)
    await until(lambda: listener.listening, "the marker is heard")
    assert _ttl_now(listener) == LONG
    # Heartbeats keep coming back: still trusted after several of them.
    await asyncio.sleep(1.0)
    assert listener.listening and listener.markers_missed == 0


async def test_a_deaf_listener_keeps_the_short_ttl_and_reconnects(
    app: FastAPI,
    create_database: Callable[[], str],
    listeners: list[AccessListener],
    caplog: pytest.LogCaptureFixture,
) -> None:
    elsewhere = asyncpg_dsn(create_database())
    with caplog.at_level(logging.WARNING, logger="flowdesk.db.listener"):
        listener = _listener(app, elsewhere, listeners)
        # Each miss is a connection of its own: two misses, one reconnection at least.
        await until(lambda: listener.markers_missed >= 2, "the listener tried twice")
    assert not listener.listening
    assert _ttl_now(listener) == SHORT
    assert any("did not arrive" in r.getMessage() for r in caplog.records)


async def test_a_listener_that_goes_deaf_is_caught_by_its_heartbeat(
    app: FastAPI, database_url: str, listeners: list[AccessListener]
) -> None:
    listener = _listener(app, asyncpg_dsn(database_url), listeners)
    await until(lambda: listener.listening, "the marker is heard")
    # What a pooler does to a session's LISTEN when it hands the server connection on.
    for _ in range(50):  # the listener's own ping may be using the connection this instant
        try:
            assert listener._conn is not None
            # Bounded: a connection the listener is replacing this instant may never answer,
            # and a test must fail rather than hang.
            await asyncio.wait_for(listener._conn.execute("UNLISTEN *"), 1.0)
            break
        except (asyncpg.InterfaceError, TimeoutError):
            await asyncio.sleep(0.01)
    await until(lambda: listener.markers_missed >= 1, "the heartbeat's marker is missed")
    # It reconnected, and hears again.
    await until(lambda: listener.listening, "the listener hears again")
    assert _ttl_now(listener) == LONG
