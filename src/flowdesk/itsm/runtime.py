"""The ITSM controls' per-process state, set up and torn down by the app's lifespan: the
licence cache, the platform guard, the rate limiter, the usage meter and the quota checker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from flowdesk.config import Settings
from flowdesk.db.listener import AccessListener
from flowdesk.itsm.controls import ControlsCache, default_policy
from flowdesk.itsm.quotas import QuotaChecker
from flowdesk.api.platform_auth import PlatformGuard
from flowdesk.usage.meter import UsageMeter
from flowdesk.usage.ratelimit import RateLimiter


@asynccontextmanager
async def itsm_runtime(
    app: FastAPI, engine: AsyncEngine, settings: Settings, listener: AccessListener
) -> AsyncIterator[None]:
    app.state.controls = ControlsCache(
        engine,
        ttl=listener.ttl_policy(settings.licence_cache_seconds),
        default_policy=default_policy(settings),
    )
    listener.subscribe(app.state.controls)
    app.state.platform_guard = PlatformGuard(settings.platform_token)
    limiter = app.state.rate_limiter = RateLimiter(settings.redis_url)
    meter = app.state.usage_meter = UsageMeter(engine, settings.usage_flush_seconds)
    checker = QuotaChecker(engine, settings.quota_check_seconds)
    meter.start()
    checker.start()
    try:
        yield
    finally:
        await checker.stop()
        # The last counts are written before the engine goes.
        await meter.stop()
        await limiter.close()
