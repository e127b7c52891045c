"""The ASGI application: create_app(settings) and its lifespan (engine, sessionmaker,
authenticator), built per process so that nothing connects at import time."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy import text
from starlette.routing import BaseRoute

from flowdesk import __version__
from flowdesk.auth.dependencies import BEARER_SCHEME
from flowdesk.auth.service import Authenticator
from flowdesk.config import Settings, get_settings
from flowdesk.db import embedded
from flowdesk.db.engine import make_engine, make_sessionmaker
from flowdesk.db.listener import AccessListener
from flowdesk.db.raw import asyncpg_dsn, create_pool
from flowdesk.errors import ServiceUnavailable, install_handlers
from flowdesk.http.idempotency import purge_expired
from flowdesk.http.middleware import RequestMiddleware
from flowdesk.itsm.runtime import itsm_runtime
from flowdesk.periodic import Periodic
from flowdesk.platform.endpoints import router as platform_router
from flowdesk.public.endpoints import router as public_router
from flowdesk.tenants.endpoints import router as tenants_router
from flowdesk.tickets.endpoints import router as tickets_router
from flowdesk.tickets.workflow_endpoints import router as workflows_router
from flowdesk.usage.endpoints import router as usage_router
from flowdesk.usage.middleware import ApiUsageMiddleware
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
        tenants_router,
        workflows_router,
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
        url = database_url(settings)
        # Two pools: asyncpg's for the ticket endpoints (the hot paths), SQLAlchemy's, half
        # as large, for administration, lists, authentication misses and background jobs.
        engine = make_engine(url, settings, pool_size=max(2, settings.db_pool_size // 2))
        app.state.engine = engine
        app.state.pgpool = await create_pool(url, settings)
        app.state.sessionmaker = make_sessionmaker(engine)
        # Keys and licences are cached for as long as this process hears of every change.
        listener = AccessListener(
            asyncpg_dsn(url),
            long_ttl=settings.access_cache_seconds,
            connect_timeout=settings.db_connect_timeout,
        )
        app.state.access_listener = listener
        app.state.authenticator = Authenticator(
            engine,
            ttl=listener.ttl_policy(settings.auth_cache_seconds),
            touch_interval=settings.key_touch_interval_seconds,
            flush_seconds=settings.key_use_flush_seconds,
        )
        listener.subscribe(app.state.authenticator)
        purge = Periodic(
            "idempotency-purge", settings.idempotency_purge_seconds, lambda: purge_expired(engine)
        )
        try:
            async with itsm_runtime(app, engine, settings, listener):
                listener.start()
                app.state.authenticator.start()
                purge.start()
                with _startup_heap_frozen():
                    yield
        finally:
            await purge.stop()
            await app.state.authenticator.stop()
            await listener.stop()
            await app.state.pgpool.close()
            await engine.dispose()

    app = FastAPI(
        title="flowdesk",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        routes=_routes(),
        telemetry=None
        if settings.opentelemetry
        else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.catalog = catalog
    install_handlers(app)

    _document_bearer_auth(app)

    @app.get("/healthz", tags=["health"], summary="The process is up", openapi_extra=_NO_AUTH)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz", tags=["health"], summary="The database is reachable", openapi_extra=_NO_AUTH
    )
    async def readyz(request: Request) -> dict[str, str]:
        try:
            async with request.app.state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            raise ServiceUnavailable("The database is unreachable.") from exc
        return {"status": "ready"}

    # The last added runs first: the request id is set before anything logs, and an oversized
    # body is refused before a key is looked up.
    app.add_middleware(
        ApiUsageMiddleware,
        limited_paths=settings.rate_limit_paths,
        metered_paths=settings.metered_paths,
    )
    app.add_middleware(RequestMiddleware, max_bytes=settings.max_body_bytes)
    return app
