"""The OpenID providers a tenant trusts, and signing a person in through one: the SQL and the
use cases (the token itself is checked by flowdesk.auth.oidc before anything here runs).

Providers are administered per tenant (`put_provider`, `list_providers`, `get_provider`,
`delete_provider`), by the tenant's admins, the platform operator and the CLI alike.

`sign_in` finds the user of a verified token by (tenant, issuer, subject) through
user_identities, or makes them on first sign-in: a person from the token's claims, a member
of the provider's default group, with a sign-in key (an api_keys row nobody holds: its hash is
of random bytes) that the token's requests are scoped, metered and rate-limited under
(docs/adr/0009-oidc-sign-in.md). Later sign-ins refresh the name and e-mail, and a mapped
groups claim sets the mapped memberships. Everything runs in one transaction, serialised per
identity by an advisory lock, so that two first requests of one person make one user.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypedDict
from urllib.parse import urlsplit

from sqlalchemy import (
    ARRAY,
    String,
    Text,
    Uuid,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from flowdesk.auth.repository import GRANTED
from flowdesk.db.constraints import unique
from flowdesk.db.query import Connection, Query, execute, row, rows, value
from flowdesk.errors import InvalidInput, NotFound
from flowdesk.models import (
    api_keys,
    group_members,
    groups,
    identity_providers,
    tenants,
    user_identities,
    users,
)
from flowdesk.vocabulary import ADMIN, TICKETS_READ, TICKETS_WRITE

logger = logging.getLogger(__name__)

# The scopes a sign-in key carries: what a token may do at most; `admin` only acts for a user
# who holds it (flowdesk.auth.permissions intersects scopes with the user's permissions).
SIGN_IN_SCOPES = (ADMIN, TICKETS_READ, TICKETS_WRITE)
SIGN_IN_KEY_PREFIX = "oidc"


class ProviderRow(TypedDict):
    tenant_id: uuid.UUID
    name: str
    issuer: str
    audience: str
    jwks_uri: str | None
    email_claim: str
    name_claim: str
    groups_claim: str | None
    group_map: dict[str, str]
    default_group_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """What PUT sets: every field of a provider but its name and tenant."""

    issuer: str
    audience: str
    jwks_uri: str | None = None
    email_claim: str = "email"
    name_claim: str = "name"
    groups_claim: str | None = None
    group_map: Mapping[str, uuid.UUID] | None = None
    default_group_id: uuid.UUID | None = None


class SignedIn(TypedDict):
    """A signed-in identity, with everything a Principal needs."""

    tenant_id: uuid.UUID
    tenant_slug: str
    user_id: uuid.UUID
    user_kind: str
    user_deleted: bool
    key_id: uuid.UUID
    key_revoked: bool
    # Every permission the user's groups grant (None when they are in no group).
    granted: list[str] | None


class _IdentityRow(TypedDict):
    user_id: uuid.UUID
    key_id: uuid.UUID
    email: str
    name: str
    deleted: bool


class _UserRow(TypedDict):
    id: uuid.UUID


# --- statements ----------------------------------------------------------------------------

_PROVIDER = tuple(identity_providers.c)
_mine = identity_providers.c.tenant_id == bindparam("tenant_id")

_PROVIDER_FOR_TOKEN = Query(
    select(*_PROVIDER).where(
        identity_providers.c.issuer == bindparam("issuer", type_=Text),
        identity_providers.c.audience == func.any(bindparam("audiences", type_=ARRAY(Text))),
    )
)
_LIST_PROVIDERS = Query(select(*_PROVIDER).where(_mine).order_by(identity_providers.c.name))
_GET_PROVIDER = Query(
    select(*_PROVIDER).where(_mine, identity_providers.c.name == bindparam("name", type_=String))
)
_DELETE_PROVIDER = Query(
    delete(identity_providers).where(
        _mine, identity_providers.c.name == bindparam("name", type_=String)
    )
)
_PROVIDER_VALUES = {
    "tenant_id": bindparam("tenant_id", type_=Uuid),
    "name": bindparam("name", type_=String),
    "issuer": bindparam("issuer", type_=Text),
    "audience": bindparam("audience", type_=Text),
    "jwks_uri": bindparam("jwks_uri", type_=Text),
    "email_claim": bindparam("email_claim", type_=String),
    "name_claim": bindparam("name_claim", type_=String),
    "groups_claim": bindparam("groups_claim", type_=String),
    "group_map": bindparam("group_map", type_=JSONB),
    "default_group_id": bindparam("default_group_id", type_=Uuid),
}
_upsert = pg_insert(identity_providers).values(_PROVIDER_VALUES)
_PUT_PROVIDER = Query(
    _upsert.on_conflict_do_update(
        index_elements=[identity_providers.c.tenant_id, identity_providers.c.name],
        set_={
            **{
                name: getattr(_upsert.excluded, name)
                for name in _PROVIDER_VALUES
                if name not in ("tenant_id", "name")
            },
            "updated_at": func.now(),
        },
    ).returning(*_PROVIDER)
)
_TENANT_GROUPS = Query(
    select(groups.c.id).where(
        groups.c.tenant_id == bindparam("tenant_id"),
        groups.c.id == func.any(bindparam("group_ids", type_=ARRAY(Uuid))),
    )
)

# Two first requests of one person wait for each other: the second finds the first's user.
_LOCK_IDENTITY = Query(
    select(
        func.pg_advisory_xact_lock(
            func.hashtextextended(
                func.concat_ws(
                    " ",
                    cast(bindparam("tenant_id", type_=Uuid), Text),
                    bindparam("issuer", type_=Text),
                    bindparam("subject", type_=Text),
                ),
                0,
            )
        )
    )
)
_IDENTITY = Query(
    select(
        user_identities.c.user_id,
        user_identities.c.key_id,
        users.c.email,
        users.c.name,
        users.c.deleted_at.is_not(None).label("deleted"),
    )
    .select_from(
        user_identities.join(
            users,
            (users.c.tenant_id == user_identities.c.tenant_id)
            & (users.c.id == user_identities.c.user_id),
        )
    )
    .where(
        user_identities.c.tenant_id == bindparam("tenant_id"),
        user_identities.c.issuer == bindparam("issuer", type_=Text),
        user_identities.c.subject == bindparam("subject", type_=Text),
    )
)
_LIVE_USER_BY_EMAIL = Query(
    select(users.c.id).where(
        users.c.tenant_id == bindparam("tenant_id"),
        func.lower(users.c.email) == func.lower(bindparam("email", type_=String)),
        users.c.deleted_at.is_(None),
    )
)
_INSERT_USER = Query(
    insert(users)
    .values(
        tenant_id=bindparam("tenant_id"),
        email=bindparam("email", type_=String),
        name=bindparam("name", type_=String),
        kind="person",
    )
    .returning(users.c.id)
)
# The e-mail only when no other live user of the tenant has it (the unique index would refuse
# it); the name always.
_other_with_email = exists().where(
    users.c.tenant_id == bindparam("tenant_id"),
    func.lower(users.c.email) == func.lower(bindparam("email", type_=String)),
    users.c.deleted_at.is_(None),
    users.c.id != bindparam("user_id"),
)
_REFRESH_USER = Query(
    update(users)
    .where(
        users.c.tenant_id == bindparam("tenant_id"),
        users.c.id == bindparam("user_id"),
        ~_other_with_email,
    )
    .values(
        name=bindparam("name", type_=String),
        email=bindparam("email", type_=String),
        updated_at=func.now(),
    )
)
_RENAME_USER = Query(
    update(users)
    .where(users.c.tenant_id == bindparam("tenant_id"), users.c.id == bindparam("user_id"))
    .values(name=bindparam("name", type_=String), updated_at=func.now())
)
_INSERT_KEY = Query(
    insert(api_keys)
    .values(
        tenant_id=bindparam("tenant_id"),
        user_id=bindparam("user_id"),
        name=bindparam("name", type_=String),
        prefix=SIGN_IN_KEY_PREFIX,
        key_hash=bindparam("key_hash"),
        scopes=cast(bindparam("scopes"), ARRAY(Text)),
    )
    .returning(api_keys.c.id)
)
_INSERT_IDENTITY = Query(
    insert(user_identities).values(
        tenant_id=bindparam("tenant_id"),
        issuer=bindparam("issuer", type_=Text),
        subject=bindparam("subject", type_=Text),
        user_id=bindparam("user_id"),
        key_id=bindparam("key_id"),
    )
)
# Memberships of groups that exist in the tenant (a group_map may name one deleted since).
_wanted = select(
    func.unnest(cast(bindparam("group_ids"), ARRAY(Uuid))).column_valued("id")
).subquery("wanted")
_ADD_MEMBERS = Query(
    pg_insert(group_members)
    .from_select(
        ["tenant_id", "group_id", "user_id"],
        select(groups.c.tenant_id, groups.c.id, cast(bindparam("user_id"), Uuid)).where(
            groups.c.tenant_id == bindparam("tenant_id"),
            groups.c.id.in_(select(_wanted.c.id)),
        ),
    )
    .on_conflict_do_nothing()
)
_REMOVE_MEMBERS = Query(
    delete(group_members).where(
        group_members.c.tenant_id == bindparam("tenant_id"),
        group_members.c.user_id == bindparam("user_id"),
        group_members.c.group_id == func.any(cast(bindparam("group_ids"), ARRAY(Uuid))),
    )
)
_MEMBER_OF = Query(
    select(group_members.c.group_id.label("id")).where(
        group_members.c.tenant_id == bindparam("tenant_id"),
        group_members.c.user_id == bindparam("user_id"),
    )
)

_SIGNED_IN = Query(
    select(
        api_keys.c.tenant_id,
        tenants.c.slug.label("tenant_slug"),
        api_keys.c.user_id,
        users.c.kind.label("user_kind"),
        users.c.deleted_at.is_not(None).label("user_deleted"),
        api_keys.c.id.label("key_id"),
        api_keys.c.revoked_at.is_not(None).label("key_revoked"),
        GRANTED.label("granted"),
    )
    .select_from(
        api_keys.join(tenants, tenants.c.id == api_keys.c.tenant_id).join(
            users,
            and_(users.c.tenant_id == api_keys.c.tenant_id, users.c.id == api_keys.c.user_id),
        )
    )
    .where(api_keys.c.tenant_id == bindparam("tenant_id"), api_keys.c.id == bindparam("key_id"))
)


# --- providers -----------------------------------------------------------------------------


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, pointer: str) -> list[tuple[str, str]]:
    """Problems of an issuer or JWKS URL: https, or http on a loopback address only."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return [(pointer, "must be an absolute URL")]
    if parts.scheme not in ("https", "http") or not host:
        return [(pointer, "must be an absolute https URL")]
    if parts.scheme == "http" and not is_loopback_host(host):
        return [(pointer, "must use https (http is allowed only on loopback addresses)")]
    if parts.query or parts.fragment:
        return [(pointer, "must have no query or fragment")]
    return []


