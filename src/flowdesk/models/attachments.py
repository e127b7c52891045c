"""Files attached to tickets (issue 13): their metadata, and their bytes in 256 KiB chunks
when they are kept in PostgreSQL (the default; an S3-compatible bucket otherwise)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Uuid,
)

from flowdesk.db.base import metadata
from flowdesk.models.columns import created_at, tenant_id, uuid_id

attachments = Table(
    "attachments",
    metadata,
    tenant_id(references_tenant=False),
    uuid_id(),
    Column("ticket_id", Uuid, nullable=False),
    # The comment the file came with, if any: its visibility is the file's.
    Column("comment_id", Uuid),
    # Sanitised on the way in (flowdesk.attachments.names): no path, no control characters.
    Column("filename", String(255), nullable=False),
    # As the uploader gave it (a syntactically valid media type, else
    # application/octet-stream); always served as a download, never rendered inline.
    Column("content_type", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("visibility", String(10), nullable=False),  # internal | external
    Column("storage", String(10), nullable=False),  # postgres | s3
    # Where the bytes are: the object key in the bucket (s3); NULL for postgres (the chunks).
    Column("storage_key", String(512)),
    Column("uploader_id", Uuid, nullable=False),
    created_at(),
    CheckConstraint("visibility IN ('internal', 'external')", name="ck_attachments_visibility"),
    CheckConstraint("storage IN ('postgres', 's3')", name="ck_attachments_storage"),
    CheckConstraint("size >= 0", name="ck_attachments_size"),
    ForeignKeyConstraint(
        ["tenant_id", "ticket_id"], ["tickets.tenant_id", "tickets.id"], ondelete="CASCADE"
    ),
    ForeignKeyConstraint(
        ["tenant_id", "comment_id"],
        ["ticket_comments.tenant_id", "ticket_comments.id"],
        ondelete="CASCADE",
    ),
    ForeignKeyConstraint(["tenant_id", "uploader_id"], ["users.tenant_id", "users.id"]),
    Index("ix_attachments_tenant_id_ticket_id", "tenant_id", "ticket_id", "created_at", "id"),
)

# The bytes of an attachment kept in PostgreSQL, as RT keeps them, in chunks of 256 KiB so
# that neither an upload nor a download ever holds a whole file. The chunks are written
# before their attachment's row in the same transaction (the foreign key is checked at
# commit), so a file is visible only once all of it is stored.
attachment_chunks = Table(
    "attachment_chunks",
    metadata,
    tenant_id(references_tenant=False),
    Column("attachment_id", Uuid, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
    ForeignKeyConstraint(
        ["tenant_id", "attachment_id"],
        ["attachments.tenant_id", "attachments.id"],
        ondelete="CASCADE",
        deferrable=True,
        initially="DEFERRED",
    ),
)
