"""GET /v1/usage: the tenant's API usage, for its admins."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from flowdesk.api.auth import AdminPrincipal
from flowdesk.db.session import DbSession
from flowdesk.usage.schemas import UsageReport
from flowdesk.usage.service import usage_report

router = APIRouter(prefix="/v1")

FromDay = Annotated[
    date | None, Query(alias="from", description="First UTC day (default: 29 days before 'to').")
]
ToDay = Annotated[date | None, Query(alias="to", description="Last UTC day (default: today).")]


@router.get(
    "/usage",
    response_model=UsageReport,
    tags=["administration"],
    summary="API requests per key per day, by endpoint family and status class",
)
async def get_usage(
    principal: AdminPrincipal,
    session: DbSession,
    first: FromDay = None,
    last: ToDay = None,
    api_key_id: uuid.UUID | None = None,
) -> UsageReport:
    return await usage_report(session, principal.tenant_id, first, last, api_key_id)
