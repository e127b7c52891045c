"""LIKE patterns from what a person typed into a search box.

`contains(text)` is the pattern of a case-insensitive substring search, with `%`, `_` and the
escape character itself matched literally: a search for `50%` finds "50% off", not every
name with "50" in it. Use it with `ESCAPE` (SQLAlchemy: `column.ilike(pattern, escape=ESCAPE)`).

ILIKE folds case by the database's LC_CTYPE: with a UTF-8 one (C.UTF-8, en_US.UTF-8, …) "É"
matches "é"; under the plain C locale only ASCII letters fold.
"""

from __future__ import annotations

ESCAPE = "\\"

_LITERAL = str.maketrans({ESCAPE: ESCAPE * 2, "%": ESCAPE + "%", "_": ESCAPE + "_"})


def contains(text: str) -> str:
    """The pattern matching any value that has `text` in it."""
    return f"%{text.translate(_LITERAL)}%"
