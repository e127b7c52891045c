"""HTTP endpoints for a ticket's attachments (…/tickets/{ref}/attachments), made for /v1 and
/public/v1 by the ticket routes' factory (flowdesk.api.tickets.add_ticket_routes), behind the
same gates: reading needs the read gate, uploading and removing the write gate.

- `POST …/attachments`: multipart/form-data, the file in the part `file`, optional fields
  `visibility` (`internal` | `external`) and `comment_id`; streamed (flowdesk.api.uploads);
  201 with the attachment's JSON and its Location; honours Idempotency-Key.
- `GET …/attachments`: the list, oldest first, paged; `GET …/attachments/{id}`: one
  attachment's JSON (metadata); `GET …/attachments/{id}/content`: the bytes, streamed, as a
  download (`Content-Disposition: attachment` with the RFC 6266 name, the stored type,
  `X-Content-Type-Options: nosniff`, a sandboxing Content-Security-Policy).
- `DELETE …/attachments/{id}`: agents remove one for good (audited).
"""

# No `from __future__ import annotations`: the routes name their gates through the factory's
# arguments, which FastAPI reads as evaluated annotations (as in flowdesk.api.tickets).

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.responses import StreamingResponse
from starlette.types import Scope

from flowdesk.api.gates import Gate
from flowdesk.api.headers import IDEMPOTENCY_KEY, documented
from flowdesk.api.idempotency import idempotent
from flowdesk.api.params import cursor_page
from flowdesk.api.uploads import read_upload, upload_digest
from flowdesk.attachments import service
from flowdesk.attachments.names import content_disposition
from flowdesk.attachments.schemas import AttachmentOut
from flowdesk.attachments.storage import Stores
from flowdesk.auth.principal import Principal
from flowdesk.pagination import Page, PageRequest, cursor_time, cursor_uuid
from flowdesk.runtime import runtime_of

_UPLOAD_PATH = re.compile(r"^(/public)?/v1/tickets/[^/]+/attachments/?$")


def is_upload(scope: Scope) -> bool:
    """An upload's request, whose body flowdesk.api.middleware leaves to the endpoint."""
    return scope.get("method") == "POST" and bool(_UPLOAD_PATH.match(scope.get("path", "")))


def _stores(request: Request) -> Stores:
    """The app's attachment stores, made on first use (a bucket's client once per app)."""
    state = request.app.state
    stores = getattr(state, "attachment_stores", None)
    if not isinstance(stores, Stores):
        stores = state.attachment_stores = Stores(runtime_of(request).settings)
    return stores


def _limits(request: Request) -> service.Limits:
    settings = runtime_of(request).settings
    return service.Limits(settings.attachment_max_bytes, settings.attachment_ticket_max_bytes)


_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The file; its part's filename and Content-Type "
                            "are kept (the name sanitised).",
                        },
                        "visibility": {
                            "type": "string",
                            "enum": ["internal", "external"],
                            "description": "Default: the comment's, else external. "
                            "Requesters may add only external files.",
                        },
                        "comment_id": {
                            "type": "string",
                            "format": "uuid",
                            "description": "A comment of this ticket the file belongs to.",
                        },
                    },
                }
            }
        },
    }
}

_UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The client went away before the end of its upload (nothing stored)"},
    408: {"description": "The upload did not arrive within FLOWDESK_ATTACHMENT_TIMEOUT_SECONDS"},
    413: {
        "description": "The file is over FLOWDESK_ATTACHMENT_MAX_BYTES, or the ticket's files "
        "together would be over FLOWDESK_ATTACHMENT_TICKET_MAX_BYTES (nothing stored)"
    },
    415: {"description": "The body is not multipart/form-data with a boundary"},
}

_DOWNLOAD: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file's bytes, as a download, with its stored media type.",
        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        "headers": {
            "Content-Disposition": {"description": "attachment; filename=…; filename*=UTF-8''…"},
            "X-Content-Type-Options": {"description": "nosniff"},
            "ETag": {"description": "The content's SHA-256."},
        },
    }
}


