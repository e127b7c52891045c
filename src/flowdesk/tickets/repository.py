"""All SQL of one ticket and what hangs off it, as raw asyncpg statements (flowdesk.db.raw).

A repository is bound to one tenant and, for a desk user, to the tickets that user requested:
`requester_only` is the one place that scoping lives.

Every write is one statement (a CTE) that changes the ticket, appends its audit events and
queues its outbox messages together. Outside a transaction that is one round trip and its own
atomic commit: a create holds the tenant's counter row for that statement only, and an update
applies only if the ticket is still at the version the decision was made on.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import orjson

from flowdesk.db.sql import Statement
from flowdesk.tickets.statements import (
    ADD_APPROVAL,
    ADD_COMMENT,
    ADD_LINK,
    APPEND,
    APPROVAL_NAMES,
    APPROVALS,
    COMMENTS,
    CREATE,
    DELETE_LINK,
    EVENTS,
    GET_BY_ID,
    GET_BY_NUMBER,
    IS_AGENT,
    LINK_KINDS,
    LINKS,
    update_statement,
)


@dataclass(frozen=True, slots=True)
class Ref:
    """A ticket reference from a URL: its id, or its printed number (prefix + digits)."""

    id: uuid.UUID | None = None
    prefix: str | None = None
    number: int | None = None


# asyncpg's Record: read by column name.
Row: TypeAlias = Mapping[Any, Any]


_UPDATES: dict[tuple[str, ...], Statement] = {}


def _json(value: object) -> str:
    return orjson.dumps(value, default=str).decode()


class TicketRepository:
    def __init__(
        self, conn: Any, tenant_id: uuid.UUID, *, requester_only: uuid.UUID | None
    ) -> None:
        self.conn = conn
        self.tenant_id = tenant_id
        # Desk users (not agents) reach only the tickets they requested.
        self.requester_only = requester_only

    async def _row(self, statement: Statement, **params: Any) -> Row | None:
        row: Row | None = await self.conn.fetchrow(statement.sql, *statement.args(params))
        return row

    async def _rows(self, statement: Statement, **params: Any) -> list[Row]:
        rows: list[Row] = await self.conn.fetch(statement.sql, *statement.args(params))
        return rows

    # --- the ticket ----------------------------------------------------------------------

    async def get(self, ref: Ref) -> Row | None:
        if ref.id is not None:
            return await self._row(
                GET_BY_ID, tenant_id=self.tenant_id, id=ref.id, requester_only=self.requester_only
            )
        return await self._row(
            GET_BY_NUMBER,
            tenant_id=self.tenant_id,
            number=ref.number,
            prefix=ref.prefix,
            requester_only=self.requester_only,
        )

    async def insert(
        self,
        values: dict[str, Any],
        actor_id: uuid.UUID,
        events: list[dict[str, Any]],
        outbox: list[dict[str, Any]],
    ) -> Row | None:
        """The new ticket, or None when its requester is not a live user of the tenant (then
        no number was taken)."""
        return await self._row(
            CREATE,
            **{**values, "fields": _json(values["fields"])},
            tenant_id=self.tenant_id,
            actor_id=actor_id,
            events=_json(events),
            outbox=_json(outbox),
        )

    async def update(
        self,
        row: Row,
        changes: dict[str, Any],
        actor_id: uuid.UUID,
        events: list[dict[str, Any]],
        outbox: list[dict[str, Any]],
        comment: tuple[uuid.UUID, str, str] | None = None,
    ) -> Row | None:
        """Apply `changes` if the ticket is still at `row`'s version; None if it moved on (the
        caller decides again on a fresh read). `comment` is (id, body, visibility)."""
        columns = tuple(sorted(changes))
        statement = _UPDATES.get(columns)
        if statement is None:
            statement = _UPDATES[columns] = update_statement(columns)
        if "fields" in changes:
            changes = {**changes, "fields": _json(changes["fields"])}
        comment_id, body, visibility = comment or (None, None, None)
        return await self._row(
            statement,
            **changes,
            tenant_id=self.tenant_id,
            id=row["id"],
            version=row["version"],
            actor_id=actor_id,
            events=_json(events),
            outbox=_json(outbox),
            comment_id=comment_id,
            comment_body=body,
            comment_visibility=visibility,
        )

    async def append_events(
        self,
        ticket_id: uuid.UUID,
        actor_id: uuid.UUID,
        events: list[dict[str, Any]],
        outbox: list[dict[str, Any]],
    ) -> None:
        """Events (and outbox messages) about a ticket that do not change its row."""
        await self._row(
            APPEND,
            tenant_id=self.tenant_id,
            id=ticket_id,
            actor_id=actor_id,
            events=_json(events),
            outbox=_json(outbox),
        )

    # --- people --------------------------------------------------------------------------

    async def is_agent(self, user_id: uuid.UUID) -> bool:
        """A live user whose groups grant tickets:manage (or admin, which implies it)."""
        return await self._row(IS_AGENT, tenant_id=self.tenant_id, user_id=user_id) is not None

    # --- comments and the record ---------------------------------------------------------

    async def add_comment(
        self,
        ticket_id: uuid.UUID,
        author_id: uuid.UUID,
        body: str,
        visibility: str,
        events: list[dict[str, Any]],
        outbox: list[dict[str, Any]],
        comment_id: uuid.UUID,
    ) -> Row:
        row = await self._row(
            ADD_COMMENT,
            tenant_id=self.tenant_id,
            id=ticket_id,
            comment_id=comment_id,
            actor_id=author_id,
            body=body,
            visibility=visibility,
            events=_json(events),
            outbox=_json(outbox),
        )
        assert row is not None
        return row

    async def comments(
        self,
        ticket_id: uuid.UUID,
        *,
        external_only: bool,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[Row]:
        after_time, after_id = after or (None, None)
        return await self._rows(
            COMMENTS,
            tenant_id=self.tenant_id,
            id=ticket_id,
            external_only=external_only,
            after_time=after_time,
            after_id=after_id,
            limit=limit + 1,
        )

    async def events(
        self, ticket_id: uuid.UUID, *, external_only: bool, after: int | None, limit: int
    ) -> list[Row]:
        return await self._rows(
            EVENTS,
            tenant_id=self.tenant_id,
            id=ticket_id,
            external_only=external_only,
            after=after,
            limit=limit + 1,
        )

    # --- links and approvals -------------------------------------------------------------

    async def link_kinds(self, ticket_id: uuid.UUID) -> frozenset[str]:
        rows = await self._rows(LINK_KINDS, tenant_id=self.tenant_id, id=ticket_id)
        return frozenset(r["kind"] for r in rows)

    async def approval_names(self, ticket_id: uuid.UUID) -> frozenset[str]:
        rows = await self._rows(APPROVAL_NAMES, tenant_id=self.tenant_id, id=ticket_id)
        return frozenset(r["name"] for r in rows)

    async def links(self, ticket_id: uuid.UUID) -> list[Row]:
        return await self._rows(LINKS, tenant_id=self.tenant_id, id=ticket_id)

    async def add_link(
        self, ticket_id: uuid.UUID, kind: str, target_id: uuid.UUID
    ) -> uuid.UUID | None:
        """The new link's id, or None when the same link already exists."""
        row = await self._row(
            ADD_LINK,
            tenant_id=self.tenant_id,
            id=ticket_id,
            link_id=uuid.uuid4(),
            kind=kind,
            target_id=target_id,
        )
        return None if row is None else row["id"]

    async def delete_link(self, ticket_id: uuid.UUID, link_id: uuid.UUID) -> Row | None:
        return await self._row(DELETE_LINK, tenant_id=self.tenant_id, id=ticket_id, link_id=link_id)

    async def add_approval(self, ticket_id: uuid.UUID, name: str, approver_id: uuid.UUID) -> Row:
        row = await self._row(
            ADD_APPROVAL,
            tenant_id=self.tenant_id,
            id=ticket_id,
            approval_id=uuid.uuid4(),
            name=name,
            approver_id=approver_id,
        )
        assert row is not None
        return row

    async def approvals(self, ticket_id: uuid.UUID) -> list[Row]:
        return await self._rows(APPROVALS, tenant_id=self.tenant_id, id=ticket_id)
