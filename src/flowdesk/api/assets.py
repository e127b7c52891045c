"""HTTP endpoints of the asset registry (/v1/assets …): assets, their movements, their
"Tickets" history and "Report issue" (seed 004's asset integration)."""

# No `from __future__ import annotations`: the routes made by add_asset_routes name their
# gates through the factory's arguments, which FastAPI can only read as evaluated annotations.

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status

from flowdesk.api.db import Tx
from flowdesk.api.gates import Gate, read_gate, write_gate
from flowdesk.api.headers import IDEMPOTENCY_KEY, documented
from flowdesk.api.idempotency import idempotent, json_response
from flowdesk.api.licence import ensure_flag
from flowdesk.api.params import cursor_page, documented_query
from flowdesk.api.tickets import connection, file_ticket, ticket_page
from flowdesk.assets import service
from flowdesk.assets.schemas import (
    AssetByRefIn,
    AssetIn,
    AssetOut,
    AssetPatch,
    ExternalRef,
    MovementIn,
    MovementOut,
)
from flowdesk.auth.principal import Principal
from flowdesk.pagination import Page, PageRequest, cursor_time, cursor_uuid
from flowdesk.schema_types import QueryText
from flowdesk.tickets.schemas import TicketCreate, TicketListQuery, TicketOut, TicketReceipt

router = APIRouter(prefix="/v1", tags=["assets"])

_HAS_OPEN_TICKETS: dict[int | str, dict[str, Any]] = {
    409: {"description": "asset-has-open-tickets: open tickets still refer to it (`open_tickets`)"}
}


def _ensure_integration(request: Request) -> None:
    """The asset side of tickets needs the `asset_integration` flag (seed 004: with it off,
    the "Report issue" button is hidden and asset links are ignored)."""
    ensure_flag(request.state.controls, "asset_integration")


