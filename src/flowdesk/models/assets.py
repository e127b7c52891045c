"""The light asset registry tickets refer to (seed 004's asset integration): assets and their
movements, fed by the asset system that owns them, keyed by that system's ids."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    String,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from flowdesk.db.base import metadata
from flowdesk.models.columns import created_at, tenant_id, updated_at, uuid_id

assets = Table(
    "assets",
    metadata,
    tenant_id(),
    uuid_id(),
    # The asset system's id: what it syncs by (PUT /v1/assets/by-ref/{external_ref}).
    Column("external_ref", String(200), nullable=False),
    Column("tag", String(100)),
    Column("name", String(200), nullable=False),
    Column("type", String(64), nullable=False),
    Column("attributes", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    created_at(),
    updated_at(),
    # Assets are soft-deleted: the tickets that referred to one keep showing what it was.
    Column("deleted_at", DateTime(timezone=True)),
    Index(
        "uq_assets_tenant_id_external_ref",
        "tenant_id",
        "external_ref",
        unique=True,
        postgresql_where=text("deleted_at IS NULL"),
    ),
    Index("ix_assets_tenant_id_created_at", "tenant_id", "created_at", "id"),
)

asset_movements = Table(
    "asset_movements",
    metadata,
    tenant_id(references_tenant=False),
    uuid_id(),
    Column("asset_id", Uuid, nullable=False),
    Column("from_location", String(200)),
    Column("to_location", String(200)),
    Column("moved_at", DateTime(timezone=True), nullable=False),
    Column("note", Text, nullable=False, server_default=text("''")),
    Column("external_ref", String(200)),
    created_at(),
    ForeignKeyConstraint(["tenant_id", "asset_id"], ["assets.tenant_id", "assets.id"]),
    Index(
        "uq_asset_movements_tenant_id_external_ref",
        "tenant_id",
        "external_ref",
        unique=True,
        postgresql_where=text("external_ref IS NOT NULL"),
    ),
    Index("ix_asset_movements_tenant_id_asset_id", "tenant_id", "asset_id", "moved_at", "id"),
)
