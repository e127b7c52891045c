"""The tenant: the root of every other row (each tenant-owned table leads with tenant_id)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Integer, String, Uuid, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from flowdesk.db.base import Base, new_id


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    ticket_prefix: Mapped[str] = mapped_column(String(10), server_default=text("'TKT'"))
    flags: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    quotas: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # The ITSM add-on licence, set by the platform operator only (flowdesk.itsm).
    licence_active: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    licence_activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    licence_deactivated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The per-API-key rate limit of this tenant; NULL means the service default.
    rate_limit_requests: Mapped[int | None] = mapped_column(Integer)
    rate_limit_window_seconds: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