async def provider_for_token(
    conn: Connection, issuer: str, audiences: Sequence[str]
) -> ProviderRow | None:
    """The provider a token's iss and aud (one or several) name, if any."""
    found = await rows(
        conn, ProviderRow, _PROVIDER_FOR_TOKEN, issuer=issuer, audiences=list(audiences)
    )
    # Several audiences may name providers of several tenants: such a token is ambiguous.
    return found[0] if len(found) == 1 else None


async def list_providers(conn: Connection, tenant_id: uuid.UUID) -> list[ProviderRow]:
    return await rows(conn, ProviderRow, _LIST_PROVIDERS, tenant_id=tenant_id)


async def get_provider(conn: Connection, tenant_id: uuid.UUID, name: str) -> ProviderRow:
    found = await row(conn, ProviderRow, _GET_PROVIDER, tenant_id=tenant_id, name=name)
    if found is None:
        raise NotFound(f"No identity provider '{name}'.")
    return found


async def put_provider(
    conn: Connection, tenant_id: uuid.UUID, name: str, settings: ProviderSettings
) -> ProviderRow:
    """Create or replace the tenant's provider `name`. 422 for an http issuer or JWKS URL off
    loopback, or a group that is not the tenant's; 409 when another provider (of any tenant)
    has the same issuer and audience."""
    problems = check_url(settings.issuer, "/issuer")
    if settings.jwks_uri is not None:
        problems += check_url(settings.jwks_uri, "/jwks_uri")
    group_map = {str(k): v for k, v in (settings.group_map or {}).items()}
    wanted = set(group_map.values())
    if settings.default_group_id is not None:
        wanted.add(settings.default_group_id)
    if wanted:
        known = {
            r["id"]
            for r in await rows(
                conn, _UserRow, _TENANT_GROUPS, tenant_id=tenant_id, group_ids=sorted(wanted)
            )
        }
        if settings.default_group_id is not None and settings.default_group_id not in known:
            problems.append(("/default_group_id", "is not a group of this tenant"))
        for claim_value, group_id in group_map.items():
            if group_id not in known:
                pointer = "/group_map/" + claim_value.replace("~", "~0").replace("/", "~1")
                problems.append((pointer, "is not a group of this tenant"))
    if problems:
        raise InvalidInput("The identity provider cannot be accepted.", problems)
    taken = unique(
        "uq_identity_providers_issuer_audience",
        "An identity provider with this issuer and audience is already trusted; "
        "a token must name one tenant, so give this one its own audience.",
    )
    # A savepoint inside: the caller's transaction stays usable after a conflict.
    with taken:
        async with conn.transaction():
            saved = await row(
                conn,
                ProviderRow,
                _PUT_PROVIDER,
                tenant_id=tenant_id,
                name=name,
                issuer=settings.issuer,
                audience=settings.audience,
                jwks_uri=settings.jwks_uri,
                email_claim=settings.email_claim,
                name_claim=settings.name_claim,
                groups_claim=settings.groups_claim,
                group_map={k: str(v) for k, v in group_map.items()},
                default_group_id=settings.default_group_id,
            )
    assert saved is not None
    return saved


