"""GET /v1/events/stream: the ticket changes the caller may see, as Server-Sent Events.

Each event is one audit event of a ticket (flowdesk.tickets.live): `id:` its id in the audit
trail, `event:` its kind (created, field_changed, assigned, transitioned, commented, linked,
…, as in the ticket's activity), `data:` {event_id, ticket_id, number, kind, version, at}, so
that a screen can refresh that one row. A client that reconnects with `Last-Event-ID` gets
what it missed from the audit trail (within the replay window), then the live events;
`event: reset` means the gap was too large: reload the lists. A comment line is sent every
`stream_heartbeat_seconds` of silence. The stream holds no database connection while it
waits; it ends when the server stops (the client reconnects, maybe to another replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from types import FrameType
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from flowdesk.api.gates import TicketReader
from flowdesk.api.headers import RequestHeader, documented
from flowdesk.errors import InvalidInput
from flowdesk.runtime import runtime_of
from flowdesk.tickets.live import LiveHub, Stream, TicketChange, Viewer

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["tickets"])

LAST_EVENT_ID = RequestHeader("Last-Event-ID", 20)
# How long a browser's EventSource waits before it reconnects (ms), sent first.
RETRY_MS = 2000
_OPENING = b"retry: %d\n\n" % RETRY_MS
_HEARTBEAT = b": keep-alive\n\n"
_RESET = b'event: reset\ndata: {"reason": "replay window exceeded"}\n\n'

_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One frame of text/event-stream: `id:` the audit event's id, `event:` "
    "its kind, `data:` this JSON object. `event: reset` (no id) means events were missed "
    "beyond the replay window: reload.",
    "properties": {
        "event_id": {"type": "integer"},
        "ticket_id": {"type": "string", "format": "uuid"},
        "number": {"type": "string", "examples": ["TKT-000042"]},
        "kind": {"type": "string", "examples": ["created", "transitioned", "commented"]},
        "version": {"type": "integer", "description": "The ticket's version after it"},
        "at": {"type": "string", "format": "date-time"},
    },
}


class EventStreamResponse(StreamingResponse):
    """A stream that ends as soon as its client leaves, however the server speaks ASGI.

    Starlette's StreamingResponse stops listening for the client's disconnect under ASGI
    spec 2.4 and notices a gone client only when a write fails: an idle stream would hold its
    place (and its key's count) until the next heartbeat. `on_close` runs when it ends, even
    if it ended before its first frame.
    """

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def respond() -> None:
                    with contextlib.suppress(OSError):  # the client is gone
                        await self.stream_response(send)
                    group.cancel_scope.cancel()

                group.start_soon(respond)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        finally:
            self._on_close()


def _last_event_id(request: Request) -> int | None:
    value = LAST_EVENT_ID.read(request)
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise InvalidInput(
            "Last-Event-ID must be the id of an event this stream sent.",
            [(LAST_EVENT_ID.pointer, "a non-negative integer")],
        )
    return int(value)


@router.get(
    "/events/stream",
    summary="Live ticket changes (Server-Sent Events)",
    description="The ticket changes the caller may see, as they are committed: agents every "
    "ticket of the tenant (internal notes included), requesters the tickets they requested "
    "(no internal events). Resumable with `Last-Event-ID` for events up to 1 hour old and "
    "1,000 events back; `event: reset` when beyond. A comment line is sent every 15 s of "
    "silence (`FLOWDESK_STREAM_HEARTBEAT_SECONDS`). At most `FLOWDESK_STREAM_MAX_PER_KEY` "
    "streams per key on one server (429 beyond). A browser's EventSource cannot send "
    "`Authorization`: use fetch() with a streaming body (docs/adr/0010).",
    response_class=EventStreamResponse,
    status_code=200,
    responses={
        200: {
            "description": "An endless text/event-stream",
            "content": {"text/event-stream": {"schema": _EVENT_SCHEMA}},
        },
        422: {"description": "Last-Event-ID is not an event id"},
        429: {"description": "Too many streams open for this key on this server"},
        503: {"description": "The server is shutting down"},
    },
    openapi_extra=documented(LAST_EVENT_ID),
)
async def event_stream(request: Request, principal: TicketReader) -> EventStreamResponse:
    runtime = runtime_of(request)
    after = _last_event_id(request)
    hub = runtime.live
    viewer = Viewer(principal.tenant_id, principal.user_id, principal.is_agent)
    stream = hub.open(viewer, principal.key_id)
    try:
        # Before the response starts: a client that loads its lists once the stream is open
        # misses nothing committed after that.
        await hub.watch(principal.tenant_id)
    except BaseException:
        hub.close(stream)
        raise
    if after is not None:
        # Replayed once the stream is subscribed: what commits in between is heard live too,
        # and sent once (_frames).
        stream.mark_lost()
    return EventStreamResponse(
        _frames(hub, stream, after, runtime.settings.stream_heartbeat_seconds),
        on_close=lambda: hub.close(stream),
    )


async def _frames(
    hub: LiveHub, stream: Stream, after: int | None, heartbeat: float
) -> AsyncIterator[bytes]:
    """The stream's frames until the client leaves (the response task is cancelled) or the
    server stops (the hub closes the stream)."""
    last = after
    replayed: set[int] = set()
    try:
        yield _OPENING
        while not stream.closed:
            if not await stream.wait(heartbeat):
                yield _HEARTBEAT
                continue
            if stream.closed:
                break
            chunks: list[bytes] = []
            if stream.lost:
                stream.lost = False
                stream.take()  # what the catch-up reads again
                try:
                    caught = await hub.replay(stream.viewer, last) if last is not None else None
                except Exception as exc:  # the database is away: the client resumes later
                    logger.warning("live updates: a stream could not catch up (%s)", exc)
                    break
                if caught is None:
                    chunks.append(_RESET)
                    replayed = set()
                else:
                    chunks.extend(c.frame for c in caught)
                    replayed = {c.id for c in caught}
                    last = max([last or 0, *replayed]) if replayed else last
            for change in _fresh(stream.take(), replayed):
                chunks.append(change.frame)
                last = change.id if last is None else max(last, change.id)
            if chunks:
                yield b"".join(chunks)
    finally:
        hub.close(stream)


def _fresh(changes: list[TicketChange], replayed: set[int]) -> Iterator[TicketChange]:
    """The live changes a replay has not sent already."""
    return (c for c in changes if c.id not in replayed)


@contextlib.contextmanager
def streams_end_on_shutdown(hub: LiveHub) -> Iterator[None]:
    """End every stream as soon as the server is told to stop (SIGTERM, SIGINT).

    uvicorn waits for open responses before it runs the lifespan's shutdown, and a stream
    never ends by itself: without this, it waits out its graceful-shutdown timeout and then
    cancels them. The signal handler uvicorn installed is kept and called after the hub is
    told; it is put back when serving ends. Only in the main thread (where signals are
    delivered); elsewhere (tests driving the app in a thread) nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(RuntimeError):  # a loop already closed: nothing to end
            loop.call_soon_threadsafe(hub.close_all)
        handler = previous[signal.Signals(signum)]
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:  # what the signal would have done: do it
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is on_signal:
                signal.signal(sig, handler)
