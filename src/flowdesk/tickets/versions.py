"""Optimistic concurrency on tickets: which versions a write may apply to."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

VersionCheck: TypeAlias = Callable[[int], bool]
"""Whether a write may apply to the ticket at this version (a client's If-Match)."""


def any_version(_version: int) -> bool:
    return True
