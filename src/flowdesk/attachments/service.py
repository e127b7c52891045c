"""The attachments of a ticket: adding one (with the rights and rules of a comment), listing,
reading and removing them.

Who may do what follows comments (flowdesk.tickets.activity): anyone who may comment on the
ticket may attach a file to it, requesters only external ones; requesters see the files of
their own tickets except internal ones (internal visibility, or attached to an internal
note); another tenant's, or another requester's, is not found. A ticket in a final status
takes no more files (409 `ticket-closed`), nor loses any.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from flowdesk.attachments.names import safe_content_type, safe_filename
from flowdesk.attachments.repository import AttachmentRepository, AttachmentRow, NewAttachment
from flowdesk.attachments.schemas import AttachmentOut
from flowdesk.attachments.storage import Stores
from flowdesk.auth.principal import Principal
from flowdesk.db.pool import Database
from flowdesk.db.query import Connection
from flowdesk.errors import Conflict, Forbidden, InvalidInput, NotFound, PayloadTooLarge
from flowdesk.pagination import Page, next_cursor
from flowdesk.tickets import lifecycle
from flowdesk.tickets.repository import Event, Message, TicketRow
from flowdesk.tickets.schemas import UserRef
from flowdesk.tickets.service import ATTEMPTS, locate
from flowdesk.vocabulary import TICKETS_MANAGE
from flowdesk.workflow import Catalog

VISIBILITIES = ("internal", "external")


@dataclass(frozen=True, slots=True)
class Limits:
    file_bytes: int
    ticket_bytes: int


@dataclass(slots=True)
class Upload:
    """A file as the HTTP edge received it: spooled (`file`, read from its start), measured
    and hashed on the way, with what the form said about it."""

    file: IO[bytes]
    filename: str | None
    content_type: str | None
    size: int
    sha256: str
    visibility: str | None = None
    comment_id: uuid.UUID | None = None


def _out(row: AttachmentRow, prefix: str) -> AttachmentOut:
    return AttachmentOut(
        id=row["id"],
        ticket_id=row["ticket_id"],
        comment_id=row["comment_id"],
        filename=row["filename"],
        content_type=row["content_type"],
        size=row["size"],
        sha256=row["sha256"],
        visibility=row["visibility"],
        uploader=UserRef(id=row["uploader_id"], name=row["uploader_name"]),
        created_at=row["created_at"],
        content_url=f"{prefix}/tickets/{row['ticket_id']}/attachments/{row['id']}",
    )


def _too_large(detail: str, limit: int) -> PayloadTooLarge:
    # Connection: close, since the refused body may not have been read to its end.
    return PayloadTooLarge(detail, extra={"limit": limit}, headers={"connection": "close"})


def file_too_large(limits: Limits) -> PayloadTooLarge:
    return _too_large(
        f"An attachment may have at most {limits.file_bytes} bytes.", limits.file_bytes
    )


def _ticket_full(limits: Limits, total: int) -> PayloadTooLarge:
    return _too_large(
        f"The ticket's attachments may take at most {limits.ticket_bytes} bytes together "
        f"({total} are taken).",
        limits.ticket_bytes,
    )


async def ready_for_upload(
    conn: Connection, catalog: Catalog, principal: Principal, ref: str, limits: Limits
) -> None:
    """What can be refused before a byte of the file is read: a ticket the caller cannot see
    (404), one in a final status (409), one whose attachments are at the limit already (413)."""
    _, row = await locate(conn, catalog, principal, ref)
    lifecycle.ensure_changeable(catalog, row)
    total = await AttachmentRepository(conn, principal.tenant_id).ticket_total(row["id"])
    if total >= limits.ticket_bytes:
        raise _ticket_full(limits, total)


async def _visibility(
    repo: AttachmentRepository, principal: Principal, row: TicketRow, upload: Upload
) -> str:
    """The file's visibility: its comment's (a file on an internal note is internal), or the
    one given (external by default). Requesters may add only external files."""
    visibility = upload.visibility
    if visibility is not None and visibility not in VISIBILITIES:
        raise InvalidInput("Unknown visibility.", [("/visibility", "one of: internal, external")])
    if upload.comment_id is not None:
        of_comment = await repo.comment_visibility(row["id"], upload.comment_id)
        if of_comment is None or (of_comment == "internal" and not principal.is_agent):
            raise InvalidInput(
                "No such comment on this ticket.", [("/comment_id", "no such comment")]
            )
        if visibility is not None and visibility != of_comment:
            raise InvalidInput(
                f"The comment is {of_comment}: its attachments are too.",
                [("/visibility", f"the comment is {of_comment}")],
            )
        visibility = of_comment
    visibility = visibility or "external"
    if visibility == "internal" and not principal.can(TICKETS_MANAGE):
        raise Forbidden(
            "Requesters can only add external attachments.",
            extra={"required_permission": TICKETS_MANAGE},
        )
    return visibility


async def add_attachment(
    conn: Connection,
    catalog: Catalog,
    principal: Principal,
    ref: str,
    upload: Upload,
    stores: Stores,
    limits: Limits,
    prefix: str,
) -> AttachmentOut:
    """Store the file, then write its row with its audit event and outbox message, in one
    transaction: the row exists only once every byte does."""
    if upload.size > limits.file_bytes:
        raise file_too_large(limits)
    _, row = await locate(conn, catalog, principal, ref)
    lifecycle.ensure_changeable(catalog, row)
    repo = AttachmentRepository(conn, principal.tenant_id)
    visibility = await _visibility(repo, principal, row, upload)
    attachment_id = uuid.uuid4()
    store = stores.current
    new: NewAttachment = {
        "id": attachment_id,
        "comment_id": upload.comment_id,
        "filename": safe_filename(upload.filename),
        "content_type": safe_content_type(upload.content_type),
        "size": upload.size,
        "sha256": upload.sha256,
        "visibility": visibility,
        "storage": store.kind,
        "storage_key": None,
    }
    said = {
        "attachment_id": attachment_id,
        "filename": new["filename"],
        "content_type": new["content_type"],
        "size": new["size"],
        "comment_id": upload.comment_id,
        "visibility": visibility,
    }
    added: Event = {"kind": "attachment_added", "visibility": visibility, "data": said}
    announced: Message = {"topic": "ticket.attachment_added", "payload": said}
    key: str | None = None
    try:
        async with conn.transaction():
            key = await store.save(repo, attachment_id, upload.file, new["content_type"])
            new["storage_key"] = key
            for _ in range(ATTEMPTS):
                if await repo.lock_ticket(row["id"], row["status"]):
                    written = await repo.add(
                        row["id"],
                        new,
                        principal.user_id,
                        limits.ticket_bytes,
                        [added],
                        [announced],
                    )
                    if written is None:
                        raise _ticket_full(limits, await repo.ticket_total(row["id"]))
                    return _out(written, prefix)
                # The ticket moved meanwhile: decide again on its fresh row.
                _, row = await locate(conn, catalog, principal, ref)
                lifecycle.ensure_changeable(catalog, row)
            raise Conflict("The ticket kept changing while the file was attached; retry it.")
    except BaseException:
        await store.discard(key)
        raise


async def list_attachments(
    conn: Connection,
    catalog: Catalog,
    principal: Principal,
    ref: str,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    prefix: str,
) -> Page[AttachmentOut]:
    _, row = await locate(conn, catalog, principal, ref)
    rows = await AttachmentRepository(conn, principal.tenant_id).page(
        row["id"], external_only=not principal.is_agent, after=after, limit=limit
    )
    items = [_out(r, prefix) for r in rows[:limit]]
    cursor = next_cursor(rows, limit, lambda r: [r["created_at"], r["id"]])
    return Page[AttachmentOut](items=items, next_cursor=cursor)


async def find_attachment(
    conn: Connection, catalog: Catalog, principal: Principal, ref: str, attachment_id: uuid.UUID
) -> AttachmentRow:
    """The attachment as the caller may see it, or 404."""
    _, row = await locate(conn, catalog, principal, ref)
    found = await AttachmentRepository(conn, principal.tenant_id).get(
        row["id"], attachment_id, external_only=not principal.is_agent
    )
    if found is None:
        raise NotFound(f"No attachment {attachment_id} on this ticket.")
    return found


def content(
    db: Database, stores: Stores, principal: Principal, attachment: AttachmentRow
) -> AsyncIterator[bytes]:
    """The attachment's bytes, a chunk at a time (the store is chosen before the first)."""
    return stores.of(attachment).read(db, principal.tenant_id, attachment)