def add_attachment_routes(
    router: APIRouter, read_gate: Gate, write_gate: Gate, extra: dict[int | str, dict[str, Any]]
) -> None:
    """The attachment routes on `router`, behind the ticket routes' gates."""

    @router.post(
        "/tickets/{ref}/attachments",
        status_code=201,
        response_model=AttachmentOut,
        summary="Attach a file (multipart/form-data, streamed)",
        description="The file in the part `file` (one per request), at most "
        "FLOWDESK_ATTACHMENT_MAX_BYTES (25 MiB), and the ticket's files together at most "
        "FLOWDESK_ATTACHMENT_TICKET_MAX_BYTES (100 MiB): 413 beyond, nothing stored. "
        "Whoever may comment may attach; requesters only external files.",
        responses={**_UPLOAD_ERRORS, **extra},
        openapi_extra={**_UPLOAD_BODY, **documented(IDEMPOTENCY_KEY)},
    )
    async def post_attachment(
        ref: str, request: Request, principal: Principal = Depends(write_gate)
    ) -> Response:
        runtime = runtime_of(request)
        limits = _limits(request)
        # Refuse what can be refused before a byte of the file is read; no connection is
        # held while the body streams in.
        async with runtime.db.connection() as conn:
            await service.ready_for_upload(conn, runtime.catalog, principal, ref, limits)
        upload = await read_upload(
            request,
            limits.file_bytes,
            runtime.settings.attachment_timeout_seconds,
            lambda: service.file_too_large(limits),
        )
        try:
            async with runtime.db.connection() as conn:

                async def handler() -> Response:
                    added = await service.add_attachment(
                        conn,
                        runtime.catalog,
                        principal,
                        ref,
                        upload,
                        _stores(request),
                        limits,
                        router.prefix,
                    )
                    return Response(
                        added.model_dump_json().encode(),
                        status_code=201,
                        media_type="application/json",
                        headers={"Location": added.content_url},
                    )

                return await idempotent(
                    request, principal, conn, handler, digest=upload_digest(request, upload)
                )
        finally:
            upload.file.close()

    @router.get(
        "/tickets/{ref}/attachments",
        response_model=Page[AttachmentOut],
        summary="A ticket's attachments (requesters see external ones)",
        responses=extra,
    )
    async def list_attachments(
        ref: str,
        request: Request,
        principal: Principal = Depends(read_gate),
        page: PageRequest = cursor_page(cursor_time, cursor_uuid),
    ) -> Page[AttachmentOut]:
        runtime = runtime_of(request)
        async with runtime.db.connection() as conn:
            return await service.list_attachments(
                conn, runtime.catalog, principal, ref, page.after, page.limit, router.prefix
            )

    @router.get(
        "/tickets/{ref}/attachments/{attachment_id}",
        response_class=StreamingResponse,
        summary="Download an attachment (streamed, never rendered inline; its JSON is in the "
        "list and the upload's answer)",
        responses={**_DOWNLOAD, **extra},
    )
    async def get_attachment_content(
        ref: str,
        attachment_id: uuid.UUID,
        request: Request,
        principal: Principal = Depends(read_gate),
    ) -> StreamingResponse:
        runtime = runtime_of(request)
        async with runtime.db.connection() as conn:
            found = await service.find_attachment(
                conn, runtime.catalog, principal, ref, attachment_id
            )
        chunks = service.content(runtime.db, _stores(request), principal, found)
        # The first chunk is read before the response starts, so that a file gone or a store
        # down is a problem response rather than a 200 cut short.
        first = await anext(chunks, b"")
        return StreamingResponse(
            _closing(first, chunks),
            media_type=None,
            headers={
                "Content-Type": found["content_type"],
                "Content-Length": str(found["size"]),
                "Content-Disposition": content_disposition(found["filename"]),
                "X-Content-Type-Options": "nosniff",
                # Opened in a browser after all, it runs nothing and reaches nothing.
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": "private, no-cache",
                "ETag": f'"{found["sha256"]}"',
            },
        )

    @router.delete(
        "/tickets/{ref}/attachments/{attachment_id}",
        status_code=204,
        summary="Remove an attachment for good (agents)",
        responses=extra,
    )
    async def delete_attachment(
        ref: str,
        attachment_id: uuid.UUID,
        request: Request,
        principal: Principal = Depends(write_gate),
    ) -> Response:
        runtime = runtime_of(request)
        async with runtime.db.connection() as conn:
            await service.delete_attachment(
                conn, runtime.catalog, principal, ref, attachment_id, _stores(request)
            )
        return Response(status_code=204)


async def _closing(first: bytes, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`first`, then the rest of the chunks, their source closed however the response ends
    (a client gone midway)."""
    try:
        yield first
        async for chunk in chunks:
            yield chunk
    finally:
        closer = getattr(chunks, "aclose", None)
        if closer is not None:
            await closer()
