"""Workflow rights held by groups, as seed 001 grants them: "only the quality assurance team is
allowed to approve (or decline) an order". The orders example (examples/rt-orders.yaml) runs
with RT's rights; a QA group holds ApproveOrder, everywhere or for one catalog item (RT's
queue); an unknown right is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from flowdesk.config import Settings
from tests.support import Member, TenantCtx, new_tenant
from tests.tickets.conftest import REPO, catalog_client

# What a deployment adds beside the imported lifecycle: a catalog item (RT's queue) per use,
# and which flowdesk permissions hold RT's everyday rights.
VALUES = """
permission_implies:
  tickets:create: [CreateTicket]
  tickets:manage: [ModifyTicket]
catalog:
  - {name: orders, displayName: Orders, type: order, workflow: orders, defaultPriority: MEDIUM}
  - {name: returns, displayName: Returns, type: order, workflow: orders, defaultPriority: LOW}
"""


@pytest.fixture
async def orders_client(settings: Settings, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with catalog_client(
        settings, tmp_path, VALUES, REPO / "examples" / "rt-orders.yaml"
    ) as client:
        yield client


async def member_of(tenant: TenantCtx, *grants: str) -> Member:
    c, h = tenant.client, tenant.headers
    r = await c.post(
        "/v1/groups", json={"name": "g-" + "-".join(grants), "permissions": list(grants)}, headers=h
    )
    assert r.status_code == 201, r.text
    user = await tenant.user()
    r = await c.put(f"/v1/groups/{r.json()['id']}/members/{user.id}", headers=h)
    assert r.status_code == 204, r.text
    return user


async def test_only_the_qa_group_approves_orders(orders_client: httpx.AsyncClient) -> None:
    app: FastAPI = orders_client.app  # type: ignore[attr-defined]
    c = orders_client
    tenant = await new_tenant(app, c)
    clerk = await member_of(tenant, "tickets:create", "tickets:manage")
    qa = await member_of(tenant, "tickets:create", "tickets:manage", "ApproveOrder")
    qa_for_returns = await member_of(tenant, "tickets:manage", "ApproveOrder@returns")

    async def order(item: str) -> dict[str, Any]:
        r = await c.post(
            "/v1/tickets", json={"title": "Ten chairs", "catalog_item": item}, headers=clerk.headers
        )
        assert r.status_code == 201, r.text
        r = await c.post(
            f"/v1/tickets/{r.json()['id']}/transitions",
            json={"to": "processing"},
            headers=clerk.headers,
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def deliver(ticket: dict[str, Any], who: Member) -> httpx.Response:
        return await c.post(
            f"/v1/tickets/{ticket['id']}/transitions", json={"to": "delivery"}, headers=who.headers
        )

    first = await order("orders")
    r = await deliver(first, clerk)
    assert r.status_code == 409 and r.json()["reasons"][0]["required"] == ["ApproveOrder"]
    # Held for the returns queue only: not for orders.
    assert (await deliver(first, qa_for_returns)).status_code == 409
    assert (await deliver(first, qa)).status_code == 200
    second = await order("returns")
    assert (await deliver(second, qa_for_returns)).status_code == 200


async def test_a_group_holds_only_rights_the_catalog_knows(
    orders_client: httpx.AsyncClient,
) -> None:
    app: FastAPI = orders_client.app  # type: ignore[attr-defined]
    c = orders_client
    tenant = await new_tenant(app, c)
    for grants, pointer in (
        (["ApproveOrdre"], "/permissions/0"),
        (["tickets:manage", "ApproveOrder@nowhere"], "/permissions/1"),
        (["tickets:manage@orders"], "/permissions/0"),
    ):
        r = await c.post(
            "/v1/groups", json={"name": "qa", "permissions": grants}, headers=tenant.headers
        )
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["pointer"] == pointer
    r = await c.post(
        "/v1/groups",
        json={"name": "qa", "permissions": ["DeclineOrder", "ApproveOrder@orders"]},
        headers=tenant.headers,
    )
    assert r.status_code == 201, r.text
    r = await c.patch(
        f"/v1/groups/{r.json()['id']}", json={"permissions": ["Nope"]}, headers=tenant.headers
    )
    assert r.status_code == 422
