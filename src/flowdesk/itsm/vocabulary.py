"""The names the ITSM licence is made of: feature flags, quotas, the system group."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Flag = Literal[
    "agent_portal",
    "end_user_portal",
    "asset_integration",
    "email_notifications",
    "email_templates",
    "public_api",
    "movement_link",
]
FLAGS: tuple[str, ...] = (
    "agent_portal",
    "end_user_portal",
    "asset_integration",
    "email_notifications",
    "email_templates",
    "public_api",
    "movement_link",
)
# What a licence switches on unless the operator says otherwise: the two portals are the
# product; everything else is sold (or rolled out) separately.
DEFAULT_FLAGS: dict[str, bool] = {
    flag: flag in {"agent_portal", "end_user_portal"} for flag in FLAGS
}

Quota = Literal["max_agents", "max_emails_month"]
QUOTAS: tuple[str, ...] = ("max_agents", "max_emails_month")

ITSM_AGENT_GROUP = "ITSM Agent"
ITSM_AGENT_PERMISSIONS = ("tickets:close", "tickets:create", "tickets:manage")
# Who counts against max_agents: holders of tickets:manage, and admins (admin implies it).
AGENT_GRANTING_PERMISSIONS = ("tickets:manage", "admin")


def resolved_flags(stored: Mapping[str, Any]) -> dict[str, bool]:
    """Every flag with its value: the stored one, else the default."""
    return {flag: bool(stored.get(flag, DEFAULT_FLAGS[flag])) for flag in FLAGS}


def resolved_quotas(stored: Mapping[str, Any]) -> dict[str, int | None]:
    """Every quota with its limit; None is unlimited."""
    result: dict[str, int | None] = {}
    for quota in QUOTAS:
        value = stored.get(quota)
        result[quota] = int(value) if isinstance(value, int) else None
    return result
