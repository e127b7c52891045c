"""HTTP endpoints for tickets (/v1/tickets …) and the catalog they are filed against."""

# No `from __future__ import annotations`: the routes made by add_ticket_routes name their
# gates through the factory's arguments, which FastAPI can only read as evaluated annotations.

import uuid
from datetime import datetime
from typing import Annotated, Any

from asyncpg import Record
from asyncpg.pool import PoolAcquireContext
from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel

from flowdesk.api.etag import if_match, not_modified, version_etag
from flowdesk.api.gates import Gate, TicketReader, TicketWriter, read_gate, write_gate
from flowdesk.api.headers import IDEMPOTENCY_KEY, IF_MATCH, IF_NONE_MATCH, documented
from flowdesk.api.idempotency import idempotent
from flowdesk.api.params import cursor_page, documented_query, read_query
from flowdesk.auth.principal import Principal
from flowdesk.errors import InvalidInput
from flowdesk.pagination import (
    Page,
    PageRequest,
    cursor_int,
    cursor_text,
    cursor_time,
    cursor_uuid,
    decode_cursor,
)
from flowdesk.runtime import runtime_of
from flowdesk.tickets import activity, service, transitions
from flowdesk.tickets.facts import TicketJson, dump_json
from flowdesk.tickets.schemas import (
    ApprovalIn,
    ApprovalOut,
    CatalogItemOut,
    CommentIn,
    CommentOut,
    EventOut,
    LinkIn,
    LinkOut,
    TicketCreate,
    TicketListQuery,
    TicketOut,
    TicketPatch,
    TransitionIn,
    TransitionsOut,
)
from flowdesk.workflow import Catalog

router = APIRouter(prefix="/v1", tags=["tickets"])

Cursor = Annotated[str | None, Query(max_length=512)]


def _catalog(request: Request) -> Catalog:
    return runtime_of(request).catalog


def connection(request: Request) -> "PoolAcquireContext[Record]":
    """The request's connection: `async with connection(request) as conn:` in the endpoint
    (not a yield dependency: docs/adr/0005-flat-routes-and-headers.md)."""
    return runtime_of(request).db.connection()


def _sort_key(value: object) -> int | datetime:
    """The sort column's value in a list cursor: a priority rank, or a time."""
    return cursor_int(value) if isinstance(value, int) else cursor_time(value)


def ticket_response(
    ticket: TicketJson, status_code: int = 200, *, location: str | None = None
) -> Response:
    headers = {"ETag": version_etag(ticket["version"])}
    if location:
        headers["Location"] = location
    return Response(
        dump_json(ticket), status_code=status_code, media_type="application/json", headers=headers
    )


def _json(model: BaseModel, status_code: int = 200) -> Response:
    return Response(
        model.model_dump_json().encode(), status_code=status_code, media_type="application/json"
    )


_TICKET: dict[int | str, dict[str, Any]] = {
    200: {"model": TicketOut, "headers": {"ETag": {"description": "The ticket's version."}}}
}


@router.get(
    "/catalog", response_model=list[CatalogItemOut], summary="What a ticket can be filed against"
)
async def catalog_items(request: Request, principal: TicketReader) -> list[CatalogItemOut]:
    return [
        CatalogItemOut(
            name=i.name,
            display_name=i.display_name,
            type=i.type,
            workflow=i.workflow,
            default_priority=i.default_priority,
        )
        for i in _catalog(request).items.values()
    ]


def add_ticket_routes(
    router: APIRouter,
    read_gate: Gate,
    write_gate: Gate,
    extra_responses: dict[int | str, dict[str, Any]] | None = None,
) -> None:
    """The ticket resource's routes (create, list, read, change) on `router`, behind the
    given gates: /v1 puts them behind the portal gates, /public/v1 behind the public API's
    (flowdesk.api.public), with the same code, bodies, errors, ETags and pages."""
    extra = extra_responses or {}

    @router.post(
        "/tickets",
        status_code=status.HTTP_201_CREATED,
        response_model=TicketOut,
        summary="Open a ticket",
        responses=extra,
        openapi_extra=documented(IDEMPOTENCY_KEY),
    )
    async def create_ticket(
        body: TicketCreate, request: Request, principal: Principal = Depends(write_gate)
    ) -> Response:
        async with connection(request) as conn:

            async def handler() -> Response:
                ticket = await service.create_ticket(conn, _catalog(request), principal, body)
                return ticket_response(
                    ticket, 201, location=f"{router.prefix}/tickets/{ticket['id']}"
                )

            return await idempotent(request, principal, conn, handler)

    @router.get(
        "/tickets",
        response_model=Page[TicketOut],
        summary="The queue (agents) or my tickets (requesters)",
        responses=extra,
        openapi_extra=documented_query(TicketListQuery),
    )
    async def list_tickets(request: Request, principal: Principal = Depends(read_gate)) -> Response:
        query = read_query(request, TicketListQuery)
        after = decode_cursor(query.cursor, cursor_text(len("-priority")), _sort_key, cursor_uuid)
        if after is not None:
            cursor_sort, key, ident = after
            if cursor_sort != query.sort:
                raise InvalidInput(
                    "The cursor belongs to another sort order.", [("/query/cursor", "sort changed")]
                )
            if isinstance(key, int) != (query.sort.lstrip("-") == "priority"):
                raise InvalidInput("The cursor is not valid.", [("/query/cursor", "malformed")])
            after = (key, ident)
        # Serialised here: the items are built as JSON-ready dicts (flowdesk.tickets.facts), and
        # letting FastAPI validate the page against the response model would double its cost.
        async with connection(request) as conn:
            listed = await service.list_tickets(conn, _catalog(request), principal, query, after)
        return Response(dump_json(listed), media_type="application/json")

    @router.get(
        "/tickets/{ref}",
        responses={**_TICKET, **extra},
        response_model=TicketOut,
        summary="One ticket, by id or number",
        openapi_extra=documented(IF_NONE_MATCH),
    )
    async def get_ticket(
        ref: str, request: Request, principal: Principal = Depends(read_gate)
    ) -> Response:
        if_none_match = IF_NONE_MATCH.read(request)
        async with connection(request) as conn:
            ticket = await service.get_ticket(conn, _catalog(request), principal, ref)
        if not_modified(if_none_match, ticket["version"]):
            etag = version_etag(ticket["version"])
            return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
        return ticket_response(ticket)

    @router.patch(
        "/tickets/{ref}",
        responses={**_TICKET, **extra},
        response_model=TicketOut,
        summary="Change a ticket (not its status)",
        openapi_extra=documented(IF_MATCH),
    )
    async def patch_ticket(
        ref: str, body: TicketPatch, request: Request, principal: Principal = Depends(write_gate)
    ) -> Response:
        check = if_match(IF_MATCH.read(request))
        async with connection(request) as conn:
            ticket = await service.update_ticket(
                conn, _catalog(request), principal, ref, body, check
            )
        return ticket_response(ticket)


