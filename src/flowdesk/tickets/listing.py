"""Listing tickets: filters, full-text search, sorting and keyset pages, scoped to one tenant
and, for a desk user, to the tickets that user requested.

The page query is built with SQLAlchemy Core once per *shape* (which filters are present, the
sort, whether a cursor follows) and compiled once; the values travel as parameters, lists as
arrays, so a filter's text does not depend on how many values it has. A queue screen uses a
handful of shapes, so after the first requests every list runs a statement compiled before
(building the query per request cost a third of a list request's CPU: bench/request_cpu.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Text,
    Uuid,
    and_,
    bindparam,
    func,
    literal_column,
    not_,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY

from flowdesk.db.query import Connection, Query, rows
from flowdesk.models import tickets, users
from flowdesk.tickets.repository import TicketRow
from flowdesk.tickets.statements import TICKET_COLUMNS


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


# The sort orders' columns.
SORT_COLUMNS = {"created": "created_at", "updated": "updated_at", "priority": "priority_rank"}

_TEXTS = ARRAY(Text)
# Filters of one value or one list: (the query's field, the column, how it compares).
_ANY_OF = (
    ("statuses", "status"),
    ("categories", "status_category"),
    ("priorities", "priority"),
    ("types", "type"),
    ("catalog_items", "catalog_item"),
)
_RANGES = (
    ("created_after", "created_at", ">="),
    ("created_before", "created_at", "<"),
    ("updated_after", "updated_at", ">="),
    ("updated_before", "updated_at", "<"),
)


@dataclass(frozen=True, slots=True)
class _Shape:
    """What decides the statement's text: which filters are present, not their values."""

    desk: bool
    any_of: tuple[bool, ...]
    hidden: int
    unassigned: bool
    assignee: bool
    requester: bool
    ranges: tuple[bool, ...]
    q: bool
    stale: int | None
    sort: str
    after: bool

    @classmethod
    def of(cls, query: ListQuery, desk: bool) -> _Shape:
        return cls(
            desk=desk,
            any_of=tuple(bool(getattr(query, field)) for field, _ in _ANY_OF),
            hidden=len(query.exclude_hidden),
            unassigned=query.unassigned,
            assignee=query.assignee is not None,
            requester=query.requester is not None,
            ranges=tuple(getattr(query, field) is not None for field, _, _ in _RANGES),
            q=bool(query.q),
            stale=None if query.stale_in is None else len(query.stale_in),
            sort=query.sort,
            after=query.after is not None,
        )


def _values(query: ListQuery, tenant_id: uuid.UUID, desk: uuid.UUID | None) -> dict[str, Any]:
    values: dict[str, Any] = {"tenant_id": tenant_id, "limit": query.limit + 1}
    if desk is not None:
        values["desk_requester"] = desk
    for field, _ in _ANY_OF:
        if getattr(query, field):
            values[field] = list(getattr(query, field))
    for i, (workflow, statuses) in enumerate(query.exclude_hidden):
        values[f"hidden_workflow_{i}"] = workflow
        values[f"hidden_statuses_{i}"] = list(statuses)
    for i, (workflow, statuses) in enumerate(query.stale_in or ()):
        values[f"known_workflow_{i}"] = workflow
        values[f"known_statuses_{i}"] = list(statuses)
    if query.assignee is not None:
        values["assignee"] = query.assignee
    if query.requester is not None:
        values["requester"] = query.requester
    for field, _, _ in _RANGES:
        if getattr(query, field) is not None:
            values[field] = getattr(query, field)
    if query.q:
        values["q"] = query.q
    if query.after is not None:
        values["after_key"], values["after_id"] = query.after
    return values


def _in_workflow(prefix: str, i: int) -> ColumnElement[bool]:
    return and_(
        tickets.c.workflow == bindparam(f"{prefix}_workflow_{i}", type_=Text),
        tickets.c.status == func.any(bindparam(f"{prefix}_statuses_{i}", type_=_TEXTS)),
    )


def _statement(shape: _Shape) -> Query:
    where: list[ColumnElement[bool]] = [tickets.c.tenant_id == bindparam("tenant_id", type_=Uuid)]
    if shape.desk:
        # Desk users (no tickets:manage) see only the tickets they requested.
        where.append(tickets.c.requester_id == bindparam("desk_requester", type_=Uuid))
    for (field, name), present in zip(_ANY_OF, shape.any_of, strict=True):
        if present:
            where.append(tickets.c[name] == func.any(bindparam(field, type_=_TEXTS)))
    for i in range(shape.hidden):
        where.append(not_(_in_workflow("hidden", i)))
    if shape.unassigned:
        where.append(tickets.c.assignee_id.is_(None))
    elif shape.assignee:
        where.append(tickets.c.assignee_id == bindparam("assignee", type_=Uuid))
    if shape.requester:
        where.append(tickets.c.requester_id == bindparam("requester", type_=Uuid))
    for (field, name, op), present in zip(_RANGES, shape.ranges, strict=True):
        if present:
            where.append(tickets.c[name].op(op)(bindparam(field, type_=tickets.c[name].type)))
    if shape.q:
        where.append(
            tickets.c.search.op("@@")(
                func.websearch_to_tsquery(
                    literal_column("'english'::regconfig"), bindparam("q", type_=Text)
                )
            )
        )
    if shape.stale is not None:
        known = [_in_workflow("known", i) for i in range(shape.stale)]
        if known:  # with no workflow at all, every ticket is stale
            where.append(not_(or_(*known)))
    descending = shape.sort.startswith("-")
    column = tickets.c[SORT_COLUMNS[shape.sort.lstrip("-")]]
    if shape.after:
        key = tuple_(column, tickets.c.id)
        bound = tuple_(bindparam("after_key", type_=column.type), bindparam("after_id", type_=Uuid))
        where.append(key < bound if descending else key > bound)
    order = (column.desc(), tickets.c.id.desc()) if descending else (column, tickets.c.id)
    # The page is chosen from tickets alone, then the names are joined to its rows: with the
    # joins at the same level, PostgreSQL read and sorted all of a busy tenant's tickets.
    page = (
        select(*TICKET_COLUMNS)
        .where(*where)
        .order_by(*order)
        .limit(bindparam("limit", type_=Integer))
        .subquery("page")
    )
    r, a = users.alias("r"), users.alias("a")
    page_column = page.c[column.name]
    return Query(
        select(*page.c, r.c.name.label("requester_name"), a.c.name.label("assignee_name"))
        .select_from(
            page.join(
                r, and_(r.c.tenant_id == page.c.tenant_id, r.c.id == page.c.requester_id)
            ).outerjoin(a, and_(a.c.tenant_id == page.c.tenant_id, a.c.id == page.c.assignee_id))
        )
        .order_by(
            *((page_column.desc(), page.c.id.desc()) if descending else (page_column, page.c.id))
        )
    )


_STATEMENTS: dict[_Shape, Query] = {}


async def page(
    conn: Connection, tenant_id: uuid.UUID, requester_only: uuid.UUID | None, query: ListQuery
) -> list[TicketRow]:
    """One page of tickets (limit + 1 rows: the extra one tells whether a next page exists)."""
    shape = _Shape.of(query, requester_only is not None)
    statement = _STATEMENTS.get(shape)
    if statement is None:
        statement = _STATEMENTS[shape] = _statement(shape)
    return await rows(conn, TicketRow, statement, **_values(query, tenant_id, requester_only))
