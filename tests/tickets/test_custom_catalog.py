"""Operators' values files over the shipped catalog, through the API: hidden statuses (RT's
`deleted`), `extends`, and explicit status maps used when a ticket changes workflow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from flowdesk.config import Settings
from tests.support import new_tenant
from tests.tickets.conftest import AGENT, REPO, catalog_client

VALUES = """
version: 1
workflows:
  - name: desk_with_trash
    displayName: Desk with a trash can
    statuses:
      - {name: open, category: initial}
      - {name: done, category: inactive}
      - {name: deleted, category: inactive, hidden: true}
    transitions:
      - {from: open, to: done, permissions: [tickets:manage]}
      - {from: [open, done], to: deleted, permissions: [tickets:manage]}
      - {from: deleted, to: open, permissions: [tickets:manage]}
maps:
  - from: itsm_default
    to: incident_response
    statuses: {open: OPEN, in_progress: IN_PROGRESS, resolved: RESOLVED, closed: CLOSED,
               cancelled: CLOSED}
catalog:
  - {name: trashable, displayName: Trashable, type: incident, workflow: desk_with_trash,
     defaultPriority: LOW}
"""


@pytest.fixture
async def custom_client(settings: Settings, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with catalog_client(
        settings, tmp_path, VALUES, REPO / "examples" / "values-extends.yaml"
    ) as client:
        yield client


async def test_hidden_statuses_only_when_named(custom_client: httpx.AsyncClient) -> None:
    app: FastAPI = custom_client.app  # type: ignore[attr-defined]
    tenant = await new_tenant(app, custom_client)
    agent = await tenant.user(*AGENT)
    c, h = custom_client, agent.headers

    async def open_ticket(title: str) -> dict[str, str]:
        r = await c.post(
            "/v1/tickets", json={"title": title, "catalog_item": "trashable"}, headers=h
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    _kept, done, trashed = (
        await open_ticket("kept"),
        await open_ticket("done"),
        await open_ticket("trashed"),
    )
    assert (
        await c.post(f"/v1/tickets/{done['id']}/transitions", json={"to": "done"}, headers=h)
    ).status_code == 200
    assert (
        await c.post(f"/v1/tickets/{trashed['id']}/transitions", json={"to": "deleted"}, headers=h)
    ).status_code == 200

    async def titles(**params: str | int | list[str]) -> set[str]:
        r = await c.get("/v1/tickets", params=params, headers=h)
        return {t["title"] for t in r.json()["items"]}

    assert await titles() == {"kept"}
    assert await titles(status_category=["inactive"]) == {"done"}
    assert await titles(status=["deleted"]) == {"trashed"}
    assert await titles(status=["deleted", "open"]) == {"trashed", "kept"}
    workflow = (await c.get("/v1/workflows/desk_with_trash", headers=h)).json()
    assert [s for s in workflow["statuses"] if s["hidden"]] == [
        {
            "name": "deleted",
            "label": "deleted",
            "category": "inactive",
            "hidden": True,
            "milestone": None,
            "final": False,
            "timeout": None,
        }
    ]


async def test_extends_and_explicit_maps(custom_client: httpx.AsyncClient) -> None:
    app: FastAPI = custom_client.app  # type: ignore[attr-defined]
    tenant = await new_tenant(app, custom_client)
    requester = await tenant.user("tickets:create")
    assignee = await tenant.user(*AGENT)
    c = custom_client
    # security_incident runs incident_response_strict: re-opening is the requester's alone.
    r = await c.post(
        "/v1/tickets",
        json={"title": "Phishing", "catalog_item": "security_incident"},
        headers=requester.headers,
    )
    ticket = r.json()
    assert (ticket["workflow"], ticket["priority"]) == ("incident_response_strict", "CRITICAL")
    url = f"/v1/tickets/{ticket['id']}"
    await c.patch(url, json={"assignee_id": assignee.id}, headers=tenant.headers)
    await c.post(f"{url}/transitions", json={"to": "IN_PROGRESS"}, headers=assignee.headers)
    await c.post(f"{url}/transitions", json={"to": "RESOLVED"}, headers=assignee.headers)
    r = await c.post(f"{url}/transitions", json={"to": "IN_PROGRESS"}, headers=assignee.headers)
    assert r.status_code == 409 and r.json()["reasons"][0]["code"] == "role"
    assert (
        await c.post(f"{url}/transitions", json={"to": "IN_PROGRESS"}, headers=requester.headers)
    ).status_code == 200

    # An ITSM ticket moves to the incident workflow through the operator's explicit map.
    r = await c.post(
        "/v1/tickets",
        json={"title": "Mail down", "catalog_item": "itsm_incident"},
        headers=requester.headers,
    )
    itsm = r.json()
    r = await c.patch(
        f"/v1/tickets/{itsm['id']}", json={"catalog_item": "incident"}, headers=assignee.headers
    )
    assert r.status_code == 200, r.text
    assert (r.json()["workflow"], r.json()["status"], r.json()["status_category"]) == (
        "incident_response",
        "OPEN",
        "initial",
    )
    # A cancelled ITSM ticket is final: it does not move anywhere any more.
    r = await c.post(
        "/v1/tickets",
        json={"title": "Mail down again", "catalog_item": "itsm_incident"},
        headers=requester.headers,
    )
    cancelled = r.json()
    await c.post(
        f"/v1/tickets/{cancelled['id']}/transitions",
        json={"action": "cancel"},
        headers=assignee.headers,
    )
    r = await c.patch(
        f"/v1/tickets/{cancelled['id']}",
        json={"catalog_item": "incident"},
        headers=assignee.headers,
    )
    assert r.status_code == 409 and r.json()["type"] == "/problems/ticket-closed", r.text
