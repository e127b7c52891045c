"""Who is calling: the tenant, the user and what this request may do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: uuid.UUID
    tenant_slug: str
    user_id: uuid.UUID
    user_kind: str
    key_id: uuid.UUID
    scopes: frozenset[str]
    # The user's permissions intersected with what the key's scopes allow.
    permissions: frozenset[str]

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def is_admin(self) -> bool:
        return "admin" in self.permissions
