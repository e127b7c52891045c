"""A unique index's verdict as the client's error: the check is the index's, so two
concurrent requests cannot both pass it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from asyncpg.exceptions import UniqueViolationError

from flowdesk.errors import Conflict


@contextmanager
def unique(constraint: str, detail: str) -> Iterator[None]:
    """The statement's violation of `constraint` as a 409 Conflict saying `detail`."""
    try:
        yield
    except UniqueViolationError as exc:
        if exc.constraint_name != constraint:
            raise
        raise Conflict(detail) from exc
