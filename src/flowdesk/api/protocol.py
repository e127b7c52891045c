"""The HTTP/1.1 protocol `flowdesk serve` runs: uvicorn's httptools protocol with the limits
uvicorn does not have for it (docs/adr/0011-server-limits-and-metrics.md).

uvicorn (0.54) arms no timer until a first response is sent, so a connection that sends
nothing, or trickles its headers a byte at a time, is kept for ever; and with httptools it
bounds neither the size nor the number of header fields (`h11_max_incomplete_event_size`
applies to its h11 protocol only). This subclass adds, per request:

- a header deadline: the request line and headers must be in within `header_timeout_seconds`
  of the connection's opening or of the request's first byte. A connection that sent nothing
  is closed; one in the middle of its headers gets 408 and is closed;
- a header budget: more than `max_header_bytes` bytes of request line and fields, or more than
  `max_header_fields` fields, get 431 and the connection is closed, before the app sees the
  request.

The idle time between requests stays uvicorn's keep-alive timeout. What is read after the
headers (the body) has its deadline in flowdesk.api.middleware.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Any, NamedTuple

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from flowdesk.config import get_settings
from flowdesk.errors import problem


class Limits(NamedTuple):
    header_bytes: int
    header_fields: int
    header_seconds: float


@lru_cache(maxsize=1)
def _limits() -> Limits:
    # uvicorn builds the protocol by its class (workers import it by name), so the limits come
    # from the settings in the environment, as every worker's app does.
    settings = get_settings()
    return Limits(
        settings.max_header_bytes, settings.max_header_fields, settings.header_timeout_seconds
    )


class _HeadersTooLarge(Exception):
    """Raised from a parser callback: httptools stops parsing and uvicorn answers 400, which
    `send_400_response` turns into 431."""


def _response(status: int, reason: bytes, slug: str, title: str, detail: str) -> bytes:
    body = orjson.dumps(problem(status, slug, title, detail, None))
    head = (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/problem+json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % (status, reason, len(body))
    )
    return head + body


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a header budget."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._limits = _limits()
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_headers = False
        self._too_large = False
        self._header_bytes = 0
        self._header_fields = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = 0
        self._header_fields = 0
        if self._header_timer is None:
            self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self._count(len(url), 0)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # httptools may hand one field over in pieces; each piece counts its bytes (the field
        # count is then an upper bound, which only ever refuses sooner).
        self._count(len(name) + len(value) + 4, 1)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._cancel_header_timer()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if not self._too_large:
            super().send_400_response(msg)
            return
        self._cancel_header_timer()
        self.transport.write(
            _response(
                431,
                b"Request Header Fields Too Large",
                "request-header-fields-too-large",
                "Request header fields too large",
                f"The request line and header fields exceed {self._limits.header_bytes} bytes "
                f"or {self._limits.header_fields} fields.",
            )
        )
        self.transport.close()

    def _count(self, size: int, fields: int) -> None:
        self._header_bytes += size
        self._header_fields += fields
        if (
            self._header_bytes > self._limits.header_bytes
            or self._header_fields > self._limits.header_fields
        ):
            self._too_large = True
            raise _HeadersTooLarge

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(
            self._limits.header_seconds, self._header_deadline
        )

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._in_headers:
            self.transport.write(
                _response(
                    408,
                    b"Request Timeout",
                    "request-timeout",
                    "Request timeout",
                    f"The request headers did not arrive within "
                    f"{self._limits.header_seconds:g} seconds.",
                )
            )
        self.transport.close()
