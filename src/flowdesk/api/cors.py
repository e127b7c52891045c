"""CORS for browser SPAs, as pure ASGI middleware (docs/adr/0010-cors-and-live-updates.md).

An origin is allowed by the deployment (FLOWDESK_CORS_ORIGINS) or by a tenant (its
`allowed_origins`). Starlette's CORSMiddleware takes a fixed list (or pattern) only, and
answers every response the same whoever calls; a tenant's origins must be checked against the
caller's tenant, which is known only once the request is authenticated. So:

- a preflight (OPTIONS with Access-Control-Request-Method) carries no credentials: it is
  answered 204 with the allowed methods and headers, cached by the browser for `MAX_AGE`
  seconds, for an origin the deployment or *some* tenant allows (flowdesk.tenants.origins);
  any other origin gets 403 problem+json without CORS headers;
- the actual response carries `Access-Control-Allow-Origin` (and the exposed headers) when
  the deployment allows the origin, or when the request's authenticated caller's tenant does.
  A response without an authenticated caller (a refused credential, say) carries them for an
  origin some tenant allows only if it is an error, so that the browser can read the 401; no
  other tenant's data is ever readable from a tenant's origin.

Credentials travel in `Authorization` (an API key or an OpenID Connect token), never cookies:
`Access-Control-Allow-Credentials` is not sent, and `*` is never answered. Every response says
`Vary: Origin`, since whether it carries CORS headers depends on it.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowdesk.api.problems import problem_response
from flowdesk.auth.principal import Principal
from flowdesk.runtime import app_runtime

ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE"
# Last-Event-ID: a stream resumed with fetch() (EventSource cannot send Authorization) sends it
# itself, so it is a non-safelisted header there.
ALLOWED_HEADERS = (
    "Authorization, Content-Type, If-Match, If-None-Match, Idempotency-Key, Last-Event-ID"
)
EXPOSED_HEADERS = "ETag, Link, Location, Retry-After, RateLimit, RateLimit-Policy, X-Request-ID"
# Chromium caps a cached preflight at 2 hours, Firefox at 24. What a preflight allows is the
# same for every allowed origin, and the actual response is checked every time.
MAX_AGE = 7200

_VARY = b"vary"
_ORIGIN = b"Origin"


class CorsMiddleware:
    def __init__(self, app: ASGIApp, *, origins: Iterable[str]) -> None:
        self.app = app
        self.deployment = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        if origin is None:
            await self.app(scope, receive, _varied(send))
            return
        if scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method"):
            await (await self._preflight(scope, origin))(scope, receive, send)
            return
        allowed_here = origin in self.deployment

        async def send_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = _with_vary(message.get("headers", ()))
                if allowed_here or await self._tenant_allows(scope, origin, message["status"]):
                    headers += [
                        (b"access-control-allow-origin", origin.encode("latin-1")),
                        (b"access-control-expose-headers", EXPOSED_HEADERS.encode()),
                    ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_cors)

    async def _tenant_allows(self, scope: Scope, origin: str, status: int) -> bool:
        registry = app_runtime(scope["app"]).origins
        principal = scope.get("state", {}).get("principal")
        if isinstance(principal, Principal):
            return await registry.allows(principal.tenant_id, origin)
        return status >= 400 and await registry.allows_any(origin)

    async def _preflight(self, scope: Scope, origin: str) -> Response:
        registry = app_runtime(scope["app"]).origins
        if origin in self.deployment or await registry.allows_any(origin):
            return Response(
                status_code=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": ALLOWED_METHODS,
                    "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                    "Access-Control-Max-Age": str(MAX_AGE),
                    "Vary": "Origin",
                },
            )
        return problem_response(
            403,
            "origin-not-allowed",
            "Origin not allowed",
            f"The origin {origin!r} may not call this service from a browser: neither the "
            "deployment (FLOWDESK_CORS_ORIGINS) nor any tenant (allowed_origins) allows it.",
            headers={"Vary": "Origin"},
        )


def _varied(send: Send) -> Send:
    async def send_varied(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = _with_vary(message.get("headers", ()))
        await send(message)

    return send_varied


def _with_vary(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers with Origin added to Vary (merged into one already there)."""
    out: list[tuple[bytes, bytes]] = []
    varied = False
    for name, value in headers:
        if name.lower() == _VARY and not varied:
            if _ORIGIN.lower() not in value.lower():
                value = value + b", " + _ORIGIN
            varied = True
        out.append((name, value))
    if not varied:
        out.append((_VARY, _ORIGIN))
    return out


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
