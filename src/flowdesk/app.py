"""The ASGI application: create_app(settings), and `serving`, which builds the process's
runtime (pool, caches, background jobs) in the lifespan so that nothing connects at import."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any

from fastapi import FastAPI, Request
from starlette.routing import BaseRoute

from flowdesk import __version__
from flowdesk.api.assets import router as assets_router
from flowdesk.api.attachments import is_upload
from flowdesk.api.audit import router as audit_router
from flowdesk.api.auth import BEARER_SCHEME
from flowdesk.api.cors import CorsMiddleware
from flowdesk.api.identity_providers import router as identity_providers_router
from flowdesk.api.metrics import PoolSampler, install_metrics
from flowdesk.api.middleware import RequestMiddleware
from flowdesk.api.notifications import router as notifications_router
from flowdesk.api.openapi import install_openapi_errors
from flowdesk.api.platform import router as platform_router
from flowdesk.api.problems import install_handlers
from flowdesk.api.public import router as public_router
from flowdesk.api.shutdown import ShutdownCutOff
from flowdesk.api.stream import router as stream_router
from flowdesk.api.stream import streams_end_on_shutdown
from flowdesk.api.tenants import router as tenants_router
from flowdesk.api.tickets import router as tickets_router
from flowdesk.api.usage import router as usage_router
from flowdesk.api.usage_middleware import ApiUsageMiddleware
from flowdesk.api.workflows import router as workflows_router
from flowdesk.auth.platform import PlatformGuard
from flowdesk.auth.service import Authenticator
from flowdesk.auth.throttle import FailureThrottle
from flowdesk.config import Settings, get_settings
from flowdesk.db import embedded
from flowdesk.db.listener import AccessListener
from flowdesk.db.pool import Database, asyncpg_dsn
from flowdesk.db.readiness import ReadinessProbe
from flowdesk.errors import ServiceUnavailable
from flowdesk.idempotency.repository import purge_expired
from flowdesk.itsm.controls import ControlsCache, default_policy
from flowdesk.itsm.quotas import quota_check_job, within_agent_seats
from flowdesk.notifications.relay import Relay, purge_job
from flowdesk.periodic import Periodic
from flowdesk.runtime import Runtime, runtime_of
from flowdesk.tenants.origins import OriginRegistry
from flowdesk.tickets.live import CHANNEL as TICKETS_CHANNEL
from flowdesk.tickets.live import LiveHub
from flowdesk.tickets.sla_tick import sla_job
from flowdesk.tickets.timers import timer_job
from flowdesk.usage.meter import UsageMeter
from flowdesk.usage.ratelimit import RateLimiter
from flowdesk.usage.retention import usage_purge_job
from flowdesk.workflow import Catalog, load_catalog

logger = logging.getLogger(__name__)

DESCRIPTION = """\
flowdesk is a multi-tenant service-desk ticketing API whose workflows are configuration.

Authenticate with an API key: `Authorization: Bearer fdk_…`. Errors are RFC 9457
`application/problem+json`.
"""

TAGS = [
    {"name": "identity", "description": "Who the caller is."},
    {"name": "tickets", "description": "Tickets, their transitions, comments and audit trail."},
    {"name": "workflows", "description": "The compiled workflow catalog."},
    {"name": "administration", "description": "Tenant administration: users, groups, API keys."},
    {
        "name": "notifications",
        "description": "E-mail and webhook notifications of ticket events: the delivery log "
        "and its retries, e-mail templates, webhook endpoints (signed per Standard Webhooks).",
    },
    {"name": "health", "description": "Liveness and readiness probes."},
    {
        "name": "public",
        "description": "The public API for external systems: tickets with scoped API keys, "
        "rate limits (IETF RateLimit fields) and usage metering; needs the public_api flag.",
    },
    {
        "name": "platform",
        "description": "The platform operator's API (ITSM licences, quota alerts, usage), "
        "authenticated with the platform token, never a tenant's key.",
    },
]


@contextmanager
def _startup_heap_frozen() -> Iterator[None]:
    """What start-up built lives as long as the process: keep it out of the cyclic garbage
    collector's sight while serving (gc.freeze). A full collection otherwise walks every
    object of the app (~120,000: routes, models, the catalog) and took 80-90 ms, a pause that
    every request in flight waits out: it was most of the ticket endpoints' p99 (bench/).
    Unfrozen at shutdown, so that the garbage of an app that is gone can still be collected
    (the test suite starts many)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@asynccontextmanager
