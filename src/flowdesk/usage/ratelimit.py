"""Rate limits: a budget per API key and an aggregate budget per tenant and channel, drawn from
together (docs/adr/0020-key-channels-and-tenant-budget.md).

Each request draws one from its key's budget (the tenant's policy, `requests` per
`window_seconds`) and one from its tenant's aggregate budget on the key's channel
(`tenant_factor` times the key's), so that minting more keys does not multiply what a tenant
may send. A request is admitted only when both have room, and a refused request draws from
neither.

The window is a sliding window counter: the count of the current fixed window plus the
previous window's count weighted by how much of it still overlaps the sliding window. Two
integers per budget, one atomic step per request, whatever the budget (a log of every
request, as a moving window keeps, grows with the budget: 6,000 entries for a tenant's).

State is in process memory by default (so with N worker processes, N times the budgets: the
README says so), or in Redis when FLOWDESK_REDIS_URL is set: one Lua script reads and draws
both budgets atomically in one round trip, so every worker and replica shares them. Both keys
carry the tenant in a hash tag (`{tenant}`), which keeps them in one slot of a Redis Cluster.

Redis trouble never fails a request: the limiter fails open (the request is served without a
decision), logs the failure (at most every few seconds), and leaves Redis alone for a short
back-off so that a dead server costs one timeout now and then rather than one per request.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from flowdesk.itsm.controls import RatePolicy

logger = logging.getLogger(__name__)

# Redis calls are on the request path: they must answer fast or be given up.
_REDIS_TIMEOUT_SECONDS = 0.25
_BACKOFF_SECONDS = 5.0
_KEY_PREFIX = "flowdesk-rl"
# In-memory budgets not drawn from for two windows are dropped once this many are held.
_MAX_MEMORY_BUDGETS = 100_000


@dataclass(frozen=True, slots=True)
class Budget:
    """How much of one budget is left after this request."""

    limit: int
    window_seconds: int
    remaining: int
    reset_seconds: int


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    policy: RatePolicy
    tenant_policy: RatePolicy
    # None when no decision could be made (the store is unreachable: failed open).
    key: Budget | None = None
    tenant: Budget | None = None

    @property
    def binding(self) -> Budget | None:
        """The budget closest to running out (the one a 429 waits for)."""
        budgets = [b for b in (self.key, self.tenant) if b is not None]
        if not budgets:
            return None
        return min(budgets, key=lambda b: (b.remaining, -b.reset_seconds))

    @property
    def by_tenant(self) -> bool:
        """Refused by the tenant's aggregate budget (the key's own had room)."""
        return (
            not self.allowed
            and self.key is not None
            and self.key.remaining > 0
            and self.tenant is not None
        )

    @property
    def reset_seconds(self) -> int | None:
        binding = self.binding
        return binding.reset_seconds if binding else None

    def headers(self) -> dict[str, str]:
        """The IETF rate-limit fields, in the syntax of draft-ietf-httpapi-ratelimit-headers-07:
        `RateLimit-Policy: 100;w=60, 1000;w=60` (the key's, then its tenant's aggregate) and
        `RateLimit: limit=100, remaining=42, reset=17` for the budget closest to running out."""
        out = {
            "RateLimit-Policy": f"{self.policy.requests};w={self.policy.window_seconds}, "
            f"{self.tenant_policy.requests};w={self.tenant_policy.window_seconds}"
        }
        binding = self.binding
        if binding is not None:
            out["RateLimit"] = (
                f"limit={binding.limit}, remaining={binding.remaining}, "
                f"reset={binding.reset_seconds}"
            )
        return out


def tenant_policy(policy: RatePolicy, factor: int) -> RatePolicy:
    """A tenant's aggregate budget on one channel: `factor` keys' worth, in the same window."""
    return RatePolicy(policy.requests * factor, policy.window_seconds)


def _budget(
    limit: int, window: float, elapsed: float, previous: int, current: int, admitted: bool
) -> Budget:
    """What is left of a budget whose windows hold `previous` and `current` (this request
    included when admitted), and when a request would be admitted again."""
    overlap = (window - elapsed) / window
    used = previous * overlap + current
    remaining = max(0, math.floor(limit - used))
    if admitted or used + 1 <= limit:
        # Back to full once both windows' counts have slid out: the end of the next window
        # at most; the reset of the window's own count is what clients budget by.
        reset = window - elapsed
    elif current + 1 <= limit:
        # The previous window's share must shrink: overlap ≤ (limit - 1 - current) / previous.
        reset = (window - elapsed) - (limit - 1 - current) / previous * window
    else:
        # This window is full: into the next, until its previous (this one) has slid enough.
        reset = (window - elapsed) + (1 - (limit - 1) / max(current, 1)) * window
    return Budget(limit, int(window), remaining, max(1, math.ceil(reset)))


_SCRIPT = """
local now = tonumber(ARGV[1])
local counts = {}
local admitted = 1
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  local index = math.floor(now / window)
  local elapsed = now - index * window
  local current = tonumber(redis.call('GET', KEYS[i] .. ':' .. index) or '0')
  local previous = tonumber(redis.call('GET', KEYS[i] .. ':' .. (index - 1)) or '0')
  if previous * (window - elapsed) / window + current + 1 > limit then
    admitted = 0
  end
  counts[i] = {index, previous, current}
