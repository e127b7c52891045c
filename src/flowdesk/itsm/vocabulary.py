"""What the ITSM licence makes of the shared vocabulary (flowdesk.vocabulary): the flags a
licence turns on by default, how stored flags and quotas read, the "ITSM Agent" system group,
and which permissions take an agent seat."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from flowdesk.vocabulary import (
    ADMIN,
    FLAGS,
    QUOTAS,
    TICKETS_CLOSE,
    TICKETS_CREATE,
    TICKETS_MANAGE,
    Flag,
    Permission,
)

# What a licence switches on unless the operator says otherwise: the two portals are the
# product; everything else is sold (or rolled out) separately.
DEFAULT_FLAGS: Final[Mapping[Flag, bool]] = {
    flag: flag in {"agent_portal", "end_user_portal"} for flag in FLAGS
}

ITSM_AGENT_GROUP: Final = "ITSM Agent"
ITSM_AGENT_PERMISSIONS: Final[tuple[Permission, ...]] = (
    TICKETS_CLOSE,
    TICKETS_CREATE,
    TICKETS_MANAGE,
)
# Who counts against max_agents: holders of tickets:manage, and admins (admin implies it).
AGENT_GRANTING_PERMISSIONS: Final[tuple[Permission, ...]] = (TICKETS_MANAGE, ADMIN)


def resolved_flags(stored: Mapping[str, object]) -> dict[str, bool]:
    """Every flag with its value: the stored one, else the default."""
    return {flag: bool(stored.get(flag, DEFAULT_FLAGS[flag])) for flag in FLAGS}


def resolved_quotas(stored: Mapping[str, object]) -> dict[str, int | None]:
    """Every quota with its limit; None is unlimited."""
    result: dict[str, int | None] = {}
    for quota in QUOTAS:
        value = stored.get(quota)
        # bool is an int to Python, never a quota.
        result[quota] = value if isinstance(value, int) and not isinstance(value, bool) else None
    return result
