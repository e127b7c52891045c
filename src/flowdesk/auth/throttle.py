"""Failed authentications counted per client address, and the keys known not to exist.

Anyone can make well-formed keys offline (the checksum only catches typing errors and noise),
so a stream of invented keys would cost a database lookup each. A digest that found no key is
remembered for a while, and an address that keeps failing is refused with 429 before any
lookup, until its window ends.
"""

from __future__ import annotations

import time
from collections import OrderedDict


class FailureThrottle:
    """At most `limit` failed authentications per client address in a fixed window of
    `window` seconds, per process; the `max_clients` most recent addresses are tracked."""

    def __init__(self, limit: int, window: float, *, max_clients: int = 100_000) -> None:
        self._limit = limit
        self._window = window
        self._max_clients = max_clients
        self._failures: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again, or None when it may now."""
        found = self._failures.get(client)
        if found is None:
            return None
        started, count = found
        left = started + self._window - time.monotonic()
        if left <= 0:
            del self._failures[client]
            return None
        return max(1, round(left)) if count >= self._limit else None

    def failed(self, client: str) -> None:
        now = time.monotonic()
        started, count = self._failures.pop(client, (now, 0))
        if now - started >= self._window:
            started, count = now, 0
        self._failures[client] = (started, count + 1)
        while len(self._failures) > self._max_clients:
            self._failures.popitem(last=False)


class UnknownKeys:
    """Digests that found no key, remembered for `ttl` seconds (the `max_entries` most recent):
    a key is random, so one that did not exist a moment ago does not exist now, but for a key
    created since, which `ttl` bounds."""

    def __init__(self, ttl: float, *, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._until: OrderedDict[bytes, float] = OrderedDict()

    def __contains__(self, digest: bytes) -> bool:
        until = self._until.get(digest)
        if until is None:
            return False
        if until <= time.monotonic():
            del self._until[digest]
            return False
        return True

    def add(self, digest: bytes) -> None:
        self._until.pop(digest, None)
        self._until[digest] = time.monotonic() + self._ttl
        while len(self._until) > self._max_entries:
            self._until.popitem(last=False)

    def discard(self, digest: bytes) -> None:
        self._until.pop(digest, None)
