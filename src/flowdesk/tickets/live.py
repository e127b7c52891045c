"""Live ticket changes: the fan-out of one process's ticket events to its open streams (GET
/v1/events/stream, flowdesk.api.stream), and their replay from the audit trail.

Every ticket write appends its events to `ticket_events`, and a trigger on that table (migration
0008) sends each as `NOTIFY flowdesk_tickets, '<json>'` in the writing transaction: delivered
on commit, to every process, whoever wrote it. The process's one listening connection
(flowdesk.db.listener) hands each payload to the `LiveHub`, which parses it once and gives it
to the streams of that tenant whose viewer may see it: agents every event of the tenant,
requesters the non-internal events of the tickets they requested.

A stream that may have missed something (the listening connection was lost and is back, or
the stream fell more than `MAX_PENDING` events behind) catches up from the audit trail after
the last event it sent, as a client resuming with Last-Event-ID does. The audit trail is
replayed for a bounded window: events after one at most `REPLAY_MAX_AGE` old, at most
`REPLAY_MAX_EVENTS` of them; beyond it the stream is told to `reset` (reload its lists).
docs/adr/0010-cors-and-live-updates.md says why.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypedDict

import orjson
from sqlalchemy import Integer, Uuid, and_, bindparam, func, literal, or_, select
from sqlalchemy.dialects.postgresql import ARRAY, insert

from flowdesk.db.pool import Database
from flowdesk.db.query import Query, execute, row, rows
from flowdesk.errors import RateLimited, ServiceUnavailable
from flowdesk.models import live_tenants, ticket_events, tickets
from flowdesk.periodic import Periodic
from flowdesk.tickets.facts import format_number

logger = logging.getLogger(__name__)

CHANNEL = "flowdesk_tickets"
REPLAY_MAX_EVENTS = 1_000
REPLAY_MAX_AGE = timedelta(hours=1)
# A stream this far behind (a client that does not read) is caught up from the audit trail
# instead: memory per stream stays bounded.
MAX_PENDING = 1_000
# Streams catching up at once (after the listener was lost, every stream does).
REPLAY_CONCURRENCY = 4


@dataclass(frozen=True, slots=True)
class TicketChange:
    """One ticket event as a stream sends it; `frame` is its text/event-stream frame, encoded
    once for every stream that sends it."""

    id: int
    tenant_id: uuid.UUID
    ticket_id: uuid.UUID
    requester_id: uuid.UUID
    internal: bool
    frame: bytes


def _change(
    event_id: int,
    tenant_id: uuid.UUID,
    ticket_id: uuid.UUID,
    kind: str,
    visibility: str,
    requester_id: uuid.UUID,
    number: str,
    version: int,
    at: datetime,
) -> TicketChange:
    kind = kind.replace("\r", " ").replace("\n", " ")
    data = orjson.dumps(
        {
            "event_id": event_id,
            "ticket_id": str(ticket_id),
            "number": number,
            "kind": kind,
            "version": version,
            "at": at.astimezone(UTC),
        }
    )
    frame = b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, kind.encode(), data)
    return TicketChange(
        event_id, tenant_id, ticket_id, requester_id, visibility == "internal", frame
    )


def parse_payload(payload: str) -> TicketChange:
    """A NOTIFY payload of the trigger of migration 0008 (ValueError/KeyError if it is not)."""
    p = orjson.loads(payload)
    return _change(
        int(p["id"]),
        uuid.UUID(p["tenant_id"]),
        uuid.UUID(p["ticket_id"]),
        str(p["kind"]),
        str(p["visibility"]),
        uuid.UUID(p["requester_id"]),
        format_number(str(p["prefix"]), int(p["number"])),
        int(p["version"]),
        datetime.fromisoformat(p["at"]),
    )


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who watches: agents see every event of their tenant, requesters the non-internal events
    of the tickets they requested (the visibility of GET /v1/tickets and its activity)."""

    tenant_id: uuid.UUID
    user_id: uuid.UUID
    agent: bool

    def sees(self, change: TicketChange) -> bool:
        return self.agent or (change.requester_id == self.user_id and not change.internal)


