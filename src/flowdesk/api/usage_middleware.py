"""Rate limits and usage metering for API-key requests, as pure ASGI middleware.

For a request under a limited prefix (both APIs by default) carrying a valid key, the key's
budget and its tenant's aggregate budget on the key's channel are drawn from before the app
runs (flowdesk.usage.ratelimit): over either, the answer is 429 problem+json with
`Retry-After`, without touching the app. Every response under a limited prefix carries the
IETF `RateLimit` and `RateLimit-Policy` fields (error responses included). Requests under a
metered prefix are counted per key once the response has started (see flowdesk.usage.meter).

The key is resolved through the app's Authenticator, whose in-process cache the endpoint's own
authentication then hits: no extra query. A request without a valid key passes through
untouched (the endpoint answers 401; there is no key to charge).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowdesk.api.problems import (
    database_unavailable_response,
    error_response,
    is_database_unreachable,
)
from flowdesk.auth.principal import Principal
from flowdesk.errors import AppError, RateLimited
from flowdesk.itsm.controls import first_party_policy
from flowdesk.runtime import Runtime, app_runtime
from flowdesk.usage.ratelimit import Decision
from flowdesk.vocabulary import PUBLIC

logger = logging.getLogger(__name__)

OTHER_FAMILY = "other"


def family_of(path: str) -> str:
    """ "/public/v1/tickets/…" -> "public.tickets", "/v1/users/…" -> "v1.users"."""
    parts = path.strip("/").split("/")
    if parts[0] == "public" and len(parts) >= 3:
        return f"public.{parts[2]}"
    if parts[0] == "v1" and len(parts) >= 2:
        return f"v1.{parts[1]}"
    return OTHER_FAMILY


class ApiUsageMiddleware:
    def __init__(
        self, app: ASGIApp, *, limited_paths: Sequence[str], metered_paths: Sequence[str]
    ) -> None:
        self.app = app
        self.limited = tuple(limited_paths)
        self.metered = tuple(metered_paths)
        self._families: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limited = path.startswith(self.limited) if self.limited else False
        metered = path.startswith(self.metered) if self.metered else False
        if not (limited or metered):
            await self.app(scope, receive, send)
            return
        runtime = app_runtime(scope["app"])
        try:
            principal = await _principal(runtime, scope)
        except Exception as exc:
            if not is_database_unreachable(exc):
                raise
            # Answered here: the endpoint would wait for the same database a second time.
            logger.warning("database unavailable: %s", exc)
            await database_unavailable_response(exc)(scope, receive, send)
            return
        if principal is None:
            await self.app(scope, receive, send)
            return
        # Handed to the endpoint's authentication (flowdesk.api.auth): one lookup.
        scope.setdefault("state", {})["principal"] = principal

        decision = await _decide(runtime, principal) if limited else None
        extra = (
            [(k.lower().encode(), v.encode()) for k, v in decision.headers().items()]
            if decision
            else []
        )
        status = 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if extra:
                    message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            if decision is not None and not decision.allowed:
                await _too_many(decision)(scope, receive, send_counted)
            else:
                await self.app(scope, receive, send_counted)
        finally:
            if metered:
                runtime.usage_meter.record(
                    principal.tenant_id, principal.key_id, self._family(scope, path), status
                )

    def _family(self, scope: Scope, path: str) -> str:
        """The family of the request: bounded by the app's routes, never by a client's URL.
        A matched route names it; an unmatched path (or a 429, answered before routing) gets
        its family only if a route has already shown that family exists."""
        route = scope.get("route")
        if route is not None and hasattr(route, "path"):
            family = family_of(str(route.path))
            self._families.add(family)
            return family
        family = family_of(path)
        return family if family in self._families else OTHER_FAMILY


async def _principal(runtime: Runtime, scope: Scope) -> Principal | None:
    authorization = None
    for key, value in scope.get("headers", []):
        if key == b"authorization":
            authorization = value.decode("latin-1")
            break
    client = scope.get("client")
    if not authorization or runtime.authenticator.throttled(client[0] if client else None):
        return None  # the endpoint answers: 401, or 429 to an address failing too often
    try:
        principal: Principal = await runtime.authenticator.authenticate(authorization)
    except AppError:  # 401: the endpoint answers it; there is no key to charge
        return None
    return principal


async def _decide(runtime: Runtime, principal: Principal) -> Decision | None:
    """The key's budget: a public key's is its tenant's licence policy (or the default), a
    first-party key's the deployment's first-party policy."""
    if principal.channel == PUBLIC:
        try:
            controls = await runtime.controls.get(principal.tenant_id)
        except Exception:  # the database away: no policy to apply; the endpoint answers 503
            logger.warning("rate limiter: no policy for tenant %s", principal.tenant_id)
            return None
        policy = controls.rate_policy
    else:
        policy = first_party_policy(runtime.settings)
    return await runtime.rate_limiter.hit(
        str(principal.key_id),
        policy,
        tenant_id=str(principal.tenant_id),
        channel=principal.channel,
    )


def _too_many(decision: Decision) -> Response:
    retry_after = max(1, decision.reset_seconds or 1)
    if decision.by_tenant:
        policy = decision.tenant_policy
        whose = "This tenant's aggregate rate limit (all its keys on this API together)"
    else:
        policy = decision.policy
        whose = "This API key's rate limit"
    return error_response(
        RateLimited(
            f"{whose} of {policy.requests} requests per {policy.window_seconds} seconds is "
            f"used up; retry in {retry_after} seconds.",
            retry_after,
        )
    )