async def serving(settings: Settings, catalog: Catalog) -> AsyncIterator[Runtime]:
    """The process's runtime: the pool, the caches and the background jobs, each stopped in
    the reverse order of its start (the last usage counts are written before the pool goes),
    and only if it started."""
    async with AsyncExitStack() as started:
        url = database_url(settings)
        db = await Database.open(url, settings)
        started.push_async_callback(db.close)
        # Keys and licences are cached for as long as this process hears of every change.
        # Straight to PostgreSQL when a transaction pooler fronts it (a LISTEN outlives a
        # transaction): FLOWDESK_LISTEN_DATABASE_URL.
        listener = AccessListener(
            asyncpg_dsn(settings.listen_database_url or url),
            long_ttl=settings.access_cache_seconds,
            connect_timeout=settings.db_connect_timeout,
            db=db,
            heartbeat_seconds=settings.listener_heartbeat_seconds,
            marker_timeout=settings.listener_marker_timeout_seconds,
        )
        authenticator = Authenticator(
            db,
            ttl=listener.ttl_policy(settings.auth_cache_seconds),
            touch_interval=settings.key_touch_interval_seconds,
            flush_seconds=settings.key_use_flush_seconds,
            seats=within_agent_seats,
            failures=FailureThrottle(
                settings.auth_failure_limit, settings.auth_failure_window_seconds
            ),
        )
        controls = ControlsCache(
            db,
            ttl=listener.ttl_policy(settings.licence_cache_seconds),
            default_policy=default_policy(settings),
        )
        listener.subscribe(authenticator)
        listener.subscribe(controls)
        # CORS's tenant origins, and the live streams' ticket changes, heard on the same
        # connection.
        origins = OriginRegistry(db, ttl=listener.ttl_policy(settings.auth_cache_seconds))
        listener.subscribe(origins)
        live = LiveHub(db, max_per_key=settings.stream_max_per_key)
        listener.listen(TICKETS_CHANNEL, live)
        runtime = Runtime(
            settings=settings,
            catalog=catalog,
            db=db,
            listener=listener,
            authenticator=authenticator,
            controls=controls,
            platform_guard=PlatformGuard(settings.platform_token),
            rate_limiter=RateLimiter(
                settings.redis_url, tenant_factor=settings.tenant_rate_limit_factor
            ),
            usage_meter=UsageMeter(db, settings.usage_flush_seconds),
            relay=Relay(db, settings, catalog),
            live=live,
            origins=origins,
            readiness=ReadinessProbe(asyncpg_dsn(url), timeout=settings.db_connect_timeout),
        )
        started.push_async_callback(runtime.readiness.close)
        listener.start()
        started.push_async_callback(listener.stop)
        started.push_async_callback(runtime.rate_limiter.close)
        authenticator.start()
        started.push_async_callback(authenticator.stop)
        runtime.usage_meter.start()
        started.push_async_callback(runtime.usage_meter.stop)
        # Every serve process relays notifications (unless relay_poll_seconds is 0, for a
        # deployment that runs `flowdesk worker` instead); its transports close either way.
        runtime.relay.start()
        started.push_async_callback(runtime.relay.stop)
        jobs = (
            Periodic(
                "idempotency-purge", settings.idempotency_purge_seconds, lambda: purge_expired(db)
            ),
            quota_check_job(db, settings.quota_check_seconds),
            timer_job(db, catalog, settings.timer_tick_seconds),
            sla_job(db, catalog, settings.sla_tick_seconds),
            purge_job(db, settings),
            usage_purge_job(db, settings),
            PoolSampler(runtime),
        )
        for job in jobs:
            job.start()
            started.push_async_callback(job.stop)
        live.start()
        started.push_async_callback(live.stop)
        started.callback(live.close_all)  # first: open streams end before anything stops
        yield runtime


