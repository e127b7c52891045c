"""Comments, the audit trail and links of a ticket (approvals: flowdesk.tickets.approvals).

Each write (a comment, a link, an unlink) is one statement with its audit event:
both exist or neither does (flowdesk.tickets.statements).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from flowdesk.auth.principal import Principal
from flowdesk.db.query import Connection
from flowdesk.errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited
from flowdesk.pagination import Page, next_cursor
from flowdesk.tickets import lifecycle, sla
from flowdesk.tickets.facts import format_number, visible_to
from flowdesk.tickets.repository import (
    CommentRow,
    Event,
    Message,
    TicketRepository,
    TicketRow,
)
from flowdesk.tickets.schemas import (
    CommentIn,
    CommentOut,
    EventOut,
    LinkOut,
    UserRef,
)
from flowdesk.tickets.service import ATTEMPTS, locate
from flowdesk.vocabulary import TICKETS_MANAGE
from flowdesk.workflow import Catalog
from flowdesk.workflow.model import RETURN

# The action an automatic move on a requester's reply is recorded as (RT's AutoOpen).
ON_REPLY = "on_reply"
# What one ticket may collect: every write is allowed to the lowest privilege that may make
# it, and without a bound one caller could grow a ticket (and its trail) without end.
COMMENTS_PER_MINUTE = 20  # by one author on one ticket
LINKS_MAX = 200


def _require_agent(principal: Principal, what: str) -> None:
    if not principal.can(TICKETS_MANAGE):
        raise Forbidden(
            f"{what} needs the '{TICKETS_MANAGE}' permission.",
            extra={"required_permission": TICKETS_MANAGE},
        )


async def add_comment(
    conn: Connection, catalog: Catalog, principal: Principal, ref: str, body: CommentIn
) -> CommentOut:
    if body.visibility == "internal" and not principal.can(TICKETS_MANAGE):
        raise Forbidden(
            "Requesters can only write external comments.",
            extra={"required_permission": TICKETS_MANAGE},
        )
    comment_id = uuid.uuid4()
    said = {"comment_id": comment_id, "visibility": body.visibility}
    commented: Event = {"kind": "commented", "visibility": body.visibility, "data": said}
    announced: Message = {"topic": "ticket.comment_added", "payload": said}
    for _ in range(ATTEMPTS):
        repo, row = await _changeable(conn, catalog, principal, ref)
        if await repo.recent_comments(row["id"], principal.user_id) >= COMMENTS_PER_MINUTE:
            raise RateLimited(
                f"At most {COMMENTS_PER_MINUTE} comments a minute by one author on a ticket.",
                60,
            )
        target = _auto_open(catalog, principal, row, body)
        stopped = _reply_clocks(catalog, principal, row, body)
        if target is None and stopped:
            # A reply that stops SLA clocks (`stop: {events: [requester_reply]}`) changes
            # the ticket: the clocks stop in the statement that adds it.
            written = await repo.update(
                row,
                {"sla": stopped},
                principal.user_id,
                [commented],
                [announced],
                (comment_id, body.body, body.visibility),
            )
            if written is not None:
                return await _added(repo, written, comment_id)
            continue
        if target is None:
            comment = await repo.add_comment(
                row,
                principal.user_id,
                body.body,
                body.visibility,
                [commented],
                [announced],
                comment_id,
            )
            if comment is None:
                continue  # the status changed meanwhile: decide again
            return _comment_out(comment)
        # RT's AutoOpen: the requester's reply moves the ticket on, in the same statement.
        moved = {"action": ON_REPLY, "from": row["status"], "to": target}
        changes, status_changed = lifecycle.moving(catalog.workflow(row["workflow"]), row, target)
        if stopped:
            changes["sla"] = sla.merged(changes.get("sla", []), stopped)
        written = await repo.update(
            row,
            changes,
            principal.user_id,
            [{"kind": "transitioned", "data": moved}, commented],
            [*status_changed, announced],
            (comment_id, body.body, body.visibility),
        )
        if written is not None:
            return CommentOut(
                id=comment_id,
                author=UserRef(id=principal.user_id, name=written["requester_name"]),
                body=body.body,
                visibility=body.visibility,
                created_at=written["updated_at"],
            )
    raise Conflict("The ticket kept changing while the reply was added; retry it.")


def _reply_clocks(
    catalog: Catalog, principal: Principal, row: TicketRow, body: CommentIn
) -> list[sla.ClockOp]:
    """The SLA clocks an external reply stops: the requester's, or anyone else's (an
    agent's answer), as the policies' `stop.events` say."""
    workflow = catalog.workflows.get(row["workflow"])
    if body.visibility != "external" or workflow is None or not workflow.sla_policies:
        return []
    return sla.on_reply(
        workflow,
        row["catalog_item"],
        row["sla"],
        by_requester=principal.user_id == row["requester_id"],
    )


async def _added(repo: TicketRepository, written: TicketRow, comment_id: uuid.UUID) -> CommentOut:
    """The comment a ticket update just added (written in its statement, at its time)."""
    since = (written["updated_at"] - timedelta(milliseconds=1), uuid.UUID(int=0))
    found = await repo.comments(written["id"], external_only=False, after=since, limit=20)
    return _comment_out(next(m for m in found if m["id"] == comment_id))


def _auto_open(
    catalog: Catalog, principal: Principal, row: TicketRow, body: CommentIn
) -> str | None:
    """The status a requester's reply moves the ticket to, when its workflow says so."""
    if body.visibility != "external" or principal.user_id != row["requester_id"]:
        return None
    workflow = catalog.workflows.get(row["workflow"])
    target = workflow.on_reply.get(row["status"]) if workflow else None
    if target == RETURN and workflow is not None:
        # Back where the ticket came from (`on_reply: {WAITING_ON_CUSTOMER: return}`); with
        # no such status known, the reply moves nothing.
        back = row["previous_status"]
        return back if back in workflow.statuses and back != row["status"] else None
    return target


def _comment_out(m: CommentRow) -> CommentOut:
    return CommentOut(
        id=m["id"],
        author=UserRef(id=m["author_id"], name=m["author_name"]),
        body=m["body"],
        visibility=m["visibility"],
        created_at=m["created_at"],
    )


async def list_comments(
    conn: Connection,
    catalog: Catalog,
    principal: Principal,
    ref: str,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Page[CommentOut]:
    repo, row = await locate(conn, catalog, principal, ref)
    rows = await repo.comments(
        row["id"], external_only=not principal.is_agent, after=after, limit=limit
    )
    items = [_comment_out(r) for r in rows[:limit]]
    cursor = next_cursor(rows, limit, lambda r: [r["created_at"], r["id"]])
    return Page[CommentOut](items=items, next_cursor=cursor)


async def list_events(
    conn: Connection,
    catalog: Catalog,
    principal: Principal,
    ref: str,
    after: int | None,
    limit: int,
) -> Page[EventOut]:
    repo, row = await locate(conn, catalog, principal, ref)
    rows = await repo.events(
        row["id"], external_only=not principal.is_agent, after=after, limit=limit
    )
    items = [
        EventOut(
            id=r["id"],
            kind=r["kind"],
            actor=UserRef(id=r["actor_id"], name=r["actor_name"]) if r["actor_id"] else None,
            data=r["data"],
            created_at=r["created_at"],
        )
        for r in rows[:limit]
    ]
    cursor = next_cursor(rows, limit, lambda r: [r["id"]])
    return Page[EventOut](items=items, next_cursor=cursor)


async def list_links(
    conn: Connection,
    catalog: Catalog,
    principal: Principal,
    ref: str,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int | None = None,
) -> list[LinkOut]:
    """The ticket's links, oldest first: with `limit`, a page of them (after `after`), and one
    more when another page follows."""
    repo, row = await locate(conn, catalog, principal, ref)
    found = (
        await repo.links(row["id"])
        if limit is None
        else await repo.links_page(row["id"], after, limit + 1)
    )
    # A requester learns nothing of a linked ticket they cannot read, not even its number.
    seen_by = visible_to(principal)
    return [
        LinkOut(
            id=r["id"],
            kind=r["kind"],
            target_id=r["target_id"],
            target_number=format_number(r["target_prefix"], r["target_number"])
            if seen_by in (None, r["target_requester_id"])
            else None,
            created_at=r["created_at"],
        )
        for r in found
    ]


async def add_link(
    conn: Connection, catalog: Catalog, principal: Principal, ref: str, kind: str, target_ref: str
) -> LinkOut:
    for _ in range(ATTEMPTS):
        repo, row = await _changeable(conn, catalog, principal, ref, agents_only="Linking tickets")
        try:
            _, target = await locate(conn, catalog, principal, target_ref)
        except NotFound as exc:
            raise InvalidInput(
                f"No ticket '{target_ref}'.", [("/target", "no such ticket")]
            ) from exc
        if target["id"] == row["id"]:
            raise InvalidInput("A ticket cannot link to itself.", [("/target", "same ticket")])
        if len(await repo.links(row["id"])) >= LINKS_MAX:
            raise Conflict(f"A ticket holds at most {LINKS_MAX} links: remove one first.")
        link_id = await repo.add_link(
            row,
            kind,
            target["id"],
            principal.user_id,
            [{"kind": "linked", "data": {"kind": kind, "target_id": target["id"]}}],
        )
        if link_id is not None:
            links = await list_links(conn, catalog, principal, ref)
            return next(link for link in links if link.id == link_id)
        if not await _moved_on(conn, catalog, principal, ref, row):
            raise Conflict(f"That '{kind}' link already exists.")
    raise Conflict("The ticket kept changing while the link was added; retry it.")


async def delete_link(
    conn: Connection, catalog: Catalog, principal: Principal, ref: str, link_id: uuid.UUID
) -> None:
    for _ in range(ATTEMPTS):
        repo, row = await _changeable(
            conn, catalog, principal, ref, agents_only="Unlinking tickets"
        )
        # Links never change, so what this read finds is what the delete removes; a link
        # removed meanwhile deletes nothing and records nothing.
        link = next((k for k in await repo.links(row["id"]) if k["id"] == link_id), None)
        if link is None:
            raise NotFound(f"No link {link_id} on this ticket.")
        unlinked: Event = {
            "kind": "unlinked",
            "data": {"kind": link["kind"], "target_id": link["target_id"]},
        }
        if await repo.delete_link(row, link_id, principal.user_id, [unlinked]):
            return
        if not await _moved_on(conn, catalog, principal, ref, row):
            raise NotFound(f"No link {link_id} on this ticket.")
    raise Conflict("The ticket kept changing while the link was removed; retry it.")


async def _changeable(
    conn: Connection, catalog: Catalog, principal: Principal, ref: str, *, agents_only: str = ""
) -> tuple[TicketRepository, TicketRow]:
    """The ticket (404 first: another's ticket is not found rather than forbidden), then who
    may write to it (`agents_only` names the write), then whether it may change at all."""
    repo, row = await locate(conn, catalog, principal, ref)
    if agents_only:
        _require_agent(principal, agents_only)
    lifecycle.ensure_changeable(catalog, row)
    return repo, row


async def _moved_on(
    conn: Connection, catalog: Catalog, principal: Principal, ref: str, seen: TicketRow
) -> bool:
    """Whether a write that wrote nothing did so because the ticket changed status after
    `seen` was read (then the caller decides again, on the fresh row)."""
    _, row = await locate(conn, catalog, principal, ref)
    return row["status"] != seen["status"]
