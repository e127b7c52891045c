"""Listing and counting tickets: filters, full-text search, sorting and keyset pages, scoped to
one tenant and, for a desk user, to the tickets that user requested.

`where` is the one place a list's filters and its visibility become SQL: the page of
GET /v1/tickets and the counts of GET /v1/tickets/counts are both built on it, so a badge
counts exactly the tickets its tab lists. A new filter goes into `Filters`, `_FilterShape`,
`_filter_values` and `where`, and both endpoints have it.

Statements are built with SQLAlchemy Core once per *shape* (which filters are present, the
sort, whether a cursor follows; for counts, the grouping) and compiled once; the values travel
as parameters, lists as arrays, so a filter's text does not depend on how many values it has.
A queue screen uses a handful of shapes, so after the first requests every list runs a
statement compiled before (building the query per request cost a third of a list request's
CPU: bench/request_cpu.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypedDict

import orjson
from sqlalchemy import (
    ColumnElement,
    DateTime,
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
from sqlalchemy.dialects.postgresql import ARRAY, JSONPATH

from flowdesk.db.query import Connection, Query, rows
from flowdesk.models import tickets
from flowdesk.tickets.repository import TicketRow
from flowdesk.tickets.sla_listing import SLA_DUE, sla_due_key, sla_filter
from flowdesk.tickets.statements import TICKET_COLUMNS, with_names


@dataclass(frozen=True, slots=True)
class Filters:
    """Which tickets: what GET /v1/tickets and its counts filter on (the caller's visibility
    comes on top, from the requester a desk user is limited to)."""

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
    started_after: datetime | None = None
    started_before: datetime | None = None
    resolved_after: datetime | None = None
    resolved_before: datetime | None = None
    closed_after: datetime | None = None
    closed_before: datetime | None = None
    q: str | None = None
    # The tickets linked to this asset (its "Tickets" history).
    asset: uuid.UUID | None = None
    # Tickets whose status their workflow no longer has: (workflow, its statuses) pairs.
    stale_in: Sequence[tuple[str, Sequence[str]]] | None = None
    # `?answer.<key>=<value>`: (question key, values) pairs; a ticket matches when its answer
    # to each key is (or, multi-choice, includes) one of the values.
    answers: Sequence[tuple[str, Sequence[str]]] = ()
    # Tickets with an SLA clock `breached` or `at_risk` (flowdesk.tickets.sla).
    sla_state: str | None = None


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A page of the filtered tickets: the sort, and the key of the previous page's last row."""

    filters: Filters = field(default_factory=Filters)
    sort: str = "-created"
    after: tuple[Any, uuid.UUID] | None = None
    limit: int = 50


# The sort orders' columns.
SORT_COLUMNS = {"created": "created_at", "updated": "updated_at", "priority": "priority_rank"}
# What counts can be grouped by: (the `group_by` value, the column).
GROUP_COLUMNS: Final = {
    "status": "status",
    "status_category": "status_category",
    "assignee": "assignee_id",
    "priority": "priority",
}

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
    ("started_after", "started_at", ">="),
    ("started_before", "started_at", "<"),
    ("resolved_after", "resolved_at", ">="),
    ("resolved_before", "resolved_at", "<"),
    ("closed_after", "closed_at", ">="),
    ("closed_before", "closed_at", "<"),
)


@dataclass(frozen=True, slots=True)
class _FilterShape:
    """What decides the WHERE clause's text: which filters are present, not their values."""

    desk: bool
    any_of: tuple[bool, ...]
    hidden: int
    unassigned: bool
    assignee: bool
    requester: bool
    ranges: tuple[bool, ...]
    q: bool
    asset: bool
    stale: int | None
    answers: int
    sla_state: str | None

    @classmethod
    def of(cls, filters: Filters, desk: bool) -> _FilterShape:
        return cls(
            desk=desk,
            any_of=tuple(bool(getattr(filters, name)) for name, _ in _ANY_OF),
            hidden=len(filters.exclude_hidden),
            unassigned=filters.unassigned,
            assignee=filters.assignee is not None,
            requester=filters.requester is not None,
            ranges=tuple(getattr(filters, name) is not None for name, _, _ in _RANGES),
            q=bool(filters.q),
            asset=filters.asset is not None,
            stale=None if filters.stale_in is None else len(filters.stale_in),
            answers=len(filters.answers),
            sla_state=filters.sla_state,
        )


