"""Query parameters several endpoints share (a list's cursor, a report's range of days)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Query

Cursor = Annotated[str | None, Query(max_length=512)]
"""The opaque `cursor` of a list's next page (flowdesk.pagination)."""

FromDay = Annotated[
    date | None, Query(alias="from", description="First UTC day (default: 29 days before 'to').")
]
ToDay = Annotated[date | None, Query(alias="to", description="Last UTC day (default: today).")]
