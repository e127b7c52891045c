"""What one flowdesk process holds while it serves: its settings, the compiled workflow
catalog, the database pool and the long-lived services built on them. Built by the app's
lifespan (flowdesk.app), read by the HTTP edge through `runtime_of`."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from flowdesk.auth.platform import PlatformGuard
from flowdesk.auth.service import Authenticator
from flowdesk.config import Settings
from flowdesk.db.listener import AccessListener
from flowdesk.db.pool import Database
from flowdesk.db.readiness import ReadinessProbe
from flowdesk.itsm.controls import ControlsCache
from flowdesk.notifications.relay import Relay
from flowdesk.tenants.origins import OriginRegistry
from flowdesk.tickets.live import LiveHub
from flowdesk.usage.meter import UsageMeter
from flowdesk.usage.ratelimit import RateLimiter
from flowdesk.workflow import Catalog


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    catalog: Catalog
    db: Database
    listener: AccessListener
    authenticator: Authenticator
    controls: ControlsCache
    platform_guard: PlatformGuard
    rate_limiter: RateLimiter
    usage_meter: UsageMeter
    relay: Relay
    live: LiveHub
    origins: OriginRegistry
    readiness: ReadinessProbe


def runtime_of(conn: HTTPConnection) -> Runtime:
    """The serving process's runtime, from any request."""
    return app_runtime(conn.app)


def app_runtime(app: Starlette) -> Runtime:
    """The runtime of an app whose lifespan is running (from middleware, tests)."""
    runtime: Runtime = app.state.runtime
    return runtime
