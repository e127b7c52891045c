"""What a notification says: the placeholders of a ticket event, and the template that
renders them (the tenant's own when allowed, else the built-in)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from flowdesk.notifications.repository import TemplateRow, TicketNoticeRow
from flowdesk.notifications.templates import (
    RenderedMail,
    TemplateRenderError,
    TemplateSource,
    builtin,
    render,
)
from flowdesk.tickets.facts import format_number
from flowdesk.workflow import Catalog

logger = logging.getLogger(__name__)


def ticket_context(
    ticket: TicketNoticeRow,
    payload: dict[str, Any],
    *,
    catalog: Catalog,
    portal_url: str | None,
    tenant_name: str,
    comment_body: str = "",
    actor_name: str = "",
) -> dict[str, str]:
    """Every placeholder but `recipient_name`, for one event of one ticket."""
    number = format_number(ticket["prefix"], ticket["number"])
    return {
        "ticket_number": number,
        "ticket_title": ticket["title"],
        "ticket_status": status_label(catalog, ticket, payload),
        "assignee_name": ticket["assignee_name"] or "",
        "reporter_name": ticket["requester_name"],
        "comment_body": comment_body,
        "ticket_url": f"{portal_url.rstrip('/')}/tickets/{number}" if portal_url else "",
        "tenant_name": tenant_name,
        "actor_name": actor_name,
    }


def status_label(catalog: Catalog, ticket: TicketNoticeRow, payload: dict[str, Any]) -> str:
    """The status the event moved the ticket to (it may have moved on since), as its workflow
    labels it."""
    status = str(payload.get("to") or payload.get("status") or ticket["status"])
    workflow = catalog.workflows.get(ticket["workflow"])
    found = workflow.statuses.get(status) if workflow else None
    return found.label if found and found.label else status


def template_source(event: str, stored: TemplateRow | None) -> TemplateSource:
    if stored is None:
        return builtin(event)
    return TemplateSource(stored["subject"], stored["html"], stored["text"])


def render_mail(source: TemplateSource, event: str, context: dict[str, str]) -> RenderedMail:
    """The mail; a tenant's template that fails at render time (it was checked at save, but
    a value can still break it, e.g. by its size) gives way to the built-in one. The subject
    always names the ticket: a custom subject that does not is prefixed with its number, as
    people and mail clients find a ticket's mails by it."""
    try:
        mail = render(source, context)
    except TemplateRenderError:
        logger.warning("a custom %s template failed to render; using the built-in", event)
        mail = render(builtin(event), context)
    number = context.get("ticket_number", "")
    if number and number not in mail.subject:
        mail = replace(mail, subject=f"[{number}] {mail.subject}")
    return mail
