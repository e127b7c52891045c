"""People of a service desk for the ticket tests: a requester, the assignee, another agent and
the tenant's admin, each with their own key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from flowdesk.app import create_app
from flowdesk.config import Settings
from flowdesk.workflow import load_catalog
from tests.sql import execute
from tests.support import Member, TenantCtx

AGENT = ("tickets:create", "tickets:manage", "tickets:close")


@dataclass
class Desk:
    client: httpx.AsyncClient
    tenant: TenantCtx
    requester: Member
    assignee: Member
    agent: Member

    @property
    def admin(self) -> Member:
        return self.tenant.admin

    async def open(self, by: Member | None = None, **body: Any) -> dict[str, Any]:
        payload = {"title": "Something is broken", "catalog_item": "itsm_incident", **body}
        r = await self.client.post(
            "/v1/tickets", json=payload, headers=(by or self.requester).headers
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def assign(self, ticket: dict[str, Any], to: Member) -> dict[str, Any]:
        r = await self.client.patch(
            f"/v1/tickets/{ticket['id']}", json={"assignee_id": to.id}, headers=self.admin.headers
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def move(self, ticket: dict[str, Any], by: Member, **body: Any) -> httpx.Response:
        return await self.client.post(
            f"/v1/tickets/{ticket['id']}/transitions", json=body, headers=by.headers
        )


async def force_status(app: FastAPI, ticket_id: str, status: str, **extra: Any) -> None:
    """Put a ticket in a status directly (test set-up for a transition matrix)."""
    names = ["status", *extra]
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    await execute(
        app,
        f"UPDATE tickets SET {assignments} WHERE id = $1::uuid",
        args=(ticket_id, status, *extra.values()),
    )


REPO = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def catalog_client(
    settings: Settings, tmp_path: Path, values: str, *files: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose catalog is the shipped one, `files`, then `values` (a values
    file's text) over them; the app is `client.app`. 500s answer as responses."""
    written = tmp_path / "values.yaml"
    written.write_text(values)
    app = create_app(settings, catalog=load_catalog([*files, written]))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        client.app = app  # type: ignore[attr-defined]
        yield client
