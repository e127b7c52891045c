"""Keyset (cursor) pagination: the page shape, cursors, and the fetch-one-more rule; stable
under concurrent inserts, constant cost per page."""

from __future__ import annotations

import base64
import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel

from flowdesk.errors import InvalidInput

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_LIMIT = 50


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(values: Sequence[Any]) -> str:
    raw = orjson.dumps(list(values), default=str)
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def next_cursor(rows: Sequence[R], limit: int, key: Callable[[R], Sequence[Any]]) -> str | None:
    """Lists fetch one row more than a page: when it is there, another page follows, and its
    cursor is the key of this page's last row."""
    return encode_cursor(key(rows[limit - 1])) if len(rows) > limit else None


_BIGINT = range(-(2**63), 2**63)

Part = Callable[[object], Any]
"""How one value of a cursor is read back, refusing what no page of ours would have made."""


@dataclass(frozen=True, slots=True)
class PageRequest:
    """What a list was asked for: a page size, and the key of the previous page's last row
    (None for the first page), read back by the list's cursor parts."""

    limit: int
    after: tuple[Any, ...] | None = None

    @property
    def after_key(self) -> Any:
        """The key of a one-part cursor (an id), or None for the first page."""
        return self.after[0] if self.after else None


def decode_cursor(cursor: str | None, *parts: Part) -> tuple[Any, ...] | None:
    """The key a cursor continues after, each value read by its part (None without a cursor).
    A cursor that is not one of ours (forged, truncated, of another list) is a 422."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError) as exc:
        raise _malformed() from exc
    if not isinstance(values, list) or len(values) != len(parts):
        raise _malformed()
    return tuple(part(value) for part, value in zip(parts, values, strict=True))


def _malformed() -> InvalidInput:
    return InvalidInput("The cursor is not valid.", [("/query/cursor", "malformed")])


def cursor_time(value: object) -> datetime:
    """A timestamp with its offset, within what PostgreSQL stores (a forged
    `9999-12-31T23:59:59-14:00` is past year 9999 in UTC)."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError, OverflowError):
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is not None:
                return moment.astimezone(UTC)
    raise _malformed()


def cursor_uuid(value: object) -> uuid.UUID:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return uuid.UUID(value)
    raise _malformed()


def cursor_int(value: object) -> int:
    """A bigint (an id, a rank); `true` is an int to Python but not to us."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in _BIGINT:
        raise _malformed()
    return value


def cursor_text(max_length: int) -> Part:
    """A string of the column's length that PostgreSQL can hold (no NUL)."""

    def text(value: object) -> str:
        if not isinstance(value, str) or "\x00" in value or len(value) > max_length:
            raise _malformed()
        return value

    return text