class Stream:
    """One open stream's inbox: the changes to send, and whether something may have been
    missed (`lost`: catch up from the audit trail) or the stream must end (`closed`)."""

    def __init__(self, viewer: Viewer, key: uuid.UUID) -> None:
        self.viewer = viewer
        self.key = key
        self.closed = False
        self.lost = False
        self._pending: list[TicketChange] = []
        self._ready = asyncio.Event()

    async def wait(self, seconds: float) -> bool:
        """Whether anything happened within `seconds` (False: time for a heartbeat)."""
        if not self._ready.is_set():
            try:
                async with asyncio.timeout(seconds):
                    await self._ready.wait()
            except TimeoutError:
                return False
        return True

    def take(self) -> list[TicketChange]:
        pending, self._pending = self._pending, []
        self._ready.clear()
        return pending

    def push(self, change: TicketChange) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._pending.clear()
            self.lost = True
        else:
            self._pending.append(change)
        self._ready.set()

    def mark_lost(self) -> None:
        self.lost = True
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()


class _ReplayRow(TypedDict):
    id: int
    tenant_id: uuid.UUID
    ticket_id: uuid.UUID
    kind: str
    visibility: str
    requester_id: uuid.UUID
    prefix: str
    number: int
    version: int
    created_at: datetime


class _AnchorRow(TypedDict):
    recent: bool


_tenant = bindparam("tenant_id", type_=Uuid)
_after = bindparam("after", type_=ticket_events.c.id.type)
_requester = bindparam("requester_id", type_=Uuid)

# Whether the event a client last saw is one of its tenant's within the replay window.
_ANCHOR = Query(
    select(
        (ticket_events.c.created_at >= func.now() - literal(REPLAY_MAX_AGE)).label("recent")
    ).where(ticket_events.c.tenant_id == _tenant, ticket_events.c.id == _after)
)
# What the viewer may see after it, in id order, one more than the window holds.
_REPLAY = Query(
    select(
        ticket_events.c.id,
        ticket_events.c.tenant_id,
        ticket_events.c.ticket_id,
        ticket_events.c.kind,
        ticket_events.c.visibility,
        tickets.c.requester_id,
        tickets.c.prefix,
        tickets.c.number,
        tickets.c.version,
        ticket_events.c.created_at,
    )
    .join_from(
        ticket_events,
        tickets,
        and_(
            tickets.c.tenant_id == ticket_events.c.tenant_id,
            tickets.c.id == ticket_events.c.ticket_id,
        ),
    )
    .where(
        ticket_events.c.tenant_id == _tenant,
        ticket_events.c.id > _after,
        or_(
            _requester.is_(None),
            and_(tickets.c.requester_id == _requester, ticket_events.c.visibility != "internal"),
        ),
    )
    .order_by(ticket_events.c.id)
    .limit(bindparam("limit", type_=Integer))
)


# The tenants this process watches stay notified this far ahead, renewed every
# WATCH_RENEW_SECONDS while a stream of theirs is open here.
WATCH_AHEAD = timedelta(seconds=120)
WATCH_RENEW_SECONDS = 30.0

_WATCH = Query(
    insert(live_tenants)
    .from_select(
        ["tenant_id", "listening_until"],
        select(
            func.unnest(bindparam("tenant_ids", type_=ARRAY(Uuid))),
            func.now() + literal(WATCH_AHEAD),
        ),
    )
    .on_conflict_do_update(
        index_elements=[live_tenants.c.tenant_id],
        set_={
            "listening_until": func.greatest(
                live_tenants.c.listening_until, func.now() + literal(WATCH_AHEAD)
            )
        },
    )
)


