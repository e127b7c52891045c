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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import orjson

from flowdesk.db.sql import Statement

TICKET_COLUMNS = (
    "tenant_id, id, number, prefix, title, description, type, catalog_item, workflow, status, "
    "status_category, previous_status, priority, priority_rank, requester_id, assignee_id, "
    "resolution, fields, version, created_at, updated_at"
)

# The names of the people on the ticket come with it, so a read or a write is one statement.
_WITH_NAMES = """
SELECT w.*, r.name AS requester_name, a.name AS assignee_name
FROM written w
JOIN users r ON r.tenant_id = w.tenant_id AND r.id = w.requester_id
LEFT JOIN users a ON a.tenant_id = w.tenant_id AND a.id = w.assignee_id
"""

# Events and outbox messages travel as JSON arrays and are unnested in the statement, so any
# number of them costs nothing extra. Outbox payloads always carry the ticket's id.
_EVENTS_AND_OUTBOX = """
, events AS (
    INSERT INTO ticket_events (tenant_id, ticket_id, kind, actor_id, visibility, data)
    SELECT w.tenant_id, w.id, e->>'kind', :actor_id::uuid,
           coalesce(e->>'visibility', 'external'), coalesce(e->'data', '{}'::jsonb)
    FROM written w, jsonb_array_elements(:events::jsonb) AS e
), messages AS (
    INSERT INTO outbox (tenant_id, topic, payload)
    SELECT w.tenant_id, m->>'topic',
           coalesce(m->'payload', '{}'::jsonb) || jsonb_build_object('ticket_id', w.id)
    FROM written w, jsonb_array_elements(:outbox::jsonb) AS m
)
"""

_GET = (
    """
WITH written AS (
    SELECT {columns} FROM tickets
    WHERE tenant_id = :tenant_id AND {key}
      AND (:requester_only::uuid IS NULL OR requester_id = :requester_only::uuid)
)
"""
    + _WITH_NAMES
)
_GET_BY_ID = Statement(_GET.format(columns=TICKET_COLUMNS, key="id = :id::uuid"))
_GET_BY_NUMBER = Statement(
    _GET.format(columns=TICKET_COLUMNS, key="number = :number AND prefix = :prefix")
)

_CREATE = Statement(
    f"""
WITH requester AS (
    SELECT u.id FROM users u
    WHERE u.tenant_id = :tenant_id::uuid AND u.id = :requester_id::uuid AND u.deleted_at IS NULL
), counter AS (
    -- Taken only for a live requester, so a refused create takes no number (no gap).
    UPDATE ticket_counters c SET last_number = c.last_number + 1
    FROM requester WHERE c.tenant_id = :tenant_id::uuid
    RETURNING c.last_number
), written AS (
    INSERT INTO tickets (tenant_id, id, number, prefix, title, description, type, catalog_item,
                         workflow, status, status_category, priority, requester_id, fields)
    SELECT :tenant_id::uuid, :id::uuid, counter.last_number, t.ticket_prefix, :title::text,
           :description::text, :type::text, :catalog_item::text, :workflow::text, :status::text,
           :status_category::text, :priority::text, :requester_id::uuid, :fields::jsonb
    FROM counter JOIN tenants t ON t.id = :tenant_id::uuid
    RETURNING {TICKET_COLUMNS}
)
{_EVENTS_AND_OUTBOX}
{_WITH_NAMES}
"""
)

# Columns an update may set: the SET clause is built from these names only.
UPDATABLE = {
    "title": "text",
    "description": "text",
    "priority": "text",
    "fields": "jsonb",
    "assignee_id": "uuid",
    "catalog_item": "text",
    "type": "text",
    "workflow": "text",
    "status": "text",
    "status_category": "text",
    "previous_status": "text",
    "resolution": "text",
}


def _update_statement(columns: Sequence[str]) -> Statement:
    assignments = ", ".join(f"{c} = :{c}::{UPDATABLE[c]}" for c in columns)
    return Statement(
        f"""
WITH written AS (
    UPDATE tickets SET {assignments}, version = version + 1, updated_at = now()
    WHERE tenant_id = :tenant_id::uuid AND id = :id::uuid AND version = :version::int
    RETURNING {TICKET_COLUMNS}
), comment AS (
    INSERT INTO ticket_comments (tenant_id, id, ticket_id, author_id, body, visibility)
    SELECT w.tenant_id, :comment_id::uuid, w.id, :actor_id::uuid, :comment_body::text,
           :comment_visibility::text
    FROM written w WHERE :comment_body::text IS NOT NULL
)
{_EVENTS_AND_OUTBOX}
{_WITH_NAMES}
"""
    )


