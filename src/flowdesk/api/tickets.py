"""HTTP endpoints for tickets (/v1/tickets …) and the catalog they are filed against."""

# No `from __future__ import annotations`: the routes made by add_ticket_routes name their
# gates through the factory's arguments, which FastAPI can only read as evaluated annotations.

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, TypeVar

from asyncpg import Record
from asyncpg.pool import PoolAcquireContext
from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel

from flowdesk.api.attachments import add_attachment_routes
from flowdesk.api.etag import if_match, not_modified, version_etag
from flowdesk.api.gates import Gate, TicketReader, asset_links, read_gate, write_gate
from flowdesk.api.headers import IDEMPOTENCY_KEY, IF_MATCH, IF_NONE_MATCH, documented
from flowdesk.api.idempotency import idempotent
from flowdesk.api.params import cursor_page, documented_query, next_page_link, read_query
from flowdesk.auth.principal import Principal
from flowdesk.errors import InvalidInput, found
from flowdesk.pagination import (
    Page,
    PageRequest,
    cursor_int,
    cursor_text,
    cursor_time,
    cursor_uuid,
    decode_cursor,
    next_cursor,
)
from flowdesk.runtime import runtime_of
from flowdesk.schema_types import QueryText
from flowdesk.tickets import activity, agents, approvals, service, transitions
from flowdesk.tickets.facts import TicketJson, dump_json, receipt
from flowdesk.tickets.schemas import (
    AgentOut,
    ApprovalIn,
    ApprovalOut,
    CatalogItemDetail,
    CatalogItemOut,
    CommentIn,
    CommentOut,
    EventOut,
    FormHints,
    LinkIn,
    LinkOut,
    TicketCountQuery,
    TicketCountsOut,
    TicketCreate,
    TicketFilterQuery,
    TicketListQuery,
    TicketOut,
    TicketPatch,
    TicketReceipt,
    TransitionIn,
    TransitionsOut,
)
from flowdesk.vocabulary import TICKETS_READ
from flowdesk.workflow import Catalog

router = APIRouter(prefix="/v1", tags=["tickets"])
Q = TypeVar("Q", bound=TicketFilterQuery)

Cursor = Annotated[str | None, Query(max_length=512)]
# The longest user name (flowdesk.schema_types.Name): the agents' cursor holds one.
USER_NAME_LENGTH = 200


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
    request: Request,
    principal: Principal,
    ticket: TicketJson,
    status_code: int = 200,
    *,
    location: str | None = None,
) -> Response:
    """The ticket as the caller may see it: its asset links as the tenant's flags allow, or
    only its id, number and version for a key that may write but not read tickets."""
    headers = {"ETag": version_etag(ticket["version"])}
    if location:
        headers["Location"] = location
    shown = (
        asset_links(request).shown(ticket) if TICKETS_READ in principal.scopes else receipt(ticket)
    )
    return Response(
        dump_json(shown), status_code=status_code, media_type="application/json", headers=headers
    )


def _json(model: BaseModel, status_code: int = 200) -> Response:
    return Response(
        model.model_dump_json().encode(), status_code=status_code, media_type="application/json"
    )


# A list kept a bare JSON array (links, approvals): whole pages, the next one in `Link`.
MAX_PAGE = 100
_NEXT_PAGE: dict[int | str, dict[str, Any]] = {
    200: {
        "headers": {
            "Link": {
                "description": 'The next page, `<url>; rel="next"` (absent on the last page)',
                "schema": {"type": "string"},
            }
        }
    }
}

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
            has_form=i.form is not None,
        )
        for i in _catalog(request).items.values()
    ]


@router.get(
    "/catalog/{item}",
    response_model=CatalogItemDetail,
    response_model_exclude_none=True,
    summary="A catalog item with its intake form (JSON Schema and display hints)",
    description="`form` is the JSON Schema (2020-12) that POST /v1/tickets validates the "
    "`answers` of a ticket of this item against; `form_hints` says how to show it. Both are "
    "null (absent) for an item without a form.",
    responses={404: {"description": "No such catalog item"}},
)
async def catalog_item(item: str, request: Request, principal: TicketReader) -> CatalogItemDetail:
    found_item = found(_catalog(request).items.get(item), f"No catalog item '{item}'.")
    form = found_item.form
    return CatalogItemDetail(
        name=found_item.name,
        display_name=found_item.display_name,
        type=found_item.type,
        workflow=found_item.workflow,
        default_priority=found_item.default_priority,
        has_form=form is not None,
        form=dict(form.schema) if form else None,
        form_hints=FormHints.model_validate(form.display) if form else None,
    )


