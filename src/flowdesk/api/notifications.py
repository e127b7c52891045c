"""HTTP endpoints of notifications, for a tenant's admins: the delivery log
(/v1/notifications/deliveries), e-mail templates (/v1/notification-templates/{event}) and
webhook endpoints (/v1/webhooks)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from flowdesk.api.auth import AdminPrincipal
from flowdesk.api.db import Tx
from flowdesk.api.headers import IDEMPOTENCY_KEY, documented
from flowdesk.api.idempotency import idempotent, json_response
from flowdesk.api.licence import controls_of, ensure_flag
from flowdesk.api.openapi import NAMED_IN_REQUEST
from flowdesk.api.params import cursor_page, documented_query, read_query
from flowdesk.audit.log import Actor, State, record
from flowdesk.auth.principal import Principal
from flowdesk.db.query import Connection
from flowdesk.notifications import service
from flowdesk.notifications.repository import WebhookRow
from flowdesk.notifications.schemas import (
    DeliveryOut,
    DeliveryQuery,
    PreviewIn,
    PreviewOut,
    TemplateIn,
    TemplateOut,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
    WebhookPatch,
    WebhookTestOut,
)
from flowdesk.pagination import Page, PageRequest, cursor_time, cursor_uuid, next_cursor
from flowdesk.runtime import runtime_of

router = APIRouter(prefix="/v1", tags=["notifications"])


async def _audit(
    conn: Connection,
    principal: Principal,
    action: str,
    target: tuple[str, object],
    *,
    before: State = None,
    after: State = None,
) -> None:
    """An entry of the admin audit log, in the request's transaction (flowdesk.audit)."""
    await record(
        conn, principal.tenant_id, Actor.of(principal), action, target, before=before, after=after
    )


def _retry_window(request: Request) -> int:
    return round(runtime_of(request).settings.delivery_retry_hours * 3600)


# --- deliveries ------------------------------------------------------------------------------


def _delivery_query(request: Request) -> DeliveryQuery:
    return read_query(request, DeliveryQuery)


@router.get(
    "/notifications/deliveries",
    response_model=Page[DeliveryOut],
    summary="The delivery log: every mail and webhook call, newest first",
    responses=NAMED_IN_REQUEST,
    openapi_extra=documented_query(DeliveryQuery),
)
async def list_deliveries(
    request: Request,
    principal: AdminPrincipal,
    conn: Tx,
    query: Annotated[DeliveryQuery, Depends(_delivery_query)],
    page: PageRequest = cursor_page(cursor_time, cursor_uuid),
) -> Page[DeliveryOut]:
    before = page.after
    return await service.list_deliveries(
        conn,
        runtime_of(request).catalog,
        principal,
        query,
        page.limit,
        (before[0], before[1]) if before else None,
    )


@router.get("/notifications/deliveries/{delivery_id}", response_model=DeliveryOut)
async def get_delivery(delivery_id: uuid.UUID, principal: AdminPrincipal, conn: Tx) -> DeliveryOut:
    return await service.get_delivery(conn, principal.tenant_id, delivery_id)


@router.post(
    "/notifications/deliveries/{delivery_id}/retry",
    response_model=DeliveryOut,
    summary="Send a failed or dropped delivery again",
    openapi_extra=documented(IDEMPOTENCY_KEY),
)
async def retry_delivery(
    delivery_id: uuid.UUID, request: Request, principal: AdminPrincipal, conn: Tx
) -> Response:
    async def handler() -> Response:
        retried = await service.retry_delivery(
            conn, principal.tenant_id, delivery_id, _retry_window(request)
        )
        return json_response(retried)

    return await idempotent(request, principal, conn, handler)


# --- templates -------------------------------------------------------------------------------


async def _templates_on(request: Request, principal: AdminPrincipal) -> bool:
    return (await controls_of(request, principal)).enabled("email_templates")


@router.get(
    "/notification-templates/{event}",
    response_model=TemplateOut,
    summary="The e-mail template of an event: the tenant's own, or the built-in one",
)
async def get_template(
    event: str, request: Request, principal: AdminPrincipal, conn: Tx
) -> TemplateOut:
    return await service.get_template(
        conn, principal.tenant_id, event, custom_enabled=await _templates_on(request, principal)
    )


@router.put(
    "/notification-templates/{event}",
    response_model=TemplateOut,
    summary="Store the tenant's own template of an event (needs the email_templates flag)",
    responses={201: {"model": TemplateOut, "description": "Created"}},
)
async def put_template(
    event: str,
    body: TemplateIn,
    request: Request,
    response: Response,
    principal: AdminPrincipal,
    conn: Tx,
) -> TemplateOut:
    ensure_flag(await controls_of(request, principal), "email_templates")
    stored, created = await service.put_template(conn, principal.tenant_id, event, body)
    if created:
        response.status_code = status.HTTP_201_CREATED
    await _audit(
        conn,
        principal,
        "notification_template.created" if created else "notification_template.updated",
        ("notification_template", event),
        after=body,
    )
    return stored