def database_url(settings: Settings) -> str:
    """The configured URL, else the embedded server of the data directory (started or joined)."""
    return settings.database_url or embedded.start(settings.data_dir)


_NO_AUTH: dict[str, Any] = {"security": []}


def _document_bearer_auth(app: FastAPI) -> None:
    """Every operation takes `Authorization: Bearer fdk_…` unless it says otherwise (health
    probes; the platform API names its own scheme)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["apiKey"] = BEARER_SCHEME
            schema["security"] = [{"apiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _routes() -> list[BaseRoute]:
    """Every router's routes, in one flat list on the app, hot paths first.

    Not `include_router`: FastAPI (0.165) keeps an included router as a lazy branch whose
    routes are matched twice per request (once to choose the branch, once to dispatch in it),
    which cost the ticket endpoints about 7% of their CPU (bench/request_cpu.py). The routers'
    routes already carry their prefixes and tags, so the app serves and documents them alike.
    Routes are tried in order: the ticket endpoints, the busiest, come first.
    """
    routers = (
        tickets_router,
        public_router,
        assets_router,
        tenants_router,
        audit_router,
        identity_providers_router,
        workflows_router,
        notifications_router,
        stream_router,
        usage_router,
        platform_router,
    )
    return [route for router in routers for route in router.routes]


def create_app(settings: Settings | None = None, catalog: Catalog | None = None) -> FastAPI:
    settings = settings or get_settings()
    # The workflow catalog is compiled before anything is served: a broken catalog stops the
    # start with file:line:col messages (flowdesk.workflow.CatalogError).
    catalog = catalog or load_catalog(settings.workflow_files)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with serving(settings, catalog) as runtime:
            app.state.runtime = runtime
            with _startup_heap_frozen(), streams_end_on_shutdown(runtime.live):
                yield

    app = FastAPI(
        title="flowdesk",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        routes=_routes(),
        # FLOWDESK_DOCS_ENABLED=false: no /docs, /redoc or /openapi.json (404); app.openapi()
        # still builds the document (`flowdesk openapi`).
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url="/redoc" if settings.docs_enabled else None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        telemetry=None
        if settings.opentelemetry
        else {"tracing": False, "metrics": False, "logs": False},
    )
    install_handlers(app)

    _document_bearer_auth(app)
    # Every error status of every operation, as problem+json, and the links (api/openapi.py).
    install_openapi_errors(app)

    @app.get("/healthz", tags=["health"], summary="The process is up", openapi_extra=_NO_AUTH)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz", tags=["health"], summary="The database is reachable", openapi_extra=_NO_AUTH
    )
    async def readyz(request: Request) -> dict[str, str]:
        # Over a connection of its own, not the request pool's (flowdesk.db.readiness).
        if not await runtime_of(request).readiness.ready():
            raise ServiceUnavailable("The database is unreachable.")
        return {"status": "ready"}

    # The last added runs first: the request id is set before anything logs, and an oversized
    # body is refused before a key is looked up.
    app.add_middleware(
        ApiUsageMiddleware,
        limited_paths=settings.rate_limit_paths,
        metered_paths=settings.metered_paths,
    )
    app.add_middleware(
        RequestMiddleware,
        max_bytes=settings.max_body_bytes,
        body_seconds=settings.body_timeout_seconds,
        streamed=is_upload,
    )
    app.add_middleware(CorsMiddleware, origins=settings.cors_origins)
    # A request cancelled by the shutdown's deadline answers 503 (counted by the metrics).
    app.add_middleware(ShutdownCutOff)
    install_metrics(app, settings)  # outermost: counts what the layers inside refuse
    return app
