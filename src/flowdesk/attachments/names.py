"""What an uploader says about a file, made safe to keep and to send back: its name (no path,
no control characters, a sane length) and its media type (kept as given when it is one,
else application/octet-stream)."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

MAX_FILENAME = 255
FALLBACK_NAME = "attachment"
OCTET_STREAM = "application/octet-stream"

# RFC 9110's token characters: a media type is token/token, then `; name=value` parameters.
_CHARS = r"[A-Za-z0-9!#$&^_.+-]+"
_PARAMETER = rf"\s*;\s*{_CHARS}=(?:{_CHARS}|\"[^\"\\\r\n]*\")"
_MEDIA_TYPE = re.compile(rf"^{_CHARS}/{_CHARS}(?:{_PARAMETER})*$")


def safe_filename(given: str | None) -> str:
    """The file's own name as a user would save it: the last part of any path (a browser may
    send `C:\\Users\\me\\log.txt`), Unicode NFC, without control or format characters, without
    leading dots (no hidden files) or trailing dots and spaces, at most 255 characters with
    its extension kept; `attachment` when nothing is left."""
    name = (given or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(c for c in name if unicodedata.category(c)[0] not in ("C", "Z") or c == " ")
    name = " ".join(name.split()).lstrip(". ").rstrip(". ")
    if len(name) > MAX_FILENAME:
        stem, dot, extension = name.rpartition(".")
        if dot and 0 < len(extension) <= 16:
            name = stem[: MAX_FILENAME - len(extension) - 1].rstrip(". ") + "." + extension
        else:
            name = name[:MAX_FILENAME]
    return name or FALLBACK_NAME


def safe_content_type(given: str | None) -> str:
    """The media type as given (with its parameters) when it is one, else octet-stream."""
    value = (given or "").strip()
    if len(value) > 255 or not _MEDIA_TYPE.match(value):
        return OCTET_STREAM
    return value


def content_disposition(filename: str) -> str:
    """`attachment` with the name as RFC 6266 says: an ASCII `filename` for old clients and
    the exact name in `filename*` (RFC 8187, UTF-8)."""
    ascii_name = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\%' else "_" for c in filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
