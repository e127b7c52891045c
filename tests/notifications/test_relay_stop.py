"""Stopping the relay ends its loops, even when the stop lands in the same instant as the send
loop is woken because this process's fan-out made deliveries: a shutdown while notifications
flow.

On Python 3.11, `asyncio.wait_for` returns the result instead of raising when it is cancelled
in the loop iteration where what it waits for completes (CPython gh-86296, fixed in 3.12), so
a send loop that waited that way went on polling and `stop()` never returned. The test makes
the stop land in that iteration. The relay runs on a database of its own (real PostgreSQL)
with nothing to send, so its send loop is idle, waiting for its wake event."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from flowdesk.config import Settings
from flowdesk.db import migrate
from flowdesk.db.pool import Database
from flowdesk.notifications.relay import Relay
from flowdesk.workflow import load_catalog
from tests.support import until

# Far longer than a stop takes (milliseconds), far shorter than a hang.
STOP_DEADLINE = 5.0


@pytest.fixture
def relay_settings(
    create_database: Callable[[], str], settings: Settings, tmp_path: Path
) -> Settings:
    url = create_database()
    migrate.upgrade(url)
    # A poll far longer than the test: an idle loop waits for its wake event, nothing else.
    return settings.model_copy(
        update={"database_url": url, "data_dir": tmp_path, "relay_poll_seconds": 60.0}
    )


async def test_stop_in_the_instant_the_send_loop_is_woken_returns(
    relay_settings: Settings,
) -> None:
    assert relay_settings.database_url is not None
    db = await Database.open(relay_settings.database_url, relay_settings)
    relay = Relay(db, relay_settings, load_catalog(relay_settings.workflow_files))
    stop: asyncio.Task[None] | None = None
    try:
        relay.start()
        await until(lambda: bool(relay._due._waiters), "the send loop waits for its wake")
        # What the fan-out does when it made deliveries, and a stop in that same instant.
        relay._due.set()
        stop = asyncio.create_task(relay.stop())
        await asyncio.wait({stop}, timeout=STOP_DEADLINE)
        assert stop.done(), f"stop() did not return within {STOP_DEADLINE} s"
        stop.result()
        assert relay._tasks == []
    finally:
        # Without the fix the send loop is still running: cancel it again (it is in its next
        # wait by now) so that the stop ends and the pool can close.
        if stop is None:  # failed before the stop: stop it now
            stop = asyncio.create_task(relay.stop())
        for _ in range(10):
            if stop.done():
                break
            for task in relay._tasks:
                task.cancel()
            await asyncio.wait({stop}, timeout=1.0)
        await db.close()
