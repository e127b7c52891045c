"""/public/v1: the ticket and asset endpoints of the public API.

They are the /v1 routes made by the same factories (flowdesk.api.tickets.add_ticket_routes,
flowdesk.api.assets.add_asset_routes: the same service code, validation, errors, ETags,
idempotency and pagination), behind another gate: the licence, the `public_api` flag and the
key's scope, instead of the portal flags. Rate limits and metering apply by path
(flowdesk.api.usage_middleware).

Scopes (seed 004): reads need tickets:read; writes (POST, PATCH, PUT, DELETE: tickets,
transitions, comments, links, approvals, assets) need tickets:write. A write from a key
without tickets:read answers with the ticket's id, number and version only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from flowdesk.api.assets import add_asset_routes
from flowdesk.api.gates import public_read_gate, public_write_gate
from flowdesk.api.tickets import add_ticket_routes

PREFIX = "/public/v1"
router = APIRouter(prefix=PREFIX, tags=["public"])

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

add_ticket_routes(router, public_read_gate, public_write_gate, _PUBLIC_RESPONSES)
add_asset_routes(router, public_read_gate, public_write_gate, _PUBLIC_RESPONSES)
