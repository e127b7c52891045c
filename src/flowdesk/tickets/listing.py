"""Listing tickets: filters, full-text search, sorting and keyset pages, scoped to one
tenant and, for a desk user, to the tickets that user requested (`_visible`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from flowdesk.models import (
    Ticket,
    User,
)

_requester = aliased(User, name="requester")
# Permissions that make a user an agent (admin implies tickets:manage).
AGENT_GRANTORS: ColumnElement[list[str]] = literal_column(
    "ARRAY['tickets:manage', 'admin']::text[]"
)
_assignee = aliased(User, name="assignee")


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


# Every column but the full-text vector: it is for the WHERE clause, and reading it back for
# each row of a page costs more than the rest of the row.
_LISTED = tuple(c for c in Ticket.__table__.c if c.name != "search")

_SORTS = {
    "created": Ticket.created_at,
    "updated": Ticket.updated_at,
    "priority": Ticket.priority_rank,
}


class TicketListing:
    """The queue and the desk list: the one ticket query built dynamically (SQLAlchemy
    Core), for every combination of filters and sort orders."""

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

    async def page(self, query: ListQuery) -> Sequence[RowMapping]:
        stmt = select(*_LISTED).where(self._visible())
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
        # The page is chosen from tickets alone, then the names are joined to its rows: with
        # the joins at the same level, PostgreSQL's generic plan (a prepared statement, from
        # its sixth run) read and sorted all of a busy tenant's tickets for every page.
        page = stmt.order_by(*order).limit(query.limit + 1).subquery("page")
        sort_key = page.c[column.key]
        outer = (
            select(
                page,
                _requester.name.label("requester_name"),
                _assignee.name.label("assignee_name"),
            )
            .join(
                _requester,
                (_requester.tenant_id == page.c.tenant_id) & (_requester.id == page.c.requester_id),
            )
            .outerjoin(
                _assignee,
                (_assignee.tenant_id == page.c.tenant_id) & (_assignee.id == page.c.assignee_id),
            )
            .order_by(
                *(
                    (sort_key.desc(), page.c.id.desc())
                    if descending
                    else (sort_key.asc(), page.c.id.asc())
                )
            )
        )
        rows: Sequence[RowMapping] = (await self.session.execute(outer)).mappings().all()
        return rows
