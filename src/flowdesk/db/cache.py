"""A per-process cache of tenants' access data (API keys, licences), kept fresh by the access
listener (flowdesk.db.listener).

An entry is trusted for as long as the TTL policy says for the time it was fetched: minutes
while the process hears every change, seconds while it does not. A change heard for a tenant
forgets that tenant's entries, and bumps a generation: a load that was in flight when the
change was heard may serve its own request but is not stored, since it may have read what was
there before.

The cache is bounded, and fair between tenants (issue 16: one tenant's admin minting and using
thousands of keys emptied the cache for everyone). When it is full, the entry to go is the
least recently used one of the tenant holding the most entries: a tenant filling the cache
soon holds the most and evicts only its own, and a tenant holding fewer entries than another
never loses one to it.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
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
        # Each tenant's keys, least recently used first.
        self._by_tenant: dict[uuid.UUID, OrderedDict[K, None]] = {}
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
        self._by_tenant[entry.tenant_id].move_to_end(key)
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
        self.pop(key)
        while len(self._entries) >= self._max_entries:
            self._evict()
        self._entries[key] = _Entry(value, tenant_id, load.started_at)
        self._by_tenant.setdefault(tenant_id, OrderedDict())[key] = None

    def _evict(self) -> None:
        """Let go of the least recently used entry of the tenant holding the most (a scan of
        the tenants, only when the cache is full)."""
        largest = max(self._by_tenant, key=lambda tenant: len(self._by_tenant[tenant]))
        self.pop(next(iter(self._by_tenant[largest])))

    def pop(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            keys = self._by_tenant[entry.tenant_id]
            del keys[key]
            if not keys:
                del self._by_tenant[entry.tenant_id]

    def tenant_size(self, tenant_id: uuid.UUID) -> int:
        """How many entries the tenant holds."""
        return len(self._by_tenant.get(tenant_id, ()))

    def forget_tenant(self, tenant_id: uuid.UUID) -> None:
        self._generation += 1
        for key in self._by_tenant.pop(tenant_id, ()):
            del self._entries[key]

    def forget_all(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._by_tenant.clear()


@dataclass(frozen=True, slots=True)
class Load:
    generation: int
    started_at: float
