"""The public API's write scope (seed 004: tickets:write allows "POST, PATCH on ticket
resources"): transitions, comments and links under /public/v1 with /v1's bodies, errors,
ETags and idempotency, behind `public_api`, metered and rate-limited; and a key that may
write but not read learns nothing of a ticket through its writes."""

from __future__ import annotations

import httpx

from tests.support import TICKET, Operator, TenantCtx, bearer, problem_type

AGENT = ("tickets:create", "tickets:manage", "tickets:close")


async def test_an_external_system_works_tickets_through_the_public_api(
    client: httpx.AsyncClient, tenant: TenantCtx, operator: Operator
) -> None:
    system = await tenant.user(*AGENT, kind="service", channel="public")
    h = system.headers
    ticket = (await client.post("/public/v1/tickets", json=TICKET, headers=h)).json()
    other = (await client.post("/public/v1/tickets", json=TICKET, headers=h)).json()
    base = f"/public/v1/tickets/{ticket['id']}"

    options = await client.get(f"{base}/transitions", headers=h)
    assert options.status_code == 200 and "start" in [o["action"] for o in options.json()["items"]]
    # ETags as on /v1: a stale If-Match is 412 and changes nothing.
    r = await client.post(
        f"{base}/transitions", json={"action": "start"}, headers=h | {"If-Match": '"9"'}
    )
    assert r.status_code == 412
    moved = await client.post(
        f"{base}/transitions",
        json={"action": "start"},
        headers=h | {"If-Match": f'"{ticket["version"]}"', "Idempotency-Key": "move-1"},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "in_progress"
    assert moved.headers["etag"] == f'"{moved.json()["version"]}"'
    assert "ratelimit" in moved.headers
    # Idempotent: the retry replays the first answer rather than refusing a second start.
    again = await client.post(
        f"{base}/transitions",
        json={"action": "start"},
        headers=h | {"If-Match": f'"{ticket["version"]}"', "Idempotency-Key": "move-1"},
    )
    assert (again.status_code, again.json()) == (200, moved.json())

    r = await client.post(f"{base}/comments", json={"body": "Picked up by the NOC"}, headers=h)
    assert r.status_code == 201, r.text
    comments = (await client.get(f"{base}/comments", headers=h)).json()["items"]
    assert [m["body"] for m in comments] == ["Picked up by the NOC"]
    r = await client.post(
        f"{base}/links", json={"kind": "relates_to", "target": other["number"]}, headers=h
    )
    assert r.status_code == 201, r.text
    link = r.json()
    assert (await client.get(f"{base}/links", headers=h)).json()[0]["id"] == link["id"]
    assert (await client.delete(f"{base}/links/{link['id']}", headers=h)).status_code == 204
    # Bad input is the same problem as on /v1.
    r = await client.post(f"{base}/transitions", json={"action": "nope"}, headers=h)
    assert r.status_code == 409 and problem_type(r) == "transition-unavailable"

    # Behind public_api, like every public route.
    await operator.flags(tenant.slug, public_api=False)
    for method, url, body in (
        ("POST", f"{base}/transitions", {"action": "cancel"}),
        ("POST", f"{base}/comments", {"body": "x"}),
        ("GET", f"{base}/transitions", None),
    ):
        r = await client.request(method, url, json=body, headers=h)
        assert r.status_code == 403 and r.json()["flag"] == "public_api", (method, url)


async def test_a_write_only_key_reads_nothing_through_its_writes(
    client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    system = await tenant.user(*AGENT, kind="service")
    writer = bearer(await tenant.key(system.id, ["tickets:write"], channel="public"))
    v1_writer = bearer(await tenant.key(system.id, ["tickets:write"]))
    r = await client.post("/public/v1/tickets", json=TICKET, headers=writer)
    assert r.status_code == 201
    receipt = r.json()
    assert set(receipt) == {"id", "number", "version"}
    assert r.headers["location"] == f"/public/v1/tickets/{receipt['id']}"
    base = f"/public/v1/tickets/{receipt['id']}"
    r = await client.patch(base, json={}, headers=writer)
    assert r.status_code == 200 and r.json() == receipt
    assert r.headers["etag"] == f'"{receipt["version"]}"'
    r = await client.post(f"{base}/transitions", json={"action": "start"}, headers=writer)
    assert r.status_code == 200
    assert r.json() == {**receipt, "version": receipt["version"] + 1}
    # On /v1 too: the rule is the key's, not the channel's.
    r = await client.patch(f"/v1/tickets/{receipt['id']}", json={"title": "T"}, headers=v1_writer)
    assert r.status_code == 200 and set(r.json()) == {"id", "number", "version"}
    r = await client.get(base, headers=writer)
    assert r.status_code == 403 and r.json()["required_scope"] == "tickets:read"
