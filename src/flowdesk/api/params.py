"""Query parameters: the ones several endpoints share (a list's page, a report's range of days),
and a query read by hand into a model, for the busiest list.

FastAPI resolves each declared query parameter on every request through its own machinery;
for the ticket list's sixteen that was more CPU than the rest of the request but the JSON
(bench/request_cpu.py). `read_query` validates the whole query as one pydantic model in one
call, with the same 422 problem and pointers (`/query/<name>`), and `documented_query` writes
the parameters into the OpenAPI document as FastAPI would have
(docs/adr/0005-flat-routes-and-headers.md).
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from flowdesk.pagination import DEFAULT_LIMIT, PageRequest, Part, decode_cursor
from flowdesk.schema_types import Day, Limit

Cursor = Annotated[str | None, Query(max_length=512)]
"""The opaque `cursor` of a list's next page (flowdesk.pagination)."""


def cursor_page(*parts: Part, default: int = DEFAULT_LIMIT) -> Any:
    """The page a list is asked for (`?limit=&cursor=`), its cursor read back by `parts`:
    `page: PageRequest = cursor_page(cursor_time, cursor_uuid)`. `default`: the page size
    when `limit` is not given."""

    def page_request(limit: Limit = default, cursor: Cursor = None) -> PageRequest:
        return PageRequest(limit, decode_cursor(cursor, *parts))

    return Depends(page_request)


def next_page_link(request: Request, response: Response, limit: int, cursor: str | None) -> None:
    """For a list answered as a bare JSON array (kept so for clients of the first version):
    the next page's URL in the `Link` header (RFC 8288, `rel="next"`), when there is one."""
    if cursor is not None:
        query = urlencode({"limit": limit, "cursor": cursor})
        response.headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'


FromDay = Annotated[
    Day | None, Query(alias="from", description="First UTC day (default: 29 days before 'to').")
]
ToDay = Annotated[Day | None, Query(alias="to", description="Last UTC day (default: today).")]


M = TypeVar("M", bound=BaseModel)
_MANY: dict[type[BaseModel], frozenset[str]] = {}


def _many(model: type[BaseModel]) -> frozenset[str]:
    """The model's fields that take a parameter given several times (?status=a&status=b)."""
    many = _MANY.get(model)
    if many is None:
        properties = model.model_json_schema()["properties"]
        many = _MANY[model] = frozenset(
            name
            for name, schema in properties.items()
            if schema.get("type") == "array"
            or any(s.get("type") == "array" for s in schema.get("anyOf", ()))
        )
    return many


def read_query(request: Request, model: type[M]) -> M:
    """The request's query string as `model`; a 422 problem pointing at each bad parameter."""
    query = request.query_params
    many = _many(model)
    values = {
        name: query.getlist(name) if name in many else query[name]
        for name in model.model_fields
        if name in query
    }
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("query", *error["loc"])} for error in exc.errors()]
        ) from None


def documented_query(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its query with `read_query`."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if "description" in prop:
            parameter["description"] = prop["description"]
        parameters.append(parameter)
    invalid = {
        "description": "A query parameter is invalid: a problem+json whose `errors` point at "
        "each one (`/query/<name>`)",
        "content": {"application/problem+json": {"schema": {"type": "object"}}},
    }
    return {"parameters": parameters, "responses": {"422": invalid}}
