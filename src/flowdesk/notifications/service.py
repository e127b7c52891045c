"""Notification use cases of a tenant's admins: the delivery log and its retries, the e-mail
templates (stored, checked, previewed) and the webhook endpoints (registered, changed,
tested). Each runs on the caller's connection, inside the caller's transaction."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flowdesk.auth.principal import Principal
from flowdesk.db.pool import Database
from flowdesk.db.query import Connection
from flowdesk.errors import Conflict, NotFound, found
from flowdesk.notifications import repository as repo
from flowdesk.notifications.content import render_mail, template_source, ticket_context
from flowdesk.notifications.repository import DeliveryRow, NewDelivery, WebhookRow
from flowdesk.notifications.schemas import (
    DeliveryOut,
    DeliveryQuery,
    PreviewIn,
    PreviewOut,
    TemplateIn,
    TemplateOut,
    WebhookIn,
    WebhookPatch,
)
from flowdesk.notifications.templates import TemplateSource, builtin, sample_context, validate
from flowdesk.notifications.webhook_http import WebhookResult, WebhookSender, check_url, new_secret
from flowdesk.pagination import Page, next_cursor
from flowdesk.tickets.facts import dump_json
from flowdesk.tickets.service import locate
from flowdesk.vocabulary import TICKET_EVENTS
from flowdesk.workflow import Catalog

# --- deliveries ------------------------------------------------------------------------------


def delivery_out(d: DeliveryRow) -> DeliveryOut:
    return DeliveryOut.model_validate(
        {
            **d,
            "next_attempt_at": d["next_attempt_at"] if d["state"] == "pending" else None,
            "subject": d["content"].get("subject") if d["channel"] == "email" else None,
        }
    )


async def list_deliveries(
    conn: Connection,
    catalog: Catalog,
    principal: Principal,
    query: DeliveryQuery,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
) -> Page[DeliveryOut]:
    """The tenant's deliveries, newest first, filtered by state, channel and ticket."""
    ticket_id = None
    if query.ticket is not None:
        _, ticket = await locate(conn, catalog, principal, query.ticket)
        ticket_id = ticket["id"]
    found_rows = await repo.deliveries_page(
        conn,
        principal.tenant_id,
        state=query.status,
        channel=query.channel,
        ticket_id=ticket_id,
        before=before,
        limit=limit + 1,
    )
    return Page[DeliveryOut](
        items=[delivery_out(d) for d in found_rows[:limit]],
        next_cursor=next_cursor(found_rows, limit, lambda d: [d["created_at"], d["id"]]),
    )


