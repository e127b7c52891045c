"""The OpenAPI document tells the truth about errors (flowdesk.api.openapi): every operation
documents each status it can answer with the problem+json schema, FastAPI's default
`HTTPValidationError` is gone, the schema gaps the fuzzer found are closed, and POSTs that
create link to the created resource's operations. The fuzzer (tests/http/test_fuzz.py) then
checks the running app against this document."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from flowdesk.api.openapi import PROBLEM_MEDIA_TYPE, PROBLEM_REF, error_statuses
from flowdesk.app import create_app
from flowdesk.config import Settings
from tests.support import TICKET, TenantCtx

Operations = list[tuple[str, str, dict[str, Any]]]
_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def document(settings: Settings) -> dict[str, Any]:
    return create_app(settings).openapi()


@pytest.fixture(scope="module")
def operations(document: dict[str, Any]) -> Operations:
    return [
        (path, method, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
        if method in _METHODS
    ]


def test_every_error_response_is_a_problem(operations: Operations) -> None:
    assert len(operations) > 100
    for path, method, operation in operations:
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            content = response.get("content")
            assert content == {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}}, (
                f"{method.upper()} {path} {status}: {content}"
            )
            assert response["description"] and response["description"] != "Validation Error"


def test_fastapis_validation_error_schema_is_gone(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    problem = schemas["Problem"]
    assert set(problem["required"]) == {"type", "title", "status"}
    assert set(problem["properties"]) == {"type", "title", "status", "detail", "instance", "errors"}
    assert problem["properties"]["errors"]["items"]["required"] == ["pointer", "detail"]
    assert problem["additionalProperties"] is True


def test_every_operation_documents_the_statuses_it_can_answer(operations: Operations) -> None:
    for path, method, operation in operations:
        documented = {int(s) for s in operation["responses"]}
        where = f"{method.upper()} {path}"
        parameters = operation.get("parameters", [])
        if path.startswith(("/v1/", "/public/v1/")):
            assert {401, 403, 429, 503} <= documented, where
        if path.startswith("/platform/v1/"):
            assert {401, 503} <= documented, where
        if "{" in path:
            assert 404 in documented, where
        if "requestBody" in operation:
            assert {413, 422} <= documented, where
        if parameters:
            assert 422 in documented, where
        if method != "get" and not path.startswith(("/healthz", "/readyz")):
            assert 409 in documented, where
        if any(p["name"] == "If-Match" for p in parameters):
            assert 412 in documented, where
        if any(p["name"] == "If-None-Match" for p in parameters):
            assert 304 in documented, where
        assert error_statuses(path, method, operation) <= documented, where


def test_the_health_probes_need_no_credential(document: dict[str, Any]) -> None:
    healthz = document["paths"]["/healthz"]["get"]
    assert set(healthz["responses"]) == {"200"} and healthz["security"] == []
    assert set(document["paths"]["/readyz"]["get"]["responses"]) == {"200", "503"}


def test_a_routes_own_description_is_kept(document: dict[str, Any]) -> None:
    agents = document["paths"]["/v1/agents"]["get"]["responses"]["403"]
    assert agents["description"].startswith("The caller is not an agent")
    assert agents["content"] == {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}}
    limited = document["paths"]["/public/v1/tickets"]["get"]["responses"]["429"]
    assert {"Retry-After", "RateLimit", "RateLimit-Policy"} <= set(limited["headers"])


def test_creating_posts_link_to_the_created_resource(document: dict[str, Any]) -> None:
    created = document["paths"]["/v1/tickets"]["post"]["responses"]["201"]
    get_id = document["paths"]["/v1/tickets/{ref}"]["get"]["operationId"]
    patch_id = document["paths"]["/v1/tickets/{ref}"]["patch"]["operationId"]
    assert created["links"][get_id] == {
        "operationId": get_id,
        "parameters": {"ref": "$response.body#/id"},
    }
    assert patch_id in created["links"]
    # A sub-resource keeps its parent's parameter from the request.
    link = document["paths"]["/v1/tickets/{ref}/links"]["post"]["responses"]["201"]["links"]
    delete_id = document["paths"]["/v1/tickets/{ref}/links/{link_id}"]["delete"]["operationId"]
    assert link[delete_id]["parameters"] == {
        "ref": "$request.path.ref",
        "link_id": "$response.body#/id",
    }
    for path in ("/public/v1/tickets", "/v1/users", "/v1/groups", "/v1/assets"):
        assert document["paths"][path]["post"]["responses"]["201"]["links"], path


def test_a_body_or_query_naming_something_documents_404(document: dict[str, Any]) -> None:
    # Another tenant's user in an API key's body is 404, as in a path (found by the fuzzer).
    for path, method in (
        ("/v1/api-keys", "post"),
        ("/v1/notifications/deliveries", "get"),
        ("/platform/v1/quota-alerts", "get"),
    ):
        assert "404" in document["paths"][path][method]["responses"], path


def _schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


def _query(document: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    for parameter in document["paths"][path]["get"]["parameters"]:
        if parameter["name"] == name:
            return dict(parameter["schema"])
    raise AssertionError(f"no {name} on {path}")


def _pattern(schema: dict[str, Any]) -> re.Pattern[str]:
    for variant in [schema, *schema.get("anyOf", [])]:
        if "pattern" in variant:
            return re.compile(variant["pattern"])
    raise AssertionError(f"no pattern in {schema}")


def test_the_schema_gaps_the_fuzzer_found_are_documented(document: dict[str, Any]) -> None:
    # Custom field keys: only the pattern's.
    fields = _schema(document, "TicketPatch")["properties"]["fields"]["anyOf"][0]
    assert fields["additionalProperties"] is False
    assert fields["propertyNames"]["pattern"] == "^[a-z][a-z0-9_]{0,63}$"
    # Exactly one of `to` or `action`.
    one_of = _schema(document, "TransitionIn")["oneOf"]
    assert [branch["required"] for branch in one_of] == [["to"], ["action"]]
    # Idempotency-Key: 1 to 255 printable characters.
    header = next(
        p
        for p in document["paths"]["/v1/tickets"]["post"]["parameters"]
        if p["name"] == "Idempotency-Key"
    )
    assert header["schema"]["maxLength"] == 255 and header["schema"]["minLength"] == 1
    printable = re.compile(header["schema"]["pattern"])
    assert printable.match("7f9c-ab") and not printable.match("a\tb")
    # `assignee` takes me, none or an id; `requester` me or an id (nobody files as "none").
    assignee = _pattern(_query(document, "/v1/tickets", "assignee"))
    requester = _pattern(_query(document, "/v1/tickets", "requester"))
    some_id = "0b4c5a8e-6a43-4e4b-9a69-0c7a1f1f6d2e"
    for value in ("me", "none", some_id):
        assert assignee.match(value), value
    assert requester.match("me") and requester.match(some_id)
    assert not requester.match("none") and not assignee.match("nobody")


async def test_the_filters_answer_as_documented(
    client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    r = await client.get("/v1/tickets", params={"assignee": "none"}, headers=tenant.headers)
    assert r.status_code == 200
    r = await client.get("/v1/tickets", params={"requester": "none"}, headers=tenant.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/query/requester"
    assert "none" not in r.json()["errors"][0]["detail"]
    # Idempotency-Key: the documented characters, and nothing else.
    latin1 = {k.encode(): v.encode() for k, v in tenant.headers.items()}
    latin1[b"Idempotency-Key"] = b"a\xe9b"
    r = await client.post("/v1/tickets", json=TICKET, headers=latin1)
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/header/Idempotency-Key"


async def test_a_field_value_beyond_what_the_schema_allows_is_refused_not_converted(
    client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    """Found by the fuzzer: -(2**53) - 1 in custom fields (or asset attributes) was taken as
    a float and stored as -(2**53); the schema's minimum says it is refused."""
    body = {**TICKET, "fields": {"count": -(2**53) - 1}}
    r = await client.post("/v1/tickets", json=body, headers=tenant.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"].startswith("/fields/count")
    r = await client.post(
        "/v1/tickets",
        json={**TICKET, "fields": {"count": 2**53, "ratio": 0.5}},
        headers=tenant.headers,
    )
    assert r.status_code == 201 and r.json()["fields"] == {"count": 2**53, "ratio": 0.5}
    # Nor is a value converted to another type: a numeric string too long for a field's text
    # was taken as the number 0.
    body = {**TICKET, "fields": {"code": "0" * 2001}}
    r = await client.post("/v1/tickets", json=body, headers=tenant.headers)
    assert r.status_code == 422
    body = {**TICKET, "fields": {"code": "12", "flag": "true"}}
    r = await client.post("/v1/tickets", json=body, headers=tenant.headers)
    assert r.status_code == 201 and r.json()["fields"] == {"code": "12", "flag": "true"}
