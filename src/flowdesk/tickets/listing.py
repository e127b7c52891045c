"""Listing tickets: filters, full-text search, sorting and keyset pages, scoped to one
tenant and, for a desk user, to the tickets that user requested (`_Where.__init__`).

The query is written as SQL text from fixed fragments, one per filter, with positional
parameters (lists travel as arrays, so a filter's text does not depend on how many values it
has): the same combination of filters is the same statement, which asyncpg keeps prepared.
Building it with SQLAlchemy Core cost most of a list request's CPU (the page subquery's
column proxies were made anew for every request: ~35%, bench/request_cpu.py).

It runs on the SQLAlchemy engine's connections, whose sessions force custom plans
(flowdesk.db.engine): a filter's best plan depends on its values (a rare search word wants
the full-text index, a common one the date order), and a prepared statement's generic plan
would pick one for all.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from flowdesk.tickets.repository import Row
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


# The sort orders: the column, and its type for the cursor's key.
_SORTS = {
    "created": ("created_at", "timestamptz"),
    "updated": ("updated_at", "timestamptz"),
    "priority": ("priority_rank", "smallint"),
}


class _Where:
    """The conditions of the page query and their positional parameters."""

    def __init__(self, tenant_id: uuid.UUID, requester_only: uuid.UUID | None) -> None:
        self.args: list[Any] = []
        self.clauses = [f"tenant_id = {self.param(tenant_id, 'uuid')}"]
        if requester_only is not None:
            # Desk users (no tickets:manage) see only the tickets they requested.
            self.clauses.append(f"requester_id = {self.param(requester_only, 'uuid')}")

    def param(self, value: Any, sql_type: str) -> str:
        self.args.append(value)
        return f"${len(self.args)}::{sql_type}"

    def add(self, clause: str) -> None:
        self.clauses.append(clause)

    def any_of(self, column: str, values: Sequence[str]) -> None:
        if values:
            self.add(f"{column} = ANY({self.param(list(values), 'text[]')})")

    def in_workflow_statuses(self, workflow: str, statuses: Sequence[str]) -> str:
        return (
            f"(workflow = {self.param(workflow, 'text')}"
            f" AND status = ANY({self.param(list(statuses), 'text[]')}))"
        )


def page_statement(
    tenant_id: uuid.UUID, requester_only: uuid.UUID | None, query: ListQuery
) -> tuple[str, list[Any]]:
    """The SQL of one page (limit + 1 rows, to tell whether there is a next) and its
    parameters."""
    where = _Where(tenant_id, requester_only)
    where.any_of("status", query.statuses)
    where.any_of("status_category", query.categories)
    for workflow, hidden in query.exclude_hidden:
        where.add(f"NOT {where.in_workflow_statuses(workflow, hidden)}")
    if query.unassigned:
        where.add("assignee_id IS NULL")
    elif query.assignee is not None:
        where.add(f"assignee_id = {where.param(query.assignee, 'uuid')}")
    if query.requester is not None:
        where.add(f"requester_id = {where.param(query.requester, 'uuid')}")
    where.any_of("priority", query.priorities)
    where.any_of("type", query.types)
    where.any_of("catalog_item", query.catalog_items)
    if query.created_after:
        where.add(f"created_at >= {where.param(query.created_after, 'timestamptz')}")
    if query.created_before:
        where.add(f"created_at < {where.param(query.created_before, 'timestamptz')}")
    if query.updated_after:
        where.add(f"updated_at >= {where.param(query.updated_after, 'timestamptz')}")
    if query.updated_before:
        where.add(f"updated_at < {where.param(query.updated_before, 'timestamptz')}")
    if query.q:
        where.add(f"search @@ websearch_to_tsquery('english', {where.param(query.q, 'text')})")
    if query.stale_in is not None:
        known = [where.in_workflow_statuses(w, s) for w, s in query.stale_in]
        if known:  # with no workflow at all, every ticket is stale
            where.add(f"NOT ({' OR '.join(known)})")
    descending = query.sort.startswith("-")
    column, sql_type = _SORTS[query.sort.lstrip("-")]
    if query.after is not None:
        key, ident = query.after
        after = f"({where.param(key, sql_type)}, {where.param(ident, 'uuid')})"
        where.add(f"({column}, id) {'<' if descending else '>'} {after}")
    direction = "DESC" if descending else "ASC"
    order = f"{column} {direction}, id {direction}"
    limit = where.param(query.limit + 1, "int")
    # The page is chosen from tickets alone, then the names are joined to its rows: with the
    # joins at the same level, PostgreSQL read and sorted all of a busy tenant's tickets for
    # every page. The full-text vector is left out: reading it back costs more than the rest.
    sql = f"""
SELECT page.*, r.name AS requester_name, a.name AS assignee_name
FROM (SELECT {TICKET_COLUMNS} FROM tickets
      WHERE {" AND ".join(where.clauses)}
      ORDER BY {order} LIMIT {limit}) AS page
JOIN users r ON r.tenant_id = page.tenant_id AND r.id = page.requester_id
LEFT JOIN users a ON a.tenant_id = page.tenant_id AND a.id = page.assignee_id
ORDER BY page.{column} {direction}, page.id {direction}
"""
    return sql, where.args


class TicketListing:
    """The queue and the desk list: the one ticket query built dynamically, for every
    combination of filters and sort orders."""

    def __init__(
        self, engine: AsyncEngine, tenant_id: uuid.UUID, *, requester_only: uuid.UUID | None
    ) -> None:
        self.engine = engine
        self.tenant_id = tenant_id
        self.requester_only = requester_only

    async def page(self, query: ListQuery) -> Sequence[Row]:
        sql, args = page_statement(self.tenant_id, self.requester_only, query)
        async with self.engine.connect() as conn:
            # The pooled connection's asyncpg itself: one statement, outside a transaction
            # (no BEGIN and COMMIT around a read), and rows as asyncpg gives them rather than
            # through SQLAlchemy's cursor and result layers (~15% of a list request).
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None  # a checked-out connection has its driver's
            rows: list[Row] = await driver.fetch(sql, *args)
            return rows
