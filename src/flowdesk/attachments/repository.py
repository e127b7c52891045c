"""The attachments' statements: their metadata rows, their audit events and outbox messages
(written in the statement of the row, flowdesk.tickets.statements.audited), and the chunks of
the files kept in PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, TypedDict

from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    LargeBinary,
    String,
    Uuid,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
)

from flowdesk.db.query import Connection, Query, execute, row, rows, value
from flowdesk.models import attachment_chunks, attachments, ticket_comments, tickets, users
from flowdesk.tickets.repository import Event, Message
from flowdesk.tickets.statements import audited

_tenant = bindparam("tenant_id", type_=Uuid)
_ticket = bindparam("ticket_id", type_=Uuid)
_attachment = bindparam("attachment_id", type_=Uuid)
_actor = bindparam("actor_id", type_=Uuid)
_external_only = bindparam("external_only", type_=Boolean)
_limit = bindparam("limit", type_=Integer)


class AttachmentRow(TypedDict):
    id: uuid.UUID
    ticket_id: uuid.UUID
    comment_id: uuid.UUID | None
    filename: str
    content_type: str
    size: int
    sha256: str
    visibility: str
    storage: str
    storage_key: str | None
    uploader_id: uuid.UUID
    uploader_name: str
    created_at: datetime


class NewAttachment(TypedDict):
    id: uuid.UUID
    comment_id: uuid.UUID | None
    filename: str
    content_type: str
    size: int
    sha256: str
    visibility: str
    storage: str
    storage_key: str | None


_COLUMNS = (
    attachments.c.id,
    attachments.c.ticket_id,
    attachments.c.comment_id,
    attachments.c.filename,
    attachments.c.content_type,
    attachments.c.size,
    attachments.c.sha256,
    attachments.c.visibility,
    attachments.c.storage,
    attachments.c.storage_key,
    attachments.c.uploader_id,
    attachments.c.created_at,
)


def _with_uploader(source: Any) -> Any:
    """The attachments' rows of `source` (the table, or a CTE of it) with the uploader's name."""
    return select(
        *(source.c[c.name] for c in _COLUMNS), users.c.name.label("uploader_name")
    ).join_from(
        source,
        users,
        and_(users.c.tenant_id == source.c.tenant_id, users.c.id == source.c.uploader_id),
    )


def _visible() -> Any:
    return or_(~_external_only, attachments.c.visibility == "external")


# The ticket while it is still in the status the decision was made on, locked against other
# attachments of the same ticket until the transaction ends (FOR NO KEY UPDATE: concurrent
# uploads to one ticket are serialised, so that each one's per-ticket total sees the others';
# a concurrent close waits for it too, or goes first and this finds no row).
LOCK_TICKET = Query(
    select(tickets.c.id)
    .where(
        tickets.c.tenant_id == _tenant,
        tickets.c.id == _ticket,
        tickets.c.status == bindparam("status", type_=String),
    )
    .with_for_update(key_share=True)
)

# The bytes the ticket's attachments take together.
TICKET_TOTAL = Query(
    select(func.coalesce(func.sum(attachments.c.size), 0)).where(
        attachments.c.tenant_id == _tenant, attachments.c.ticket_id == _ticket
    )
)

COMMENT_VISIBILITY = Query(
    select(ticket_comments.c.visibility).where(
        ticket_comments.c.tenant_id == _tenant,
        ticket_comments.c.ticket_id == _ticket,
        ticket_comments.c.id == bindparam("comment_id", type_=Uuid),
    )
)

ADD_CHUNK = Query(
    insert(attachment_chunks).values(
        tenant_id=_tenant,
        attachment_id=_attachment,
        seq=bindparam("seq", type_=Integer),
        data=bindparam("data", type_=LargeBinary),
    )
)

CHUNK = Query(
    select(attachment_chunks.c.data).where(
        attachment_chunks.c.tenant_id == _tenant,
        attachment_chunks.c.attachment_id == _attachment,
        attachment_chunks.c.seq == bindparam("seq", type_=Integer),
    )
)


def _add() -> Query:
    """The metadata row, only while the ticket's files stay within `ticket_max` bytes
    together (read after LOCK_TICKET, so that it counts every committed upload)."""
    size = bindparam("size", type_=BigInteger)
    total = (
        select(func.coalesce(func.sum(attachments.c.size), 0))
        .where(attachments.c.tenant_id == _tenant, attachments.c.ticket_id == _ticket)
        .scalar_subquery()
    )
    given = ("filename", "content_type", "sha256", "visibility", "storage", "storage_key")
    written = (
        insert(attachments)
        .from_select(
            ["tenant_id", "id", "ticket_id", "comment_id", "size", "uploader_id", *given],
            select(
                _tenant,
                _attachment,
                _ticket,
                bindparam("comment_id", type_=Uuid),
                size,
                _actor,
                *(bindparam(name, type_=String) for name in given),
            ).where(total + size <= bindparam("ticket_max", type_=BigInteger)),
        )
        .returning(*_COLUMNS, attachments.c.tenant_id)
        .cte("added")
    )
    # The audit statement's `written` carries the ticket's id as `id`.
    change = select(written.c.tenant_id, written.c.ticket_id.label("id")).cte("written")
    return audited(change, _with_uploader(written))


ADD = _add()

LIST = Query(
    _with_uploader(attachments)
    .where(
        attachments.c.tenant_id == _tenant,
        attachments.c.ticket_id == _ticket,
        _visible(),
        or_(
            bindparam("after_time", type_=attachments.c.created_at.type).is_(None),
            tuple_(attachments.c.created_at, attachments.c.id)
            > tuple_(
                bindparam("after_time", type_=attachments.c.created_at.type),
                bindparam("after_id", type_=Uuid),
            ),
        ),
    )
    .order_by(attachments.c.created_at, attachments.c.id)
    .limit(_limit)
)

GET = Query(
    _with_uploader(attachments).where(
        attachments.c.tenant_id == _tenant,
        attachments.c.ticket_id == _ticket,
        attachments.c.id == _attachment,
        _visible(),
    )
)


def _delete() -> Query:
    ticket = (
        select(tickets.c.id)
        .where(
            tickets.c.tenant_id == _tenant,
            tickets.c.id == _ticket,
            tickets.c.status == bindparam("status", type_=String),
        )
        .with_for_update(read=True)
        .cte("ticket")
    )
    written = (
        delete(attachments)
        .where(
            attachments.c.tenant_id == _tenant,
            attachments.c.ticket_id == _ticket,
            attachments.c.id == _attachment,
            select(ticket.c.id).exists(),
        )
        .returning(
            attachments.c.tenant_id,
            attachments.c.ticket_id.label("id"),
            attachments.c.storage,
            attachments.c.storage_key,
        )
        .cte("written")
    )
    return audited(written, select(written.c.storage, written.c.storage_key))


DELETE = _delete()


class _Removed(TypedDict):
    storage: str
    storage_key: str | None


class AttachmentRepository:
    """The attachments of one tenant's tickets, on one connection."""

    def __init__(self, conn: Connection, tenant_id: uuid.UUID) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    async def lock_ticket(self, ticket_id: uuid.UUID, status: str) -> bool:
        """Whether the ticket is still in `status` (then it is locked until the transaction
        ends)."""
        found = await value(
            self.conn, LOCK_TICKET, tenant_id=self.tenant_id, ticket_id=ticket_id, status=status
        )
        return found is not None

    async def ticket_total(self, ticket_id: uuid.UUID) -> int:
        total = await value(self.conn, TICKET_TOTAL, tenant_id=self.tenant_id, ticket_id=ticket_id)
        # sum() of a bigint is a numeric: a Decimal.
        assert isinstance(total, int | Decimal), total
        return int(total)

    async def comment_visibility(self, ticket_id: uuid.UUID, comment_id: uuid.UUID) -> str | None:
        found = await value(
            self.conn,
            COMMENT_VISIBILITY,
            tenant_id=self.tenant_id,
            ticket_id=ticket_id,
            comment_id=comment_id,
        )
        return str(found) if found is not None else None

    async def add_chunk(self, attachment_id: uuid.UUID, seq: int, data: bytes) -> None:
        await execute(
            self.conn,
            ADD_CHUNK,
            tenant_id=self.tenant_id,
            attachment_id=attachment_id,
            seq=seq,
            data=data,
        )

    async def chunk(self, attachment_id: uuid.UUID, seq: int) -> bytes | None:
        data = await value(
            self.conn, CHUNK, tenant_id=self.tenant_id, attachment_id=attachment_id, seq=seq
        )
        return bytes(data) if isinstance(data, bytes | bytearray | memoryview) else None

    async def add(
        self,
        ticket_id: uuid.UUID,
        new: NewAttachment,
        uploader_id: uuid.UUID,
        ticket_max: int,
        events: list[Event],
        messages: list[Message],
    ) -> AttachmentRow | None:
        """The new row, or None when it would take the ticket over `ticket_max` bytes."""
        values: dict[str, Any] = {**new}
        values["attachment_id"] = values.pop("id")
        return await row(
            self.conn,
            AttachmentRow,
            ADD,
            **values,
            tenant_id=self.tenant_id,
            ticket_id=ticket_id,
            actor_id=uploader_id,
            ticket_max=ticket_max,
            events=events,
            outbox=messages,
        )

    async def page(
        self,
        ticket_id: uuid.UUID,
        *,
        external_only: bool,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[AttachmentRow]:
        """A page of the ticket's attachments, and one more row when another page follows."""
        return await rows(
            self.conn,
            AttachmentRow,
            LIST,
            tenant_id=self.tenant_id,
            ticket_id=ticket_id,
            external_only=external_only,
            after_time=after[0] if after else None,
            after_id=after[1] if after else None,
            limit=limit + 1,
        )

    async def get(
        self, ticket_id: uuid.UUID, attachment_id: uuid.UUID, *, external_only: bool
    ) -> AttachmentRow | None:
        return await row(
            self.conn,
            AttachmentRow,
            GET,
            tenant_id=self.tenant_id,
            ticket_id=ticket_id,
            attachment_id=attachment_id,
            external_only=external_only,
        )

    async def delete(
        self,
        ticket_id: uuid.UUID,
        attachment_id: uuid.UUID,
        status: str,
        actor_id: uuid.UUID,
        events: list[Event],
    ) -> _Removed | None:
        """The removed row's storage (its chunks go with it), or None when there was no such
        attachment or the ticket left `status` meanwhile."""
        return await row(
            self.conn,
            _Removed,
            DELETE,
            tenant_id=self.tenant_id,
            ticket_id=ticket_id,
            attachment_id=attachment_id,
            status=status,
            actor_id=actor_id,
            events=events,
            outbox=[],
        )