@dataclass(frozen=True, slots=True)
class _PageShape:
    filters: _FilterShape
    sort: str
    after: bool


def _filter_values(
    filters: Filters, tenant_id: uuid.UUID, desk: uuid.UUID | None
) -> dict[str, Any]:
    """The parameters of `where`'s clause for these filters."""
    values: dict[str, Any] = {"tenant_id": tenant_id}
    if desk is not None:
        values["desk_requester"] = desk
    for name, _ in _ANY_OF:
        if getattr(filters, name):
            values[name] = list(getattr(filters, name))
    for i, (workflow, statuses) in enumerate(filters.exclude_hidden):
        values[f"hidden_workflow_{i}"] = workflow
        values[f"hidden_statuses_{i}"] = list(statuses)
    for i, (workflow, statuses) in enumerate(filters.stale_in or ()):
        values[f"known_workflow_{i}"] = workflow
        values[f"known_statuses_{i}"] = list(statuses)
    if filters.assignee is not None:
        values["assignee"] = filters.assignee
    if filters.requester is not None:
        values["requester"] = filters.requester
    for name, _, _ in _RANGES:
        if getattr(filters, name) is not None:
            values[name] = getattr(filters, name)
    if filters.q:
        values["q"] = filters.q
    if filters.asset is not None:
        values["asset"] = filters.asset
    for i, (key, wanted) in enumerate(filters.answers):
        values[f"answer_{i}"] = answer_path(key, wanted)
    return values


def answer_path(key: str, wanted: Sequence[str]) -> str:
    """The SQL/JSON path that finds the answer `key` equal to one of `wanted`: lax mode
    looks into a multi-choice answer's list, so one path serves both kinds of choice.
    Strings are written as JSON strings, which are valid path literals."""
    member = orjson.dumps(key).decode()
    tests = " || ".join(f"@ == {orjson.dumps(v).decode()}" for v in wanted)
    return f"$.{member} ? ({tests})"


def _in_workflow(prefix: str, i: int) -> ColumnElement[bool]:
    return and_(
        tickets.c.workflow == bindparam(f"{prefix}_workflow_{i}", type_=Text),
        tickets.c.status == func.any(bindparam(f"{prefix}_statuses_{i}", type_=_TEXTS)),
    )


def where(shape: _FilterShape) -> list[ColumnElement[bool]]:
    """The conditions on `tickets` of every list and count: the tenant, what a desk user may
    see, and the filters present in `shape` (their values are `_filter_values`)."""
    conditions: list[ColumnElement[bool]] = [
        tickets.c.tenant_id == bindparam("tenant_id", type_=Uuid)
    ]
    if shape.desk:
        # Desk users (no tickets:manage) see only the tickets they requested.
        conditions.append(tickets.c.requester_id == bindparam("desk_requester", type_=Uuid))
    for (name, column), present in zip(_ANY_OF, shape.any_of, strict=True):
        if present:
            conditions.append(tickets.c[column] == func.any(bindparam(name, type_=_TEXTS)))
    for i in range(shape.hidden):
        conditions.append(not_(_in_workflow("hidden", i)))
    if shape.unassigned:
        conditions.append(tickets.c.assignee_id.is_(None))
    elif shape.assignee:
        conditions.append(tickets.c.assignee_id == bindparam("assignee", type_=Uuid))
    if shape.requester:
        conditions.append(tickets.c.requester_id == bindparam("requester", type_=Uuid))
    for (name, column, op), present in zip(_RANGES, shape.ranges, strict=True):
        if present:
            conditions.append(
                tickets.c[column].op(op)(bindparam(name, type_=tickets.c[column].type))
            )
    if shape.q:
        conditions.append(
            tickets.c.search.op("@@")(
                func.websearch_to_tsquery(
                    literal_column("'english'::regconfig"), bindparam("q", type_=Text)
                )
            )
        )
    if shape.asset:
        conditions.append(tickets.c.asset_id == bindparam("asset", type_=Uuid))
    for i in range(shape.answers):
        # `@?` with a path of equalities is answered by the GIN index in jsonb_path_ops
        # (ix_tickets_answers), as containment would be.
        conditions.append(tickets.c.answers.op("@?")(bindparam(f"answer_{i}", type_=JSONPATH)))
    if shape.stale is not None:
        known = [_in_workflow("known", i) for i in range(shape.stale)]
        if known:  # with no workflow at all, every ticket is stale
            conditions.append(not_(or_(*known)))
    if shape.sla_state is not None:
        conditions.append(sla_filter(shape.sla_state))
    return conditions


