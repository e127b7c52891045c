"""Hearing of changes from PostgreSQL (LISTEN/NOTIFY) on one connection per process: access
changes for the caches (channel flowdesk_access), and any other channel a part of the process
listens on (`listen`: the ticket changes of the live streams, flowdesk.tickets.live).

Triggers (migration 0004) send `NOTIFY flowdesk_access, '<tenant id>'` on commit of any change
to a tenant's keys, users, groups, memberships, licence, flags or rate policy, whoever makes it.
Each process keeps one connection of its own listening and hands every tenant id it hears to
its subscribers (the API-key cache and the licence cache), which forget that tenant's entries.

While the connection is up and proven to hear, the caches may trust an entry for minutes
(`long_ttl`): a change reaches every worker within milliseconds of its commit. When it is down,
nothing is heard, so the caches fall back to their own short TTL (`ttl_policy`), and once it is
back they forget everything (what changed in between was not heard). A connection that died
silently (a partition, a server that vanished without a FIN) is caught by a ping every
`ping_seconds`.

A connection that is up may still be deaf: behind a pooling proxy LISTEN succeeds on one
server connection while the NOTIFYs are sent on another, or the listener reaches another
database than the pool. So the listener proves that it hears (issue 16): on connecting, and
then every `heartbeat_seconds`, it sends a marker (a random payload on a channel of its own)
through the POOL, the way the triggers' notifications travel, and trusts the long TTL only once
the marker came back on its own connection. A marker that does not arrive within
`marker_timeout` makes the caches fall back to the short TTL at once (logged, and counted in
`markers_missed`), and the listener reconnects.

Another channel's listener is told of each payload (`notified`) and, each time the connection
is (re)established, that whatever was sent while nobody listened was not heard (`resumed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Protocol

import asyncpg
from sqlalchemy import String, bindparam, func, select

from flowdesk.db.pool import Database
from flowdesk.db.query import Query, execute

logger = logging.getLogger(__name__)

CHANNEL = "flowdesk_access"
# Each listener's markers go to a channel of its own: no other process hears them.
MARKER_CHANNEL_PREFIX = "flowdesk_heard_"

_NOTIFY = Query(
    select(func.pg_notify(bindparam("channel", type_=String), bindparam("payload", type_=String)))
)

TtlPolicy = Callable[[float], float]
"""fetched_at (monotonic) -> how many seconds a cache entry fetched then may be trusted."""


def fixed_ttl(seconds: float) -> TtlPolicy:
    """For a cache without a listener: every entry is trusted `seconds`."""
    return lambda _fetched_at: seconds


class Subscriber(Protocol):
    def forget_tenant(self, tenant_id: uuid.UUID) -> None: ...

    def forget_all(self) -> None: ...


class ChannelListener(Protocol):
    def notified(self, payload: str) -> None:
        """A payload sent on the channel (called in the event loop: it must not block)."""

    def resumed(self) -> None:
        """The connection is (again) listening: what was sent before this was not heard."""


class AccessListener:
    def __init__(
        self,
        dsn: str,
        *,
        long_ttl: float,
        ping_seconds: float = 5.0,
        connect_timeout: float = 2.0,
        db: Database | None = None,
        heartbeat_seconds: float = 30.0,
        marker_timeout: float = 5.0,
        marker_channel: str | None = None,
    ) -> None:
        """`db`: the pool the markers are sent through (None: the connection is trusted as
        soon as it listens, for tools that have no pool). `marker_channel`: where markers are
        listened for (by default a channel of this listener's own, where they are sent)."""
        self._dsn = dsn
        self._long_ttl = long_ttl
        self._ping_seconds = ping_seconds
        self._connect_timeout = connect_timeout
        self._db = db
        self._heartbeat_seconds = heartbeat_seconds
        self._marker_timeout = marker_timeout
        self._marker_to = MARKER_CHANNEL_PREFIX + uuid.uuid4().hex[:16]
        self._marker_from = marker_channel or self._marker_to
        self._awaited: tuple[str, asyncio.Event] | None = None
        # Markers that did not come back in time, since the process started (metrics).
        self.markers_missed = 0
        self._subscribers: list[Subscriber] = []
        self._channels: dict[str, ChannelListener] = {}
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # The monotonic time since which every change has been heard; None while deaf.
        self._listening_since: float | None = None

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def listen(self, channel: str, listener: ChannelListener) -> None:
        """Hear `channel` on the same connection (one listener per channel; before start)."""
        assert channel != CHANNEL, channel
        assert channel not in self._channels, channel
        assert self._task is None, "channels are added before the listener starts"
        self._channels[channel] = listener

    @property
    def listening(self) -> bool:
        return self._listening_since is not None

    def ttl_policy(self, short_ttl: float) -> TtlPolicy:
        """How long a cache may trust an entry fetched at `fetched_at` (monotonic): the long
        TTL if every change since the fetch began would have been heard, else `short_ttl`."""
        long_ttl = max(self._long_ttl, short_ttl)

        def ttl(fetched_at: float) -> float:
            since = self._listening_since
            return long_ttl if since is not None and fetched_at >= since else short_ttl

        return ttl

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="access-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close()

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._connect()
                backoff = 0.5
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning(
                    "access listener: %s; caches fall back to their short TTL until it is back",
                    exc,
                )
            self._deaf()
            await self._close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _connect(self) -> None:
        self._lost.clear()
        conn = await asyncpg.connect(
            self._dsn,
            timeout=self._connect_timeout,
            server_settings={"application_name": "flowdesk-listener"},
        )
        self._conn = conn
        conn.add_termination_listener(lambda _conn: self._lost.set())
        await conn.add_listener(CHANNEL, self._on_notify)
        for channel, listener in self._channels.items():
            await conn.add_listener(channel, _dispatch_to(listener))
        if self._db is not None:
            await conn.add_listener(self._marker_from, self._on_marker)
        listening_since = time.monotonic()
        # Whatever changed while nobody listened is unknown: start from empty caches. Entries
        # fetched from now on are covered by the listener, once it is known to hear.
        for subscriber in self._subscribers:
            subscriber.forget_all()
        await self._prove_hearing()
        self._listening_since = listening_since
        for listener in self._channels.values():
            listener.resumed()
        logger.info("access listener: listening on %s", ", ".join([CHANNEL, *self._channels]))

    async def _prove_hearing(self) -> None:
        """Send a marker through the pool and wait for it here; raise (the caller falls back
        to the short TTL and reconnects) when it does not come back in time."""
        if self._db is None:
            return
        payload = uuid.uuid4().hex
        arrived = asyncio.Event()
        self._awaited = (payload, arrived)
        try:
            async with asyncio.timeout(self._marker_timeout):
                async with self._db.connection() as conn:
                    await execute(conn, _NOTIFY, channel=self._marker_to, payload=payload)
                await arrived.wait()
        except TimeoutError:
            self.markers_missed += 1
            self._deaf()
            raise DeafListener(
                f"a marker sent through the pool did not arrive within {self._marker_timeout} s"
            ) from None
        finally:
            self._awaited = None

    def _on_marker(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        awaited = self._awaited
        if awaited is not None and awaited[0] == payload:
            awaited[1].set()

    async def _watch(self) -> None:
        """Returns (by raising) when the connection is lost, stops answering, or no longer
        hears its markers."""
        proven_at = time.monotonic()
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for swallows a cancellation
            # that lands in the iteration where the wait ends (gh-86296), and `stop()` then
            # waits for a task that goes on reconnecting forever. The same holds in _close.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._ping_seconds):
                    await self._lost.wait()
            if self._lost.is_set():
                raise ConnectionError("the listening connection was closed")
            assert self._conn is not None  # set by _connect before _watch runs
            await self._conn.execute("SELECT 1", timeout=self._ping_seconds)
            if time.monotonic() - proven_at >= self._heartbeat_seconds:
                await self._prove_hearing()
                proven_at = time.monotonic()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            tenant_id = uuid.UUID(str(payload))
        except ValueError:
            logger.warning("access listener: ignoring payload %r", payload)
            return
        for subscriber in self._subscribers:
            subscriber.forget_tenant(tenant_id)

    def _deaf(self) -> None:
        self._listening_since = None

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # Bounded (asyncpg's close waits for the server without one), and a close that
            # fails or runs out of time ends with the connection dropped without waiting.
            with contextlib.suppress(Exception):
                await conn.close(timeout=self._connect_timeout)
            if not conn.is_closed():
                conn.terminate()


class DeafListener(ConnectionError):
    """The listening connection is up but does not hear what is sent through the pool."""


def _dispatch_to(listener: ChannelListener) -> Callable[[object, int, str, object], None]:
    def on_notify(_conn: object, _pid: int, channel: str, payload: object) -> None:
        try:
            listener.notified(str(payload))
        except Exception:  # one bad payload must not stop the connection's other callbacks
            logger.exception("listener on %s failed on a payload", channel)

    return on_notify
