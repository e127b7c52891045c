"""Keyset (cursor) pagination: the page shape, cursors, and the fetch-one-more rule; stable
under concurrent inserts, constant cost per page."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
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


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError) as exc:
        raise _malformed() from exc
    if not isinstance(values, list) or len(values) != arity:
        raise _malformed()
    return values


def _malformed() -> InvalidInput:
    return InvalidInput("The cursor is not valid.", [("/query/cursor", "malformed")])


def cursor_time(value: object) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise _malformed() from exc


def cursor_uuid(value: object) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise _malformed() from exc
