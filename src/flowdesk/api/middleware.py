"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from os import urandom

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowdesk.api.problems import problem_response
from flowdesk.logs import request_id_var, request_scope_var

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class _ClientGone(Exception):
    """The client disconnected before its body arrived: nothing to answer."""


class _TooLarge(Exception):
    """The body is over the limit."""


class RequestMiddleware:
    """The per-request basics, in one ASGI layer (each layer costs a wrapper per message on
    the hot path, measured in bench/):

    - the request id: a sane incoming X-Request-ID, or a new one; set for logging (with the
      scope, from which log lines read the tenant, key and route) and echoed on the response;
    - the body limit: 413 for a body over `max_bytes`, by Content-Length up front or by
      counting a stream. The body is read here (it is at most 64 KiB by default) and replayed
      to the app, so an oversized stream is refused before any endpoint sees a byte of it;
    - the body deadline: a body not in within `body_seconds` of the headers gets 408 and the
      connection is closed (a slow client holds no worker's request, nor a pooled connection,
      for longer). The headers have their deadline in flowdesk.api.protocol.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        body_seconds: float = 30.0,
        streamed: Callable[[Scope], bool] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.body_seconds = body_seconds
        # Requests whose body the endpoint reads itself as it streams, with its own limit and
        # deadline (uploads: flowdesk.api.uploads); their body is passed through unread.
        self.streamed = streamed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        # 128 random bits as 32 hex digits (what uuid4().hex printed, without the UUID).
        request_id = (
            incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else urandom(16).hex()
        )
        token = request_id_var.set(request_id)
        # Log lines read the tenant, key and route from the scope (flowdesk.logs).
        scope_token = request_scope_var.set(scope)
        id_header = (b"x-request-id", request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            if self.streamed is not None and self.streamed(scope):
                await self.app(scope, receive, send_with_id)
                return
            try:
                body = await self._read_body(scope, receive)
            except _ClientGone:
                return
            except _TooLarge:
                await self._reject(scope, receive, send_with_id)
                return
            except TimeoutError:
                await self._timed_out(scope, receive, send_with_id)
                return
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_with_id)
        finally:
            request_scope_var.reset(scope_token)
            request_id_var.reset(token)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        """The whole body; _TooLarge when it is over the limit, TimeoutError when it is late."""
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            raise _TooLarge
        if declared == "0" or (declared is None and _header(scope, b"transfer-encoding") is None):
            # No body (most requests): its one empty message is already there, and no timer
            # is worth arming for it.
            return await self._receive_body(receive)
        async with asyncio.timeout(self.body_seconds):
            return await self._receive_body(receive)

    async def _receive_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            "payload-too-large",
            "Payload too large",
            f"The request body exceeds {self.max_bytes} bytes.",
        )
        await response(scope, receive, send)

    async def _timed_out(self, scope: Scope, receive: Receive, send: Send) -> None:
        # `Connection: close`: what is left of the body must not be read as the next request.
        response = problem_response(
            408,
            "request-timeout",
            "Request timeout",
            f"The request body did not arrive within {self.body_seconds:g} seconds.",
            headers={"connection": "close"},
        )
        await response(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None
