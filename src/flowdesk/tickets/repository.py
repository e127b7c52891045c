"""All SQL of tickets. A repository is bound to one tenant and, for a desk user, to the
tickets that user requested: `_visible` is the one place that scoping lives.

Writes are single statements (CTEs) that change the ticket, append its audit events and queue
its outbox messages together: one round trip, so the counter row and ticket locks are held
for as short a time as possible.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from flowdesk.models import (
    Group,
    GroupMember,
    Ticket,
    TicketApproval,
    TicketComment,
    TicketEvent,
    TicketLink,
    User,
)

_requester = aliased(User, name="requester")
# Permissions that make a user an agent (admin implies tickets:manage).
AGENT_GRANTORS: ColumnElement[list[str]] = literal_column(
    "ARRAY['tickets:manage', 'admin']::text[]"
)
_assignee = aliased(User, name="assignee")

TICKET_COLUMNS = (
    "tenant_id, id, number, prefix, title, description, type, catalog_item, workflow, status, "
    "status_category, previous_status, priority, priority_rank, requester_id, assignee_id, "
    "resolution, fields, version, created_at, updated_at"
)

# The names of people on the ticket come with it, so a read is one query.
_WITH_NAMES = """
SELECT w.*, r.name AS requester_name, a.name AS assignee_name
FROM written w
JOIN users r ON r.tenant_id = w.tenant_id AND r.id = w.requester_id
LEFT JOIN users a ON a.tenant_id = w.tenant_id AND a.id = w.assignee_id
"""

# Events and outbox messages travel as JSON arrays and are unnested in the statement, so any
# number of them costs no extra round trip.
_EVENTS_AND_OUTBOX = """
, events AS (
    INSERT INTO ticket_events (tenant_id, ticket_id, kind, actor_id, visibility, data)
    SELECT w.tenant_id, w.id, e->>'kind', CAST(:actor_id AS uuid),
           coalesce(e->>'visibility', 'external'), coalesce(e->'data', '{}'::jsonb)
    FROM written w, jsonb_array_elements(CAST(:events AS jsonb)) AS e
), messages AS (
    INSERT INTO outbox (tenant_id, topic, payload)
    SELECT w.tenant_id, m->>'topic',
           coalesce(m->'payload', '{}'::jsonb) || jsonb_build_object('ticket_id', w.id)
    FROM written w, jsonb_array_elements(CAST(:outbox AS jsonb)) AS m
)
"""

_CREATE = (
    text(
        f"""
WITH counter AS (
    UPDATE ticket_counters SET last_number = last_number + 1
    WHERE tenant_id = CAST(:tenant_id AS uuid)
    RETURNING last_number
), written AS (
    INSERT INTO tickets (tenant_id, id, number, prefix, title, description, type, catalog_item,
                         workflow, status, status_category, priority, requester_id, fields)
    SELECT CAST(:tenant_id AS uuid), CAST(:id AS uuid), counter.last_number, t.ticket_prefix,
           :title, :description, :type, :catalog_item, :workflow, :status, :status_category,
           :priority, CAST(:requester_id AS uuid), CAST(:fields AS jsonb)
    FROM counter
    JOIN tenants t ON t.id = CAST(:tenant_id AS uuid)
    -- A requester who is not a live user of the tenant inserts nothing; the caller then
    -- raises, and the rollback takes the counter back with it: no gap.
    WHERE EXISTS (SELECT 1 FROM users u WHERE u.tenant_id = CAST(:tenant_id AS uuid)
                  AND u.id = CAST(:requester_id AS uuid) AND u.deleted_at IS NULL)
    RETURNING {TICKET_COLUMNS}
)
{_EVENTS_AND_OUTBOX}
{_WITH_NAMES}
"""
    )
    .bindparams(bindparam("fields", type_=JSONB))
    .columns(fields=JSONB)
)

# Columns an update may set (the SET clause is built from these names only).
UPDATABLE = frozenset(
    {
        "title",
        "description",
        "priority",
        "fields",
        "assignee_id",
        "catalog_item",
        "type",
        "workflow",
        "status",
        "status_category",
        "previous_status",
        "resolution",
    }
)
_CASTS = {"fields": "jsonb", "assignee_id": "uuid"}


def _update_statement(columns: Sequence[str]) -> Any:
    assignments = ", ".join(
        f"{c} = CAST(:{c} AS {_CASTS[c]})" if c in _CASTS else f"{c} = :{c}" for c in columns
    )
    # Column names come from UPDATABLE only; values are bound parameters.
    sql = f"""