async def get_delivery(
    conn: Connection, tenant_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryOut:
    return delivery_out(
        found(await repo.delivery(conn, tenant_id, delivery_id), f"No delivery {delivery_id}.")
    )


async def retry_delivery(
    conn: Connection, tenant_id: uuid.UUID, delivery_id: uuid.UUID, retry_seconds: int
) -> DeliveryOut:
    """Send a failed or dropped delivery again now (same Message-ID or webhook-id), with a
    fresh retry window. A dropped mail still counts against the month's quota when sent."""
    retried = await repo.retry(conn, tenant_id, delivery_id, retry_seconds)
    if retried is not None:
        return delivery_out(retried)
    current = found(
        await repo.delivery(conn, tenant_id, delivery_id), f"No delivery {delivery_id}."
    )
    raise Conflict(
        f"The delivery is {current['state']}: only a failed or dropped delivery can be retried.",
        extra={"state": current["state"]},
    )


# --- templates -------------------------------------------------------------------------------


def _known_event(event: str) -> str:
    if event not in TICKET_EVENTS:
        raise NotFound(f"No notification event '{event}' (events: {', '.join(TICKET_EVENTS)}).")
    return event


def _template_out(
    event: str, source: TemplateSource, *, custom: bool, in_use: bool, updated_at: datetime | None
) -> TemplateOut:
    return TemplateOut.model_validate(
        {
            "event": event,
            "subject": source.subject,
            "html": source.html,
            "text": source.text,
            "custom": custom,
            "in_use": in_use,
            "updated_at": updated_at,
        }
    )


async def get_template(
    conn: Connection, tenant_id: uuid.UUID, event: str, *, custom_enabled: bool
) -> TemplateOut:
    """The tenant's template of the event, or the built-in one."""
    stored = await repo.template(conn, tenant_id, _known_event(event))
    if stored is None:
        return _template_out(event, builtin(event), custom=False, in_use=True, updated_at=None)
    return _template_out(
        event,
        template_source(event, stored),
        custom=True,
        in_use=custom_enabled,
        updated_at=stored["updated_at"],
    )


async def put_template(
    conn: Connection, tenant_id: uuid.UUID, event: str, body: TemplateIn
) -> tuple[TemplateOut, bool]:
    """Store the tenant's template after checking it (422 with a pointer to the line of any
    problem); (the template, whether it is new)."""
    _known_event(event)
    source = TemplateSource(body.subject, body.html, body.text)
    # Off the event loop: checking a large template takes a noticeable fraction of a second.
    await asyncio.to_thread(validate, source)
    existed = await repo.template(conn, tenant_id, event) is not None
    stored = await repo.put_template(conn, tenant_id, event, body.subject, body.html, body.text)
    out = _template_out(event, source, custom=True, in_use=True, updated_at=stored["updated_at"])
    return out, not existed


async def delete_template(conn: Connection, tenant_id: uuid.UUID, event: str) -> None:
    if not await repo.delete_template(conn, tenant_id, _known_event(event)):
        raise NotFound(f"The tenant has no template of its own for '{event}'.")


async def preview_template(
    conn: Connection,
    principal: Principal,
    event: str,
    body: PreviewIn,
    *,
    catalog: Catalog,
    portal_url: str | None,
    custom_enabled: bool,
) -> PreviewOut:
    """Render a template (the one given, else the one in use) against a real ticket of the
    tenant or a sample."""
    _known_event(event)
    if body.template is not None:
        source = TemplateSource(body.template.subject, body.template.html, body.template.text)
        await asyncio.to_thread(validate, source)
    else:
        stored = await repo.template(conn, principal.tenant_id, event) if custom_enabled else None
        source = template_source(event, stored)
    context = sample_context(event)
    if body.ticket is not None:
        _, ticket = await locate(conn, catalog, principal, body.ticket)
        tickets = await repo.tickets_by_key(conn, [(principal.tenant_id, ticket["id"])])
        tenants = await repo.tenants_by_id(conn, [principal.tenant_id])
        notice = tickets[(principal.tenant_id, ticket["id"])]
        context |= ticket_context(
            notice,
            {},
            catalog=catalog,
            portal_url=portal_url,
            tenant_name=tenants[principal.tenant_id]["name"],
            comment_body=context.get("comment_body", ""),
            actor_name=context.get("actor_name", ""),
        )
    mail = render_mail(source, event, context)
    return PreviewOut(subject=mail.subject, html=mail.html, text=mail.text)


# --- webhook endpoints -----------------------------------------------------------------------


async def create_webhook(
    conn: Connection, tenant_id: uuid.UUID, body: WebhookIn
) -> tuple[WebhookRow, str]:
    """Register an endpoint; (it, its signing secret: shown this once)."""
    url = check_url(body.url)
    secret = new_secret()
    hook = await repo.add_webhook(
        conn, tenant_id, url, sorted(set(body.events)), body.description, secret
    )
    return hook, secret


async def get_webhook(conn: Connection, tenant_id: uuid.UUID, webhook_id: uuid.UUID) -> WebhookRow:
    return found(await repo.webhook(conn, tenant_id, webhook_id), f"No webhook {webhook_id}.")


async def list_webhooks(
    conn: Connection, tenant_id: uuid.UUID, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[WebhookRow]:
    return await repo.webhooks_page(conn, tenant_id, limit + 1, after)


async def update_webhook(
    conn: Connection, tenant_id: uuid.UUID, webhook_id: uuid.UUID, body: WebhookPatch
) -> WebhookRow:
    changes: dict[str, Any] = {}
    given = body.model_dump(exclude_unset=True)
    for name in ("url", "events", "description", "enabled"):
        if given.get(name) is not None:
            changes[name] = given[name]
    if "url" in changes:
        changes["url"] = check_url(changes["url"])
    if "events" in changes:
        changes["events"] = sorted(set(changes["events"]))
    if changes.get("enabled"):
        # Turned back on by an admin: a fresh start, not the old failing streak.
        changes |= {"disabled_reason": None, "failing_since": None}
    elif changes.get("enabled") is False:
        changes["disabled_reason"] = "disabled by an admin"
    if not changes:
        return await get_webhook(conn, tenant_id, webhook_id)
    return found(
        await repo.update_webhook(conn, tenant_id, webhook_id, changes),
        f"No webhook {webhook_id}.",
    )


async def delete_webhook(conn: Connection, tenant_id: uuid.UUID, webhook_id: uuid.UUID) -> None:
    if not await repo.delete_webhook(conn, tenant_id, webhook_id):
        raise NotFound(f"No webhook {webhook_id}.")


@dataclass(frozen=True, slots=True)
class WebhookTest:
    result: WebhookResult
    delivery: DeliveryOut


async def test_webhook(
    db: Database,
    tenant_id: uuid.UUID,
    webhook_id: uuid.UUID,
    sender: WebhookSender,
    retry_seconds: int,
    lease_seconds: float,
) -> WebhookTest:
    """Send a signed `webhook.test` event to the endpoint now and say how it answered; the
    attempt is in the delivery log like any other (not retried: the admin is watching). No
    transaction is held while the endpoint answers."""
    async with db.transaction() as conn:
        hook = await get_webhook(conn, tenant_id, webhook_id)
        delivery_id = uuid.uuid4()
        body = {
            "type": "webhook.test",
            "timestamp": datetime.now(UTC),
            "data": {"webhook_id": hook["id"], "message": "A test event from flowdesk."},
        }
        message_id = f"msg_{delivery_id.hex}"
        raw = dump_json(body).decode()
        new: NewDelivery = {
            "tenant_id": tenant_id,
            "id": delivery_id,
            "outbox_id": None,
            "ticket_id": None,
            "event": "webhook.test",
            "channel": "webhook",
            "recipient": str(hook["id"]),
            "webhook_id": hook["id"],
            "message_id": message_id,
            "content": {"body": raw},
        }
        await repo.add_deliveries(conn, [new], retry_seconds)
        # Claimed before it is committed, as the relay claims: a relay polling meanwhile would
        # otherwise find it due and send it a second time.
        await repo.take(conn, tenant_id, delivery_id, lease_seconds)
    result = await sender.send(hook["url"], hook["secret"], message_id, raw.encode())
    async with db.transaction() as conn:
        await repo.settle(
            conn,
            [
                {
                    "tenant_id": tenant_id,
                    "id": delivery_id,
                    "state": "sent" if result.ok else "failed",
                    "delay": 0,
                    "error": result.error,
                }
            ],
        )
        written = found(await repo.delivery(conn, tenant_id, delivery_id), "The test vanished.")
    return WebhookTest(result, delivery_out(written))