async def file_ticket(
    request: Request, principal: Principal, body: TicketCreate, prefix: str
) -> Response:
    """POST /v1/tickets (and an asset's "Report issue"): 201 with the ticket and its Location
    under `prefix`, idempotent by the request's Idempotency-Key."""
    async with connection(request) as conn:

        async def handler() -> Response:
            ticket = await service.create_ticket(
                conn, _catalog(request), principal, body, asset_links(request)
            )
            location = f"{prefix}/tickets/{ticket['id']}"
            return ticket_response(request, principal, ticket, 201, location=location)

        return await idempotent(request, principal, conn, handler)


ANSWER_PARAM = "answer."
# A filter names at most this many answers, each with at most MAX_ANSWER_VALUES values.
MAX_ANSWER_KEYS = 10
MAX_ANSWER_VALUES = 20
_ANSWER_KEY = re.compile(r"^[a-z][a-z0-9_]{0,69}$")  # a question's key, or its `_other`


def answer_filters(request: Request) -> dict[str, list[str]]:
    """The `?answer.<key>=<value>` parameters: values of one key are alternatives, keys all
    apply. A 422 points at each malformed one (`/query/answer.<key>`)."""
    found: dict[str, list[str]] = {}
    errors: list[tuple[str, str]] = []
    for name in dict.fromkeys(request.query_params.keys()):
        if not name.startswith(ANSWER_PARAM):
            continue
        key = name.removeprefix(ANSWER_PARAM)
        values = request.query_params.getlist(name)
        pointer = f"/query/{name}"
        if not _ANSWER_KEY.match(key):
            errors.append((pointer, "not a question key"))
        elif len(values) > MAX_ANSWER_VALUES:
            errors.append((pointer, f"at most {MAX_ANSWER_VALUES} values"))
        elif any(len(v) > 200 or "\x00" in v for v in values):
            errors.append((pointer, "a value of at most 200 characters, without NUL"))
        else:
            found[key] = values
    if len(found) > MAX_ANSWER_KEYS:
        errors.append(("/query/answer", f"at most {MAX_ANSWER_KEYS} answers at once"))
    if errors:
        raise InvalidInput("An answer filter is invalid.", errors)
    return found


def _filter_query(request: Request, model: type[Q]) -> Q:
    """The list's (or count's) query, with its answer filters."""
    query = read_query(request, model)
    answers = answer_filters(request)
    return query.model_copy(update={"answer": answers}) if answers else query


