"""The ITSM add-on's governance records: quota alerts (refused overruns and tenants found over
quota) and the log of licence changes made by the platform operator."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from flowdesk.db.base import Base


class QuotaAlert(Base):
    """`kind` is `refused` (a change that would have overrun a quota, refused at the door; closed
    from birth) or `over_quota` (the background check found the tenant over a quota; open until
    a later check finds it back within, at most one open per tenant and quota)."""

    __tablename__ = "quota_alerts"
    __table_args__ = (
        Index(
            "uq_quota_alerts_open",
            "tenant_id",
            "quota",
            unique=True,
            postgresql_where=text("resolved_at IS NULL"),
        ),
        Index("ix_quota_alerts_id", "id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    quota: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16))
    quota_limit: Mapped[int] = mapped_column(Integer)
    current_use: Mapped[int] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LicenceEvent(Base):
    """Who changed a tenant's licence, flags, quotas or rate limit, when, and to what."""

    __tablename__ = "licence_events"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    actor: Mapped[str] = mapped_column(String(64))
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
