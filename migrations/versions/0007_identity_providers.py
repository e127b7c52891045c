"""identity providers: the OpenID providers a tenant trusts, and who signed in through them

`identity_providers` holds each provider a tenant trusts (flowdesk.auth.oidc): a token's
(iss, aud) pair names exactly one provider of one tenant, hence the unique key across
tenants; two tenants may share an issuer only with distinct audiences. A provider's
default group, when that group is deleted, is set to NULL (that column alone: PostgreSQL 15's
column list, since tenant_id is part of the key).

`user_identities` maps a provider's subject to the user created for it on first sign-in, and
to the sign-in key made with it: an api_keys row nobody holds (its hash is of random bytes),
which a token's requests are metered, rate-limited and scoped under (docs/adr/0009), and which
an admin may revoke to cut that person's sign-in.

A change of either can change what a token may do, so both notify the access listener like
the tables of migration 0004 do (NOTIFY flowdesk_access, '<tenant id>'). A user_identities
insert does not: it is the first sign-in itself, and nothing cached depends on its absence.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, the events that fire the access notification)
_TRIGGERS = [
    ("identity_providers", "INSERT OR UPDATE OR DELETE"),
    ("user_identities", "UPDATE OR DELETE"),
]


def _now(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "identity_providers",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("audience", sa.Text(), nullable=False),
        sa.Column("jwks_uri", sa.Text(), nullable=True),
        sa.Column("email_claim", sa.String(100), nullable=False),
        sa.Column("name_claim", sa.String(100), nullable=False),
        sa.Column("groups_claim", sa.String(100), nullable=True),
        sa.Column(
            "group_map",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("default_group_id", sa.Uuid(), nullable=True),
        _now("created_at"),
        _now("updated_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_identity_providers_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "default_group_id"],
            ["groups.tenant_id", "groups.id"],
            name=op.f("fk_identity_providers_tenant_id_default_group_id_groups"),
            ondelete="SET NULL (default_group_id)",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "name", name=op.f("pk_identity_providers")),
    )
    # Sign-in finds the provider (and so the tenant) from the token's iss and aud.
    op.create_index(
        "uq_identity_providers_issuer_audience",
        "identity_providers",
        ["issuer", "audience"],
        unique=True,
    )
    op.create_table(
        "user_identities",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=False),
        _now("created_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_user_identities_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "user_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_user_identities_tenant_id_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "key_id"],
            ["api_keys.tenant_id", "api_keys.id"],
            name=op.f("fk_user_identities_tenant_id_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "issuer", "subject", name=op.f("pk_user_identities")),
    )
    op.create_index(
        "ix_user_identities_tenant_id_user_id", "user_identities", ["tenant_id", "user_id"]
    )
    # The trigger function of migration 0004; both tables hold their tenant in tenant_id.
    for table, events in _TRIGGERS:
        op.execute(
            f"CREATE TRIGGER notify_access AFTER {events} ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION flowdesk_notify_access('tenant_id')"
        )


def downgrade() -> None:
    for table, _events in _TRIGGERS:
        op.execute(f"DROP TRIGGER notify_access ON {table}")
    op.drop_index("ix_user_identities_tenant_id_user_id", table_name="user_identities")
    op.drop_table("user_identities")
    op.drop_index("uq_identity_providers_issuer_audience", table_name="identity_providers")
    op.drop_table("identity_providers")