async def ticket_page(
    request: Request, principal: Principal, *, asset_id: uuid.UUID | None = None
) -> Response:
    """A page of GET /v1/tickets (or of an asset's tickets) for this request's query."""
    query = _filter_query(request, TicketListQuery)
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
        listed = await service.list_tickets(
            conn, _catalog(request), principal, query, after, asset_id=asset_id
        )
    links = asset_links(request)
    listed["items"] = [links.shown(t) for t in listed["items"]]
    return Response(dump_json(listed), media_type="application/json")


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
    # Files attached to tickets (flowdesk.api.attachments), behind the same gates.
    add_attachment_routes(router, read_gate, write_gate, extra)

    @router.post(
        "/tickets",
        status_code=status.HTTP_201_CREATED,
        response_model=TicketOut | TicketReceipt,
        summary="Open a ticket",
        responses=extra,
        openapi_extra=documented(IDEMPOTENCY_KEY),
    )
    async def create_ticket(
        body: TicketCreate, request: Request, principal: Principal = Depends(write_gate)
    ) -> Response:
        return await file_ticket(request, principal, body, router.prefix)

    @router.get(
        "/tickets",
        response_model=Page[TicketOut],
        summary="The queue (agents) or my tickets (requesters)",
        description="Besides the parameters below, `answer.<key>=<value>` filters on the "
        "intake form's answers: a ticket whose answer to `key` is the value (a multi-choice "
        "answer: includes it) matches; repeat it for alternatives "
        "(`?answer.environments=prd&answer.environments=xat`); different keys all apply.",
        responses=extra,
        openapi_extra=documented_query(TicketListQuery),
    )
    async def list_tickets(request: Request, principal: Principal = Depends(read_gate)) -> Response:
        return await ticket_page(request, principal)

    # Before /tickets/{ref}, which would otherwise take "counts" for a ticket reference.
    @router.get(
        "/tickets/counts",
        response_model=TicketCountsOut,
        summary="How many tickets the list would show, by status, category, assignee or priority",
        description="The filters of the ticket list, with the same defaults and the same "
        "visibility (a requester counts their own tickets); `sort`, `limit` and `cursor` "
        "are ignored. Every page of the list is counted. `answer.<key>=<value>` filters on "
        "the answers as the list does.",
        responses=extra,
        openapi_extra=documented_query(TicketCountQuery),
    )
    async def count_tickets(
        request: Request, principal: Principal = Depends(read_gate)
    ) -> TicketCountsOut:
        query = _filter_query(request, TicketCountQuery)
        async with connection(request) as conn:
            return await service.count_tickets(conn, _catalog(request), principal, query)

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
        return ticket_response(request, principal, ticket)

    @router.patch(
        "/tickets/{ref}",
        responses={**_TICKET, **extra},
        response_model=TicketOut | TicketReceipt,
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
        return ticket_response(request, principal, ticket)

    @router.get(
        "/tickets/{ref}/transitions",
        response_model=TransitionsOut,
        summary="What the caller may do now, and why not",
        responses=extra,
    )
    async def get_transitions(
        ref: str, request: Request, principal: Principal = Depends(read_gate)
    ) -> TransitionsOut:
        async with connection(request) as conn:
            return await transitions.list_transitions(conn, _catalog(request), principal, ref)

    @router.post(
        "/tickets/{ref}/transitions",
        responses={**_TICKET, **extra},
        response_model=TicketOut | TicketReceipt,
        summary="Move a ticket",
        openapi_extra=documented(IF_MATCH, IDEMPOTENCY_KEY),
    )
    async def post_transition(
        ref: str,
        body: TransitionIn,
        request: Request,
        principal: Principal = Depends(write_gate),
    ) -> Response:
        check = if_match(IF_MATCH.read(request))
        async with connection(request) as conn:

            async def handler() -> Response:
                ticket = await transitions.transition(
                    conn, _catalog(request), principal, ref, body, check
                )
                return ticket_response(request, principal, ticket)

            return await idempotent(request, principal, conn, handler)

    @router.post(
        "/tickets/{ref}/comments",
        status_code=201,
        response_model=CommentOut,
        summary="Comment (internal or external)",
        responses=extra,
        openapi_extra=documented(IDEMPOTENCY_KEY),
    )
    async def post_comment(
        ref: str, body: CommentIn, request: Request, principal: Principal = Depends(write_gate)
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
        responses=extra,
    )
    async def get_comments(
        ref: str,
        request: Request,
        principal: Principal = Depends(read_gate),
        page: PageRequest = cursor_page(cursor_time, cursor_uuid),
    ) -> Page[CommentOut]:
        async with connection(request) as conn:
            return await activity.list_comments(
                conn, _catalog(request), principal, ref, page.after, page.limit
            )

    @router.get(
        "/tickets/{ref}/events",
        response_model=Page[EventOut],
        summary="The audit trail",
        responses=extra,
    )
    async def get_events(
        ref: str,
        request: Request,
        principal: Principal = Depends(read_gate),
        page: PageRequest = cursor_page(cursor_int),
    ) -> Page[EventOut]:
        async with connection(request) as conn:
            return await activity.list_events(
                conn, _catalog(request), principal, ref, page.after_key, page.limit
            )

    @router.get(
        "/tickets/{ref}/links",
        response_model=list[LinkOut],
        summary="Links to other tickets",
        description="Oldest first, at most `limit` (100 unless told); the next page's URL is "
        'in the `Link` header (`rel="next"`).',
        responses={**_NEXT_PAGE, **extra},
    )
    async def get_links(
        ref: str,
        request: Request,
        response: Response,
        principal: Principal = Depends(read_gate),
        page: PageRequest = cursor_page(cursor_time, cursor_uuid, default=MAX_PAGE),
    ) -> list[LinkOut]:
        async with connection(request) as conn:
            links = await activity.list_links(
                conn, _catalog(request), principal, ref, page.after, page.limit
            )
        cursor = next_cursor(links, page.limit, lambda k: [k.created_at, k.id])
        next_page_link(request, response, page.limit, cursor)
        return links[: page.limit]

    @router.post(
        "/tickets/{ref}/links",
        status_code=201,
        response_model=LinkOut,
        summary="Link to another ticket (e.g. blocked_by)",
        responses=extra,
        openapi_extra=documented(IDEMPOTENCY_KEY),
    )
    async def post_link(
        ref: str, body: LinkIn, request: Request, principal: Principal = Depends(write_gate)
    ) -> Response:
        async with connection(request) as conn:

            async def handler() -> Response:
                link = await activity.add_link(
                    conn, _catalog(request), principal, ref, body.kind, body.target
                )
                return _json(link, 201)

            return await idempotent(request, principal, conn, handler)

    @router.delete(
        "/tickets/{ref}/links/{link_id}",
        status_code=204,
        summary="Remove a link",
        responses=extra,
        openapi_extra=documented(IDEMPOTENCY_KEY),
    )
    async def delete_link(
        ref: str, link_id: uuid.UUID, request: Request, principal: Principal = Depends(write_gate)
    ) -> Response:
        async with connection(request) as conn:

            async def handler() -> Response:
                await activity.delete_link(conn, _catalog(request), principal, ref, link_id)
                return Response(status_code=204)

            return await idempotent(request, principal, conn, handler)

    @router.get(
        "/tickets/{ref}/approvals",
        response_model=list[ApprovalOut],
        summary="Recorded approvals",
        description="Oldest first, at most `limit` (100 unless told); the next page's URL is "
        'in the `Link` header (`rel="next"`).',
        responses={**_NEXT_PAGE, **extra},
    )
    async def get_approvals(
        ref: str,
        request: Request,
        response: Response,
        principal: Principal = Depends(read_gate),
        page: PageRequest = cursor_page(cursor_time, cursor_uuid, default=MAX_PAGE),
    ) -> list[ApprovalOut]:
        async with connection(request) as conn:
            found = await approvals.list_approvals(
                conn, _catalog(request), principal, ref, page.after, page.limit
            )
        cursor = next_cursor(found, page.limit, lambda a: [a.created_at, a.id])
        next_page_link(request, response, page.limit, cursor)
        return found[: page.limit]

    @router.post(
        "/tickets/{ref}/approvals",
        status_code=201,
        response_model=ApprovalOut,
        summary="Record an approval (whom its policy names)",
        description="The catalog's approval policy says who may give each approval: members "
        "of a group, the requester's manager, or a named user; never the requester, nor, "
        "where the policy says so, the assignee (403 with `approval` and `reason`). An "
        "unknown name is 422; the same approver twice is 409. A desk user who manages the "
        "requester reaches the request's approvals.",
        responses=extra,
        openapi_extra=documented(IDEMPOTENCY_KEY),
    )
    async def post_approval(
        ref: str, body: ApprovalIn, request: Request, principal: Principal = Depends(write_gate)
    ) -> Response:
        async with connection(request) as conn:

            async def handler() -> Response:
                approval = await approvals.add_approval(
                    conn, _catalog(request), principal, ref, body.name
                )
                return _json(approval, 201)

            return await idempotent(request, principal, conn, handler)

    @router.delete(
        "/tickets/{ref}/approvals/{approval_id}",
        status_code=204,
        summary="Revoke an approval (its approver, or an admin)",
        responses=extra,
        openapi_extra=documented(IDEMPOTENCY_KEY),
    )
    async def delete_approval(
        ref: str,
        approval_id: uuid.UUID,
        request: Request,
        principal: Principal = Depends(write_gate),
    ) -> Response:
        async with connection(request) as conn:

            async def handler() -> Response:
                await approvals.revoke_approval(
                    conn, _catalog(request), principal, ref, approval_id
                )
                return Response(status_code=204)

            return await idempotent(request, principal, conn, handler)


add_ticket_routes(router, read_gate, write_gate)


@router.get(
    "/agents",
    response_model=Page[AgentOut],
    summary="Whom a ticket can be assigned to (agents only)",
    description="Live users holding tickets:manage through their groups (admin implies it), "
    "by name. `q` matches a substring of the name or e-mail in any case. Agents only: a "
    "requester gets 403, since the list shows e-mail addresses.",
    responses={403: {"description": "The caller is not an agent (or lacks tickets:read)"}},
)
async def list_agents(
    request: Request,
    principal: TicketReader,
    q: Annotated[QueryText | None, Query(description="Name or e-mail contains")] = None,
    page: PageRequest = cursor_page(cursor_text(USER_NAME_LENGTH), cursor_uuid),
) -> Page[AgentOut]:
    async with connection(request) as conn:
        return await agents.list_agents(conn, principal, q, page.after, page.limit)