async def delete_provider(conn: Connection, tenant_id: uuid.UUID, name: str) -> None:
    """The provider goes; the users who signed in through it stay (with their identities, so
    a provider set up again under the same issuer finds them)."""
    if not await execute(conn, _DELETE_PROVIDER, tenant_id=tenant_id, name=name):
        raise NotFound(f"No identity provider '{name}'.")


# --- sign-in -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claims:
    """What sign-in takes from a verified token."""

    subject: str
    email: str | None
    name: str | None
    email_verified: bool
    # The groups claim's values; None when the provider maps none or the token has none.
    groups: frozenset[str] | None


def claims_of(provider: ProviderRow, claims: Mapping[str, Any]) -> Claims:
    def text(name: str) -> str | None:
        found = claims.get(name)
        return found.strip() if isinstance(found, str) and found.strip() else None

    groups_claim = provider["groups_claim"]
    raw = claims.get(groups_claim) if groups_claim else None
    if isinstance(raw, str):
        raw = [raw]
    groups_found = (
        frozenset(v for v in raw if isinstance(v, str)) if isinstance(raw, list) else None
    )
    return Claims(
        subject=str(claims["sub"]),
        email=text(provider["email_claim"]),
        name=text(provider["name_claim"]),
        email_verified=claims.get("email_verified") is True,
        groups=groups_found,
    )


