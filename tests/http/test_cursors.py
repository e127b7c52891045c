"""Every list reads its cursor back strictly: a forged cursor (wrong types, a time PostgreSQL
cannot hold, NUL, a cursor of another sort order) is a 422 pointing at the cursor, never a
500, and a cursor the list made itself still pages. So are the list's time filters."""

from __future__ import annotations

import httpx
import pytest

from flowdesk.pagination import encode_cursor
from tests.support import TenantCtx, problem_type

# Past year 9999 once moved to UTC: Python reads it, PostgreSQL cannot store it.
OVERFLOW = "9999-12-31T23:59:59-14:00"
SOME_ID = "7d8c1f0e-0b1e-4b7e-9c1a-2f3d4e5f6a7b"
NOW = "2026-12-01T10:00:00+00:00"

FORGED: dict[str, list[list[object]]] = {
    "/v1/tickets?sort=priority": [
        ["priority", "high", SOME_ID],
        ["priority", True, SOME_ID],
        ["priority", NOW, SOME_ID],
        ["-created", NOW, SOME_ID],  # another sort order's cursor
    ],
    "/v1/tickets": [
        ["-created", OVERFLOW, SOME_ID],
        ["-created", "2026-12-01T10:00:00", SOME_ID],  # no offset
        ["-created", 5, SOME_ID],
        ["-created", NOW, "not-a-uuid"],
        ["-created\x00", NOW, SOME_ID],
    ],
    "/v1/users": [[OVERFLOW, SOME_ID], [NOW, 7], [NOW]],
    "/v1/api-keys": [[OVERFLOW, SOME_ID], ["x", SOME_ID]],
    "/v1/groups": [["a\x00b", SOME_ID], [5, SOME_ID], ["a" * 201, SOME_ID]],
}


@pytest.mark.parametrize(
    ("path", "values"), [(path, values) for path, cases in FORGED.items() for values in cases]
)
async def test_a_forged_cursor_is_a_422(
    client: httpx.AsyncClient, tenant: TenantCtx, path: str, values: list[object]
) -> None:
    separator = "&" if "?" in path else "?"
    r = await client.get(f"{path}{separator}cursor={encode_cursor(values)}", headers=tenant.headers)
    assert r.status_code == 422, r.text
    assert problem_type(r) == "validation-error"
    assert r.json()["errors"][0]["pointer"] == "/query/cursor"


async def test_events_cursor_must_be_an_id(client: httpx.AsyncClient, tenant: TenantCtx) -> None:
    r = await client.post(
        "/v1/tickets", json={"title": "x", "catalog_item": "itsm_incident"}, headers=tenant.headers
    )
    events = f"/v1/tickets/{r.json()['id']}/events"
    for forged in ([True], [2**63], ["1"], [1.5]):
        r = await client.get(
            events, params={"cursor": encode_cursor(forged)}, headers=tenant.headers
        )
        assert r.status_code == 422, (forged, r.text)


async def test_a_cursor_the_list_made_pages_on(
    client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    for i in range(3):
        r = await client.post(
            "/v1/tickets",
            json={"title": f"t{i}", "catalog_item": "itsm_incident", "priority": "HIGH"},
            headers=tenant.headers,
        )
        assert r.status_code == 201
    for sort in ("priority", "-created", "updated"):
        seen: list[str] = []
        cursor = None
        while True:
            params = {"sort": sort, "limit": "2"} | ({"cursor": cursor} if cursor else {})
            r = await client.get("/v1/tickets", params=params, headers=tenant.headers)
            assert r.status_code == 200, r.text
            seen += [t["id"] for t in r.json()["items"]]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 3, sort


@pytest.mark.parametrize(
    "name", ["created_after", "created_before", "updated_after", "updated_before"]
)
@pytest.mark.parametrize("moment", [OVERFLOW, "0001-01-01T00:00:00+14:00"])
async def test_a_time_filter_past_what_can_be_stored_is_a_422(
    client: httpx.AsyncClient, tenant: TenantCtx, name: str, moment: str
) -> None:
    r = await client.get("/v1/tickets", params={name: moment}, headers=tenant.headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["pointer"] == f"/query/{name}"


async def test_dates_and_times_are_written_out_never_numbers(
    client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    # Issue 16: `?updated_before=0.5` and `/v1/usage?to=0` were read as Unix timestamps.
    h = tenant.headers
    for params in (
        {"updated_before": "0.5"},
        {"created_after": "1700000000"},
        {"created_before": "1e9"},
    ):
        r = await client.get("/v1/tickets", params=params, headers=h)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["errors"][0]["pointer"] == f"/query/{next(iter(params))}"
    for params in ({"to": "0"}, {"from": "20261201"}):
        r = await client.get("/v1/usage", params=params, headers=h)
        assert r.status_code == 422, (params, r.text)
    r = await client.get(
        "/v1/tickets", params={"updated_before": "2026-12-01T00:00:00Z"}, headers=h
    )
    assert r.status_code == 200
    r = await client.get("/v1/usage", params={"from": "2026-11-01", "to": "2026-11-30"}, headers=h)
    assert r.status_code == 200
