"""No input produces a 500: arbitrary JSON bodies, refs and query strings against the ticket
endpoints always get a deliberate answer (2xx, or a 4xx problem), never an internal error."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tickets.conftest import Desk

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "title",
        "description",
        "catalog_item",
        "priority",
        "fields",
        "requester_id",
        "status",
        "assignee_id",
        "to",
        "action",
        "comment",
        "resolution",
        "body",
        "visibility",
        "kind",
        "target",
        "name",
        "id",
        "number",
    ]
)
bodies = st.dictionaries(field_names, json_values, max_size=6) | json_values
refs = st.text(min_size=1, max_size=40) | st.sampled_from(
    [
        "TKT-000001",
        "TKT-999999999999999999",
        "00000000-0000-0000-0000-000000000000",
        "%00",
        "..",
        "TKT-0",
    ]
)
queries = st.dictionaries(
    st.sampled_from(
        [
            "status",
            "status_category",
            "assignee",
            "requester",
            "priority",
            "type",
            "q",
            "sort",
            "limit",
            "cursor",
            "created_after",
            "stale",
        ]
    ),
    st.text(max_size=30) | st.integers().map(str),
    max_size=4,
)
PROFILE = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def _ok(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.request.method, str(r.request.url), r.status_code, r.text)
    if r.status_code >= 400:
        assert r.headers["content-type"] == "application/problem+json"


@PROFILE
@given(body=bodies)
async def test_any_body(desk: Desk, body: Any) -> None:
    ticket = await _ticket(desk)
    for method, url in (
        ("POST", "/v1/tickets"),
        ("PATCH", f"/v1/tickets/{ticket}"),
        ("POST", f"/v1/tickets/{ticket}/transitions"),
        ("POST", f"/v1/tickets/{ticket}/comments"),
        ("POST", f"/v1/tickets/{ticket}/links"),
        ("POST", f"/v1/tickets/{ticket}/approvals"),
    ):
        _ok(await desk.client.request(method, url, json=body, headers=desk.agent.headers))


@PROFILE
@given(ref=refs, query=queries)
async def test_any_ref_and_query(desk: Desk, ref: str, query: dict[str, str]) -> None:
    ref = quote(ref, safe="")  # as a client puts it in a URL; the server sees it decoded
    for url in (
        f"/v1/tickets/{ref}",
        f"/v1/tickets/{ref}/transitions",
        f"/v1/tickets/{ref}/events",
    ):
        _ok(await desk.client.get(url, headers=desk.agent.headers))
    _ok(await desk.client.get("/v1/tickets", params=query, headers=desk.agent.headers))


_tickets: dict[str, str] = {}


async def _ticket(desk: Desk) -> str:
    """One ticket per tenant, reused across examples."""
    key = desk.tenant.slug
    if key not in _tickets:
        _tickets[key] = (await desk.open())["id"]
    return _tickets[key]