_UPDATES: dict[tuple[str, ...], Statement] = {}

_APPEND = Statement(
    "WITH written AS (SELECT :tenant_id::uuid AS tenant_id, :id::uuid AS id)"
    + _EVENTS_AND_OUTBOX
    + "SELECT 1"
)

_ADD_COMMENT = Statement(
    """
WITH written AS (SELECT :tenant_id::uuid AS tenant_id, :id::uuid AS id),
c AS (
    INSERT INTO ticket_comments (tenant_id, id, ticket_id, author_id, body, visibility)
    VALUES (:tenant_id::uuid, :comment_id::uuid, :id::uuid, :actor_id::uuid, :body::text,
            :visibility::text)
    RETURNING id, author_id, body, visibility, created_at
)"""
    + _EVENTS_AND_OUTBOX
    + """
SELECT c.*, u.name AS author_name FROM c
JOIN users u ON u.tenant_id = :tenant_id::uuid AND u.id = c.author_id
"""
)

_COMMENTS = Statement(
    """
SELECT c.id, c.author_id, c.body, c.visibility, c.created_at, u.name AS author_name
FROM ticket_comments c JOIN users u ON u.tenant_id = c.tenant_id AND u.id = c.author_id
WHERE c.tenant_id = :tenant_id::uuid AND c.ticket_id = :id::uuid
  AND (NOT :external_only::bool OR c.visibility = 'external')
  AND (:after_time::timestamptz IS NULL OR (c.created_at, c.id) > (:after_time, :after_id::uuid))
ORDER BY c.created_at, c.id LIMIT :limit::int
"""
)

_EVENTS = Statement(
    """
SELECT e.id, e.kind, e.actor_id, e.data, e.created_at, u.name AS actor_name
FROM ticket_events e LEFT JOIN users u ON u.tenant_id = e.tenant_id AND u.id = e.actor_id
WHERE e.tenant_id = :tenant_id::uuid AND e.ticket_id = :id::uuid
  AND (NOT :external_only::bool OR e.visibility = 'external')
  AND (:after::bigint IS NULL OR e.id > :after::bigint)
ORDER BY e.id LIMIT :limit::int
"""
)

_IS_AGENT = Statement(
    """
SELECT 1 FROM group_members m
JOIN groups g ON g.tenant_id = m.tenant_id AND g.id = m.group_id
JOIN users u ON u.tenant_id = m.tenant_id AND u.id = m.user_id
WHERE m.tenant_id = :tenant_id::uuid AND m.user_id = :user_id::uuid AND u.deleted_at IS NULL
  AND g.permissions && ARRAY['tickets:manage', 'admin']::text[]
LIMIT 1
"""
)

_LINK_KINDS = Statement(
    "SELECT DISTINCT kind FROM ticket_links "
    "WHERE tenant_id = :tenant_id::uuid AND ticket_id = :id::uuid"
)
_APPROVAL_NAMES = Statement(
    "SELECT DISTINCT name FROM ticket_approvals "
    "WHERE tenant_id = :tenant_id::uuid AND ticket_id = :id::uuid"
)
_LINKS = Statement(
    """
SELECT l.id, l.kind, l.target_id, l.created_at, t.prefix AS target_prefix,
       t.number AS target_number
FROM ticket_links l JOIN tickets t ON t.tenant_id = l.tenant_id AND t.id = l.target_id
WHERE l.tenant_id = :tenant_id::uuid AND l.ticket_id = :id::uuid
ORDER BY l.created_at, l.id
"""
)
_ADD_LINK = Statement(
    """
INSERT INTO ticket_links (tenant_id, id, ticket_id, kind, target_id)
VALUES (:tenant_id::uuid, :link_id::uuid, :id::uuid, :kind::text, :target_id::uuid)
ON CONFLICT DO NOTHING RETURNING id
"""
)
_DELETE_LINK = Statement(
    """
DELETE FROM ticket_links
WHERE tenant_id = :tenant_id::uuid AND ticket_id = :id::uuid AND id = :link_id::uuid
RETURNING kind, target_id
"""
)
_ADD_APPROVAL = Statement(
    """
WITH a AS (
    INSERT INTO ticket_approvals (tenant_id, id, ticket_id, name, approver_id)
    VALUES (:tenant_id::uuid, :approval_id::uuid, :id::uuid, :name::text, :approver_id::uuid)
    RETURNING id, name, approver_id, created_at
)
SELECT a.*, u.name AS approver_name FROM a
JOIN users u ON u.tenant_id = :tenant_id::uuid AND u.id = a.approver_id
"""
)
_APPROVALS = Statement(
    """
SELECT a.id, a.name, a.approver_id, a.created_at, u.name AS approver_name
FROM ticket_approvals a JOIN users u ON u.tenant_id = a.tenant_id AND u.id = a.approver_id
WHERE a.tenant_id = :tenant_id::uuid AND a.ticket_id = :id::uuid
ORDER BY a.created_at, a.id
"""
)


