"""The OpenAPI document's errors and links, derived in one place from the document itself.

Every error flowdesk answers is an RFC 9457 problem (`application/problem+json`, the `Problem`
schema). Which statuses an operation can answer follows from what the operation is, so it is
derived here, once, rather than declared route by route (where it would drift):

| status | when |
|---|---|
| 401 | the operation takes a credential (a tenant key or token, or the platform token) |
| 403 | a tenant API operation: the key's channel or scopes, the user's permissions, the |
|     | licence, a feature flag |
| 404 | the path names something (a path parameter; a query or body naming something declares |
|     | it: `NAMED_IN_REQUEST`) |
| 409 | a write (POST, PUT, PATCH, DELETE) of the tenant or platform API: a conflict with the |
|     | current state, an Idempotency-Key in flight |
| 412 | the operation reads `If-Match` |
| 304 | the operation reads `If-None-Match` (no body) |
| 413 | the operation takes a body (over `FLOWDESK_MAX_BODY_BYTES`) |
| 422 | the operation takes parameters or a body (replaces FastAPI's `HTTPValidationError`); a |
|     | JSON body sent as another media type is a 422 too (415 only where a route says so) |
| 429 | a tenant API operation (every key draws on its own and its tenant's budget) |
| 503 | anything that needs the database, or the platform API without a token configured |

A route's own `responses=` description of a status is kept (it says more); its content is
made the problem schema. The derivation is a pure function of the document
(`document_errors`), tested over every operation in tests/http/test_openapi_errors.py and
checked against the running app by Schemathesis (tests/http/test_fuzz.py).

Links (`add_links`): a POST answering 201 with an `id` links to the operations under the
created resource's path (`POST /v1/tickets` → `GET /v1/tickets/{ref}` with
`ref = $response.body#/id`), so a stateful fuzzer can follow what it created.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem. Problems may carry further members (`reasons`, "
    "`flag`, `quota`, `retry_after`, …), which never replace the standard ones.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "`/problems/<slug>`, stable per problem"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 100, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "What was wrong with the request (422): a JSON pointer into the "
            "body, or `/query/<name>`, `/header/<name>`, `/path/<name>`, and why.",
            "items": {
                "type": "object",
                "required": ["pointer", "detail"],
                "properties": {"pointer": {"type": "string"}, "detail": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}

_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}}
_RATE_HEADERS = {
    "RateLimit": {
        "description": "limit, remaining, reset (draft-ietf-httpapi-ratelimit-headers-07)",
        "schema": {"type": "string"},
    },
    "RateLimit-Policy": {
        "description": "requests;w=window seconds, e.g. 600;w=60",
        "schema": {"type": "string"},
    },
}

_DESCRIPTIONS: dict[int, str] = {
    401: "No valid credential",
    403: "Not allowed: the key's channel or scopes, the user's permissions, the ITSM licence "
    "or a feature flag",
    404: "Not found (or not visible to the caller; another tenant's anything is 404)",
    409: "Conflicts with the current state (a final status, a unique name, a quota, a "
    "refused transition, an Idempotency-Key still in flight)",
    412: "If-Match names another version",
    413: "The body is over the size limit",
    415: "The body is not of a media type the operation takes",
    422: "The request did not pass validation; `errors` point at each problem",
    429: "A rate limit is used up (the key's, or its tenant's aggregate budget)",
    503: "The database cannot answer now (or the platform API has no token configured)",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    409: _RETRY_AFTER,
    429: {**_RETRY_AFTER, **_RATE_HEADERS},
    503: _RETRY_AFTER,
}

# For a route whose query or body names something that must exist (`?ticket=`, `?tenant=`,
# an API key's `user_id`): 404 when it does not, as for a path (another tenant's anything is
# 404); declared on the route (`responses=NAMED_IN_REQUEST`), the content derived here.
NAMED_IN_REQUEST: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "The query or body names something that does not exist (or that the "
        "caller may not see)"
    }
}

_WRITES = frozenset({"post", "put", "patch", "delete"})
_METHODS = frozenset({"get", "head", "post", "put", "patch", "delete", "options", "trace"})
_TENANT_API = ("/v1/", "/public/v1/")
_PLATFORM_API = "/platform/v1/"
_READINESS = "/readyz"


def error_statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses the operation at `method path` can answer (and 304)."""
    statuses: set[int] = set()
    tenant = path.startswith(_TENANT_API)
    platform = path.startswith(_PLATFORM_API)
    parameters = operation.get("parameters", [])
    headers = {p["name"].lower() for p in parameters if p.get("in") == "header"}
    body = "requestBody" in operation
    if tenant or platform:
        statuses |= {401, 503}
    if tenant:
        statuses |= {403, 429}
    if path == _READINESS:
        statuses.add(503)
    if any(p.get("in") == "path" for p in parameters):
        statuses.add(404)
    if method in _WRITES and (tenant or platform):
        statuses.add(409)
    if "if-match" in headers:
        statuses.add(412)
    if "if-none-match" in headers:
        statuses.add(304)
    if body:
        statuses.add(413)
    if parameters or body:
        statuses.add(422)
    return statuses


