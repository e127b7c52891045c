"""Who is calling: the tenant, the user and what this request may do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from flowdesk.vocabulary import ADMIN, FIRST_PARTY, TICKETS_MANAGE


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: uuid.UUID
    tenant_slug: str
    user_id: uuid.UUID
    user_kind: str
    key_id: uuid.UUID
    scopes: frozenset[str]
    # What this request may do: the user's permissions intersected with what the key's scopes
    # allow. Writes are decided on these.
    permissions: frozenset[str]
    # What the user holds through their groups, whatever the key. Reads are decided on these
    # (with the tickets:read scope): an agent's read-only key still sees the agent's queue.
    user_permissions: frozenset[str] = frozenset()
    # The API the key was issued for (flowdesk.auth.channels): "first_party" or "public".
    channel: str = FIRST_PARTY

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def is_agent(self) -> bool:
        """The user works the queue (tickets:manage, which admin implies): they see every
        ticket of the tenant and internal notes, with any key that may read."""
        return TICKETS_MANAGE in self.user_permissions

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.permissions
