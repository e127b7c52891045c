"""How a user's permissions (from groups) and a key's scopes combine into what a request may do."""

from __future__ import annotations

from collections.abc import Iterable

from flowdesk.vocabulary import (
    ADMIN,
    PERMISSIONS,
    TICKETS_CLOSE,
    TICKETS_CREATE,
    TICKETS_MANAGE,
    TICKETS_READ,
    TICKETS_WRITE,
)

_ALL_PERMISSIONS: frozenset[str] = frozenset(PERMISSIONS)

# What each key scope lets through of the user's permissions.
_SCOPE_ALLOWS: dict[str, frozenset[str]] = {
    TICKETS_READ: frozenset(),
    TICKETS_WRITE: frozenset({TICKETS_CREATE, TICKETS_MANAGE, TICKETS_CLOSE}),
    ADMIN: frozenset({ADMIN}),
}


def user_permissions(granted: Iterable[str]) -> frozenset[str]:
    """The union of a user's group permissions; `admin` implies every other flowdesk
    permission. Anything else a group holds is a workflow right (RT's `ApproveOrder`, maybe
    for one catalog item: `ApproveOrder@orders`), kept as it is."""
    held = frozenset(granted)
    own = held & _ALL_PERMISSIONS
    return (_ALL_PERMISSIONS if ADMIN in own else own) | (held - _ALL_PERMISSIONS)


def effective_permissions(granted: Iterable[str], scopes: Iterable[str]) -> frozenset[str]:
    """What a request may do: the user's permissions intersected with what the key's scopes
    allow. A key never grants more than its user holds, and a user never acts beyond the key.
    Workflow rights act on tickets: a key with `tickets:write` carries them."""
    scopes = frozenset(scopes)
    allowed: set[str] = set()
    for scope in scopes:
        allowed |= _SCOPE_ALLOWS.get(scope, frozenset())
    held = user_permissions(granted)
    rights = held - _ALL_PERMISSIONS if TICKETS_WRITE in scopes else frozenset()
    return (held & allowed) | rights
