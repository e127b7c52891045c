"""RT's AutoOpen (seed 001: "The AutoOpen action sets a ticket's status to the first active
status"), declared per workflow as `on_reply`: the shipped rt_default opens a new ticket and
reopens a resolved one when its requester replies; nobody else's comment moves it."""

from __future__ import annotations

from typing import Any

import pytest

from flowdesk.workflow import CatalogError
from tests.support import Member, TenantCtx
from tests.tickets.conftest import AGENT
from tests.workflow.conftest import compile_yaml


async def test_a_requesters_reply_opens_and_reopens(tenant: TenantCtx) -> None:
    c = tenant.client
    agent = await tenant.user(*AGENT)
    requester = await tenant.user("tickets:create", name="Rita Requester")
    r = await c.post(
        "/v1/tickets", json={"title": "VPN", "catalog_item": "rt_ticket"}, headers=requester.headers
    )
    ticket = r.json()
    url = f"/v1/tickets/{ticket['id']}"
    assert ticket["status"] == "new"

    async def say(who: Member, visibility: str = "external") -> dict[str, Any]:
        r = await c.post(
            f"{url}/comments",
            json={"body": f"from {who.email}", "visibility": visibility},
            headers=who.headers,
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def status() -> str:
        return str((await c.get(url, headers=agent.headers)).json()["status"])

    # An agent's note or reply leaves a new ticket new.
    await say(agent, "internal")
    await say(agent)
    assert await status() == "new"
    # The requester's reply opens it, in one step with the comment.
    reply = await say(requester)
    assert reply["author"]["name"] == "Rita Requester"
    assert await status() == "open"
    r = await c.get(f"{url}/events", headers=agent.headers)
    kinds = [(e["kind"], e["data"].get("action")) for e in r.json()["items"]][-2:]
    assert kinds == [("transitioned", "on_reply"), ("commented", None)]
    # A resolved ticket is reopened by the requester's reply.
    r = await c.post(
        f"{url}/transitions", json={"to": "resolved", "comment": "Fixed"}, headers=agent.headers
    )
    assert r.status_code == 200, r.text
    await say(requester)
    assert await status() == "open"
    # Where the workflow says nothing (itsm_default), a reply is only a reply.
    r = await c.post(
        "/v1/tickets",
        json={"title": "Printer", "catalog_item": "itsm_incident"},
        headers=requester.headers,
    )
    url = f"/v1/tickets/{r.json()['id']}"
    await say(requester)
    r = await c.get(f"{url}/events", headers=agent.headers)
    assert [e["kind"] for e in r.json()["items"]] == ["created", "commented"]


def test_on_reply_names_statuses_of_its_workflow() -> None:
    with pytest.raises(CatalogError) as caught:
        compile_yaml(
            """
            workflows:
              - name: w
                on_reply: {OPEN: NOWHERE}
                transitions:
                  - {from: OPEN, to: CLOSED}
                  - {from: OPEN, to: IN_PROGRESS}
                  - {from: IN_PROGRESS, to: RESOLVED}
                  - {from: RESOLVED, to: CLOSED}
            """,
            "bad.yaml",
        )
    assert "unknown status 'NOWHERE' in on_reply" in str(caught.value)