WITH written AS (
    UPDATE tickets SET {assignments}, version = version + 1, updated_at = now()
    WHERE tenant_id = CAST(:tenant_id AS uuid) AND id = CAST(:id AS uuid)
    RETURNING {TICKET_COLUMNS}
)
{_EVENTS_AND_OUTBOX}
{_WITH_NAMES}
"""
    stmt = text(sql)
    if "fields" in columns:
        stmt = stmt.bindparams(bindparam("fields", type_=JSONB))
    return stmt.columns(fields=JSONB)


_UPDATE_CACHE: dict[tuple[str, ...], Any] = {}


@dataclass(frozen=True, slots=True)
class Ref:
    """A ticket reference from a URL: its id, or its printed number (prefix + digits)."""

    id: uuid.UUID | None = None
    prefix: str | None = None
    number: int | None = None


@dataclass(frozen=True, slots=True)
class ListQuery:
    statuses: Sequence[str] = ()
    categories: Sequence[str] = ()
    # Listing defaults: RT leaves inactive tickets out unless asked, and hidden statuses
    # unless named; these are computed by the service from the catalog.
    exclude_hidden: Sequence[tuple[str, Sequence[str]]] = ()
    assignee: uuid.UUID | None = None
    unassigned: bool = False
    requester: uuid.UUID | None = None
    priorities: Sequence[str] = ()
    types: Sequence[str] = ()
    catalog_items: Sequence[str] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    q: str | None = None
    # Tickets whose status their workflow no longer has: (workflow, its statuses) pairs.
    stale_in: Sequence[tuple[str, Sequence[str]]] | None = None
    sort: str = "-created"
    after: tuple[Any, uuid.UUID] | None = None
    limit: int = 50


_SORTS = {
    "created": Ticket.created_at,
    "updated": Ticket.updated_at,
    "priority": Ticket.priority_rank,
}


class TicketRepository:
    def __init__(
        self, session: AsyncSession, tenant_id: uuid.UUID, *, requester_only: uuid.UUID | None
    ) -> None:
        self.session = session
        self.tenant_id = tenant_id
        # Desk users (no tickets:manage) see only the tickets they requested.
        self.requester_only = requester_only

    def _visible(self) -> ColumnElement[bool]:
        clause = Ticket.tenant_id == self.tenant_id
        if self.requester_only is not None:
            clause = and_(clause, Ticket.requester_id == self.requester_only)
        return clause

    def _select(self) -> Select[Any]:
        return (
            select(
                *Ticket.__table__.c,
                _requester.name.label("requester_name"),
                _assignee.name.label("assignee_name"),
            )
            .join(
                _requester,
                (_requester.tenant_id == Ticket.tenant_id) & (_requester.id == Ticket.requester_id),
            )
            .outerjoin(
                _assignee,
                (_assignee.tenant_id == Ticket.tenant_id) & (_assignee.id == Ticket.assignee_id),
            )
            .where(self._visible())
        )

    # --- writes ------------------------------------------------------------------------

    async def insert(
        self,
        values: dict[str, Any],
        actor_id: uuid.UUID,
        events: list[dict[str, Any]],
        outbox: list[dict[str, Any]],
    ) -> RowMapping | None:
        params = {
            **values,
            "tenant_id": self.tenant_id,
            "id": uuid.uuid4(),
            "actor_id": actor_id,
            "events": _json(events),
            "outbox": _json(outbox),
        }
        row: RowMapping | None = (await self.session.execute(_CREATE, params)).mappings().first()
        return row

    async def update(
        self,
        ticket_id: uuid.UUID,
        changes: dict[str, Any],
        actor_id: uuid.UUID,
        events: list[dict[str, Any]],
        outbox: list[dict[str, Any]],
    ) -> RowMapping:
        columns = tuple(sorted(changes))
        unknown = set(columns) - UPDATABLE
        assert not unknown, unknown
        stmt = _UPDATE_CACHE.get(columns)
        if stmt is None:
            stmt = _UPDATE_CACHE[columns] = _update_statement(columns)
        params = {
            **changes,
            "tenant_id": self.tenant_id,
            "id": ticket_id,
            "actor_id": actor_id,
            "events": _json(events),
            "outbox": _json(outbox),
        }
        return (await self.session.execute(stmt, params)).mappings().one()

    # --- reads -------------------------------------------------------------------------

    async def get(self, ref: Ref, *, lock: bool = False) -> RowMapping | None:
        stmt = self._select()
        if ref.id is not None:
            stmt = stmt.where(Ticket.id == ref.id)
        else:
            stmt = stmt.where(Ticket.number == ref.number, Ticket.prefix == ref.prefix)
        if lock:
            stmt = stmt.with_for_update(of=Ticket)
        row: RowMapping | None = (await self.session.execute(stmt)).mappings().first()
        return row

    async def page(self, query: ListQuery) -> Sequence[RowMapping]:
        stmt = self._select()
        t = Ticket
        if query.statuses:
            stmt = stmt.where(t.status.in_(query.statuses))
        if query.categories:
            stmt = stmt.where(t.status_category.in_(query.categories))
        for workflow, hidden in query.exclude_hidden:
            stmt = stmt.where(~and_(t.workflow == workflow, t.status.in_(hidden)))
        if query.unassigned:
            stmt = stmt.where(t.assignee_id.is_(None))
        elif query.assignee is not None:
            stmt = stmt.where(t.assignee_id == query.assignee)
        if query.requester is not None:
            stmt = stmt.where(t.requester_id == query.requester)
        if query.priorities:
            stmt = stmt.where(t.priority.in_(query.priorities))
        if query.types:
            stmt = stmt.where(t.type.in_(query.types))
        if query.catalog_items:
            stmt = stmt.where(t.catalog_item.in_(query.catalog_items))
        if query.created_after:
            stmt = stmt.where(t.created_at >= query.created_after)
        if query.created_before:
            stmt = stmt.where(t.created_at < query.created_before)
        if query.updated_after:
            stmt = stmt.where(t.updated_at >= query.updated_after)
        if query.updated_before:
            stmt = stmt.where(t.updated_at < query.updated_before)
        if query.q:
            stmt = stmt.where(t.search.op("@@")(func.websearch_to_tsquery("english", query.q)))
        if query.stale_in is not None:
            known = [and_(t.workflow == w, t.status.in_(s)) for w, s in query.stale_in]
            stmt = stmt.where(~or_(*known) if known else literal(True))
        descending = query.sort.startswith("-")
        column = _SORTS[query.sort.lstrip("-")]
        if query.after is not None:
            key, ident = query.after
            if descending:
                stmt = stmt.where(tuple_(column, t.id) < tuple_(literal(key), literal(ident)))
            else:
                stmt = stmt.where(tuple_(column, t.id) > tuple_(literal(key), literal(ident)))
        order = (column.desc(), t.id.desc()) if descending else (column.asc(), t.id.asc())
        stmt = stmt.order_by(*order).limit(query.limit + 1)
        rows: Sequence[RowMapping] = (await self.session.execute(stmt)).mappings().all()
        return rows

    # --- people ------------------------------------------------------------------------

    async def live_user(self, user_id: uuid.UUID) -> bool:
        stmt = select(User.id).where(
            User.tenant_id == self.tenant_id, User.id == user_id, User.deleted_at.is_(None)
        )
        return (await self.session.execute(stmt)).first() is not None

    async def is_agent(self, user_id: uuid.UUID) -> bool:
        """A live user whose groups grant tickets:manage (or admin, which implies it)."""
        stmt = (
            select(GroupMember.user_id)
            .join(
                Group,
                (Group.tenant_id == GroupMember.tenant_id) & (Group.id == GroupMember.group_id),
            )
            .join(
                User, (User.tenant_id == GroupMember.tenant_id) & (User.id == GroupMember.user_id)
            )
            .where(
                GroupMember.tenant_id == self.tenant_id,
                GroupMember.user_id == user_id,
                User.deleted_at.is_(None),
                Group.permissions.op("&&")(AGENT_GRANTORS),
            )
            .limit(1)
        )
        return (await self.session.execute(stmt)).first() is not None

    # --- comments, events, links, approvals --------------------------------------------

    async def add_comment(
        self, ticket_id: uuid.UUID, author_id: uuid.UUID, body: str, visibility: str
    ) -> RowMapping:
        comment_id = uuid.uuid4()
        stmt = text(
            """
