"""API key authentication with an in-process cache.

A verified key is trusted from memory, so a client costs no query per request. How long is
the TTL policy's call (flowdesk.db.listener): minutes while the process hears PostgreSQL's
access-change notifications, which make a revocation, an expiry change or a permission change
forget the tenant's keys on every worker within milliseconds of its commit; the short
`auth_cache_seconds` while it does not.

last_used_at is noted at most once per `key_touch_interval_seconds` per key, and written in
the background: the noted uses are flushed in one statement every `key_use_flush_seconds`
and at shutdown, so no request waits for a write to record that it was made. A crash loses
at most one flush interval of notes (the next use notes the key again).

A bearer token that is a JWT (three dot-separated parts, no `fdk_` prefix) is an OpenID
Connect sign-in: handed to flowdesk.auth.oidc, whose caches this authenticator forgets along
with its own. Both callers (the endpoints' dependency and the usage middleware) thus take
either credential alike (docs/adr/0009-oidc-sign-in.md).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from flowdesk.auth import keys
from flowdesk.auth.identity import SeatGuard, ungarded
from flowdesk.auth.oidc import TokenAuthenticator, looks_like_jwt
from flowdesk.auth.permissions import effective_permissions, user_permissions
from flowdesk.auth.principal import Principal
from flowdesk.auth.repository import KeyRow, fetch_key, record_key_use
from flowdesk.auth.throttle import FailureThrottle, UnknownKeys
from flowdesk.db.cache import TenantCache
from flowdesk.db.listener import TtlPolicy
from flowdesk.db.pool import Database
from flowdesk.errors import RateLimited, Unauthorized
from flowdesk.periodic import Periodic

logger = logging.getLogger(__name__)

_MAX_CACHED_KEYS = 10_000
# Key uses noted while the database is away; beyond this, new ones wait for the next use.
_MAX_PENDING_USES = 100_000
# How long a digest that found no key is answered 401 from memory.
_UNKNOWN_KEY_SECONDS = 60.0


class _UnknownKey(Unauthorized):
    """A well-formed key that opens nothing (none such, revoked or expired): what the failure
    throttle counts. A missing or malformed credential costs no lookup and is not counted."""


@dataclass(slots=True)
class _Cached:
    record: KeyRow
    principal: Principal
    touched_at: float


class Authenticator:
    def __init__(
        self,
        db: Database,
        *,
        ttl: TtlPolicy,
        touch_interval: int,
        flush_seconds: float,
        seats: SeatGuard = ungarded,
        failures: FailureThrottle | None = None,
    ) -> None:
        self._db = db
        self._touch_interval = touch_interval
        self._cache: TenantCache[bytes, _Cached] = TenantCache(
            ttl=ttl, max_entries=_MAX_CACHED_KEYS
        )
        self._unknown = UnknownKeys(_UNKNOWN_KEY_SECONDS)
        self._failures = failures or FailureThrottle(limit=100, window=60.0)
        self._uses: dict[tuple[uuid.UUID, uuid.UUID], datetime] = {}
        # Sign-in may join groups: within the agent seats of the tenant's licence (`seats`).
        self.tokens = TokenAuthenticator(db, ttl=ttl, seats=seats)
        self._flusher = Periodic("key-use-flush", flush_seconds, self.flush_uses, jitter=0)

    def forget_all(self) -> None:
        self._cache.forget_all()
        self.tokens.forget_all()

    def forget_tenant(self, tenant_id: uuid.UUID) -> None:
        """Forget the tenant's keys and signed-in tokens (a key, user, group, identity
        provider or licence of it changed)."""
        self._cache.forget_tenant(tenant_id)
        self.tokens.forget_tenant(tenant_id)

    def throttled(self, client: str | None) -> bool:
        """Whether `client` has failed to authenticate too often to be heard for now."""
        return client is not None and self._failures.retry_after(client) is not None

    async def authenticate(self, authorization: str | None, client: str | None = None) -> Principal:
        """The caller of a request with this Authorization header. With the `client` address,
        its failures are counted and, past the limit, refused with 429 before any lookup: the
        endpoints' dependency passes it, once per request."""
        if client is not None:
            wait = self._failures.retry_after(client)
            if wait is not None:
                raise RateLimited("Too many failed authentications from this address.", wait)
        try:
            return await self._authenticate(authorization)
        except _UnknownKey:
            if client is not None:
                self._failures.failed(client)
            raise

    async def _authenticate(self, authorization: str | None) -> Principal:
        key = _bearer_token(authorization)
        # One body for every failure, so a caller learns nothing about which keys exist.
        if key is None:
            raise Unauthorized()
        if not key.startswith(keys.KEY_PREFIX) and looks_like_jwt(key):
            return await self.tokens.authenticate(key)
        digest = keys.hash_key(key)
        cached = self._cache.get(digest)
        if cached is None:
            # Only a well-formed key not known to be missing is worth a query; a cached one was
            # checked when loaded.
            if not keys.is_well_formed(key):
                raise Unauthorized()
            if digest in self._unknown:
                raise _UnknownKey()
            cached = await self._load(digest)
        if not _usable(cached.record):
            self._cache.pop(digest)
            raise _UnknownKey()
        now = time.monotonic()
        if now - cached.touched_at > self._touch_interval:
            cached.touched_at = now
            self._note_use(cached.record)
        return cached.principal

    async def _load(self, digest: bytes) -> _Cached:
        load = self._cache.loading()
        async with self._db.connection() as conn:
            record = await fetch_key(conn, digest)
        if record is None:
            self._cache.pop(digest)
            self._unknown.add(digest)
            raise _UnknownKey()
        granted = record["granted"] or ()
        principal = Principal(
            tenant_id=record["tenant_id"],
            tenant_slug=record["tenant_slug"],
            user_id=record["user_id"],
            user_kind=record["user_kind"],
            key_id=record["key_id"],
            scopes=frozenset(record["scopes"]),
            permissions=effective_permissions(granted, record["scopes"]),
            user_permissions=user_permissions(granted),
            channel=record["channel"],
        )
        previous = self._cache.peek(digest)
        # The database is the judge of when the key was last marked used; a fresh load of a
        # key we already touched recently keeps that time.
        touched = previous.touched_at if previous else _touched_monotonic(record, load.started_at)
        entry = _Cached(record, principal, touched)
        self._cache.put(digest, entry, record["tenant_id"], load)
        return entry

    def _note_use(self, record: KeyRow) -> None:
        if len(self._uses) < _MAX_PENDING_USES:
            self._uses[(record["tenant_id"], record["key_id"])] = datetime.now(UTC)

    async def flush_uses(self) -> int:
        """Write the noted key uses; returns how many keys were written."""
        uses, self._uses = self._uses, {}
        if not uses:
            return 0
        try:
            # One statement: autocommitted, no transaction needed.
            async with self._db.connection() as conn:
                await record_key_use(conn, uses)
        except Exception:  # bookkeeping: keep the notes for the next flush, never fail a request
            logger.warning("could not record the last use of %d keys", len(uses), exc_info=True)
            for key, used_at in uses.items():
                if len(self._uses) < _MAX_PENDING_USES:
                    self._uses.setdefault(key, used_at)
            return 0
        return len(uses)

    def start(self) -> None:
        self._flusher.start()

    async def stop(self) -> None:
        await self._flusher.stop()
        await self.flush_uses()
        await self.tokens.close()


def _bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token.strip()


def _usable(record: KeyRow) -> bool:
    if record["revoked_at"] is not None or record["user_deleted"]:
        return False
    expires_at = record["expires_at"]
    return expires_at is None or expires_at > datetime.now(UTC)


def _touched_monotonic(record: KeyRow, now: float) -> float:
    last_used_at = record["last_used_at"]
    if last_used_at is None:
        return float("-inf")
    age = (datetime.now(UTC) - last_used_at).total_seconds()
    return now - max(age, 0.0)