def _problem_response(status: int, described: dict[str, Any] | None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": (described or {}).get("description") or _DESCRIPTIONS[status],
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
    }
    headers = {**_HEADERS.get(status, {}), **(described or {}).get("headers", {})}
    if headers:
        response["headers"] = headers
    return response


def document_errors(document: dict[str, Any]) -> dict[str, Any]:
    """The document with every operation's error statuses (problem+json) and links; FastAPI's
    HTTPValidationError schemas are gone. Changes `document` in place and returns it."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            # FastAPI's default 422 description says nothing a reader needs.
            if responses.get("422", {}).get("description") == "Validation Error":
                responses["422"].pop("description")
            for status in sorted(error_statuses(path, method, operation)):
                key = str(status)
                if status == 304:
                    responses.setdefault(key, {"description": "Not modified (If-None-Match)"})
                    continue
                responses[key] = _problem_response(status, responses.get(key))
            for key, response in responses.items():
                # Errors a route declared beyond the derived ones are problems too.
                if key.isdigit() and int(key) >= 400 and "content" not in response:
                    responses[key] = _problem_response(int(key), response)
                elif key.isdigit() and int(key) >= 400:
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}}
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    add_links(document)
    return document


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        return dict(schemas.get(ref.rsplit("/", 1)[1], {}))
    return schema


def _has_id(schema: dict[str, Any], schemas: dict[str, Any]) -> bool:
    """Whether every shape of the schema has a property `id`."""
    schema = _resolve(schema, schemas)
    variants = schema.get("anyOf") or schema.get("oneOf")
    if variants:
        return all(_has_id(v, schemas) for v in variants)
    return "id" in schema.get("properties", {})


def _path_parameters(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def add_links(document: dict[str, Any]) -> None:
    """For each POST on P answering 201 with an `id`: a link to every operation on a path
    `P/{x}…`, with `x` the created id and P's own path parameters as the request had them."""
    paths: dict[str, Any] = document.get("paths", {})
    schemas = document.get("components", {}).get("schemas", {})
    for path, operations in paths.items():
        post = operations.get("post")
        created = (post or {}).get("responses", {}).get("201")
        if post is None or created is None:
            continue
        content = created.get("content", {}).get("application/json", {})
        if not _has_id(content.get("schema", {}), schemas):
            continue
        own = _path_parameters(path)
        links: dict[str, Any] = {}
        for target, target_operations in paths.items():
            head, _, rest = target.partition(path + "/")
            first = rest.split("/", 1)[0]
            if head or not (first.startswith("{") and first.endswith("}")):
                continue
            parameters = {name: f"$request.path.{name}" for name in own}
            parameters[first[1:-1]] = "$response.body#/id"
            for method, operation in target_operations.items():
                if method in _METHODS and "operationId" in operation:
                    links[operation["operationId"]] = {
                        "operationId": operation["operationId"],
                        "parameters": copy.deepcopy(parameters),
                    }
        if links:
            created["links"] = links


def install_openapi_errors(app: FastAPI) -> None:
    """Make `app.openapi()` answer the document with its errors and links (once, cached as
    FastAPI caches its own)."""
    build: Callable[[], dict[str, Any]] = app.openapi
    documented: list[int] = []

    def openapi() -> dict[str, Any]:
        document = build()
        if id(document) not in documented:
            document_errors(document)
            documented.append(id(document))
        return document

    app.openapi = openapi  # type: ignore[method-assign]
