"""Reading a multipart/form-data upload as it streams in (python-multipart's parser over
`request.stream()`): the file is hashed, measured and spooled as its bytes arrive (in memory
up to 1 MiB, then in an unlinked temporary file), never held whole in memory, and refused
(413) as soon as it passes its limit.

Uploads are outside the 64 KiB JSON body limit (flowdesk.api.middleware passes their body
through unread), so they bring their own bounds: a Content-Length over the limit is refused
before a byte is read, the body read is counted, its part headers and form fields are small,
and the whole body must be in within the upload deadline (else 408, as for other bodies).
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from flowdesk.attachments.service import Upload
from flowdesk.errors import AppError, InvalidInput

# Besides the file: boundaries, part headers and the few short form fields.
OVERHEAD_BYTES = 64 * 1024
FIELD_BYTES = 1024
# Uploads up to this size never touch the disk.
SPOOL_BYTES = 1024 * 1024


class UnsupportedMediaType(AppError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class UploadTimeout(AppError):
    """The body did not arrive within the upload deadline (the rest of it, if it ever comes,
    must not be read as the next request: Connection: close)."""

    status, slug, title = 408, "request-timeout", "Request timeout"


class UploadAborted(AppError):
    """The client went away before the end of its body: nothing was stored."""

    status, slug, title = 400, "upload-incomplete", "Upload incomplete"


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    content_type: str | None = None
    value: bytearray = field(default_factory=bytearray)


class _Form:
    """The parser's callbacks: one file part (`file`), and short text fields."""

    def __init__(self, fields: frozenset[str], file_bytes: int, too_large: Callable[[], AppError]):
        self.fields = fields
        self.file_bytes = file_bytes
        self.too_large = too_large
        self.values: dict[str, str] = {}
        self.spool: IO[bytes] | None = None
        self.filename: str | None = None
        self.content_type: str | None = None
        self.size = 0
        self.digest = hashlib.sha256()
        self.ended = False
        self._part = _Part()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: self._header_name.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _begin(self) -> None:
        self._part = _Part()
        self._headers = {}

    def _header_end(self) -> None:
        self._headers[self._header_name.decode("latin-1").lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get("content-disposition"))
        if disposition != b"form-data" or b"name" not in params:
            raise InvalidInput(
                "Every part needs Content-Disposition: form-data with a name.",
                [("/", "a part without a form-data name")],
            )
        part = self._part
        part.name = params[b"name"].decode("utf-8", "replace")
        if part.name == "file":
            if self.spool is not None:
                raise InvalidInput("One file per upload.", [("/file", "more than one file")])
            part.filename = params.get(b"filename", b"").decode("utf-8", "replace")
            given_type = self._headers.get("content-type")
            part.content_type = given_type.decode("latin-1") if given_type else None
            self.filename, self.content_type = part.filename, part.content_type
            self.spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        elif part.name not in self.fields:
            raise InvalidInput(
                f"Unknown form field '{part.name}'.", [(f"/{part.name}", "unknown field")]
            )
        elif part.name in self.values:
            raise InvalidInput(
                f"The field '{part.name}' is given twice.", [(f"/{part.name}", "given twice")]
            )

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        if part.name == "file" and self.spool is not None:
            self.size += end - start
            if self.size > self.file_bytes:
                raise self.too_large()
            piece = data[start:end]
            self.digest.update(piece)
            self.spool.write(piece)
            return
        part.value.extend(data[start:end])
        if len(part.value) > FIELD_BYTES:
            raise InvalidInput(
                f"The field '{part.name}' is too long.",
                [(f"/{part.name}", f"at most {FIELD_BYTES} bytes")],
            )

    def _part_end(self) -> None:
        part = self._part
        if part.name != "file":
            try:
                self.values[part.name] = part.value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInput(
                    f"The field '{part.name}' is not UTF-8.", [(f"/{part.name}", "not UTF-8")]
                ) from exc

    def _end(self) -> None:
        self.ended = True


def _malformed(reason: str) -> InvalidInput:
    return InvalidInput(f"The multipart body is malformed: {reason}.", [("/", reason)])


async def read_upload(
    request: Request, file_bytes: int, seconds: float, too_large: Callable[[], AppError]
) -> Upload:
    """The upload's file (the `file` part) and its `visibility` and `comment_id` fields. The
    caller closes `upload.file`."""
    media_type, params = parse_options_header(request.headers.get("content-type"))
    boundary = params.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise UnsupportedMediaType(
            "An upload is multipart/form-data (with a boundary), its file in the part 'file'."
        )
    budget = file_bytes + OVERHEAD_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > budget):
        raise too_large()
    form = _Form(frozenset({"visibility", "comment_id"}), file_bytes, too_large)
    parser = MultipartParser(boundary, form.callbacks())  # type: ignore[arg-type]
    received = 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                received += len(chunk)
                if received > budget:
                    raise too_large()
                parser.write(chunk)
        parser.finalize()
        if not form.ended:
            raise _malformed("the body ends before its closing boundary")
        if form.spool is None:
            raise InvalidInput("No file: send it in the part 'file'.", [("/file", "required")])
    except BaseException as exc:
        if form.spool is not None:
            form.spool.close()
        if isinstance(exc, TimeoutError):
            raise UploadTimeout(
                f"The upload did not arrive within {seconds:g} seconds.",
                headers={"connection": "close"},
            ) from exc
        if isinstance(exc, ClientDisconnect):
            raise UploadAborted("The client went away before the end of the upload.") from exc
        if isinstance(exc, MultipartParseError):
            raise _malformed(str(exc) or "unparsable") from exc
        raise
    form.spool.seek(0)
    comment = form.values.get("comment_id")
    try:
        comment_id = uuid.UUID(comment) if comment else None
    except ValueError as exc:
        form.spool.close()
        raise InvalidInput("comment_id is not a UUID.", [("/comment_id", "not a UUID")]) from exc
    return Upload(
        file=form.spool,
        filename=form.filename,
        content_type=form.content_type,
        size=form.size,
        sha256=form.digest.hexdigest(),
        visibility=form.values.get("visibility"),
        comment_id=comment_id,
    )


def upload_digest(request: Request, upload: Upload) -> bytes:
    """What an Idempotency-Key's request is compared by: the path and what the form said,
    the file by its hash (the body itself, read as it streamed, is gone, and its boundary
    differs from one try to the next)."""
    described = "\n".join(
        [
            f"{request.method} {request.url.path}",
            f"filename={upload.filename!r}",
            f"content_type={upload.content_type!r}",
            f"visibility={upload.visibility!r}",
            f"comment_id={upload.comment_id}",
            f"sha256={upload.sha256}",
            f"size={upload.size}",
        ]
    )
    return hashlib.sha256(described.encode()).digest()
