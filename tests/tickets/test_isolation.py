"""Tenant isolation: every endpoint that takes a ticket id or number answers 404 to another
tenant, and to a requester reaching another requester's ticket."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support import Member, TenantCtx
from tests.tickets.conftest import Desk


def calls(
    ticket: dict[str, Any], other: dict[str, Any]
) -> list[tuple[str, str, dict[str, Any] | None]]:
    calls: list[tuple[str, str, dict[str, Any] | None]] = []
    for ref in (ticket["id"], ticket["number"]):
        base = f"/v1/tickets/{ref}"
        calls += [
            ("GET", base, None),
            ("PATCH", base, {"title": "hijacked"}),
            ("GET", f"{base}/transitions", None),
            ("POST", f"{base}/transitions", {"action": "start"}),
            ("GET", f"{base}/comments", None),
            ("POST", f"{base}/comments", {"body": "hi"}),
            ("GET", f"{base}/events", None),
            ("GET", f"{base}/links", None),
            ("POST", f"{base}/links", {"kind": "relates_to", "target": other["id"]}),
            ("DELETE", f"{base}/links/{uuid.uuid4()}", None),
            ("GET", f"{base}/approvals", None),
            ("POST", f"{base}/approvals", {"name": "infra"}),
        ]
    return calls


async def _walk(desk: Desk, caller: Member, ticket: dict[str, Any], own: dict[str, Any]) -> None:
    for method, url, body in calls(ticket, own):
        r = await desk.client.request(method, url, json=body, headers=caller.headers)
        assert r.status_code == 404, (method, url, r.status_code, r.text)
    # A link from one's own ticket to the invisible one is refused as an unknown target.
    r = await desk.client.post(
        f"/v1/tickets/{own['id']}/links",
        json={"kind": "relates_to", "target": ticket["id"]},
        headers=caller.headers,
    )
    assert r.status_code in (403, 422)


async def test_another_tenants_tickets_are_404(desk: Desk, other_tenant: TenantCtx) -> None:
    await desk.open()
    theirs = await desk.open()  # TKT-000002: a number the other tenant does not have
    intruder = await other_tenant.user("tickets:create", "tickets:manage", "tickets:close", "admin")
    r = await desk.client.post(
        "/v1/tickets",
        json={"title": "mine", "catalog_item": "itsm_incident"},
        headers=intruder.headers,
    )
    own = r.json()
    assert own["number"] == "TKT-000001" and theirs["number"] == "TKT-000002"
    await _walk(desk, intruder, theirs, own)
    listed = (await desk.client.get("/v1/tickets", headers=intruder.headers)).json()["items"]
    assert [t["id"] for t in listed] == [own["id"]]
    after = (
        await desk.client.get(f"/v1/tickets/{theirs['id']}", headers=desk.agent.headers)
    ).json()
    assert after["title"] == theirs["title"] and after["version"] == 1


async def test_another_requesters_tickets_are_404(desk: Desk) -> None:
    theirs = await desk.open()
    nosy = await desk.tenant.user("tickets:create")
    own = await desk.open(by=nosy)
    await _walk(desk, nosy, theirs, own)
