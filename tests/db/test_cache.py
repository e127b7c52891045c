"""The tenant cache behind the key and licence caches (flowdesk.db.cache), without a database."""

from __future__ import annotations

import uuid

from flowdesk.db.cache import TenantCache
from flowdesk.db.listener import fixed_ttl

A, B = uuid.uuid4(), uuid.uuid4()


def test_a_full_cache_lets_go_of_the_largest_tenants_least_recently_used_entry() -> None:
    cache: TenantCache[str, int] = TenantCache(ttl=fixed_ttl(60), max_entries=3)
    for i, key in enumerate(("b1", "a1", "a2")):
        cache.put(key, i, B if key == "b1" else A, cache.loading())
    assert cache.get("a1") == 1  # a1 is now used more recently than a2
    cache.put("a3", 3, A, cache.loading())
    # A holds the most: it gives up its least recently used entry, B keeps its own.
    assert len(cache) == 3
    assert "a2" not in cache
    assert [cache.get(k) for k in ("b1", "a1", "a3")] == [0, 1, 3]


def test_one_tenant_cannot_thrash_the_others_out() -> None:
    """Issue 16: one tenant's admin minting and using thousands of keys emptied the
    process-wide cache for every tenant."""
    cache: TenantCache[str, int] = TenantCache(ttl=fixed_ttl(60), max_entries=100)
    tenants = [uuid.uuid4() for _ in range(5)]
    for t, tenant in enumerate(tenants):
        for i in range(10):
            cache.put(f"{t}-{i}", i, tenant, cache.loading())
    thrasher = uuid.uuid4()
    for i in range(10_000):
        cache.put(f"x-{i}", i, thrasher, cache.loading())
    assert len(cache) == 100
    for t, tenant in enumerate(tenants):
        assert cache.tenant_size(tenant) == 10
        assert all(cache.get(f"{t}-{i}") == i for i in range(10))
    assert cache.tenant_size(thrasher) == 50
    # Forgetting a tenant frees its share at once.
    cache.forget_tenant(thrasher)
    assert len(cache) == 50 and cache.tenant_size(thrasher) == 0


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
