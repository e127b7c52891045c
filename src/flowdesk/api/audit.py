"""GET /v1/audit-log: the tenant's admin audit log (flowdesk.audit), newest first, for its
admins."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from flowdesk.api.auth import AdminPrincipal
from flowdesk.api.db import Tx
from flowdesk.api.params import cursor_page
from flowdesk.audit import log
from flowdesk.errors import InvalidInput
from flowdesk.pagination import Page, PageRequest, cursor_int, next_cursor
from flowdesk.schema_types import QueryText, Timestamp

router = APIRouter(prefix="/v1", tags=["administration"])


class AuditEntryOut(BaseModel):
    id: int
    created_at: datetime
    actor_type: str = Field(
        description="`user` (an API key or sign-in of `actor_user_id`), `platform` (the "
        "operator's platform API) or `operator` (the CLI)"
    )
    actor_user_id: uuid.UUID | None
    actor_key_id: uuid.UUID | None
    action: str = Field(description="`<target type>.<verb>`, e.g. `api_key.created`")
    target_type: str
    target_id: str | None
    before: dict[str, Any] | None = Field(description="The target as the API showed it before")
    after: dict[str, Any] | None = Field(description="The target as the API shows it after")
    request_id: str | None


def _utc(moment: datetime | None) -> datetime | None:
    """A time without an offset is read as UTC (as PostgreSQL compares it)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@router.get(
    "/audit-log",
    response_model=Page[AuditEntryOut],
    summary="The admin audit log: who changed the tenant's administration, newest first",
    description="Key creation and revocation, users, groups and their members, the tenant's "
    "settings, identity providers, webhooks, templates and licence changes, each with its "
    "actor, the target before and after (never a secret) and the request id. Append-only.",
)
async def list_audit_log(
    principal: AdminPrincipal,
    conn: Tx,
    page: PageRequest = cursor_page(cursor_int),
    action: Annotated[QueryText | None, Query(description="Exactly this action")] = None,
    actor_user_id: uuid.UUID | None = None,
    actor_key_id: uuid.UUID | None = None,
    target_type: Annotated[QueryText | None, Query(description="e.g. api_key, user")] = None,
    target_id: Annotated[QueryText | None, Query(description="The target's id")] = None,
    since: Annotated[Timestamp | None, Query(description="At or after this time")] = None,
    until: Annotated[Timestamp | None, Query(description="Before this time")] = None,
) -> Page[AuditEntryOut]:
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since >= until:
        raise InvalidInput("The time range is empty.", [("/query/until", "must be after 'since'")])
    filters = log.Filters(
        action=action,
        actor_user_id=actor_user_id,
        actor_key_id=actor_key_id,
        target_type=target_type,
        target_id=target_id,
        since=since,
        until=until,
    )
    found = await log.entries(conn, principal.tenant_id, filters, page.after_key, page.limit)
    return Page[AuditEntryOut](
        items=[AuditEntryOut.model_validate(dict(e)) for e in found[: page.limit]],
        next_cursor=next_cursor(found, page.limit, lambda e: [e["id"]]),
    )
