"""Constrained types every schema builds on: every string and list has a maximum length and no
string may carry a NUL byte (PostgreSQL text cannot store one)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, StringConstraints

SHORT_NAME_LENGTH = 100
SLUG_LENGTH = 63


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(no_nul),
]
ShortName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=SHORT_NAME_LENGTH),
    AfterValidator(no_nul),
]
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=300),
    AfterValidator(no_nul),
]
LongText = Annotated[str, StringConstraints(max_length=20_000), AfterValidator(no_nul)]
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
    ),
    AfterValidator(no_nul),
]
Slug = Annotated[
    str,
    StringConstraints(
        min_length=2, max_length=SLUG_LENGTH, pattern=r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])$"
    ),
]
TicketPrefix = Annotated[
    str, StringConstraints(min_length=1, max_length=10, pattern=r"^[A-Z][A-Z0-9]*$")
]
Limit = Annotated[int, Field(ge=1, le=100)]


def _storable(value: datetime) -> datetime:
    # 9999-12-31T23:59:59-14:00 is a datetime to Python but past year 9999 in UTC, which
    # neither Python nor PostgreSQL can hold.
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once moved to UTC") from None
    return value


def _written_out(value: object) -> object:
    """A date or time is written as one (ISO 8601): pydantic would also read a number, or a
    numeric string, as a Unix timestamp, so that `?updated_before=0.5` meant 1970."""
    if isinstance(value, bool | int | float) or (
        isinstance(value, str) and _NUMBER.fullmatch(value.strip())
    ):
        raise ValueError("must be written as an ISO 8601 date or date-time, not a number")
    return value


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

Timestamp = Annotated[datetime, BeforeValidator(_written_out), AfterValidator(_storable)]
"""A point in time a query may compare with (a filter's bound)."""
Day = Annotated[date, BeforeValidator(_written_out)]
"""A calendar day (YYYY-MM-DD), never a number."""
# A word or phrase from a URL's query string (a filter value, a search): the same NUL rule as
# bodies, so `?status=%00` is a 422 rather than an error from PostgreSQL.
QueryText = Annotated[str, StringConstraints(max_length=200), AfterValidator(no_nul)]

# Inputs refuse unknown fields: a typo, or a field the client may not set, is a 422 rather
# than silently ignored.
INPUT_CONFIG = ConfigDict(extra="forbid", str_max_length=20_000)