add_ticket_routes(router, read_gate, write_gate)


@router.get(
    "/tickets/{ref}/transitions",
    response_model=TransitionsOut,
    summary="What the caller may do now, and why not",
)
async def get_transitions(ref: str, request: Request, principal: TicketReader) -> TransitionsOut:
    async with connection(request) as conn:
        return await transitions.list_transitions(conn, _catalog(request), principal, ref)


@router.post(
    "/tickets/{ref}/transitions",
    responses=_TICKET,
    response_model=TicketOut,
    summary="Move a ticket",
    openapi_extra=documented(IF_MATCH, IDEMPOTENCY_KEY),
)
async def post_transition(
    ref: str, body: TransitionIn, request: Request, principal: TicketWriter
) -> Response:
    check = if_match(IF_MATCH.read(request))
    async with connection(request) as conn:

        async def handler() -> Response:
            ticket = await transitions.transition(
                conn, _catalog(request), principal, ref, body, check
            )
            return ticket_response(ticket)

        return await idempotent(request, principal, conn, handler)


@router.post(
    "/tickets/{ref}/comments",
    status_code=201,
    response_model=CommentOut,
    summary="Comment (internal or external)",
    openapi_extra=documented(IDEMPOTENCY_KEY),
)
async def post_comment(
    ref: str, body: CommentIn, request: Request, principal: TicketWriter
) -> Response:
    async with connection(request) as conn:

        async def handler() -> Response:
            return _json(
                await activity.add_comment(conn, _catalog(request), principal, ref, body), 201
            )

        return await idempotent(request, principal, conn, handler)


@router.get(
    "/tickets/{ref}/comments",
    response_model=Page[CommentOut],
    summary="Comments (requesters see external ones)",
)
async def get_comments(
    ref: str,
    request: Request,
    principal: TicketReader,
    page: PageRequest = cursor_page(cursor_time, cursor_uuid),
) -> Page[CommentOut]:
    async with connection(request) as conn:
        return await activity.list_comments(
            conn, _catalog(request), principal, ref, page.after, page.limit
        )


@router.get("/tickets/{ref}/events", response_model=Page[EventOut], summary="The audit trail")
async def get_events(
    ref: str,
    request: Request,
    principal: TicketReader,
    page: PageRequest = cursor_page(cursor_int),
) -> Page[EventOut]:
    async with connection(request) as conn:
        return await activity.list_events(
            conn, _catalog(request), principal, ref, page.after_key, page.limit
        )


@router.get("/tickets/{ref}/links", response_model=list[LinkOut], summary="Links to other tickets")
async def get_links(ref: str, request: Request, principal: TicketReader) -> list[LinkOut]:
    async with connection(request) as conn:
        return await activity.list_links(conn, _catalog(request), principal, ref)


@router.post(
    "/tickets/{ref}/links",
    status_code=201,
    response_model=LinkOut,
    summary="Link to another ticket (e.g. blocked_by)",
)
async def post_link(ref: str, body: LinkIn, request: Request, principal: TicketWriter) -> LinkOut:
    async with connection(request) as conn:
        return await activity.add_link(
            conn, _catalog(request), principal, ref, body.kind, body.target
        )


@router.delete("/tickets/{ref}/links/{link_id}", status_code=204, summary="Remove a link")
async def delete_link(
    ref: str, link_id: uuid.UUID, request: Request, principal: TicketWriter
) -> Response:
    async with connection(request) as conn:
        await activity.delete_link(conn, _catalog(request), principal, ref, link_id)
    return Response(status_code=204)


@router.get(
    "/tickets/{ref}/approvals", response_model=list[ApprovalOut], summary="Recorded approvals"
)
async def get_approvals(ref: str, request: Request, principal: TicketReader) -> list[ApprovalOut]:
    async with connection(request) as conn:
        return await activity.list_approvals(conn, _catalog(request), principal, ref)


@router.post(
    "/tickets/{ref}/approvals",
    status_code=201,
    response_model=ApprovalOut,
    summary="Record an approval (agents)",
)
async def post_approval(
    ref: str, body: ApprovalIn, request: Request, principal: TicketWriter
) -> ApprovalOut:
    async with connection(request) as conn:
        return await activity.add_approval(conn, _catalog(request), principal, ref, body.name)
