"""attachments of tickets, their bytes in chunks

Issue 13: files attached to tickets (flowdesk.attachments). `attachments` holds each file's
metadata (name, type, size, sha256, visibility, the comment it came with, where its bytes
are); `attachment_chunks` holds the bytes of the files kept in PostgreSQL, 256 KiB a row.
The chunks' foreign key is checked at commit, so an upload writes its chunks first and its
row last, in one transaction: a file is visible only once all of it is stored. Chunks are
stored uncompressed (STORAGE EXTERNAL): most attachments (images, archives, PDFs) are
compressed already, and TOAST would spend CPU trying again on every chunk.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 14:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "attachments",
        sa.Column("tenant_id", sa.Uuid(), primary_key=True),
        sa.Column("id", sa.Uuid(), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("comment_id", sa.Uuid()),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("visibility", sa.String(10), nullable=False),
        sa.Column("storage", sa.String(10), nullable=False),
        sa.Column("storage_key", sa.String(512)),
        sa.Column("uploader_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(
            "visibility IN ('internal', 'external')", name="ck_attachments_visibility"
        ),
        sa.CheckConstraint("storage IN ('postgres', 's3')", name="ck_attachments_storage"),
        sa.CheckConstraint("size >= 0", name="ck_attachments_size"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "ticket_id"], ["tickets.tenant_id", "tickets.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "comment_id"],
            ["ticket_comments.tenant_id", "ticket_comments.id"],
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["tenant_id", "uploader_id"], ["users.tenant_id", "users.id"]),
    )
    op.create_index(
        "ix_attachments_tenant_id_ticket_id",
        "attachments",
        ["tenant_id", "ticket_id", "created_at", "id"],
    )
    op.create_table(
        "attachment_chunks",
        sa.Column("tenant_id", sa.Uuid(), primary_key=True),
        sa.Column("attachment_id", sa.Uuid(), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "attachment_id"],
            ["attachments.tenant_id", "attachments.id"],
            ondelete="CASCADE",
            deferrable=True,
            initially="DEFERRED",
        ),
    )
    op.execute("ALTER TABLE attachment_chunks ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("attachment_chunks")
    op.drop_index("ix_attachments_tenant_id_ticket_id", table_name="attachments")
    op.drop_table("attachments")