end
local out = {admitted}
for i = 1, #KEYS do
  local window = tonumber(ARGV[2 * i + 1])
  local index, previous, current = counts[i][1], counts[i][2], counts[i][3]
  if admitted == 1 then
    local name = KEYS[i] .. ':' .. index
    current = redis.call('INCR', name)
    if current == 1 then
      redis.call('PEXPIRE', name, 2 * window)
    end
  end
  table.insert(out, previous)
  table.insert(out, current)
end
return out
"""


class _MemoryStore:
    """The same algorithm as the script, in this process's memory."""

    def __init__(self) -> None:
        # name -> [window index, previous count, current count, window in ms]
        self._budgets: dict[str, list[int]] = {}

    def draw(self, now_ms: int, budgets: list[tuple[str, int, int]]) -> tuple[bool, list[int]]:
        states = []
        admitted = True
        for name, limit, window in budgets:
            index = now_ms // window
            state = self._budgets.get(name)
            if state is None or state[0] < index - 1 or state[3] != window:
                state = [index, 0, 0, window]
            elif state[0] == index - 1:
                state = [index, state[2], 0, window]
            elapsed = now_ms - index * window
            if state[1] * (window - elapsed) / window + state[2] + 1 > limit:
                admitted = False
            states.append((name, state))
        counts: list[int] = []
        for name, state in states:
            if admitted:
                state[2] += 1
            self._budgets[name] = state
            counts += [state[1], state[2]]
        if len(self._budgets) > _MAX_MEMORY_BUDGETS:
            self._sweep(now_ms)
        return admitted, counts

    def _sweep(self, now_ms: int) -> None:
        # A budget whose two windows have both slid out has nothing left to remember.
        self._budgets = {
            name: state
            for name, state in self._budgets.items()
            if now_ms // state[3] - state[0] < 2
        }

    def reset(self) -> None:
        self._budgets.clear()


class RateLimiter:
    def __init__(self, redis_url: str | None = None, *, tenant_factor: int = 10) -> None:
        self.backend = "redis" if redis_url else "memory"
        self.tenant_factor = tenant_factor
        self._memory = _MemoryStore()
        self._redis: Redis | None = None
        self._script: Any = None
        if redis_url:
            self._redis = Redis.from_url(
                redis_url,
                socket_timeout=_REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
            )
            self._script = self._redis.register_script(_SCRIPT)
        self._skip_until = 0.0
        self._last_logged = 0.0

    async def hit(
        self, key_id: str, policy: RatePolicy, *, tenant_id: str = "-", channel: str = "-"
    ) -> Decision:
        """Draw one request from the key's budget and its tenant's on this channel."""
        aggregate = tenant_policy(policy, self.tenant_factor)
        window_ms = policy.window_seconds * 1000
        key_name = f"{_KEY_PREFIX}:{{{tenant_id}}}:k:{key_id}"
        tenant_name = f"{_KEY_PREFIX}:{{{tenant_id}}}:t:{channel}"
        budgets = [
            (key_name, policy.requests, window_ms),
            (tenant_name, aggregate.requests, window_ms),
        ]
        now_ms = int(time.time() * 1000)
        if self._script is None:
            admitted, counts = self._memory.draw(now_ms, budgets)
        else:
            drawn = await self._draw_in_redis(now_ms, budgets)
            if drawn is None:
                return Decision(True, policy, aggregate)
            admitted, counts = drawn
        elapsed = (now_ms % window_ms) / 1000
        window = float(policy.window_seconds)
        key = _budget(policy.requests, window, elapsed, counts[0], counts[1], admitted)
        tenant = _budget(aggregate.requests, window, elapsed, counts[2], counts[3], admitted)
        return Decision(admitted, policy, aggregate, key, tenant)

    async def _draw_in_redis(
        self, now_ms: int, budgets: list[tuple[str, int, int]]
    ) -> tuple[bool, list[int]] | None:
        now = time.monotonic()
        if now < self._skip_until:
            return None
        args: list[int] = [now_ms]
        for _name, limit, window in budgets:
            args += [limit, window]
        try:
            out = await self._script(keys=[name for name, _, _ in budgets], args=args)
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
            return None
        return bool(out[0]), [int(v) for v in out[1:]]

    async def close(self) -> None:
        """Close the Redis connections."""
        if self._redis is not None:
            try:
                await self._redis.aclose()
            except Exception:  # shutting down: nothing to do about a failed close
                logger.debug("rate limiter: closing Redis failed", exc_info=True)

    async def reset(self) -> None:
        """Forget every counter (tests, and an operator's reset)."""
        self._memory.reset()
        if self._redis is not None:
            async for name in self._redis.scan_iter(match=f"{_KEY_PREFIX}:*"):
                await self._redis.delete(name)
