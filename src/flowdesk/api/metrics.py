"""Prometheus metrics: `GET /metrics` when FLOWDESK_METRICS_ENABLED is set
(docs/adr/0011-server-limits-and-metrics.md).

- Requests, by route template (`/v1/tickets/{number}`, never the raw path: the labels stay a
  bounded set), method and status class, with a latency histogram; 429s as rate-limit
  refusals and 401s as authentication failures, by route.
- The request pool of each worker (connections in use, idle, the maximum), sampled every
  `metrics_sample_seconds` and summed over the live workers.
- The relay's backlog (flowdesk.notifications.backlog), read when scraped.

With several uvicorn workers, `flowdesk serve` runs prometheus_client in its multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, emptied at start): each worker writes its samples to files of its
own and a scrape, whichever worker answers it, adds them up. Without it (one process, the
tests) the process's own registry is served.

`/metrics` takes `Authorization: Bearer` with the metrics token (FLOWDESK_METRICS_TOKEN, a
credential that reads metrics and nothing else) or the platform token; the reverse proxy
should not route it from outside at all (docs/deployment.md).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowdesk.auth.platform import PlatformGuard
from flowdesk.config import Settings
from flowdesk.errors import AppError, Unauthorized
from flowdesk.notifications.backlog import Backlog, backlog
from flowdesk.periodic import Periodic
from flowdesk.runtime import Runtime, runtime_of

# Methods outside this set are counted as "other": a client cannot mint label values.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UNMATCHED = "unmatched"

REQUESTS = Counter(
    "flowdesk_http_requests_total",
    "HTTP requests answered, by route template, method and status class.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "flowdesk_http_request_duration_seconds",
    "Time from a request's headers to the end of its response, by route template and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RATE_LIMITED = Counter(
    "flowdesk_rate_limit_refusals_total",
    "Requests refused with 429 by a rate limit, by route template.",
    ["route"],
)
AUTH_FAILURES = Counter(
    "flowdesk_authentication_failures_total",
    "Requests refused with 401 (no, unknown or revoked credential), by route template.",
    ["route"],
)
POOL_CONNECTIONS = Gauge(
    "flowdesk_db_pool_connections",
    "Connections of the request pools, by state (in_use, idle), summed over live workers.",
    ["state"],
    multiprocess_mode="livesum",
)
LISTENER_HEARING = Gauge(
    "flowdesk_cache_listener_hearing",
    "Workers whose cache listener proved it hears (its last marker came back): the others "
    "trust cached keys and licences only for the short TTL. Alert when below the workers.",
    multiprocess_mode="livesum",
)
LISTENER_MARKERS_MISSED = Gauge(
    "flowdesk_cache_listener_markers_missed",
    "Markers the cache listeners sent through the pool that never came back (a deaf "
    "listener, e.g. behind a transaction pooler), since each worker started, summed.",
    multiprocess_mode="livesum",
)
POOL_MAX = Gauge(
    "flowdesk_db_pool_max_connections",
    "The request pools' maximum size, summed over live workers.",
    ["pool"],
    multiprocess_mode="livesum",
)


class MetricsMiddleware:
    """Counts and times every HTTP request (pure ASGI, outermost: refusals by the inner
    layers, 413 and 408, are counted too). The route template is read from the scope, where
    the router leaves the route it matched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or _UNMATCHED
            method = scope["method"] if scope["method"] in _METHODS else "other"
            REQUESTS.labels(route, method, f"{status // 100}xx").inc()
            LATENCY.labels(route, method).observe(elapsed)
            if status == 429:
                RATE_LIMITED.labels(route).inc()
            elif status == 401:
                AUTH_FAILURES.labels(route).inc()


def sample_pool(runtime: Runtime) -> None:
    pool = runtime.db.pool
    size, idle = pool.get_size(), pool.get_idle_size()
    POOL_CONNECTIONS.labels("in_use").set(size - idle)
    POOL_CONNECTIONS.labels("idle").set(idle)
    POOL_MAX.labels("requests").set(pool.get_max_size())
    LISTENER_HEARING.set(1 if runtime.listener.listening else 0)
    LISTENER_MARKERS_MISSED.set(runtime.listener.markers_missed)


class PoolSampler(Periodic):
    """Samples this worker's pool every so often; at its end, takes the worker's live gauges
    out of the multiprocess sums (a worker that is gone holds no connection)."""

    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        interval = settings.metrics_sample_seconds if settings.metrics_enabled else 0.0

        async def sample() -> None:
            sample_pool(runtime)

        super().__init__("metrics-pool-sample", interval, sample, jitter=0.0)

    async def stop(self) -> None:
        await super().stop()
        if _multiprocess_dir() is not None:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class _BacklogCollector(Collector):
    """The relay's backlog as read for this scrape."""

    def __init__(self, found: Backlog) -> None:
        self._found = found

    def collect(self) -> Iterator[Metric]:
        found = self._found
        yield GaugeMetricFamily(
            "flowdesk_outbox_pending_messages",
            "Outbox messages the relay has not fanned out yet (counted up to 10,000).",
            value=found["outbox_pending"],
        )
        yield GaugeMetricFamily(
            "flowdesk_outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox message not fanned out yet (0 when there is none).",
            value=found["outbox_oldest_seconds"],
        )
        yield GaugeMetricFamily(
            "flowdesk_deliveries_due",
            "Notification deliveries due to be sent now (counted up to 10,000).",
            value=found["deliveries_due"],
        )


def _multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _MetricsGuard:
    """The metrics token or the platform token, each compared as flowdesk.auth.platform
    compares (hashed, in constant time)."""

    def __init__(self, settings: Settings) -> None:
        self._guards = [
            PlatformGuard(token)
            for token in (settings.metrics_token, settings.platform_token)
            if token is not None
        ]

    def check(self, authorization: str | None) -> None:
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and presented:
            for guard in self._guards:
                with contextlib.suppress(AppError):
                    guard.check(presented.strip())
                    return
        raise Unauthorized("The metrics token or the platform token is required.")


async def _read_backlog(runtime: Runtime) -> Backlog | None:
    """The backlog, or None (the gauges left out) when the database does not answer."""
    try:
        async with runtime.db.connection() as conn:
            return await backlog(conn)
    except Exception:
        return None


def install_metrics(app: FastAPI, settings: Settings) -> None:
    """When metrics are enabled: the middleware and `GET /metrics` (not in the OpenAPI
    document: it is an operations endpoint, not the API)."""
    if not settings.metrics_enabled:
        return
    guard = _MetricsGuard(settings)

    async def metrics(request: Request) -> Response:
        guard.check(request.headers.get("authorization"))
        runtime = runtime_of(request)
        sample_pool(runtime)
        registry: CollectorRegistry
        directory = _multiprocess_dir()
        if directory is not None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        else:
            registry = CollectorRegistry()
            registry.register(_Everything())
        found = await _read_backlog(runtime)
        if found is not None:
            registry.register(_BacklogCollector(found))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    app.add_middleware(MetricsMiddleware)


class _Everything(Collector):
    """The process's default registry, inside a registry of this scrape (so that the backlog
    is added to this scrape only)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
