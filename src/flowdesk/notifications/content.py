"""What a notification says: the placeholders of a ticket event, and the template that
renders them (the tenant's own when allowed, else the built-in)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
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
from flowdesk.workflow.sla_model import SlaPolicy

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


EVENT_PLACEHOLDERS = ("sla_name", "sla_due_at", "sla_action", "approval_name", "approver_name")
"""The placeholders of some events only (SLA marks, approvals); empty in the others."""


def event_context(
    topic: str,
    payload: dict[str, Any],
    *,
    catalog: Catalog,
    ticket: TicketNoticeRow,
    policy: SlaPolicy | None = None,
    approver_name: str = "",
) -> dict[str, str]:
    """The event's own placeholders (every one of EVENT_PLACEHOLDERS, empty where the event
    has none)."""
    values = dict.fromkeys(EVENT_PLACEHOLDERS, "")
    if topic.startswith("ticket.sla_"):
        values["sla_name"] = str(payload.get("label") or payload.get("name") or "")
        values["sla_due_at"] = due_text(payload.get("due_at"))
        values["sla_action"] = _action_label(catalog, ticket, policy)
    elif topic in ("ticket.approval_added", "ticket.approval_revoked"):
        name = str(payload.get("name") or "")
        approval = catalog.approvals.get(name)
        values["approval_name"] = (approval.label if approval else "") or name
        values["approver_name"] = approver_name
    return values


def due_text(value: object) -> str:
    """A due time as people read it in a mail: "2026-12-04 09:30 UTC"."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _action_label(catalog: Catalog, ticket: TicketNoticeRow, policy: SlaPolicy | None) -> str:
    """What the policy's breach does, as a verb ("cancel"): its action's label."""
    if policy is None or not policy.action:
        return ""
    workflow = catalog.workflows.get(ticket["workflow"])
    action = (
        next((a for a in workflow.actions if a.name == policy.action), None) if workflow else None
    )
    return (action.label if action and action.label else policy.action).lower()


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
