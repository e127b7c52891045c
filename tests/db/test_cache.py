"""The tenant cache behind the key and licence caches (flowdesk.db.cache), without a database."""

from __future__ import annotations

import uuid

from flowdesk.db.cache import TenantCache
from flowdesk.db.listener import fixed_ttl

A, B = uuid.uuid4(), uuid.uuid4()


def test_a_full_cache_lets_go_of_its_oldest_entries_only() -> None:
    cache: TenantCache[str, int] = TenantCache(ttl=fixed_ttl(60), max_entries=3)
    for i, key in enumerate(("b1", "a1", "a2", "a3")):
        cache.put(key, i, B if key == "b1" else A, cache.loading())
    # One tenant's new keys push out the oldest entry, not everyone's.
    assert len(cache) == 3
    assert "b1" not in cache
    assert [cache.get(k) for k in ("a1", "a2", "a3")] == [1, 2, 3]


def test_a_load_that_raced_a_change_is_not_kept() -> None:
    cache: TenantCache[str, int] = TenantCache(ttl=fixed_ttl(60))
    load = cache.loading()
    cache.forget_tenant(A)  # heard while the load was in flight
    cache.put("k", 1, A, load)
    assert cache.get("k") is None
    cache.put("k", 2, A, cache.loading())
    assert cache.get("k") == 2


def test_forgetting_a_tenant_keeps_the_others() -> None:
    cache: TenantCache[str, int] = TenantCache(ttl=fixed_ttl(60))
    cache.put("a", 1, A, cache.loading())
    cache.put("b", 2, B, cache.loading())
    cache.forget_tenant(A)
    assert cache.get("a") is None
    assert cache.get("b") == 2
    cache.forget_all()
    assert len(cache) == 0


def test_an_entry_past_its_ttl_is_not_trusted_but_can_be_peeked() -> None:
    cache: TenantCache[str, int] = TenantCache(ttl=fixed_ttl(-1))
    cache.put("k", 1, A, cache.loading())
    assert cache.get("k") is None
    assert cache.peek("k") == 1