WITH c AS (
    INSERT INTO ticket_comments (tenant_id, id, ticket_id, author_id, body, visibility)
    VALUES (CAST(:tenant_id AS uuid), CAST(:id AS uuid), CAST(:ticket_id AS uuid),
            CAST(:author_id AS uuid), :body, :visibility)
    RETURNING id, author_id, body, visibility, created_at
)
SELECT c.*, u.name AS author_name FROM c
JOIN users u ON u.tenant_id = CAST(:tenant_id AS uuid) AND u.id = c.author_id
"""
        )
        params = {
            "tenant_id": self.tenant_id,
            "id": comment_id,
            "ticket_id": ticket_id,
            "author_id": author_id,
            "body": body,
            "visibility": visibility,
        }
        return (await self.session.execute(stmt, params)).mappings().one()

    async def comments(
        self,
        ticket_id: uuid.UUID,
        *,
        external_only: bool,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> Sequence[RowMapping]:
        c = TicketComment
        stmt = (
            select(
                c.id,
                c.author_id,
                c.body,
                c.visibility,
                c.created_at,
                User.name.label("author_name"),
            )
            .join(User, (User.tenant_id == c.tenant_id) & (User.id == c.author_id))
            .where(c.tenant_id == self.tenant_id, c.ticket_id == ticket_id)
        )
        if external_only:
            stmt = stmt.where(c.visibility == "external")
        if after is not None:
            stmt = stmt.where(
                tuple_(c.created_at, c.id) > tuple_(literal(after[0]), literal(after[1]))
            )
        stmt = stmt.order_by(c.created_at, c.id).limit(limit + 1)
        return (await self.session.execute(stmt)).mappings().all()

    async def events(
        self, ticket_id: uuid.UUID, *, external_only: bool, after: int | None, limit: int
    ) -> Sequence[RowMapping]:
        e = TicketEvent
        stmt = (
            select(e.id, e.kind, e.actor_id, e.data, e.created_at, User.name.label("actor_name"))
            .outerjoin(User, (User.tenant_id == e.tenant_id) & (User.id == e.actor_id))
            .where(e.tenant_id == self.tenant_id, e.ticket_id == ticket_id)
        )
        if external_only:
            stmt = stmt.where(e.visibility == "external")
        if after is not None:
            stmt = stmt.where(e.id > after)
        stmt = stmt.order_by(e.id).limit(limit + 1)
        return (await self.session.execute(stmt)).mappings().all()

    async def link_kinds(self, ticket_id: uuid.UUID) -> frozenset[str]:
        stmt = select(TicketLink.kind).where(
            TicketLink.tenant_id == self.tenant_id, TicketLink.ticket_id == ticket_id
        )
        return frozenset((await self.session.execute(stmt)).scalars().all())

    async def approval_names(self, ticket_id: uuid.UUID) -> frozenset[str]:
        stmt = select(TicketApproval.name).where(
            TicketApproval.tenant_id == self.tenant_id, TicketApproval.ticket_id == ticket_id
        )
        return frozenset((await self.session.execute(stmt)).scalars().all())

    async def links(self, ticket_id: uuid.UUID) -> Sequence[RowMapping]:
        target = aliased(Ticket, name="target")
        stmt = (
            select(
                TicketLink.id,
                TicketLink.kind,
                TicketLink.target_id,
                TicketLink.created_at,
                target.prefix.label("target_prefix"),
                target.number.label("target_number"),
            )
            .join(
                target,
                (target.tenant_id == TicketLink.tenant_id) & (target.id == TicketLink.target_id),
            )
            .where(TicketLink.tenant_id == self.tenant_id, TicketLink.ticket_id == ticket_id)
            .order_by(TicketLink.created_at, TicketLink.id)
        )
        return (await self.session.execute(stmt)).mappings().all()

    async def add_link(
        self, ticket_id: uuid.UUID, kind: str, target_id: uuid.UUID
    ) -> uuid.UUID | None:
        """The new link's id, or None when the same link already exists."""
        stmt = text(
            """
INSERT INTO ticket_links (tenant_id, id, ticket_id, kind, target_id)
VALUES (CAST(:tenant_id AS uuid), CAST(:id AS uuid), CAST(:ticket_id AS uuid), :kind,
        CAST(:target_id AS uuid))
ON CONFLICT DO NOTHING RETURNING id
"""
        )
        params = {
            "tenant_id": self.tenant_id,
            "id": uuid.uuid4(),
            "ticket_id": ticket_id,
            "kind": kind,
            "target_id": target_id,
        }
        return (await self.session.execute(stmt, params)).scalar()

    async def delete_link(self, ticket_id: uuid.UUID, link_id: uuid.UUID) -> RowMapping | None:
        stmt = text(
            """
DELETE FROM ticket_links WHERE tenant_id = CAST(:tenant_id AS uuid)
AND ticket_id = CAST(:ticket_id AS uuid) AND id = CAST(:id AS uuid)
RETURNING kind, target_id
"""
        )
        params = {"tenant_id": self.tenant_id, "ticket_id": ticket_id, "id": link_id}
        return (await self.session.execute(stmt, params)).mappings().first()

    async def add_approval(
        self, ticket_id: uuid.UUID, name: str, approver_id: uuid.UUID
    ) -> RowMapping:
        stmt = text(
            """
WITH a AS (
    INSERT INTO ticket_approvals (tenant_id, id, ticket_id, name, approver_id)
    VALUES (CAST(:tenant_id AS uuid), CAST(:id AS uuid), CAST(:ticket_id AS uuid), :name,
            CAST(:approver_id AS uuid))
    RETURNING id, name, approver_id, created_at
)
SELECT a.*, u.name AS approver_name FROM a
JOIN users u ON u.tenant_id = CAST(:tenant_id AS uuid) AND u.id = a.approver_id
"""
        )
        params = {
            "tenant_id": self.tenant_id,
            "id": uuid.uuid4(),
            "ticket_id": ticket_id,
            "name": name,
            "approver_id": approver_id,
        }
        return (await self.session.execute(stmt, params)).mappings().one()

    async def approvals(self, ticket_id: uuid.UUID) -> Sequence[RowMapping]:
        a = TicketApproval
        stmt = (
            select(a.id, a.name, a.approver_id, a.created_at, User.name.label("approver_name"))
            .join(User, (User.tenant_id == a.tenant_id) & (User.id == a.approver_id))
            .where(a.tenant_id == self.tenant_id, a.ticket_id == ticket_id)
            .order_by(a.created_at, a.id)
        )
        return (await self.session.execute(stmt)).mappings().all()

    async def append_events(
        self,
        ticket_id: uuid.UUID,
        actor_id: uuid.UUID,
        events: list[dict[str, Any]],
        outbox: list[dict[str, Any]],
    ) -> None:
        """Events (and outbox messages) about a ticket that do not change its row."""
        stmt = text(
            """
WITH written AS (SELECT CAST(:tenant_id AS uuid) AS tenant_id, CAST(:id AS uuid) AS id)
"""
            + _EVENTS_AND_OUTBOX
            + "SELECT 1"
        )
        params = {
            "tenant_id": self.tenant_id,
            "id": ticket_id,
            "actor_id": actor_id,
            "events": _json(events),
            "outbox": _json(outbox),
        }
        await self.session.execute(stmt, params)


def _json(value: object) -> str:
    return orjson.dumps(value, default=str).decode()
