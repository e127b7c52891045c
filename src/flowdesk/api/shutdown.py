"""A request cut off by the end of a graceful shutdown answers 503, not 500.

On SIGTERM uvicorn stops accepting connections and lets the requests in flight finish for
`timeout_graceful_shutdown` (FLOWDESK_SHUTDOWN_TIMEOUT_SECONDS); then it cancels the ones still
running, logs each as "Exception in ASGI application" and answers 500. Nothing crashed: the
server is going away and the request may be retried elsewhere. So the cancelled request's work
is left to roll back (its statement and transaction are cancelled with it) and the client gets a
503 problem with Retry-After and `Connection: close`, and no traceback reaches the log.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from flowdesk.api.problems import problem_response

logger = logging.getLogger(__name__)


class ShutdownCutOff:
    """Pure ASGI, and no wrapper around `send` (the hot path pays nothing): whether a response
    was under way is learnt when the 503 is refused."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            # Only the server cancels a request's task (a client's disconnect does not): this
            # is the shutdown's deadline.
            logger.warning(
                "%s %s cut off by the graceful-shutdown deadline", scope["method"], scope["path"]
            )
            response = problem_response(
                503,
                "service-unavailable",
                "Service unavailable",
                "The server is shutting down; retry the request.",
                headers={"Retry-After": "1", "Connection": "close"},
            )
            try:
                await response(scope, receive, send)
            except RuntimeError:
                # A response was under way already (the server refuses a second start): it
                # cannot be replaced, and the connection is closed as uvicorn does.
                raise asyncio.CancelledError from None