def add_asset_routes(
    router: APIRouter,
    read_gate: Gate,
    write_gate: Gate,
    extra_responses: dict[int | str, dict[str, Any]] | None = None,
) -> None:
    """The registry's routes on `router`, behind the given gates (the portal's on /v1, the
    public API's on /public/v1)."""
    extra = extra_responses or {}

    @router.post(
        "/assets",
        status_code=201,
        response_model=AssetOut,
        summary="Register an asset (tickets:manage)",
        responses=extra,
        openapi_extra=documented(IDEMPOTENCY_KEY),
    )
    async def create_asset(
        body: AssetIn, request: Request, conn: Tx, principal: Principal = Depends(write_gate)
    ) -> Response:
        async def handler() -> Response:
            return json_response(await service.create_asset(conn, principal, body), 201)

        return await idempotent(request, principal, conn, handler)

    @router.get(
        "/assets",
        response_model=Page[AssetOut],
        summary="The registry (agents)",
        responses=extra,
    )
    async def list_assets(
        conn: Tx,
        principal: Principal = Depends(read_gate),
        q: Annotated[
            QueryText | None, Query(description="Name, tag or reference contains (any case)")
        ] = None,
        type: Annotated[QueryText | None, Query(description="Exactly this type")] = None,
        page: PageRequest = cursor_page(cursor_time, cursor_uuid),
    ) -> Page[AssetOut]:
        return await service.list_assets(
            conn, principal, q=q, asset_type=type, after=page.after, limit=page.limit
        )

    @router.put(
        "/assets/by-ref/{external_ref}",
        response_model=AssetOut,
        summary="Create or replace an asset by the asset system's id",
        responses={201: {"model": AssetOut, "description": "Created"}, **extra},
    )
    async def put_asset(
        external_ref: ExternalRef,
        body: AssetByRefIn,
        conn: Tx,
        response: Response,
        principal: Principal = Depends(write_gate),
    ) -> AssetOut:
        asset, created = await service.put_asset(conn, principal, external_ref, body)
        if created:
            response.status_code = status.HTTP_201_CREATED
        return asset

    @router.get(
        "/assets/{asset_id}",
        response_model=AssetOut,
        summary="One asset (agents, or the reporter of a ticket linking it)",
        responses=extra,
    )
    async def get_asset(
        asset_id: uuid.UUID, conn: Tx, principal: Principal = Depends(read_gate)
    ) -> AssetOut:
        return await service.get_asset(conn, principal, asset_id)

    @router.patch(
        "/assets/{asset_id}",
        response_model=AssetOut,
        summary="Change an asset (tickets:manage)",
        responses=extra,
    )
    async def patch_asset(
        asset_id: uuid.UUID, body: AssetPatch, conn: Tx, principal: Principal = Depends(write_gate)
    ) -> AssetOut:
        return await service.patch_asset(conn, principal, asset_id, body)

    @router.delete(
        "/assets/{asset_id}",
        status_code=204,
        summary="Remove an asset with no open tickets (tickets:manage)",
        responses={**_HAS_OPEN_TICKETS, **extra},
    )
    async def delete_asset(
        asset_id: uuid.UUID, conn: Tx, principal: Principal = Depends(write_gate)
    ) -> Response:
        await service.delete_asset(conn, principal, asset_id)
        return Response(status_code=204)

    @router.post(
        "/assets/{asset_id}/movements",
        status_code=201,
        response_model=MovementOut,
        summary="Record a movement of the asset (tickets:manage)",
        responses=extra,
        openapi_extra=documented(IDEMPOTENCY_KEY),
    )
    async def add_movement(
        asset_id: uuid.UUID,
        body: MovementIn,
        request: Request,
        conn: Tx,
        principal: Principal = Depends(write_gate),
    ) -> Response:
        async def handler() -> Response:
            movement = await service.add_movement(conn, principal, asset_id, body)
            return json_response(movement, 201)

        return await idempotent(request, principal, conn, handler)

    @router.get(
        "/assets/{asset_id}/movements",
        response_model=Page[MovementOut],
        summary="The asset's movements, newest first (agents)",
        responses=extra,
    )
    async def list_movements(
        asset_id: uuid.UUID,
        conn: Tx,
        principal: Principal = Depends(read_gate),
        page: PageRequest = cursor_page(cursor_time, cursor_uuid),
    ) -> Page[MovementOut]:
        return await service.list_movements(conn, principal, asset_id, page.after, page.limit)

    @router.get(
        "/assets/{asset_id}/tickets",
        response_model=Page[TicketOut],
        summary="The asset's Tickets history (needs asset_integration)",
        description="The tickets linked to the asset, closed ones too unless `status` or "
        "`status_category` narrows them, with the ticket list's other filters, sorts and "
        "pages. A requester sees only their own.",
        responses=extra,
        openapi_extra=documented_query(TicketListQuery),
    )
    async def asset_tickets(
        asset_id: uuid.UUID, request: Request, principal: Principal = Depends(read_gate)
    ) -> Response:
        _ensure_integration(request)
        async with connection(request) as conn:
            await service.ensure_visible(conn, principal, asset_id)
        return await ticket_page(request, principal, asset_id=asset_id)

    @router.post(
        "/assets/{asset_id}/tickets",
        status_code=201,
        response_model=TicketOut | TicketReceipt,
        summary="Report an issue with the asset: a ticket linked to it",
        description="The body and rules of POST /v1/tickets; the asset comes from the path.",
        responses=extra,
        openapi_extra=documented(IDEMPOTENCY_KEY),
    )
    async def report_issue(
        asset_id: uuid.UUID,
        body: TicketCreate,
        request: Request,
        principal: Principal = Depends(write_gate),
    ) -> Response:
        _ensure_integration(request)
        filed = body.model_copy(update={"asset_id": asset_id})
        return await file_ticket(request, principal, filed, router.prefix)


add_asset_routes(router, read_gate, write_gate)
