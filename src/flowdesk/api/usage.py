"""GET /v1/usage: the tenant's API usage, for its admins."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from flowdesk.api.auth import AdminPrincipal
from flowdesk.api.db import Tx
from flowdesk.api.params import FromDay, ToDay
from flowdesk.usage.schemas import UsageReport
from flowdesk.usage.service import usage_report

router = APIRouter(prefix="/v1")


@router.get(
    "/usage",
    response_model=UsageReport,
    tags=["administration"],
    summary="API requests per key per day, by endpoint family and status class",
)
async def get_usage(
    principal: AdminPrincipal,
    conn: Tx,
    first: FromDay = None,
    last: ToDay = None,
    api_key_id: uuid.UUID | None = None,
) -> UsageReport:
    return await usage_report(conn, principal.tenant_id, first, last, api_key_id)