class SeatGuard(Protocol):
    """Runs `grant` (memberships being added) within the tenant's seat quota: True when the
    grant stands, False when it was rolled back for adding agent seats beyond `max_agents`
    (the ITSM licence's rule, flowdesk.itsm.quotas, injected by the app)."""

    async def __call__(
        self, conn: Connection, tenant_id: uuid.UUID, grant: Callable[[], Awaitable[None]]
    ) -> bool: ...


async def ungarded(
    conn: Connection, tenant_id: uuid.UUID, grant: Callable[[], Awaitable[None]]
) -> bool:
    """No seat quota: the grant stands."""
    await grant()
    return True


async def sign_in(
    conn: Connection, provider: ProviderRow, claims: Claims, seats: SeatGuard = ungarded
) -> SignedIn | None:
    """The signed-in identity (made on first sign-in), or None when it must be refused: a
    deleted user, a revoked sign-in key, or a first sign-in without a usable e-mail or whose
    e-mail a user of the tenant already has (unless the provider vouches for it). Runs in the
    caller's transaction."""
    tenant_id, issuer = provider["tenant_id"], provider["issuer"]
    ids = {"tenant_id": tenant_id, "issuer": issuer, "subject": claims.subject}
    await value(conn, _LOCK_IDENTITY, **ids)
    known = await row(conn, _IdentityRow, _IDENTITY, **ids)
    if known is not None:
        if known["deleted"]:
            return None
        user_id, key_id = known["user_id"], known["key_id"]
        await _refresh(conn, tenant_id, known, claims)
    else:
        made = await _first_sign_in(conn, provider, claims, seats)
        if made is None:
            return None
        user_id, key_id = made
    if provider["groups_claim"] and provider["group_map"] and claims.groups is not None:
        await _set_mapped_groups(
            conn, tenant_id, user_id, provider["group_map"], claims.groups, seats
        )
    signed_in = await row(conn, SignedIn, _SIGNED_IN, tenant_id=tenant_id, key_id=key_id)
    if signed_in is None or signed_in["user_deleted"] or signed_in["key_revoked"]:
        return None
    return signed_in


