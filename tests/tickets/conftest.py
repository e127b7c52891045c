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

# Seed 003's questionnaire answered for a platform item (the summary becomes the title); an
# access request also says why, at which level and for which project.
_PLATFORM_ANSWERS: dict[str, Any] = {
    "summary": "Open port 443 on the gateway",
    "service": "networking.application_gateway",
    "environments": ["dev"],
    "details": "The health probe needs it.",
}
_ACCESS_ANSWERS: dict[str, Any] = {
    "justification": "I deploy the gateway's configuration.",
    "access_level": "read",
    "project": "Gateway",
}


def platform_answers(item: str = "platform_change", **over: Any) -> dict[str, Any]:
    """Answers that fit the form of the platform catalog item `item`, with `over` on top."""
    extra = _ACCESS_ANSWERS if item == "platform_access" else {}
    return {**_PLATFORM_ANSWERS, **extra, **over}


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
        payload = {"catalog_item": "itsm_incident", **body}
        if "answers" not in body:  # with a form, the title comes from an answer
            payload.setdefault("title", "Something is broken")
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

    async def join(self, group: str, *members: Member) -> None:
        """Put `members` in the tenant's group named `group` (made on first use, with no
        permissions): e.g. "INFRA approvers", who give the `infra` approval."""
        r = await self.client.get("/v1/groups?limit=100", headers=self.admin.headers)
        found = [g["id"] for g in r.json()["items"] if g["name"] == group]
        if not found:
            r = await self.client.post(
                "/v1/groups", json={"name": group, "permissions": []}, headers=self.admin.headers
            )
            assert r.status_code == 201, r.text
            found = [r.json()["id"]]
        for member in members:
            r = await self.client.put(
                f"/v1/groups/{found[0]}/members/{member.id}", headers=self.admin.headers
            )
            assert r.status_code == 204, r.text


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
