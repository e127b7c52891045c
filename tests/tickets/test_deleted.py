"""RT's deleted tickets (seed 001: a deleted ticket "will never show up in search results"):
left out of every list, even one that names the status; only an admin reads one by
reference, and only an admin can bring it back."""

from __future__ import annotations

from tests.support import TenantCtx
from tests.tickets.conftest import AGENT


async def test_a_deleted_ticket_is_in_no_search_and_only_admins_read_it(
    tenant: TenantCtx,
) -> None:
    c = tenant.client
    agent = await tenant.user(*AGENT)
    requester = await tenant.user("tickets:create")
    r = await c.post(
        "/v1/tickets",
        json={"title": "Spam", "catalog_item": "rt_ticket"},
        headers=requester.headers,
    )
    assert r.status_code == 201, r.text
    ticket = r.json()
    url = f"/v1/tickets/{ticket['id']}"
    r = await c.post(f"{url}/transitions", json={"to": "deleted"}, headers=agent.headers)
    assert r.status_code == 200, r.text

    async def listed(who: dict[str, str], **params: str) -> list[str]:
        r = await c.get("/v1/tickets", params=params, headers=who)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["items"]]

    for who in (agent.headers, tenant.headers, requester.headers):
        assert ticket["id"] not in await listed(who)
        assert ticket["id"] not in await listed(who, status="deleted")
        assert ticket["id"] not in await listed(who, status_category="inactive")
        assert ticket["id"] not in await listed(who, q="Spam")
    # By reference: the admin's alone.
    assert (await c.get(url, headers=requester.headers)).status_code == 404
    assert (await c.get(url, headers=agent.headers)).status_code == 404
    assert (await c.get(f"{url}/events", headers=agent.headers)).status_code == 404
    r = await c.get(url, headers=tenant.headers)
    assert r.status_code == 200 and r.json()["status"] == "deleted"
    # Undeleting brings it back for everyone.
    r = await c.post(f"{url}/transitions", json={"to": "open"}, headers=agent.headers)
    assert r.status_code == 404
    r = await c.post(f"{url}/transitions", json={"to": "open"}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert ticket["id"] in await listed(agent.headers)
    assert (await c.get(url, headers=requester.headers)).status_code == 200
