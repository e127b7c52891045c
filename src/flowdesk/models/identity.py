"""Users, groups (which grant permissions), group membership, API keys, and the OpenID
providers a tenant trusts with the identities signed in through them.

Every table leads its primary key and each foreign key with tenant_id, so that rows of one
tenant can never reference another tenant's, and the schema can be distributed by tenant.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from flowdesk.db.base import metadata
from flowdesk.models.columns import created_at, tenant_id, updated_at, uuid_id

users = Table(
    "users",
    metadata,
    tenant_id(),
    uuid_id(),
    Column("email", String(254), nullable=False),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),  # person | service
    created_at(),
    updated_at(),
    # Users are soft-deleted: tickets and the audit trail keep pointing at them.
    Column("deleted_at", DateTime(timezone=True)),
    # Their manager, who gives seed 003's manager approval (migration 0011). Its removal
    # clears this column only (tenant_id stays: PostgreSQL 15's column list).
    Column("manager_id", Uuid),
    ForeignKeyConstraint(
        ["tenant_id", "manager_id"],
        ["users.tenant_id", "users.id"],
        ondelete="SET NULL (manager_id)",
    ),
    CheckConstraint("manager_id <> id", name="manager_not_self"),
    Index(
        "ix_users_tenant_id_manager_id",
        "tenant_id",
        "manager_id",
        postgresql_where=text("manager_id IS NOT NULL"),
    ),
    # E-mail is unique among the tenant's live users; a deleted user's address is free.
    Index(
        "uq_users_tenant_id_email",
        "tenant_id",
        text("lower(email)"),
        unique=True,
        postgresql_where=text("deleted_at IS NULL"),
    ),
)

groups = Table(
    "groups",
    metadata,
    tenant_id(),
    uuid_id(),
    Column("name", String(100), nullable=False),
    Column("permissions", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    # System groups (the "ITSM Agent" group) cannot be deleted or have permissions changed.
    Column("system", Boolean, nullable=False, server_default=text("false")),
    created_at(),
    updated_at(),
    Index("uq_groups_tenant_id_name", "tenant_id", "name", unique=True),
)

group_members = Table(
    "group_members",
    metadata,
    Column("tenant_id", Uuid, primary_key=True),
    Column("group_id", Uuid, primary_key=True),
    Column("user_id", Uuid, primary_key=True),
    created_at(),
    ForeignKeyConstraint(
        ["tenant_id", "group_id"], ["groups.tenant_id", "groups.id"], ondelete="CASCADE"
    ),
    ForeignKeyConstraint(
        ["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"
    ),
    # Permission lookups start from the user.
    Index("ix_group_members_tenant_id_user_id", "tenant_id", "user_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    tenant_id(),
    uuid_id(),
    Column("user_id", Uuid, nullable=False),
    Column("name", String(100), nullable=False),
    # The first characters of the key, shown in listings so a person can tell keys apart.
    Column("prefix", String(16), nullable=False),
    Column("key_hash", LargeBinary(32), nullable=False),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    created_at(),
    # The key that created this one through the API (None: the CLI, a sign-in, or before
    # migration 0014). Its deletion clears this column only.
    Column("created_by_key_id", Uuid),
    # Where the key may be used: "first_party" (/v1) or "public" (/public/v1); migration 0015.
    Column("channel", String(16), nullable=False, server_default=text("'first_party'")),
    CheckConstraint("channel IN ('first_party', 'public')", name="ck_api_keys_channel"),
    ForeignKeyConstraint(
        ["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"
    ),
    ForeignKeyConstraint(
        ["tenant_id", "created_by_key_id"],
        ["api_keys.tenant_id", "api_keys.id"],
        ondelete="SET NULL (created_by_key_id)",
    ),
    # Authentication looks a key up by its hash before the tenant is known. The hash of 32
    # random bytes is unique by construction; tenant_id is in the index for distribution
    # (migration 0016, docs/scaling.md).
    Index("uq_api_keys_key_hash_tenant_id", "key_hash", "tenant_id", unique=True),
    Index("ix_api_keys_tenant_id_user_id", "tenant_id", "user_id"),
)

identity_providers = Table(
    "identity_providers",
    metadata,
    tenant_id(),
    Column("name", String(100), primary_key=True),
    Column("issuer", Text, nullable=False),
    Column("audience", Text, nullable=False),
    # None: the jwks_uri of the issuer's discovery document.
    Column("jwks_uri", Text),
    Column("email_claim", String(100), nullable=False),
    Column("name_claim", String(100), nullable=False),
    Column("groups_claim", String(100)),
    # A groups-claim value -> the id of the group it makes the user a member of.
    Column("group_map", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # The group a first sign-in joins. Its deletion clears this column only (tenant_id stays:
    # PostgreSQL 15's column list).
    Column("default_group_id", Uuid),
    created_at(),
    updated_at(),
    ForeignKeyConstraint(
        ["tenant_id", "default_group_id"],
        ["groups.tenant_id", "groups.id"],
        ondelete="SET NULL (default_group_id)",
    ),
    # A token's (iss, aud) names one provider of one tenant: sign-in looks it up by these,
    # before the tenant is known. Two tenants may share an issuer with distinct audiences.
    Index("uq_identity_providers_issuer_audience", "issuer", "audience", unique=True),
)

user_identities = Table(
    "user_identities",
    metadata,
    tenant_id(),
    Column("issuer", Text, primary_key=True),
    Column("subject", Text, primary_key=True),
    Column("user_id", Uuid, nullable=False),
    # The sign-in key: an api_keys row nobody holds, which this identity's requests are
    # metered and rate-limited under (docs/adr/0009-oidc-sign-in.md).
    Column("key_id", Uuid, nullable=False),
    created_at(),
    ForeignKeyConstraint(
        ["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"
    ),
    ForeignKeyConstraint(
        ["tenant_id", "key_id"], ["api_keys.tenant_id", "api_keys.id"], ondelete="CASCADE"
    ),
    Index("ix_user_identities_tenant_id_user_id", "tenant_id", "user_id"),
)
