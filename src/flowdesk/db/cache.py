"""A per-process cache of tenants' access data (API keys, licences), kept fresh by the access
listener (flowdesk.db.listener).

An entry is trusted for as long as the TTL policy says for the time it was fetched: minutes
while the process hears every change, seconds while it does not. A change heard for a tenant
forgets that tenant's entries, and bumps a generation: a load that was in flight when the
change was heard may serve its own request but is not stored, since it may have read what was
there before. The cache is bounded; when full it lets go of its oldest entries first, so one
tenant's many keys cannot empty it for everyone.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Generic, TypeVar

from flowdesk.db.listener import TtlPolicy

K = TypeVar("K")
V = TypeVar("V")


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    tenant_id: uuid.UUID
    fetched_at: float


class TenantCache(Generic[K, V]):
    def __init__(self, *, ttl: TtlPolicy, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: dict[K, _Entry[V]] = {}
        self._generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Whether an entry is held for the key, trusted or not."""
        return key in self._entries

    def get(self, key: K) -> V | None:
        """The entry's value while it may be trusted, else None (load it again)."""
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry.fetched_at > self._ttl(entry.fetched_at):
            return None
        return entry.value

    def peek(self, key: K) -> V | None:
        """The entry's value, trusted or not (what a reload may carry over)."""
        entry = self._entries.get(key)
        return None if entry is None else entry.value

    def loading(self) -> Load:
        """Mark the start of a load: pass it to `put` when the load is done."""
        return Load(self._generation, time.monotonic())

    def put(self, key: K, value: V, tenant_id: uuid.UUID, load: Load) -> None:
        """Store what a load read, unless a change was heard while it was in flight."""
        if load.generation != self._generation:
            return
        self._entries.pop(key, None)
        while len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]  # the oldest first
        self._entries[key] = _Entry(value, tenant_id, load.started_at)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def forget_tenant(self, tenant_id: uuid.UUID) -> None:
        """A scan: changes are rare next to lookups, and an index would cost every load."""
        self._generation += 1
        stale = [key for key, entry in self._entries.items() if entry.tenant_id == tenant_id]
        for key in stale:
            del self._entries[key]

    def forget_all(self) -> None:
        self._generation += 1
        self._entries.clear()


@dataclass(frozen=True, slots=True)
class Load:
    generation: int
    started_at: float
