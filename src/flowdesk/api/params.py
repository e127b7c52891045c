"""Query parameters several endpoints share: a list's page (size and cursor), a report's range
of days."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import Depends, Query

from flowdesk.pagination import DEFAULT_LIMIT, PageRequest, Part, decode_cursor
from flowdesk.schema_types import Limit

Cursor = Annotated[str | None, Query(max_length=512)]
"""The opaque `cursor` of a list's next page (flowdesk.pagination)."""


def cursor_page(*parts: Part) -> Any:
    """The page a list is asked for (`?limit=&cursor=`), its cursor read back by `parts`:
    `page: PageRequest = cursor_page(cursor_time, cursor_uuid)`."""

    def page_request(limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> PageRequest:
        return PageRequest(limit, decode_cursor(cursor, *parts))

    return Depends(page_request)


FromDay = Annotated[
    date | None, Query(alias="from", description="First UTC day (default: 29 days before 'to').")
]
ToDay = Annotated[date | None, Query(alias="to", description="Last UTC day (default: today).")]