def _name_of(claims: Claims, email: str) -> str:
    return (claims.name or email)[:200]


async def _refresh(
    conn: Connection, tenant_id: uuid.UUID, known: _IdentityRow, claims: Claims
) -> None:
    """Name and e-mail as the provider says now (nothing written when unchanged). An e-mail
    another live user of the tenant has is not taken: the name is refreshed alone."""
    email = claims.email if claims.email and len(claims.email) <= 254 else known["email"]
    name = _name_of(claims, email) if claims.name else known["name"]
    if email == known["email"] and name == known["name"]:
        return
    ids = {"tenant_id": tenant_id, "user_id": known["user_id"]}
    if email != known["email"] and await execute(
        conn, _REFRESH_USER, **ids, email=email, name=name
    ):
        return
    if name != known["name"]:
        await execute(conn, _RENAME_USER, **ids, name=name)


async def _first_sign_in(
    conn: Connection, provider: ProviderRow, claims: Claims, seats: SeatGuard
) -> tuple[uuid.UUID, uuid.UUID] | None:
    tenant_id = provider["tenant_id"]
    email = claims.email
    if email is None or len(email) > 254 or "@" not in email:
        logger.info("sign-in refused: the token of %r has no usable e-mail", claims.subject)
        return None
    existing = await row(conn, _UserRow, _LIVE_USER_BY_EMAIL, tenant_id=tenant_id, email=email)
    if existing is not None:
        # A person the tenant already knows (made by an admin, with API keys) signs in for the
        # first time: theirs only if the provider vouches for the address.
        if not claims.email_verified:
            logger.info("sign-in refused: %s belongs to a user and is not verified", email)
            return None
        user_id = existing["id"]
    else:
        made = await row(
            conn,
            _UserRow,
            _INSERT_USER,
            tenant_id=tenant_id,
            email=email,
            name=_name_of(claims, email),
        )
        assert made is not None
        user_id = made["id"]
        default_group = provider["default_group_id"]
        if default_group is not None:

            async def join_default() -> None:
                await execute(
                    conn,
                    _ADD_MEMBERS,
                    tenant_id=tenant_id,
                    user_id=user_id,
                    group_ids=[default_group],
                )

            if not await seats(conn, tenant_id, join_default):
                logger.warning(
                    "sign-in of %s: the default group would exceed the agent seats; not joined",
                    claims.subject,
                )
    key_id = await value(
        conn,
        _INSERT_KEY,
        tenant_id=tenant_id,
        user_id=user_id,
        name=f"sign-in: {provider['name']}"[:100],
        # Random bytes nobody has the preimage of: the key cannot be presented, only named.
        key_hash=secrets.token_bytes(32),
        scopes=sorted(SIGN_IN_SCOPES),
    )
    assert isinstance(key_id, uuid.UUID)
    await execute(
        conn,
        _INSERT_IDENTITY,
        tenant_id=tenant_id,
        issuer=provider["issuer"],
        subject=claims.subject,
        user_id=user_id,
        key_id=key_id,
    )
    return user_id, key_id


async def _set_mapped_groups(
    conn: Connection,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    group_map: Mapping[str, str],
    claimed: frozenset[str],
    seats: SeatGuard,
) -> None:
    """Memberships of the mapped groups as the claim says; other groups are left alone.
    Nothing is written when they already match (a write would notify every worker). A group
    is joined only within the agent seats (the person signs in without it otherwise)."""
    mapped = {uuid.UUID(g) for g in group_map.values()}
    wanted = {uuid.UUID(g) for v, g in group_map.items() if v in claimed}
    current = {
        r["id"]
        for r in await rows(
            conn,
            _UserRow,
            _MEMBER_OF,
            tenant_id=tenant_id,
            user_id=user_id,
        )
    } & mapped
    ids = {"tenant_id": tenant_id, "user_id": user_id}
    if current - wanted:
        await execute(conn, _REMOVE_MEMBERS, **ids, group_ids=sorted(current - wanted))
    # One group at a time: a group that would take an agent seat beyond the quota is left
    # out, the others are joined.
    for group_id in sorted(wanted - current):

        async def join(group_id: uuid.UUID = group_id) -> None:
            await execute(conn, _ADD_MEMBERS, **ids, group_ids=[group_id])

        if not await seats(conn, tenant_id, join):
            logger.warning(
                "sign-in of user %s: group %s would exceed the agent seats; not joined",
                user_id,
                group_id,
            )
