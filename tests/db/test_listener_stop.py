"""Stopping the access listener ends its task, even when the stop lands in the same instant
as the end of one of the listener's own waits: a shutdown that takes the database down with
the service, or a stop while the listener closes a connection to reconnect.

On Python 3.11, `asyncio.wait_for` returns the result instead of raising when it is cancelled
in the loop iteration where what it waits for completes (CPython gh-86296, fixed in 3.12), so
a listener that waited that way went on reconnecting forever and `stop()` never returned.
The tests make the stop land in that iteration: the stop is started from a termination
listener of the listener's own connection, called right after the listener's own one. The
connections are real and so are their ends (pg_terminate_backend, a close)."""

from __future__ import annotations

import asyncio

import asyncpg

from flowdesk.db.listener import AccessListener
from flowdesk.db.pool import asyncpg_dsn
from tests.support import until

# Far longer than a stop takes (milliseconds), far shorter than a hang.
STOP_DEADLINE = 5.0


def _stop_when_closed(
    listener: AccessListener, conn: asyncpg.Connection[asyncpg.Record]
) -> list[asyncio.Task[None]]:
    """Starts `listener.stop()` in the loop iteration where `conn`'s end is noticed."""
    stopping: list[asyncio.Task[None]] = []
    conn.add_termination_listener(
        lambda _conn: stopping.append(asyncio.create_task(listener.stop()))
    )
    return stopping


async def _assert_stops(listener: AccessListener, stopping: list[asyncio.Task[None]]) -> None:
    await until(lambda: bool(stopping), "the stop has started")
    stop = stopping[0]
    try:
        await asyncio.wait({stop}, timeout=STOP_DEADLINE)
        assert stop.done(), f"stop() did not return within {STOP_DEADLINE} s"
        stop.result()
        assert listener._conn is None
    finally:
        # Without the fix the task is still running: cancel it again (it is in another wait
        # by now) so it does not reconnect for the rest of the session.
        for _ in range(10):
            if stop.done():
                break
            if listener._task is not None:
                listener._task.cancel()
            await asyncio.wait({stop}, timeout=1.0)


async def test_stop_in_the_instant_the_connection_is_lost_returns(database_url: str) -> None:
    # No pings during the test: the listener waits on its connection's end, and nothing else.
    listener = AccessListener(asyncpg_dsn(database_url), long_ttl=300.0, ping_seconds=60.0)
    listener.start()
    await until(lambda: listener.listening, "the listener listens")
    conn = listener._conn
    assert conn is not None
    stopping = _stop_when_closed(listener, conn)
    other = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await other.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
    finally:
        await other.close()
    await _assert_stops(listener, stopping)


async def test_stop_in_the_instant_a_close_completes_returns(database_url: str) -> None:
    listener = AccessListener(asyncpg_dsn(database_url), long_ttl=300.0, ping_seconds=0.1)
    listener.start()
    await until(lambda: listener.listening, "the listener listens")
    conn = listener._conn
    assert conn is not None
    stopping = _stop_when_closed(listener, conn)
    # Keep the connection busy: the listener's next ping finds it so, gives the connection
    # up and closes it (cancelling this statement) to reconnect.
    for _ in range(50):  # the listener's own ping may be using the connection this instant
        try:
            await asyncio.wait_for(conn.execute("SELECT pg_sleep(5)"), STOP_DEADLINE)
        except asyncpg.InterfaceError:
            if conn.is_closed():
                break
            await asyncio.sleep(0.01)
        except (asyncpg.QueryCanceledError, asyncpg.ConnectionDoesNotExistError):
            break
    await _assert_stops(listener, stopping)
