"""API usage metering: requests per API key per day, by endpoint family and status class.

Rows are written in batches by flowdesk.usage.meter (an upsert adding to `count`), never once
per request."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    SmallInteger,
    String,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from flowdesk.db.base import Base


class ApiUsage(Base):
    __tablename__ = "api_usage"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "api_key_id"], ["api_keys.tenant_id", "api_keys.id"], ondelete="CASCADE"
        ),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    api_key_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # The route's family ("public.tickets", "v1.tickets", "v1.users", ...): bounded by the
    # routes, never by what a client puts in a URL.
    family: Mapped[str] = mapped_column(String(40), primary_key=True)
    # 2 for 2xx, 4 for 4xx, ...
    status_class: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