def _page_statement(shape: _PageShape) -> Query:
    conditions = where(shape.filters)
    descending = shape.sort.startswith("-")
    if shape.sort == SLA_DUE:
        return _sla_page_statement(shape, conditions)
    column = tickets.c[SORT_COLUMNS[shape.sort.lstrip("-")]]
    if shape.after:
        key = tuple_(column, tickets.c.id)
        bound = tuple_(bindparam("after_key", type_=column.type), bindparam("after_id", type_=Uuid))
        conditions.append(key < bound if descending else key > bound)
    order = (column.desc(), tickets.c.id.desc()) if descending else (column, tickets.c.id)
    # The page is chosen from tickets alone, then the names are joined to its rows: with the
    # joins at the same level, PostgreSQL read and sorted all of a busy tenant's tickets.
    page = (
        select(*TICKET_COLUMNS)
        .where(*conditions)
        .order_by(*order)
        .limit(bindparam("limit", type_=Integer))
        .subquery("page")
    )
    page_column = page.c[column.name]
    # Planned per call: a page of the million-ticket tenant needs the plan that walks the
    # sort's index and stops; a plan made for any tenant sorts all of one's matches.
    return Query(
        with_names(page).order_by(
            *((page_column.desc(), page.c.id.desc()) if descending else (page_column, page.c.id))
        ),
        planned_per_call=True,
    )


def _sla_page_statement(shape: _PageShape, conditions: list[ColumnElement[bool]]) -> Query:
    """Nearest SLA due time first (tickets without a running clock last), by id among
    equals: the key is computed per ticket, so the page carries it (`sla_due_at`)."""
    key = sla_due_key()
    if shape.after:
        bound = tuple_(
            bindparam("after_key", type_=DateTime(timezone=True)),
            bindparam("after_id", type_=Uuid),
        )
        conditions.append(tuple_(key, tickets.c.id) > bound)
    page = (
        select(*TICKET_COLUMNS, key.label("sla_due_at"))
        .where(*conditions)
        .order_by(key, tickets.c.id)
        .limit(bindparam("limit", type_=Integer))
        .subquery("page")
    )
    return Query(with_names(page).order_by(page.c.sla_due_at, page.c.id), planned_per_call=True)


_PAGES: dict[_PageShape, Query] = {}


async def page(
    conn: Connection, tenant_id: uuid.UUID, requester_only: uuid.UUID | None, query: ListQuery
) -> list[TicketRow]:
    """One page of tickets (limit + 1 rows: the extra one tells whether a next page exists)."""
    shape = _PageShape(
        _FilterShape.of(query.filters, requester_only is not None),
        query.sort,
        query.after is not None,
    )
    statement = _PAGES.get(shape)
    if statement is None:
        statement = _PAGES[shape] = _page_statement(shape)
    values = _filter_values(query.filters, tenant_id, requester_only)
    values["limit"] = query.limit + 1
    if query.after is not None:
        values["after_key"], values["after_id"] = query.after
    return await rows(conn, TicketRow, statement, **values)


class CountRow(TypedDict):
    key: Any
    count: int


def _count_statement(shape: _FilterShape, group_by: str) -> Query:
    # One pass over the filtered tickets (the same rows a list would page through), grouped
    # in memory: no join, and no column beyond the filters' and the key's is read.
    column = tickets.c[GROUP_COLUMNS[group_by]]
    count = func.count().label("count")
    return Query(
        select(column.label("key"), count)
        .where(*where(shape))
        .group_by(column)
        .order_by(count.desc(), column.asc().nulls_last()),
        planned_per_call=True,
    )


_COUNTS: dict[tuple[_FilterShape, str], Query] = {}


async def counts(
    conn: Connection,
    tenant_id: uuid.UUID,
    requester_only: uuid.UUID | None,
    filters: Filters,
    group_by: str,
) -> list[CountRow]:
    """How many of the filtered tickets the caller may see have each value of `group_by`
    (values no ticket has are absent), most first."""
    shape = (_FilterShape.of(filters, requester_only is not None), group_by)
    statement = _COUNTS.get(shape)
    if statement is None:
        statement = _COUNTS[shape] = _count_statement(*shape)
    return await rows(
        conn, CountRow, statement, **_filter_values(filters, tenant_id, requester_only)
    )
