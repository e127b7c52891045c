"""The service's words, each spelled in one place: priorities, status categories, permissions,
key scopes, the ITSM licence's feature flags and quotas.

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

Quota = Literal["max_agents", "max_emails_month"]
QUOTAS: Final[tuple[Quota, ...]] = get_args(Quota)
