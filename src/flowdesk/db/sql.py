"""Named parameters for raw asyncpg statements.

SQL reads better with `:name` than with `$7`; `Statement` turns one into the other once, at
import, and binds a dict of values in order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# `:name`, but not the `::type` of a cast nor a colon inside a word ('tickets:manage').
_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


class Statement:
    __slots__ = ("names", "sql")

    def __init__(self, sql: str) -> None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}"

        self.sql = _PARAM.sub(number, sql)
        self.names = tuple(names)

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]
