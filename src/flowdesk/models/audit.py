"""The admin audit log: who changed a tenant's administration (keys, users, groups and their
members, the tenant's settings, identity providers, webhooks, templates, the licence), when,
and from what to what.

Append-only: a trigger of migration 0014 refuses UPDATE, DELETE and TRUNCATE (rows leave only
with their tenant, by the foreign key's cascade). `before` and `after` never hold a secret (no
key hash, no webhook or client secret): flowdesk.audit writes what the API shows.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Identity, Index, String, Table, Uuid
from sqlalchemy.dialects.postgresql import JSONB

from flowdesk.db.base import metadata
from flowdesk.models.columns import created_at, tenant_id

admin_audit_log = Table(
    "admin_audit_log",
    metadata,
    tenant_id(),
    Column("id", BigInteger, Identity(), primary_key=True),
    created_at(),
    # user (an API key or a sign-in acting for a user) | platform (the operator's token) |
    # operator (the CLI, on the database directly).
    Column("actor_type", String(16), nullable=False),
    # No foreign keys: the log outlives the users and keys it names.
    Column("actor_user_id", Uuid),
    Column("actor_key_id", Uuid),
    # `<target type>.<verb>`, e.g. api_key.created (flowdesk.audit.actions).
    Column("action", String(64), nullable=False),
    Column("target_type", String(32), nullable=False),
    Column("target_id", String(200)),
    Column("before", JSONB),
    Column("after", JSONB),
    Column("request_id", String(128)),
    Index("ix_admin_audit_log_tenant_id_action", "tenant_id", "action", "id"),
    Index("ix_admin_audit_log_tenant_id_target", "tenant_id", "target_type", "target_id", "id"),
)
