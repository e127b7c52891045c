"""Owners named in a workflow, as Trac's administrators write them (`reassign.set_owner = ann,
bob`; since Trac 1.1.3 also groups and permissions): looked up per tenant by e-mail, by a user
name no one else has, by group or by permission; a name that is nobody here makes the action
unavailable with a reason, never an error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from flowdesk.config import Settings
from tests.support import Member, TenantCtx, new_tenant
from tests.tickets.conftest import AGENT, catalog_client

VALUES = """
version: 1
permission_implies:
  tickets:close: [TICKET_REVIEW]
workflows:
  - name: named_owners
    statuses:
      - {name: new, category: initial}
      - {name: assigned, category: active}
      - {name: reviewing, category: active}
      - {name: closed, category: inactive}
    transitions:
      - {action: give_to_ann, from: new, to: assigned, permissions: [tickets:manage],
         set_owner: [ann@example.test]}
      - {action: reassign, from: [new, assigned], to: assigned, permissions: [tickets:manage],
         set_owner: [Bob Builder, qa-team]}
      - {action: review, from: assigned, to: reviewing, permissions: [tickets:manage],
         set_owner: [TICKET_REVIEW]}
      - {action: hand_to_ghost, from: new, to: assigned, permissions: [tickets:manage],
         set_owner: [ghost@nowhere.test]}
      - {action: close, from: [new, assigned, reviewing], to: closed,
         permissions: [tickets:manage]}
  - name: restricted
    restrict_owner: true
    statuses:
      - {name: new, category: initial}
      - {name: assigned, category: active}
      - {name: closed, category: inactive}
    transitions:
      - {action: reassign, from: [new, assigned], to: assigned, permissions: [tickets:manage],
         operations: [set_owner]}
      - {action: close, from: [new, assigned], to: closed, permissions: [tickets:manage]}
catalog:
  - {name: named, displayName: Named owners, type: incident, workflow: named_owners,
     defaultPriority: LOW}
  - {name: restricted, displayName: Restricted owners, type: incident, workflow: restricted,
     defaultPriority: LOW}
