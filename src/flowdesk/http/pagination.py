"""Keyset (cursor) pagination: stable under concurrent inserts, constant cost per page."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel

from flowdesk.errors import InvalidInput

T = TypeVar("T")

DEFAULT_LIMIT = 50


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(values: Sequence[Any]) -> str:
    raw = orjson.dumps(list(values), default=str)
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


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
