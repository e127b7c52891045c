"""Bodies of the usage reports."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel, Field

from flowdesk.usage.repository import MAX_ROWS


class UsageRow(BaseModel):
    day: date
    api_key_id: uuid.UUID
    family: str = Field(description='The endpoint family, e.g. "public.tickets", "v1.users".')
    status_class: str = Field(description='"2xx", "4xx", ...')
    count: int


class UsageReport(BaseModel):
    """Requests per API key per UTC day. Counts reach the database in batches, so the last
    few seconds of traffic may not be in it yet."""

    first_day: date
    last_day: date
    total: int = Field(description="Every request of the range, including rows `items` omits.")
    items: list[UsageRow] = Field(
        description=f"By day, key, family and class; at most {MAX_ROWS:,}."
    )