@dataclass(frozen=True, slots=True)
class Ref:
    """A ticket reference from a URL: its id, or its printed number (prefix + digits)."""

    id: uuid.UUID | None = None
    prefix: str | None = None
    number: int | None = None


# asyncpg's Record: read by column name.
Row: TypeAlias = Mapping[Any, Any]


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
                _GET_BY_ID, tenant_id=self.tenant_id, id=ref.id, requester_only=self.requester_only
            )
        return await self._row(
            _GET_BY_NUMBER,
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
            _CREATE,
            **{**values, "fields": _json(values["fields"])},
            tenant_id=self.tenant_id,
            id=uuid.uuid4(),
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
            statement = _UPDATES[columns] = _update_statement(columns)
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
            _APPEND,
            tenant_id=self.tenant_id,
            id=ticket_id,
            actor_id=actor_id,
            events=_json(events),
            outbox=_json(outbox),
        )

    # --- people --------------------------------------------------------------------------

    async def is_agent(self, user_id: uuid.UUID) -> bool:
        """A live user whose groups grant tickets:manage (or admin, which implies it)."""
        return await self._row(_IS_AGENT, tenant_id=self.tenant_id, user_id=user_id) is not None

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
            _ADD_COMMENT,
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
            _COMMENTS,
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
            _EVENTS,
            tenant_id=self.tenant_id,
            id=ticket_id,
            external_only=external_only,
            after=after,
            limit=limit + 1,
        )

    # --- links and approvals -------------------------------------------------------------

    async def link_kinds(self, ticket_id: uuid.UUID) -> frozenset[str]:
        rows = await self._rows(_LINK_KINDS, tenant_id=self.tenant_id, id=ticket_id)
        return frozenset(r["kind"] for r in rows)

    async def approval_names(self, ticket_id: uuid.UUID) -> frozenset[str]:
        rows = await self._rows(_APPROVAL_NAMES, tenant_id=self.tenant_id, id=ticket_id)
        return frozenset(r["name"] for r in rows)

    async def links(self, ticket_id: uuid.UUID) -> list[Row]:
        return await self._rows(_LINKS, tenant_id=self.tenant_id, id=ticket_id)

    async def add_link(
        self, ticket_id: uuid.UUID, kind: str, target_id: uuid.UUID
    ) -> uuid.UUID | None:
        """The new link's id, or None when the same link already exists."""
        row = await self._row(
            _ADD_LINK,
            tenant_id=self.tenant_id,
            id=ticket_id,
            link_id=uuid.uuid4(),
            kind=kind,
            target_id=target_id,
        )
        return None if row is None else row["id"]

    async def delete_link(self, ticket_id: uuid.UUID, link_id: uuid.UUID) -> Row | None:
        return await self._row(
            _DELETE_LINK, tenant_id=self.tenant_id, id=ticket_id, link_id=link_id
        )

    async def add_approval(self, ticket_id: uuid.UUID, name: str, approver_id: uuid.UUID) -> Row:
        row = await self._row(
            _ADD_APPROVAL,
            tenant_id=self.tenant_id,
            id=ticket_id,
            approval_id=uuid.uuid4(),
            name=name,
            approver_id=approver_id,
        )
        assert row is not None
        return row

    async def approvals(self, ticket_id: uuid.UUID) -> list[Row]:
        return await self._rows(_APPROVALS, tenant_id=self.tenant_id, id=ticket_id)
