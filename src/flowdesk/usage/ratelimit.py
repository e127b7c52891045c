"""Rate limits per API key, on the `limits` library.

The strategy is the moving window: at most `requests` admitted in any `window_seconds`,
exactly, with no burst of twice the limit across a fixed window's edge. State is in process
memory by default; with FLOWDESK_REDIS_URL it is in Redis (the library's Lua scripts make each
hit atomic), so every replica draws on one budget per key.

Redis trouble never fails a request: the limiter fails open (the request is served without a
decision), logs the failure (at most every few seconds), and leaves Redis alone for a short
back-off so that a dead server costs one timeout now and then rather than one per request.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from flowdesk.itsm.controls import RatePolicy

logger = logging.getLogger(__name__)

# Redis calls are on the request path: they must answer fast or be given up.
_REDIS_TIMEOUT_SECONDS = 0.25
_BACKOFF_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    policy: RatePolicy
    # None when no decision could be made (the store is unreachable: failed open).
    remaining: int | None
    reset_seconds: int | None

    def headers(self) -> dict[str, str]:
        """The IETF rate-limit fields, in the syntax of draft-ietf-httpapi-ratelimit-headers-07
        (`RateLimit: limit=100, remaining=42, reset=17` and `RateLimit-Policy: 100;w=60`)."""
        out = {"RateLimit-Policy": f"{self.policy.requests};w={self.policy.window_seconds}"}
        if self.remaining is not None and self.reset_seconds is not None:
            out["RateLimit"] = (
                f"limit={self.policy.requests}, remaining={self.remaining}, "
                f"reset={self.reset_seconds}"
            )
        return out


def redis_storage_uri(url: str) -> str:
    """redis://host:6379/0 as the limits library's async scheme (async+redis://...)."""
    return url if url.startswith("async+") else f"async+{url}"


class RateLimiter:
    def __init__(self, redis_url: str | None = None) -> None:
        self.backend = "redis" if redis_url else "memory"
        storage: Storage
        if redis_url:
            storage = RedisStorage(
                redis_storage_uri(redis_url),
                implementation="redispy",
                key_prefix="flowdesk-rl",
                socket_timeout=_REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
            )
        else:
            storage = MemoryStorage()
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._skip_until = 0.0
        self._last_logged = 0.0

    async def hit(self, key_id: str, policy: RatePolicy) -> Decision:
        item = RateLimitItemPerSecond(policy.requests, policy.window_seconds)
        now = time.monotonic()
        if now < self._skip_until:
            return Decision(True, policy, None, None)
        try:
            allowed = await self._limiter.hit(item, key_id)
            stats = await self._limiter.get_window_stats(item, key_id)
        except Exception as exc:  # fail open: serving beats refusing on a storage fault
            self._skip_until = now + _BACKOFF_SECONDS
            if now - self._last_logged > _BACKOFF_SECONDS:
                self._last_logged = now
                logger.error(
                    "rate limiter: %s storage failed (%s); serving without limits for %.0fs",
                    self.backend,
                    exc,
                    _BACKOFF_SECONDS,
                )
            return Decision(True, policy, None, None)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        if not allowed and reset == 0:
            reset = 1
        return Decision(allowed, policy, max(0, stats.remaining), reset)

    async def close(self) -> None:
        """Close the Redis connections (the library leaves its client open)."""
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        closer = getattr(client, "aclose", None)
        if closer is not None:
            try:
                await closer()
            except Exception:  # shutting down: nothing to do about a failed close
                logger.debug("rate limiter: closing Redis failed", exc_info=True)

    async def reset(self) -> None:
        """Forget every counter (tests, and an operator's reset)."""
        await self._storage.reset()
