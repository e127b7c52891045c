"""The protocol's request headers (If-Match, If-None-Match, Idempotency-Key), read straight from
the request and documented by hand.

They are not FastAPI `Header` parameters: FastAPI 0.165 re-derives a declared parameter's
metadata on every request, which cost the ticket endpoints about 20 µs of CPU per header
(bench/request_cpu.py), more than the rest of their reading. A `RequestHeader` reads and
checks its header (too long is the same 422 problem, with the same pointer, as before) and
describes itself as the OpenAPI parameter FastAPI would have written; routes add it with
`openapi_extra=documented(...)`, so the document says what it said before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from flowdesk.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class RequestHeader:
    name: str
    max_length: int
    # The characters a value may have, as a regular expression (documented as the schema's
    # `pattern`); None: any.
    pattern: str | None = None

    @property
    def pointer(self) -> str:
        """Where validation errors point (FastAPI's spelling for a header)."""
        return f"/header/{self.name}"

    def read(self, request: Request) -> str | None:
        value = request.headers.get(self.name)
        if value is not None and len(value) > self.max_length:
            raise InvalidInput(
                f"The {self.name} header is too long.",
                [(self.pointer, f"at most {self.max_length} characters")],
            )
        return value

    def valid(self, value: str) -> bool:
        """Whether the value has the characters the pattern allows (and is not too long)."""
        if len(value) > self.max_length:
            return False
        return self.pattern is None or re.fullmatch(self.pattern, value) is not None

    def parameter(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "maxLength": self.max_length}
        if self.pattern is not None:
            schema |= {"minLength": 1, "pattern": f"^{self.pattern}$"}
        return {"name": self.name, "in": "header", "required": False, "schema": schema}


IF_MATCH = RequestHeader("If-Match", 512)
IF_NONE_MATCH = RequestHeader("If-None-Match", 512)
# Printable ASCII, spaces included: what a header carries intact through every proxy.
IDEMPOTENCY_KEY = RequestHeader("Idempotency-Key", 255, pattern="[\\x20-\\x7E]+")


def documented(*headers: RequestHeader) -> dict[str, Any]:
    """`openapi_extra` for a route that reads these headers (appended to its parameters)."""
    return {"parameters": [header.parameter() for header in headers]}
