"""The tables, as SQLAlchemy Core `Table`s on one metadata: what Alembic migrates and every
statement is built from. One module per aggregate."""

from flowdesk.db.base import metadata
from flowdesk.models.assets import asset_movements, assets
from flowdesk.models.attachments import attachment_chunks, attachments
from flowdesk.models.audit import admin_audit_log
from flowdesk.models.identity import (
    api_keys,
    group_members,
    groups,
    identity_providers,
    user_identities,
    users,
)
from flowdesk.models.itsm import licence_events, quota_alerts
from flowdesk.models.notifications import (
    deliveries,
    email_usage,
    notification_templates,
    webhooks,
)
from flowdesk.models.sla import sla_clocks
from flowdesk.models.tenants import tenants
from flowdesk.models.tickets import (
    idempotency_keys,
    live_tenants,
    outbox,
    ticket_approvals,
    ticket_comments,
    ticket_counters,
    ticket_events,
    ticket_links,
    tickets,
)
from flowdesk.models.usage import api_usage

__all__ = [
    "admin_audit_log",
    "api_keys",
    "api_usage",
    "asset_movements",
    "assets",
    "attachment_chunks",
    "attachments",
    "deliveries",
    "email_usage",
    "group_members",
    "groups",
    "idempotency_keys",
    "identity_providers",
    "licence_events",
    "live_tenants",
    "metadata",
    "notification_templates",
    "outbox",
    "quota_alerts",
    "sla_clocks",
    "tenants",
    "ticket_approvals",
    "ticket_comments",
    "ticket_counters",
    "ticket_events",
    "ticket_links",
    "tickets",
    "user_identities",
    "users",
    "webhooks",
]
