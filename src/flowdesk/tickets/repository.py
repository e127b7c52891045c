"""The ticket repository: every read and write of one ticket and what hangs off it, run on one
connection (flowdesk.tickets.statements holds the statements).

A repository is bound to one tenant and, for a desk user, to the tickets that user requested:
`requester_only` is the one place that scoping lives.

Every write is one statement that changes the ticket (or its comments, links, approvals),
appends its audit events and queues its outbox messages together. Outside a transaction that
is one round trip and its own atomic commit: a create holds the tenant's counter row for that
statement only, and an update applies only if the ticket is still at the version the decision
was made on (docs/adr/0001-one-statement-writes.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NotRequired, TypedDict, TypeVar, cast

from flowdesk.db.query import Connection, Query, row, rows, value
from flowdesk.tickets import counters
from flowdesk.tickets import statements as sql

# A row type read by a shared page helper.
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Ref:
    """A ticket reference from a URL: its id, or its printed number (prefix + digits)."""

    id: uuid.UUID | None = None
    prefix: str | None = None
    number: int | None = None


class TicketRow(TypedDict):
    tenant_id: uuid.UUID
    id: uuid.UUID
    number: int
    prefix: str
    title: str
    description: str
    type: str
    catalog_item: str
    workflow: str
    status: str
    status_category: str
    previous_status: str | None
    priority: str
    priority_rank: int
    requester_id: uuid.UUID
    assignee_id: uuid.UUID | None
    resolution: str | None
    fields: dict[str, Any]
    # The intake form's answers (flowdesk.workflow.form_schema.intake).
    answers: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    timer_due_at: datetime | None
    asset_id: uuid.UUID | None
    movement_id: uuid.UUID | None
    # The SLA clocks, as JSON objects (flowdesk.tickets.sla_statements.clocks_json).
    sla: list[dict[str, Any]]
    requester_name: str
    assignee_name: str | None
    asset_external_ref: str | None
    asset_tag: str | None
    asset_name: str | None
    asset_type: str | None
    asset_deleted_at: datetime | None
    movement_from: str | None
    movement_to: str | None
    movement_moved_at: datetime | None


class DirectoryRow(TypedDict):
    name: str
    user_id: uuid.UUID


class HolderRow(TypedDict):
    user_id: uuid.UUID
    permissions: list[str]


class AgentRow(TypedDict):
    id: uuid.UUID
    name: str
    email: str


class CommentRow(TypedDict):
    id: uuid.UUID
    author_id: uuid.UUID
    author_name: str
    body: str
    visibility: str
    created_at: datetime


class EventRow(TypedDict):
    id: int
    kind: str
    actor_id: uuid.UUID | None
    actor_name: str | None
    data: dict[str, Any]
    created_at: datetime


# Before any row's created_at: the key the first page of a list starts after.
FIRST_KEY_TIME = datetime(1970, 1, 1, tzinfo=UTC)


class LinkRow(TypedDict):
    id: uuid.UUID
    kind: str
    target_id: uuid.UUID
    target_prefix: str
    target_number: int
    target_requester_id: uuid.UUID
    created_at: datetime


class ApprovalRow(TypedDict):
    id: uuid.UUID
    name: str
    approver_id: uuid.UUID
    approver_name: str
    created_at: datetime


class ApproverRow(TypedDict):
    email: str
    requester_manager_id: uuid.UUID | None
    groups: list[str] | None


class Event(TypedDict):
    """An audit event of a change, as a use case describes it."""

    kind: str
    data: dict[str, Any]
    # internal events (internal comments) are never shown to requesters; default external.
    visibility: NotRequired[str]


class Message(TypedDict):
    """An outbox message of a change; the statement adds the ticket's id to its payload."""

    topic: str
    payload: dict[str, Any]


class NewTicket(TypedDict):
    title: str
    description: str
    type: str
    catalog_item: str
    workflow: str
    status: str
    # None only for a status its workflow lacks, which the engine never produces (the
    # column's NOT NULL would refuse it).
    status_category: str | None
    priority: str
    requester_id: uuid.UUID
    fields: dict[str, Any]
    answers: dict[str, Any]
    asset_id: uuid.UUID | None
    movement_id: uuid.UUID | None
    # The lifecycle columns (flowdesk.tickets.lifecycle): True stamps now, a delay arms the
    # status's timer.
    started_at: bool | None
    resolved_at: bool | None
    closed_at: bool | None
    timer_due_at: timedelta | None
    # The SLA clock operations of entering the status (flowdesk.tickets.sla), if any.
    sla: NotRequired[list[Any]]