class LiveHub:
    """The process's open streams by tenant, fed by the listener (a `ChannelListener` of
    flowdesk.db.listener on CHANNEL). It keeps its tenants in `live_tenants`, so that their
    ticket events are notified at all (migration 0008)."""

    def __init__(self, db: Database, *, max_per_key: int) -> None:
        self._db = db
        self._max_per_key = max_per_key
        self._by_tenant: dict[uuid.UUID, set[Stream]] = {}
        self._per_key: Counter[uuid.UUID] = Counter()
        self._closing = False
        self._replays = asyncio.Semaphore(REPLAY_CONCURRENCY)
        # When this process last renewed each watched tenant (monotonic seconds).
        self._watched: dict[uuid.UUID, float] = {}
        self._renewer = Periodic("live-tenants", WATCH_RENEW_SECONDS, self.renew)

    def start(self) -> None:
        self._renewer.start()

    async def stop(self) -> None:
        await self._renewer.stop()

    async def watch(self, tenant_id: uuid.UUID) -> None:
        """Make sure the tenant's ticket events are notified before a stream of it starts:
        what commits after this returns reaches the stream."""
        renewed = self._watched.get(tenant_id)
        if renewed is not None and time.monotonic() - renewed < WATCH_RENEW_SECONDS:
            return
        async with self._db.connection() as conn:
            await execute(conn, _WATCH, tenant_ids=[tenant_id])
        self._watched[tenant_id] = time.monotonic()

    async def renew(self) -> None:
        """Keep the tenants with a stream open here watched (and forget the others)."""
        watched = list(self._by_tenant)
        self._watched = {t: r for t, r in self._watched.items() if t in self._by_tenant}
        if not watched:
            return
        async with self._db.connection() as conn:
            await execute(conn, _WATCH, tenant_ids=watched)
        now = time.monotonic()
        self._watched.update(dict.fromkeys(watched, now))

    def __len__(self) -> int:
        return sum(self._per_key.values())

    # --- the listener's side ---------------------------------------------------------------

    def notified(self, payload: str) -> None:
        try:
            tenant_id = uuid.UUID(orjson.loads(payload)["tenant_id"])
        except (ValueError, KeyError, TypeError):
            logger.warning("live updates: ignoring payload %r", payload[:200])
            return
        streams = self._by_tenant.get(tenant_id)
        if not streams:  # nobody of that tenant watches here: not even parsed further
            return
        change = parse_payload(payload)
        for stream in streams:
            if stream.viewer.sees(change):
                stream.push(change)

    def resumed(self) -> None:
        for streams in self._by_tenant.values():
            for stream in streams:
                stream.mark_lost()

    # --- the streams' side -----------------------------------------------------------------

    def open(self, viewer: Viewer, key: uuid.UUID) -> Stream:
        """A new stream for `viewer`, counted against `key` (429 beyond the cap; 503 while
        the process is stopping)."""
        if self._closing:
            raise ServiceUnavailable("This server is shutting down; reconnect.", retry_after=1)
        if self._per_key[key] >= self._max_per_key:
            raise RateLimited(
                f"This key has {self._max_per_key} event streams open on this server already "
                "(the most allowed); close one first.",
                retry_after=5,
            )
        stream = Stream(viewer, key)
        self._per_key[key] += 1
        self._by_tenant.setdefault(viewer.tenant_id, set()).add(stream)
        return stream

    def close(self, stream: Stream) -> None:
        streams = self._by_tenant.get(stream.viewer.tenant_id)
        if streams is None or stream not in streams:
            return
        streams.discard(stream)
        if not streams:
            del self._by_tenant[stream.viewer.tenant_id]
        self._per_key[stream.key] -= 1
        if self._per_key[stream.key] <= 0:
            del self._per_key[stream.key]

    def close_all(self) -> None:
        """The process is stopping: every stream ends now, and no new one opens."""
        self._closing = True
        for streams in self._by_tenant.values():
            for stream in streams:
                stream.close()

    async def replay(self, viewer: Viewer, after: int) -> list[TicketChange] | None:
        """What `viewer` may see after event `after`, or None when that is beyond the replay
        window (the event is unknown, too old, or too many followed it): reset."""
        async with self._replays, self._db.connection() as conn:
            anchor = await row(conn, _AnchorRow, _ANCHOR, tenant_id=viewer.tenant_id, after=after)
            if anchor is None or not anchor["recent"]:
                return None
            found = await rows(
                conn,
                _ReplayRow,
                _REPLAY,
                tenant_id=viewer.tenant_id,
                after=after,
                requester_id=None if viewer.agent else viewer.user_id,
                limit=REPLAY_MAX_EVENTS + 1,
            )
        if len(found) > REPLAY_MAX_EVENTS:
            return None
        return [
            _change(
                r["id"],
                r["tenant_id"],
                r["ticket_id"],
                r["kind"],
                r["visibility"],
                r["requester_id"],
                format_number(r["prefix"], r["number"]),
                r["version"],
                r["created_at"],
            )
            for r in found
        ]