@router.delete(
    "/notification-templates/{event}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Go back to the built-in template of an event",
)
async def delete_template(event: str, principal: AdminPrincipal, conn: Tx) -> Response:
    await service.delete_template(conn, principal.tenant_id, event)
    await _audit(conn, principal, "notification_template.deleted", ("notification_template", event))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/notification-templates/{event}/preview",
    response_model=PreviewOut,
    summary="Render a template against a sample or a real ticket",
    openapi_extra=documented(IDEMPOTENCY_KEY),
)
async def preview_template(
    event: str, body: PreviewIn, request: Request, principal: AdminPrincipal, conn: Tx
) -> Response:
    runtime = runtime_of(request)

    async def handler() -> Response:
        preview = await service.preview_template(
            conn,
            principal,
            event,
            body,
            catalog=runtime.catalog,
            portal_url=runtime.settings.portal_url,
            custom_enabled=await _templates_on(request, principal),
        )
        return json_response(preview)

    return await idempotent(request, principal, conn, handler)


# --- webhooks --------------------------------------------------------------------------------


def _webhook_out(hook: WebhookRow) -> WebhookOut:
    return WebhookOut.model_validate(dict(hook))


@router.post(
    "/webhooks",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    summary="Register a webhook endpoint (its signing secret is shown once)",
    openapi_extra=documented(IDEMPOTENCY_KEY),
)
async def create_webhook(
    body: WebhookIn, request: Request, principal: AdminPrincipal, conn: Tx
) -> Response:
    async def handler() -> Response:
        hook, secret = await service.create_webhook(conn, principal.tenant_id, body)
        shown = _webhook_out(hook)  # never the secret
        await _audit(conn, principal, "webhook.created", ("webhook", shown.id), after=shown)
        created = WebhookCreated.model_validate({**hook, "secret": secret})
        return json_response(created, status.HTTP_201_CREATED)

    return await idempotent(request, principal, conn, handler)


@router.get("/webhooks", response_model=Page[WebhookOut])
async def list_webhooks(
    principal: AdminPrincipal,
    conn: Tx,
    page: PageRequest = cursor_page(cursor_time, cursor_uuid),
) -> Page[WebhookOut]:
    after = page.after
    hooks = await service.list_webhooks(
        conn, principal.tenant_id, page.limit, (after[0], after[1]) if after else None
    )
    return Page[WebhookOut](
        items=[_webhook_out(h) for h in hooks[: page.limit]],
        next_cursor=next_cursor(hooks, page.limit, lambda h: [h["created_at"], h["id"]]),
    )


@router.get("/webhooks/{webhook_id}", response_model=WebhookOut)
async def get_webhook(webhook_id: uuid.UUID, principal: AdminPrincipal, conn: Tx) -> WebhookOut:
    return _webhook_out(await service.get_webhook(conn, principal.tenant_id, webhook_id))


@router.patch(
    "/webhooks/{webhook_id}",
    response_model=WebhookOut,
    summary="Change an endpoint: its URL, events, description, or enable/disable it",
)
async def patch_webhook(
    webhook_id: uuid.UUID, body: WebhookPatch, principal: AdminPrincipal, conn: Tx
) -> WebhookOut:
    before = _webhook_out(await service.get_webhook(conn, principal.tenant_id, webhook_id))
    after = _webhook_out(await service.update_webhook(conn, principal.tenant_id, webhook_id, body))
    await _audit(
        conn, principal, "webhook.updated", ("webhook", webhook_id), before=before, after=after
    )
    return after


@router.delete("/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(webhook_id: uuid.UUID, principal: AdminPrincipal, conn: Tx) -> Response:
    before = _webhook_out(await service.get_webhook(conn, principal.tenant_id, webhook_id))
    await service.delete_webhook(conn, principal.tenant_id, webhook_id)
    await _audit(conn, principal, "webhook.deleted", ("webhook", webhook_id), before=before)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/webhooks/{webhook_id}/test",
    response_model=WebhookTestOut,
    summary="Send a signed test event to the endpoint now and report its answer",
)
async def test_webhook(
    webhook_id: uuid.UUID, request: Request, principal: AdminPrincipal
) -> WebhookTestOut:
    runtime = runtime_of(request)
    tested = await service.test_webhook(
        runtime.db,
        principal.tenant_id,
        webhook_id,
        runtime.relay.webhook_sender,
        _retry_window(request),
        runtime.settings.delivery_lease_seconds,
    )
    result = tested.result
    return WebhookTestOut(
        ok=result.ok,
        status=result.status,
        error=result.error,
        duration_ms=result.duration_ms,
        delivery=tested.delivery,
    )
