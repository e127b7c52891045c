"""The permission and scope vocabulary, and how the two combine."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Permission = Literal["tickets:create", "tickets:manage", "tickets:close", "admin"]
Scope = Literal["tickets:read", "tickets:write", "admin"]

ALL_PERMISSIONS: frozenset[str] = frozenset(
    {"tickets:create", "tickets:manage", "tickets:close", "admin"}
)
ALL_SCOPES: frozenset[str] = frozenset({"tickets:read", "tickets:write", "admin"})

# What each key scope lets through of the user's permissions.
_SCOPE_ALLOWS: dict[str, frozenset[str]] = {
    "tickets:read": frozenset(),
    "tickets:write": frozenset({"tickets:create", "tickets:manage", "tickets:close"}),
    "admin": frozenset({"admin"}),
}


def user_permissions(granted: Iterable[str]) -> frozenset[str]:
    """The union of a user's group permissions; `admin` implies every other permission."""
    perms = frozenset(granted) & ALL_PERMISSIONS
    return ALL_PERMISSIONS if "admin" in perms else perms


def effective_permissions(granted: Iterable[str], scopes: Iterable[str]) -> frozenset[str]:
    """What a request may do: the user's permissions intersected with what the key's scopes
    allow. A key never grants more than its user holds, and a user never acts beyond the key."""
    allowed: set[str] = set()
    for scope in scopes:
        allowed |= _SCOPE_ALLOWS.get(scope, frozenset())
    return user_permissions(granted) & allowed
