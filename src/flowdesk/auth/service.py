"""API key authentication with a short in-process cache.

A verified key is trusted from memory for `auth_cache_seconds`, so a busy client costs no
query per request; revocation, expiry and permission changes made on another worker take
effect within that many seconds, and at once on the worker that made them (it clears its
cache). last_used_at is written at most once per `key_touch_interval_seconds` per key.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from flowdesk.auth import keys
from flowdesk.auth.permissions import effective_permissions, user_permissions
from flowdesk.auth.principal import Principal
from flowdesk.auth.repository import KeyRecord, fetch_key, touch_key
from flowdesk.errors import Unauthorized

logger = logging.getLogger(__name__)

_MAX_CACHED_KEYS = 10_000


@dataclass(slots=True)
class _Cached:
    record: KeyRecord
    principal: Principal
    fetched_at: float
    touched_at: float


class Authenticator:
    def __init__(self, engine: AsyncEngine, *, cache_seconds: float, touch_interval: int) -> None:
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._touch_interval = touch_interval
        self._cache: dict[bytes, _Cached] = {}

    def invalidate(self) -> None:
        """Forget every cached key (after a revocation or a permission change here)."""
        self._cache.clear()

    async def authenticate(self, authorization: str | None) -> Principal:
        key = _bearer_token(authorization)
        # One body for every failure, so a caller learns nothing about which keys exist.
        if key is None or not keys.is_well_formed(key):
            raise Unauthorized()
        digest = keys.hash_key(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is None or now - cached.fetched_at > self._cache_seconds:
            cached = await self._load(digest, now)
        if not _usable(cached.record):
            self._cache.pop(digest, None)
            raise Unauthorized()
        if now - cached.touched_at > self._touch_interval:
            cached.touched_at = now
            await self._touch(cached.record)
        return cached.principal

    async def _load(self, digest: bytes, now: float) -> _Cached:
        async with self._engine.connect() as conn:
            record = await fetch_key(conn, digest)
        if record is None:
            self._cache.pop(digest, None)
            raise Unauthorized()
        principal = Principal(
            tenant_id=record.tenant_id,
            tenant_slug=record.tenant_slug,
            user_id=record.user_id,
            user_kind=record.user_kind,
            key_id=record.key_id,
            scopes=frozenset(record.scopes),
            permissions=effective_permissions(record.granted, record.scopes),
            user_permissions=user_permissions(record.granted),
        )
        if len(self._cache) >= _MAX_CACHED_KEYS:
            self._cache.clear()
        previous = self._cache.get(digest)
        # The database is the judge of when the key was last marked used; a fresh load of a
        # key we already touched recently keeps that time.
        touched = previous.touched_at if previous else _touched_monotonic(record, now)
        entry = _Cached(record, principal, now, touched)
        self._cache[digest] = entry
        return entry

    async def _touch(self, record: KeyRecord) -> None:
        try:
            async with self._engine.begin() as conn:
                await touch_key(conn, record.tenant_id, record.key_id, self._touch_interval)
        except Exception:  # a failed bookkeeping write must not fail the request
            logger.warning("could not record last use of key %s", record.key_id, exc_info=True)


def _bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token.strip()


def _usable(record: KeyRecord) -> bool:
    if record.revoked_at is not None or record.user_deleted:
        return False
    return record.expires_at is None or record.expires_at > datetime.now(UTC)


def _touched_monotonic(record: KeyRecord, now: float) -> float:
    if record.last_used_at is None:
        return float("-inf")
    age = (datetime.now(UTC) - record.last_used_at).total_seconds()
    return now - max(age, 0.0)
