"""Engine and sessionmaker construction (called from the lifespan, never at import time)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from flowdesk.config import Settings


def make_engine(url: str, settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    # Custom plans always: this pool serves the dynamic queries (lists with any filters and
    # sort), where a prepared statement's generic plan can scan a busy tenant's every ticket;
    # planning each time costs a fraction of a millisecond. The hot paths use asyncpg's pool.
    server_settings = {
        "application_name": "flowdesk",
        "jit": "off",
        "plan_cache_mode": "force_custom_plan",
    }
    if settings.db_statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    return create_async_engine(
        url,
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        # No pre-ping: it would cost a round trip on every request. A connection broken by a
        # database restart fails its statement, SQLAlchemy invalidates it (and the pool's
        # older connections), that request gets a 503 and the next ones get fresh connections:
        # the service recovers by itself when the database comes back.
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={"timeout": settings.db_connect_timeout, "server_settings": server_settings},
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