class LinkTargets(TypedDict):
    asset_live: bool | None
    movement_asset_id: uuid.UUID | None


class _Id(TypedDict):
    id: uuid.UUID


class _LinkId(TypedDict):
    link_id: uuid.UUID


_UPDATES: dict[tuple[tuple[str, ...], bool], Query] = {}


class TicketRepository:
    def __init__(
        self, conn: Connection, tenant_id: uuid.UUID, *, requester_only: uuid.UUID | None
    ) -> None:
        self.conn = conn
        self.tenant_id = tenant_id
        # Desk users (not agents) reach only the tickets they requested.
        self.requester_only = requester_only

    # --- the ticket ----------------------------------------------------------------------

    async def get(self, ref: Ref) -> TicketRow | None:
        if ref.id is not None:
            return await row(
                self.conn,
                TicketRow,
                sql.GET_BY_ID,
                tenant_id=self.tenant_id,
                id=ref.id,
                requester_only=self.requester_only,
            )
        return await row(
            self.conn,
            TicketRow,
            sql.GET_BY_NUMBER,
            tenant_id=self.tenant_id,
            number=ref.number,
            prefix=ref.prefix,
            requester_only=self.requester_only,
        )

    async def link_targets(
        self, asset_id: uuid.UUID | None, movement_id: uuid.UUID | None
    ) -> LinkTargets:
        found = await row(
            self.conn,
            LinkTargets,
            sql.LINK_TARGETS,
            tenant_id=self.tenant_id,
            asset_id=asset_id,
            movement_id=movement_id,
        )
        assert found is not None  # a SELECT without FROM has its one row
        return found

    async def insert(
        self,
        values: NewTicket,
        actor_id: uuid.UUID,
        events: list[Event],
        outbox: list[Message],
        approvals: Sequence[str] = (),
    ) -> TicketRow | None:
        """The new ticket, or None when its requester is not a live user of the tenant, or
        its asset not a live asset, or its movement not one of that asset (then no number
        was taken). `approvals` are given by the actor with the filing."""
        clocks = values.get("sla")
        created = await row(
            self.conn,
            TicketRow,
            sql.CREATE_WITH_SLA if clocks else sql.CREATE,
            **values,
            tenant_id=self.tenant_id,
            actor_id=actor_id,
            events=events,
            outbox=outbox,
            filed_approvals=list(approvals),
        )
        if created is not None:
            counters.count_created(values["workflow"])
        return await self._with_clocks(created) if clocks else created

    async def _with_clocks(self, written: TicketRow | None) -> TicketRow | None:
        """The written row with its clocks as the write left them: a statement's own reads
        do not see what its CTEs wrote, so a write that moved a clock reads them again."""
        if written is None:
            return None
        clocks = await value(self.conn, sql.CLOCKS, tenant_id=self.tenant_id, id=written["id"])
        return cast(TicketRow, {**written, "sla": clocks})

    async def update(
        self,
        current: TicketRow,
        changes: dict[str, Any],
        actor_id: uuid.UUID | None,
        events: list[Event],
        outbox: list[Message],
        comment: tuple[uuid.UUID, str, str] | None = None,
        cleared_approvals: Sequence[str] = (),
    ) -> TicketRow | None:
        """Apply `changes` if the ticket is still at `current`'s version; None if it moved on
        (the caller decides again on a fresh read). `comment` is (id, body, visibility);
        the approvals named `cleared_approvals` are deleted with the change."""
        columns = tuple(sorted(changes))
        key = (columns, bool(cleared_approvals))
        statement = _UPDATES.get(key)
        if statement is None:
            statement = _UPDATES[key] = sql.update_statement(
                columns, clears_approvals=bool(cleared_approvals)
            )
        comment_id, body, visibility = comment or (None, None, None)
        extra = {"cleared_approvals": list(cleared_approvals)} if cleared_approvals else {}
        written = await row(
            self.conn,
            TicketRow,
            statement,
            **{f"set_{column}": v for column, v in changes.items()},
            tenant_id=self.tenant_id,
            id=current["id"],
            version=current["version"],
            actor_id=actor_id,
            events=events,
            outbox=outbox,
            comment_id=comment_id,
            comment_body=body,
            comment_visibility=visibility,
            **extra,
        )
        if written is not None:
            counters.count_transitions(current["workflow"], events)
        return await self._with_clocks(written) if changes.get("sla") else written

    # --- people --------------------------------------------------------------------------

    async def owner_directory(
        self, names: Sequence[str], grantors: Mapping[str, frozenset[str]]
    ) -> dict[str, tuple[str, ...]]:
        """Who each owner a workflow names is in this tenant (user ids, as strings): a user
        by e-mail or by a name no other user has, a group's members, or, for a name in
        `grantors` (a permission), everyone holding a permission that grants it."""
        found: dict[str, list[str]] = {name: [] for name in names}
        matches = await rows(
            self.conn, DirectoryRow, sql.OWNER_DIRECTORY, tenant_id=self.tenant_id, names=names
        )
        for match in matches:
            found[match["name"]].append(str(match["user_id"]))
        wanted = sorted(set().union(*grantors.values())) if grantors else []
        if wanted:
            holders = await rows(
                self.conn,
                HolderRow,
                sql.PERMISSION_HOLDERS,
                tenant_id=self.tenant_id,
                grantors=wanted,
            )
            for holder in holders:
                held = set(holder["permissions"])
                for name, granting in grantors.items():
                    if not held.isdisjoint(granting):
                        found[name].append(str(holder["user_id"]))
        return {name: tuple(dict.fromkeys(users)) for name, users in found.items()}

    async def is_agent(self, user_id: uuid.UUID) -> bool:
        """A live user whose groups grant tickets:manage (or admin, which implies it)."""
        found = await value(self.conn, sql.IS_AGENT, tenant_id=self.tenant_id, user_id=user_id)
        return found is not None

    async def agents(
        self, pattern: str | None, after: tuple[str, uuid.UUID] | None, limit: int
    ) -> list[AgentRow]:
        """The users `is_agent` holds true of, by name, whose name or e-mail matches the LIKE
        `pattern` (flowdesk.db.like; None for all): `limit + 1` of them after `after`."""
        after_name, after_id = after or (None, None)
        return await rows(
            self.conn,
            AgentRow,
            sql.AGENTS,
            tenant_id=self.tenant_id,
            pattern=pattern,
            after_name=after_name,
            after_id=after_id,
            limit=limit + 1,
        )

    # --- comments and the record ---------------------------------------------------------

    # Comments, links and approvals are written only while the ticket is still in the status
    # of `ticket`, the row the decision was made on; None when it moved on meanwhile.

    async def add_comment(
        self,
        ticket: TicketRow,
        author_id: uuid.UUID,
        body: str,
        visibility: str,
        events: list[Event],
        outbox: list[Message],
        comment_id: uuid.UUID,
    ) -> CommentRow | None:
        return await row(
            self.conn,
            CommentRow,
            sql.ADD_COMMENT,
            tenant_id=self.tenant_id,
            id=ticket["id"],
            status=ticket["status"],
            comment_id=comment_id,
            actor_id=author_id,
            body=body,
            visibility=visibility,
            events=events,
            outbox=outbox,
        )

    async def comments(
        self,
        ticket_id: uuid.UUID,
        *,
        external_only: bool,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[CommentRow]:
        after_time, after_id = after or (FIRST_KEY_TIME, uuid.UUID(int=0))
        return await rows(
            self.conn,
            CommentRow,
            sql.COMMENTS,
            tenant_id=self.tenant_id,
            id=ticket_id,
            external_only=external_only,
            after_time=after_time,
            after_id=after_id,
            limit=limit + 1,
        )

    async def events(
        self, ticket_id: uuid.UUID, *, external_only: bool, after: int | None, limit: int
    ) -> list[EventRow]:
        return await rows(
            self.conn,
            EventRow,
            sql.EVENTS,
            tenant_id=self.tenant_id,
            id=ticket_id,
            external_only=external_only,
            after=after or 0,
            limit=limit + 1,
        )

    # --- links and approvals -------------------------------------------------------------

    async def link_kinds(self, ticket_id: uuid.UUID) -> frozenset[str]:
        found = await rows(self.conn, _Kind, sql.LINK_KINDS, tenant_id=self.tenant_id, id=ticket_id)
        return frozenset(r["kind"] for r in found)

    async def approval_names(self, ticket_id: uuid.UUID) -> frozenset[str]:
        found = await rows(
            self.conn, _Name, sql.APPROVAL_NAMES, tenant_id=self.tenant_id, id=ticket_id
        )
        return frozenset(r["name"] for r in found)

    async def recent_comments(self, ticket_id: uuid.UUID, author_id: uuid.UUID) -> int:
        found = await value(
            self.conn,
            sql.RECENT_COMMENTS,
            tenant_id=self.tenant_id,
            id=ticket_id,
            author_id=author_id,
        )
        return found if isinstance(found, int) else 0

    async def _page(
        self,
        row_type: type[R],
        query: Query,
        ticket_id: uuid.UUID,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[R]:
        """`limit` of the ticket's rows after the key `after` (created_at, id), in that order
        (the first page starts after the smallest key there is)."""
        after_at, after_id = after or (FIRST_KEY_TIME, uuid.UUID(int=0))
        return await rows(
            self.conn,
            row_type,
            query,
            tenant_id=self.tenant_id,
            id=ticket_id,
            after_at=after_at,
            after_id=after_id,
            limit=limit,
        )

    async def links(self, ticket_id: uuid.UUID) -> list[LinkRow]:
        return await rows(self.conn, LinkRow, sql.LINKS, tenant_id=self.tenant_id, id=ticket_id)

    async def links_page(
        self, ticket_id: uuid.UUID, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[LinkRow]:
        """`limit` links after the key `after` (created_at, id), oldest first."""
        return await self._page(LinkRow, sql.LINKS_PAGE, ticket_id, after, limit)

    async def add_link(
        self,
        ticket: TicketRow,
        kind: str,
        target_id: uuid.UUID,
        actor_id: uuid.UUID,
        events: list[Event],
    ) -> uuid.UUID | None:
        """The new link's id (recorded with `events`), or None when the same link already
        exists or the ticket moved on (then nothing is written)."""
        added = await row(
            self.conn,
            _LinkId,
            sql.ADD_LINK,
            tenant_id=self.tenant_id,
            id=ticket["id"],
            status=ticket["status"],
            kind=kind,
            target_id=target_id,
            actor_id=actor_id,
            events=events,
            outbox=[],
        )
        return None if added is None else added["link_id"]

    async def delete_link(
        self, ticket: TicketRow, link_id: uuid.UUID, actor_id: uuid.UUID, events: list[Event]
    ) -> bool:
        """Whether the link was there (and is now gone, recorded with `events`)."""
        removed = await row(
            self.conn,
            _Id,
            sql.DELETE_LINK,
            tenant_id=self.tenant_id,
            id=ticket["id"],
            status=ticket["status"],
            link_id=link_id,
            actor_id=actor_id,
            events=events,
            outbox=[],
        )
        return removed is not None

    async def add_approval(
        self,
        ticket: TicketRow,
        name: str,
        approver_id: uuid.UUID,
        events: list[Event],
        outbox: list[Message],
    ) -> ApprovalRow | None:
        """The approval recorded (a second by the same approver breaks the unique index
        `uq_ticket_approvals_approver`), or None when the ticket moved on."""
        return await row(
            self.conn,
            ApprovalRow,
            sql.ADD_APPROVAL,
            tenant_id=self.tenant_id,
            id=ticket["id"],
            status=ticket["status"],
            name=name,
            actor_id=approver_id,
            events=events,
            outbox=outbox,
        )

    async def delete_approval(
        self,
        ticket: TicketRow,
        approval_id: uuid.UUID,
        actor_id: uuid.UUID,
        events: list[Event],
        outbox: list[Message],
    ) -> bool:
        """Whether the approval was there (and is now gone, recorded with `events`); False
        also when the ticket moved on."""
        removed = await row(
            self.conn,
            _Id,
            sql.DELETE_APPROVAL,
            tenant_id=self.tenant_id,
            id=ticket["id"],
            status=ticket["status"],
            approval_id=approval_id,
            actor_id=actor_id,
            events=events,
            outbox=outbox,
        )
        return removed is not None

    async def approver(self, approver_id: uuid.UUID, requester_id: uuid.UUID) -> ApproverRow | None:
        """What the approval policies ask of a live user about a requester's ticket."""
        return await row(
            self.conn,
            ApproverRow,
            sql.APPROVER,
            tenant_id=self.tenant_id,
            approver_id=approver_id,
            requester_id=requester_id,
        )

    async def approvals(self, ticket_id: uuid.UUID) -> list[ApprovalRow]:
        return await rows(
            self.conn, ApprovalRow, sql.APPROVALS, tenant_id=self.tenant_id, id=ticket_id
        )

    async def approvals_page(
        self, ticket_id: uuid.UUID, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[ApprovalRow]:
        """`limit` approvals after the key `after` (created_at, id), oldest first."""
        return await self._page(ApprovalRow, sql.APPROVALS_PAGE, ticket_id, after, limit)


class _Kind(TypedDict):
    kind: str


class _Name(TypedDict):
    name: str