"""


@pytest.fixture
async def named_client(settings: Settings, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with catalog_client(settings, tmp_path, VALUES) as client:
        yield client


async def person(tenant: TenantCtx, email: str, name: str, *groups: str) -> Member:
    """A user with this e-mail and name, in the named groups (made with tickets:manage)."""
    c, h = tenant.client, tenant.headers
    r = await c.post("/v1/users", json={"email": email, "name": name}, headers=h)
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    for group in groups:
        r = await c.get("/v1/groups", params={"limit": 100}, headers=h)
        existing = {g["name"]: g["id"] for g in r.json()["items"]}
        group_id = existing.get(group)
        if group_id is None:
            r = await c.post(
                "/v1/groups", json={"name": group, "permissions": list(AGENT)}, headers=h
            )
            assert r.status_code == 201, r.text
            group_id = r.json()["id"]
        r = await c.put(f"/v1/groups/{group_id}/members/{user_id}", headers=h)
        assert r.status_code == 204, r.text
    return Member(user_id, email, await tenant.key(user_id, ["tickets:read", "tickets:write"]))


async def options(c: httpx.AsyncClient, ticket: dict[str, Any], who: Member) -> dict[str, Any]:
    r = await c.get(f"/v1/tickets/{ticket['id']}/transitions", headers=who.headers)
    assert r.status_code == 200, r.text
    return {o["action"]: o for o in r.json()["items"]}


async def test_named_owners_are_looked_up_in_the_tenant(named_client: httpx.AsyncClient) -> None:
    app: FastAPI = named_client.app  # type: ignore[attr-defined]
    c = named_client
    tenant = await new_tenant(app, c)
    ann = await person(tenant, "ann@example.test", "Ann Analyst", "agents")
    bob = await person(tenant, "bob@example.test", "Bob Builder", "agents")
    carol = await person(tenant, "carol@example.test", "Carol Checker", "qa-team")
    # Two users share a name: the name names neither.
    await person(tenant, "dave1@example.test", "Dave", "agents")
    await person(tenant, "dave2@example.test", "Dave", "agents")

    r = await c.post(
        "/v1/tickets", json={"title": "Named", "catalog_item": "named"}, headers=ann.headers
    )
    assert r.status_code == 201, r.text
    ticket = r.json()

    offered = await options(c, ticket, bob)
    assert offered["give_to_ann"]["allowed"] and offered["give_to_ann"]["owners"] == [ann.id]
    assert offered["reassign"]["owners"] == [bob.id, carol.id]
    ghost = offered["hand_to_ghost"]
    assert not ghost["allowed"]
    assert [x["code"] for x in ghost["reasons"]] == ["owner"]
    assert "ghost@nowhere.test" in ghost["reasons"][0]["detail"]

    # A single named owner: the action sets it (this answered 500 before).
    url = f"/v1/tickets/{ticket['id']}/transitions"
    r = await c.post(url, json={"action": "give_to_ann"}, headers=bob.headers)
    assert r.status_code == 200, r.text
    assert r.json()["assignee"]["id"] == ann.id

    # Of several, the caller picks one of them, and no one else.
    r = await c.post(url, json={"action": "reassign", "assignee_id": ann.id}, headers=bob.headers)
    assert r.status_code == 409, r.text
    r = await c.post(url, json={"action": "reassign", "assignee_id": carol.id}, headers=bob.headers)
    assert r.status_code == 200, r.text
    assert r.json()["assignee"]["id"] == carol.id

    # A permission names everyone holding it (TICKET_REVIEW through tickets:close, and the
    # admin, who holds everything).
    offered = await options(c, ticket, bob)
    reviewers = set(offered["review"]["owners"])
    assert {ann.id, bob.id, carol.id, tenant.admin.id} <= reviewers


async def test_an_owner_who_is_nobody_is_a_refusal_not_an_error(
    named_client: httpx.AsyncClient,
) -> None:
    app: FastAPI = named_client.app  # type: ignore[attr-defined]
    c = named_client
    tenant = await new_tenant(app, c)
    agent = await tenant.user(*AGENT)
    r = await c.post(
        "/v1/tickets", json={"title": "Ghost", "catalog_item": "named"}, headers=agent.headers
    )
    ticket = r.json()
    url = f"/v1/tickets/{ticket['id']}/transitions"
    # Nobody called ann here: the action is refused with its reason.
    r = await c.post(url, json={"action": "give_to_ann"}, headers=agent.headers)
    assert r.status_code == 409, r.text
    assert r.json()["reasons"][0]["code"] == "owner"
    r = await c.post(url, json={"action": "hand_to_ghost"}, headers=agent.headers)
    assert r.status_code == 409, r.text


async def test_restrict_owner_offers_the_agents(named_client: httpx.AsyncClient) -> None:
    # Trac's `restrict_owner = true`: the owner is picked from the users who may work tickets.
    app: FastAPI = named_client.app  # type: ignore[attr-defined]
    c = named_client
    tenant = await new_tenant(app, c)
    agent = await tenant.user(*AGENT)
    requester = await tenant.user("tickets:create")
    r = await c.post(
        "/v1/tickets",
        json={"title": "Pick", "catalog_item": "restricted"},
        headers=requester.headers,
    )
    ticket = r.json()
    offered = await options(c, ticket, agent)
    assert set(offered["reassign"]["owners"]) == {agent.id, tenant.admin.id}
    url = f"/v1/tickets/{ticket['id']}/transitions"
    r = await c.post(
        url, json={"action": "reassign", "assignee_id": requester.id}, headers=agent.headers
    )
    assert r.status_code == 409, r.text
    assert r.json()["reasons"][0]["required"] == ["owner"]
    r = await c.post(
        url, json={"action": "reassign", "assignee_id": tenant.admin.id}, headers=agent.headers
    )
    assert r.status_code == 200, r.text
