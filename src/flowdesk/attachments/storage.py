"""Where attachments' bytes are kept: in PostgreSQL, in 256 KiB chunks (the default, so the
embedded database needs nothing more), or in an S3-compatible bucket when one is configured.

Both write from a file the HTTP edge spooled the upload into and read back one chunk at a
time, so neither an upload nor a download holds a whole file in memory. The metadata row is
committed only once the bytes are stored: for PostgreSQL the chunks are written in the row's
own transaction (a rollback or a crash leaves nothing); an object put in a bucket whose row
then fails to commit is deleted again, and only a crash between the two can leave an object
no row names (under `attachments/`, ADR 0017 says how to sweep them).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import IO, TYPE_CHECKING, Protocol

from flowdesk.attachments.repository import AttachmentRepository, AttachmentRow
from flowdesk.config import Settings
from flowdesk.db.pool import Database
from flowdesk.errors import NotFound, ServiceUnavailable

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
POSTGRES = "postgres"
S3 = "s3"


class Store(Protocol):
    """One place attachments' bytes are kept."""

    kind: str

    async def save(
        self,
        repo: AttachmentRepository,
        attachment_id: uuid.UUID,
        source: IO[bytes],
        content_type: str,
    ) -> str | None:
        """Store the bytes of `source` (from its start); the storage key (None when the row
        itself says where). Called inside the transaction that will write the row."""
        ...

    def read(
        self, db: Database, tenant_id: uuid.UUID, attachment: AttachmentRow
    ) -> AsyncIterator[bytes]:
        """The attachment's bytes, a chunk at a time."""
        ...

    async def discard(self, key: str | None) -> None:
        """Forget bytes whose row was not written, or was deleted (best effort)."""
        ...


class PostgresStore:
    """Chunks of 256 KiB in `attachment_chunks`, written in the row's transaction."""

    kind = POSTGRES

    async def save(
        self,
        repo: AttachmentRepository,
        attachment_id: uuid.UUID,
        source: IO[bytes],
        content_type: str,
    ) -> str | None:
        seq = 0
        while data := await asyncio.to_thread(source.read, CHUNK_BYTES):
            await repo.add_chunk(attachment_id, seq, data)
            seq += 1
        return None

    async def read(
        self, db: Database, tenant_id: uuid.UUID, attachment: AttachmentRow
    ) -> AsyncIterator[bytes]:
        # One pooled connection per chunk, not one for the whole download: a slow reader
        # holds no connection between chunks.
        chunks = -(-attachment["size"] // CHUNK_BYTES)
        for seq in range(chunks):
            async with db.connection() as conn:
                data = await AttachmentRepository(conn, tenant_id).chunk(attachment["id"], seq)
            if data is None:
                if seq == 0:  # deleted since it was found: nothing has been sent yet
                    raise NotFound(f"No attachment {attachment['id']} on this ticket.")
                # Deleted while it was being sent: the response ends short of its length.
                raise LookupError(f"attachment {attachment['id']} lost chunk {seq}")
            yield data

    async def discard(self, key: str | None) -> None:
        return None  # the chunks went with the row (or its rollback)


class S3Store:
    """Objects in an S3-compatible bucket, through boto3 in worker threads: a multipart upload
    of a few parts at a time from the spooled file, and ranged reads of the body."""

    kind = S3

    def __init__(self, client: S3Client, bucket: str, transfer: TransferConfig) -> None:
        self.client = client
        self.bucket = bucket
        self.transfer = transfer

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        # Imported here: a deployment without a bucket never loads boto3 (~30 MB of memory).
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.attachment_s3_endpoint_url,
            region_name=settings.attachment_s3_region,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )
        # 5 MiB parts (S3's smallest), two in flight: about 10 MiB of a file in memory at most.
        transfer = TransferConfig(
            multipart_threshold=8 * 1024 * 1024,
            multipart_chunksize=5 * 1024 * 1024,
            max_concurrency=2,
        )
        return cls(client, str(settings.attachment_s3_bucket), transfer)

    @staticmethod
    def key_of(tenant_id: uuid.UUID, attachment_id: uuid.UUID) -> str:
        return f"attachments/{tenant_id}/{attachment_id}"

    async def save(
        self,
        repo: AttachmentRepository,
        attachment_id: uuid.UUID,
        source: IO[bytes],
        content_type: str,
    ) -> str | None:
        key = self.key_of(repo.tenant_id, attachment_id)
        try:
            await asyncio.to_thread(
                self.client.upload_fileobj,
                source,
                self.bucket,
                key,
                ExtraArgs={"ContentType": content_type},
                Config=self.transfer,
            )
        except Exception as exc:
            logger.exception("attachment upload to bucket %s failed", self.bucket)
            raise ServiceUnavailable("The attachment store is unavailable; retry later.") from exc
        return key

    async def read(
        self, db: Database, tenant_id: uuid.UUID, attachment: AttachmentRow
    ) -> AsyncIterator[bytes]:
        key = attachment["storage_key"] or self.key_of(tenant_id, attachment["id"])
        try:
            response = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=key)
        except Exception as exc:
            logger.exception("attachment object %s could not be read", key)
            raise ServiceUnavailable("The attachment store is unavailable; retry later.") from exc
        body = response["Body"]
        try:
            while data := await asyncio.to_thread(body.read, CHUNK_BYTES):
                yield data
        finally:
            body.close()

    async def discard(self, key: str | None) -> None:
        if key is None:
            return
        try:
            await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=key)
        except Exception:
            # Left in the bucket, named by no row: the sweep of ADR 0017 removes it.
            logger.exception("could not delete attachment object %s", key)


class Stores:
    """The store new attachments go to, and the store of each stored one."""

    def __init__(self, settings: Settings) -> None:
        self.postgres = PostgresStore()
        self.s3 = S3Store.from_settings(settings) if settings.attachment_s3_bucket else None

    @property
    def current(self) -> Store:
        return self.s3 or self.postgres

    def of(self, attachment: AttachmentRow) -> Store:
        if attachment["storage"] == POSTGRES:
            return self.postgres
        if self.s3 is None:
            raise ServiceUnavailable(
                "The attachment is kept in an S3 bucket, and no bucket is configured."
            )
        return self.s3
