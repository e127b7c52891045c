"""OpenID Connect bearer tokens (JWTs) as credentials, beside API keys.

A token is checked with joserfc, never by hand: its header's algorithm must be one of
RS256, ES256 and EdDSA (never `none`, never an HMAC, which a public key would sign), its
signature must verify against a key of its provider's JWKS, and iss, aud, exp, nbf and iat
are checked with a leeway of `LEEWAY_SECONDS`. The provider, and so the tenant, is the one
trusted for the token's (iss, aud) (flowdesk.auth.identity); what the token may do is its
user's permissions through the scopes tickets:read, tickets:write and admin.

Three caches keep a token from costing queries or fetches per request:
- providers by (iss, aud), and validated principals by the token's hash, in `TenantCache`s
  forgotten per tenant by the access listener (a user deleted, a group or provider changed),
  a principal never beyond its token's expiry;
- each provider's JWKS, fetched with httpx from its `jwks_uri` or its issuer's discovery
  document, kept for `JWKS_MAX_AGE_SECONDS`; a `kid` it does not hold refetches it, at most
  once per `REFETCH_INTERVAL_SECONDS` per provider, so a stream of made-up kids cannot turn
  the service into a load on the provider.

Every refusal is the same `Unauthorized` as a bad API key: a caller learns nothing of why.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import KeySet

from flowdesk.auth import identity
from flowdesk.auth.identity import ProviderRow
from flowdesk.auth.permissions import effective_permissions, user_permissions
from flowdesk.auth.principal import Principal
from flowdesk.db.cache import TenantCache
from flowdesk.db.listener import TtlPolicy
from flowdesk.db.pool import Database
from flowdesk.errors import Unauthorized
from flowdesk.vocabulary import ADMIN, TICKETS_READ, TICKETS_WRITE

logger = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256", "EdDSA")
LEEWAY_SECONDS = 60
REFETCH_INTERVAL_SECONDS = 60.0
JWKS_MAX_AGE_SECONDS = 3600.0
FETCH_TIMEOUT_SECONDS = 5.0
# A token longer than this is not worth parsing (headers are limited long before anyway).
MAX_TOKEN_LENGTH = 16_384
_MAX_CACHED_PRINCIPALS = 10_000
_MAX_CACHED_PROVIDERS = 1_000
_MAX_JWKS = 1_000

# joserfc warns that EdDSA is superseded by Ed25519 (RFC 9864); providers still sign with it.
warnings.filterwarnings("ignore", "EdDSA is deprecated", SecurityWarning)
_REGISTRY = jws.JWSRegistry(algorithms=list(ALGORITHMS))


def looks_like_jwt(token: str) -> bool:
    """A compact JWS has three dot-separated parts (API keys have none)."""
    return token.count(".") == 2


@dataclass(slots=True)
class _CachedPrincipal:
    principal: Principal
    expires_at: float  # the token's exp (epoch seconds)


@dataclass(slots=True)
class _Jwks:
    keys: KeySet | None = None
    fetched_at: float = float("-inf")
    refetched_at: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class TokenAuthenticator:
    def __init__(
        self, db: Database, *, ttl: TtlPolicy, seats: identity.SeatGuard = identity.ungarded
    ) -> None:
        self._db = db
        self._seats = seats
        self._principals: TenantCache[bytes, _CachedPrincipal] = TenantCache(
            ttl=ttl, max_entries=_MAX_CACHED_PRINCIPALS
        )
        self._providers: TenantCache[tuple[str, str], ProviderRow] = TenantCache(
            ttl=ttl, max_entries=_MAX_CACHED_PROVIDERS
        )
        self._jwks: dict[tuple[uuid.UUID, str, str], _Jwks] = {}
        self._http: httpx.AsyncClient | None = None

    def forget_tenant(self, tenant_id: uuid.UUID) -> None:
        self._principals.forget_tenant(tenant_id)
        self._providers.forget_tenant(tenant_id)

    def forget_all(self) -> None:
        self._principals.forget_all()
        self._providers.forget_all()

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def authenticate(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_LENGTH:
            raise Unauthorized()
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        cached = self._principals.get(digest)
        if cached is not None:
            if cached.expires_at + LEEWAY_SECONDS > time.time():
                return cached.principal
            self._principals.pop(digest)
            raise Unauthorized()
        load = self._principals.loading()
        provider, claims = await self._verify(token)
        principal = await self._sign_in(provider, claims)
        exp = claims["exp"]
        self._principals.put(
            digest, _CachedPrincipal(principal, float(exp)), principal.tenant_id, load
        )
        return principal

    # --- the token --------------------------------------------------------------------------

    async def _verify(self, token: str) -> tuple[ProviderRow, dict[str, Any]]:
        """The token's provider and claims, once its signature and claims are checked."""
        try:
            unverified = jws.extract_compact(token.encode("ascii"))
            header = unverified.headers()
            payload = json.loads(unverified.payload or b"")
        except (JoseError, ValueError, UnicodeError):
            raise Unauthorized() from None
        alg = header.get("alg")
        if alg not in ALGORITHMS or not isinstance(payload, dict):
            raise Unauthorized()
        # The unverified iss and aud only choose the provider whose keys must verify it.
        issuer, audiences = payload.get("iss"), payload.get("aud")
        if isinstance(audiences, str):
            audiences = [audiences]
        if (
            not isinstance(issuer, str)
            or not isinstance(audiences, list)
            or not audiences
            or not all(isinstance(a, str) for a in audiences)
        ):
            raise Unauthorized()
        provider = await self._provider(issuer, audiences)
        kid = header.get("kid")
        keys = await self._keys(provider, kid if isinstance(kid, str) else None)
        try:
            verified = jwt.decode(token, keys, algorithms=list(ALGORITHMS), registry=_REGISTRY)
            jwt.JWTClaimsRegistry(
                leeway=LEEWAY_SECONDS,
                iss={"essential": True, "value": provider["issuer"]},
                aud={"essential": True, "value": provider["audience"]},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
            ).validate(verified.claims)
        except (JoseError, ValueError, TypeError):
            raise Unauthorized() from None
        claims = verified.claims
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Unauthorized()
        return provider, claims

    async def _provider(self, issuer: str, audiences: list[str]) -> ProviderRow:
        if len(audiences) == 1:
            cached = self._providers.get((issuer, audiences[0]))
            if cached is not None:
                return cached
        load = self._providers.loading()
        async with self._db.connection() as conn:
            provider = await identity.provider_for_token(conn, issuer, audiences[:10])
        if provider is None:
            raise Unauthorized()
        if len(audiences) == 1:
            self._providers.put((issuer, audiences[0]), provider, provider["tenant_id"], load)
        return provider

    # --- the provider's keys ----------------------------------------------------------------

    async def _keys(self, provider: ProviderRow, kid: str | None) -> KeySet:
        """The provider's keys, holding `kid` if the provider publishes it."""
        # Keyed by where the keys come from: a provider changed to another issuer or JWKS URL
        # starts afresh.
        where = (provider["tenant_id"], provider["issuer"], provider["jwks_uri"] or "")
        jwks = self._jwks.get(where)
        if jwks is None:
            while len(self._jwks) >= _MAX_JWKS:
                del self._jwks[next(iter(self._jwks))]
            jwks = self._jwks[where] = _Jwks()
        async with jwks.lock:
            now = time.monotonic()
            if jwks.keys is None or now - jwks.fetched_at > JWKS_MAX_AGE_SECONDS:
                await self._fetch(provider, jwks)
            elif not _holds(jwks.keys, kid) and now - jwks.refetched_at >= REFETCH_INTERVAL_SECONDS:
                # An unknown kid: perhaps the provider rotated its keys. Once a minute at most.
                jwks.refetched_at = now
                await self._fetch(provider, jwks)
            if jwks.keys is None or not _holds(jwks.keys, kid):
                raise Unauthorized()
            return jwks.keys

    async def _fetch(self, provider: ProviderRow, jwks: _Jwks) -> None:
        try:
            uri = provider["jwks_uri"] or await self._discover(provider["issuer"])
            document = await self._get_json(uri)
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (httpx.HTTPError, JoseError, ValueError, TypeError, KeyError) as exc:
            logger.warning(
                "identity provider %r of tenant %s: no keys (%s)",
                provider["name"],
                provider["tenant_id"],
                exc,
            )
            raise Unauthorized() from None
        jwks.keys = keys
        jwks.fetched_at = time.monotonic()

    async def _discover(self, issuer: str) -> str:
        document = await self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
        uri = document.get("jwks_uri")
        # The discovery document must be the issuer's own (OpenID Connect Discovery 1.0, 4.3),
        # and its JWKS URL pass the issuer's own rule (https off loopback).
        if document.get("issuer") != issuer or not isinstance(uri, str):
            raise ValueError("the discovery document is not the issuer's")
        if identity.check_url(uri, "/jwks_uri"):
            raise ValueError(f"the discovery document's jwks_uri {uri!r} is not https")
        return uri

    async def _get_json(self, url: str) -> Mapping[str, Any]:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False)
        response = await self._http.get(url, headers={"Accept": "application/json"})
        response.raise_for_status()
        document = response.json()
        if not isinstance(document, dict):
            raise ValueError(f"{url} is not a JSON object")
        return document

    # --- the user ---------------------------------------------------------------------------

    async def _sign_in(self, provider: ProviderRow, claims: Mapping[str, Any]) -> Principal:
        found = identity.claims_of(provider, claims)
        async with self._db.transaction() as conn:
            signed_in = await identity.sign_in(conn, provider, found, self._seats)
        if signed_in is None:
            raise Unauthorized()
        granted = signed_in["granted"] or ()
        held = user_permissions(granted)
        scopes = frozenset({TICKETS_READ, TICKETS_WRITE} | ({ADMIN} & held))
        return Principal(
            tenant_id=signed_in["tenant_id"],
            tenant_slug=signed_in["tenant_slug"],
            user_id=signed_in["user_id"],
            user_kind=signed_in["user_kind"],
            key_id=signed_in["key_id"],
            scopes=scopes,
            permissions=effective_permissions(granted, scopes),
            user_permissions=held,
        )


def _holds(keys: KeySet, kid: str | None) -> bool:
    """Whether the set has the key the token names (any key when it names none)."""
    if kid is None:
        return bool(keys.keys)
    return any(key.kid == kid for key in keys.keys)
