"""/public/v1/tickets: the ticket endpoints of the public API.

They are the /v1 ticket endpoints themselves, not copies: each public route calls the same
endpoint function (hence the same service code, validation, errors, ETags, idempotency and
pagination), with one difference, the gate. Where the /v1 endpoint takes its principal from
`TicketReader`/`TicketWriter` (licence + agent_portal/end_user_portal + scope), the public
route takes it from `PublicTicketReader`/`PublicTicketWriter` (licence + `public_api` +
scope). Rate limits and metering apply by path (flowdesk.usage.middleware).

Scopes (seed 004): GET list and GET one need tickets:read; POST and PATCH need tickets:write.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Response
from fastapi.routing import APIRoute

from flowdesk.api import tickets as v1
from flowdesk.api.gates import (
    PublicTicketReader,
    PublicTicketWriter,
    TicketReader,
    TicketWriter,
)

PREFIX = "/public/v1"
router = APIRouter(prefix=PREFIX, tags=["public"])

# (path under /v1, method): what the public API offers.
PUBLIC_TICKET_ROUTES = [
    ("/v1/tickets", "GET"),
    ("/v1/tickets/{ref}", "GET"),
    ("/v1/tickets", "POST"),
    ("/v1/tickets/{ref}", "PATCH"),
]
_RATE_HEADERS = {
    "RateLimit": {
        "description": "limit, remaining, reset (draft-ietf-httpapi-ratelimit-headers-07)"
    },
    "RateLimit-Policy": {"description": "requests;w=window seconds, e.g. 600;w=60"},
}
_PUBLIC_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"description": "licence-inactive, feature-disabled (public_api) or a missing scope"},
    429: {
        "description": "The key's rate limit is used up (problem+json)",
        "headers": {"Retry-After": {"description": "Seconds to wait"}, **_RATE_HEADERS},
    },
}
_GATES = {TicketReader: PublicTicketReader, TicketWriter: PublicTicketWriter}


def _regated(endpoint: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """The endpoint with its /v1 gate swapped for the public one, everything else unchanged.

    FastAPI reads an endpoint's parameters from its signature, so the wrapper presents the
    original signature (annotations resolved) with the gate parameter re-annotated.
    """
    hints = typing.get_type_hints(endpoint, include_extras=True)
    signature = inspect.signature(endpoint)
    params = []
    swapped = False
    for param in signature.parameters.values():
        annotation = hints.get(param.name, param.annotation)
        if annotation in _GATES:
            annotation = _GATES[annotation]
            swapped = True
        params.append(param.replace(annotation=annotation))
    if not swapped:
        raise RuntimeError(f"{endpoint.__name__} has no ticket gate to replace")

    @functools.wraps(endpoint)
    async def public_endpoint(**kwargs: Any) -> Any:
        result = await endpoint(**kwargs)
        if isinstance(result, Response) and "location" in result.headers:
            # The created ticket's address in the API the client is using.
            result.headers["location"] = PREFIX + result.headers["location"].removeprefix("/v1")
        return result

    public_endpoint.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=params, return_annotation=hints.get("return", signature.return_annotation)
    )
    public_endpoint.__name__ = f"public_{endpoint.__name__}"
    return public_endpoint


def _mount() -> None:
    by_key = {
        (route.path, method): route
        for route in v1.router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    for path, method in PUBLIC_TICKET_ROUTES:
        route = by_key[(path, method)]
        router.add_api_route(
            path.removeprefix("/v1"),
            _regated(route.endpoint),
            methods=[method],
            response_model=route.response_model,
            status_code=route.status_code,
            responses={**route.responses, **_PUBLIC_RESPONSES},
            summary=route.summary,
            description=route.description,
            openapi_extra=route.openapi_extra,
            name=f"public_{route.name}",
        )


_mount()
