"""The service's words, each spelled in one place: priorities, status categories and
milestones, permissions, key scopes, the notification events, channels and delivery states,
the ITSM licence's feature flags and quotas.

Everything else imports them from here (the pure workflow engine included), so adding a
priority or a flag is one edit.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Priority = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]
PRIORITIES: Final[tuple[Priority, ...]] = get_args(Priority)
"""Lowest first: the order `sort=priority` follows (tickets.priority_rank)."""

Category = Literal["initial", "active", "inactive"]
CATEGORIES: Final[tuple[Category, ...]] = get_args(Category)
"""RT's status categories: every workflow status is in one of them."""

Milestone = Literal["resolved", "closed"]
MILESTONES: Final[tuple[Milestone, ...]] = get_args(Milestone)
"""What a status may mean beyond its category (declared per status in the workflow YAML):
`resolved` awaits the requester's confirmation, `closed` is the end of the ticket's life.
Notifications announce each (ticket.resolved, ticket.closed)."""

Permission = Literal["tickets:create", "tickets:manage", "tickets:close", "admin"]
TICKETS_CREATE: Final = "tickets:create"
TICKETS_MANAGE: Final = "tickets:manage"
TICKETS_CLOSE: Final = "tickets:close"
ADMIN: Final = "admin"
PERMISSIONS: Final[tuple[Permission, ...]] = get_args(Permission)

Scope = Literal["tickets:read", "tickets:write", "admin"]
TICKETS_READ: Final = "tickets:read"
TICKETS_WRITE: Final = "tickets:write"
SCOPES: Final[tuple[Scope, ...]] = get_args(Scope)

KeyChannel = Literal["first_party", "public"]
FIRST_PARTY: Final = "first_party"
PUBLIC: Final = "public"
KEY_CHANNELS: Final[tuple[KeyChannel, ...]] = get_args(KeyChannel)
"""Where an API key may be used: the first-party API (/v1: the SPAs, operators' tools and
sign-ins) or the public API (/public/v1: external systems). A key is refused on the other."""

Flag = Literal[
    "agent_portal",
    "end_user_portal",
    "asset_integration",
    "email_notifications",
    "email_templates",
    "public_api",
    "movement_link",
]
FLAGS: Final[tuple[Flag, ...]] = get_args(Flag)

TicketTopic = Literal[
    "ticket.created",
    "ticket.assigned",
    "ticket.comment_added",
    "ticket.status_changed",
    "ticket.resolved",
    "ticket.closed",
    "ticket.sla_reminder",
    "ticket.sla_warning",
    "ticket.sla_breached",
    "ticket.approval_added",
    "ticket.approval_revoked",
    "ticket.attachment_added",
]
TICKET_TOPICS: Final[tuple[TicketTopic, ...]] = get_args(TicketTopic)
"""The topics of the outbox's ticket messages: what webhooks subscribe to and receive."""

TicketEvent = Literal[
    "ticket.created",
    "ticket.assigned",
    "ticket.comment_added",
    "ticket.status_changed",
    "ticket.resolved",
    "ticket.closed",
    "ticket.sla_reminder",
    "ticket.sla_warning",
    "ticket.sla_breached",
    "ticket.approval_added",
    "ticket.approval_revoked",
    "ticket.approval_requested",
]
TICKET_EVENTS: Final[tuple[TicketEvent, ...]] = get_args(TicketEvent)
"""The ticket e-mails, each with a built-in template a tenant may replace: seed 004's six,
the SLA clocks' reminder, warning and breach, and the approvals (added, revoked, and
`ticket.approval_requested`: the request entered a status whose way on needs an approval
nobody gave yet; made at fan-out from `ticket.status_changed`, not an outbox topic)."""

WEBHOOK_DISABLED: Final = "webhook.disabled"
"""The notice to a tenant's admins that an endpoint failing for days was disabled."""

Channel = Literal["email", "webhook"]
CHANNELS: Final[tuple[Channel, ...]] = get_args(Channel)
DeliveryState = Literal["pending", "sent", "failed", "dropped"]
DELIVERY_STATES: Final[tuple[DeliveryState, ...]] = get_args(DeliveryState)

Quota = Literal["max_agents", "max_emails_month"]
QUOTAS: Final[tuple[Quota, ...]] = get_args(Quota)
