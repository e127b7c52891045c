"""A real HTTP/1.1 receiver on 127.0.0.1 for the webhook tests: h11 over asyncio streams, in the
test's own event loop, recording the connections and requests that reach it."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import h11

Send = Callable[[h11.Event], Awaitable[None]]


@dataclass
class Seen:
    """A request as the receiver got it (header names lower-cased)."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes


Reply = Callable[[Seen, Send], Awaitable[None]]


class Receiver:
    """A real HTTP/1.1 server on 127.0.0.1 (h11 over asyncio streams) that records the
    connections and requests reaching it and answers each request with `reply`."""

    def __init__(self, reply: Reply, *, tls: ssl.SSLContext | None = None) -> None:
        self.reply = reply
        self.tls = tls
        self.connections = 0
        self.requests: list[Seen] = []
        self.server_names: list[str | None] = []  # the SNI of each TLS handshake
        self.port = 0
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        # Python 3.11's wait_closed does not wait for the handlers: they are ended here.
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def url(self, path: str = "/hook", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        conn = h11.Connection(h11.SERVER)

        async def send(event: h11.Event) -> None:
            data = conn.send(event)
            if data:
                writer.write(data)
                await writer.drain()

        try:
            while (seen := await _read_request(conn, reader)) is not None:
                self.requests.append(seen)
                await self.reply(seen, send)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError):
            pass
        except asyncio.CancelledError:
            # The receiver stopping. Ended normally: Python 3.11's streams log a handler task
            # that ends cancelled as an error.
            pass
        finally:
            self._handlers.discard(task)
            writer.close()


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> Seen | None:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            headers = {name.decode(): value.decode() for name, value in request.headers}
            return Seen(request.method.decode(), request.target.decode(), headers, bytes(body))
        else:  # the client closed the connection
            return None


def answer(status: int, headers: Sequence[tuple[str, str]] = (), body: bytes = b"") -> Reply:
    async def reply(seen: Seen, send: Send) -> None:
        await send(
            h11.Response(status_code=status, headers=[("content-length", str(len(body))), *headers])
        )
        if body:
            await send(h11.Data(data=body))
        await send(h11.EndOfMessage())

    return reply


def in_turn(*replies: Reply) -> Reply:
    """Each request gets the next of `replies`; the last answers every request after it."""
    queue = list(replies)

    async def reply(seen: Seen, send: Send) -> None:
        current = queue.pop(0) if len(queue) > 1 else queue[0]
        await current(seen, send)

    return reply