async def delete_attachment(
    conn: Connection,
    catalog: Catalog,
    principal: Principal,
    ref: str,
    attachment_id: uuid.UUID,
    stores: Stores,
) -> None:
    """Remove an attachment for good (agents only), recorded as `attachment_removed`; its
    bytes go with its row (chunks) or right after it (an object)."""
    for _ in range(ATTEMPTS):
        _, row = await locate(conn, catalog, principal, ref)
        if not principal.can(TICKETS_MANAGE):
            raise Forbidden(
                f"Removing an attachment needs the '{TICKETS_MANAGE}' permission.",
                extra={"required_permission": TICKETS_MANAGE},
            )
        lifecycle.ensure_changeable(catalog, row)
        repo = AttachmentRepository(conn, principal.tenant_id)
        attachment = await repo.get(row["id"], attachment_id, external_only=False)
        if attachment is None:
            raise NotFound(f"No attachment {attachment_id} on this ticket.")
        removed: Event = {
            "kind": "attachment_removed",
            "visibility": attachment["visibility"],
            "data": {"attachment_id": attachment_id, "filename": attachment["filename"]},
        }
        gone = await repo.delete(
            row["id"], attachment_id, row["status"], principal.user_id, [removed]
        )
        if gone is not None:
            if gone["storage"] != "postgres":
                await stores.of(attachment).discard(gone["storage_key"])
            return
    raise Conflict("The ticket kept changing while the attachment was removed; retry it.")
