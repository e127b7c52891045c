"""Column shapes every table repeats: the tenant key, generated ids and timestamps."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, DateTime, ForeignKey, Uuid, func, text


def tenant_id(*, references_tenant: bool = True) -> Column[Any]:
    """The leading column of every tenant-owned table's primary key."""
    if references_tenant:
        return Column(
            "tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
        )
    return Column("tenant_id", Uuid, primary_key=True)


def uuid_id() -> Column[Any]:
    """A row id the database makes (gen_random_uuid()), so an insert needs no value."""
    return Column("id", Uuid, primary_key=True, server_default=text("gen_random_uuid()"))


def created_at() -> Column[Any]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def updated_at() -> Column[Any]:
    return Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now())
