"""Helpers the API tests share: making tenants, users with permissions, and keys."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from flowdesk.itsm.service import LicenceChange, update_licence
from flowdesk.runtime import Runtime, app_runtime
from flowdesk.tenants.service import create_tenant
from flowdesk.vocabulary import FLAGS

ALL_SCOPES = ["tickets:read", "tickets:write", "admin"]
# A public-API key's: the public API has no administration.
PUBLIC_SCOPES = ["tickets:read", "tickets:write"]
# The platform operator's credential in the test app's settings.
PLATFORM_TOKEN = "test-platform-token-0123456789abcdef"


async def until(
    condition: Callable[[], bool | Awaitable[bool]], what: str, deadline: float = 15.0
) -> None:
    """Polls `condition` until it holds; fails saying `what` did not happen. The deadline is
    generous: the machine is shared, and a condition met at all is met within milliseconds."""
    end = time.monotonic() + deadline
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.02)


def runtime(app: FastAPI) -> Runtime:
    """The runtime of a started app (its lifespan is running)."""
    return app_runtime(app)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Member:
    id: str
    email: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.key)


@dataclass
class TenantCtx:
    app: FastAPI
    client: httpx.AsyncClient
    id: uuid.UUID
    slug: str
    admin: Member
    _groups: dict[tuple[str, ...], str] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return self.admin.headers

    async def group(self, *permissions: str) -> str:
        """The id of a group granting exactly these permissions (made once per tenant)."""
        wanted = tuple(sorted(permissions))
        if wanted not in self._groups:
            name = "g-" + ("-".join(p.replace(":", "_") for p in wanted) or "none")
            r = await self.client.post(
                "/v1/groups", json={"name": name, "permissions": list(wanted)}, headers=self.headers
            )
            assert r.status_code == 201, r.text
            self._groups[wanted] = r.json()["id"]
        return self._groups[wanted]

    async def user(
        self,
        *permissions: str,
        scopes: list[str] | None = None,
        kind: str = "person",
        name: str | None = None,
        channel: str = "first_party",
    ) -> Member:
        """A new user holding `permissions` (through a group) with a key of `scopes` for
        `channel` (the first-party API, /v1, or the public API, /public/v1)."""
        email = f"{uuid.uuid4().hex[:10]}@{self.slug}.example"
        r = await self.client.post(
            "/v1/users",
            json={"email": email, "name": name or email, "kind": kind},
            headers=self.headers,
        )
        assert r.status_code == 201, r.text
        user_id = r.json()["id"]
        if permissions:
            group_id = await self.group(*permissions)
            r = await self.client.put(
                f"/v1/groups/{group_id}/members/{user_id}", headers=self.headers
            )
            assert r.status_code == 204, r.text
        key = await self.key(user_id, scopes or ALL_SCOPES, channel=channel)
        return Member(user_id, email, key)

    async def public(self, member: Member, scopes: list[str] | None = None) -> Member:
        """The same user with a key for the public API (/public/v1) instead."""
        key = await self.key(member.id, scopes or PUBLIC_SCOPES, channel="public")
        return Member(member.id, member.email, key)

    async def key(self, user_id: str, scopes: list[str], **extra: Any) -> str:
        r = await self.client.post(
            "/v1/api-keys",
            json={"user_id": user_id, "name": "test key", "scopes": scopes, **extra},
            headers=self.headers,
        )
        assert r.status_code == 201, r.text
        return str(r.json()["key"])


async def new_tenant(
    app: FastAPI,
    client: httpx.AsyncClient,
    *,
    licensed: bool = True,
    flags: dict[str, bool] | None = None,
    quotas: dict[str, int | None] | None = None,
    prefix: str = "TKT",
) -> TenantCtx:
    """A tenant with its admin. By default its ITSM licence is active with every feature flag
    on (`licensed=False` for one without; `flags`/`quotas` to shape the licence)."""
    slug = f"t-{uuid.uuid4().hex[:12]}"
    async with runtime(app).db.transaction() as conn:
        created = await create_tenant(conn, slug, f"Tenant {slug}", prefix)
        if licensed or flags or quotas:
            change = LicenceChange(
                active=licensed,
                flags={flag: True for flag in FLAGS} | (flags or {}),
                quotas=quotas or {},
            )
            await update_licence(conn, created.tenant["id"], change, "tests")
    admin = Member(str(created.admin["id"]), created.admin["email"], created.key.secret)
    return TenantCtx(app, client, created.tenant["id"], slug, admin)


# --- the ITSM add-on: the platform operator, problems, a ticket body ----------------------


class Operator:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.headers = bearer(PLATFORM_TOKEN)

    async def licence(self, slug: str, **body: Any) -> dict[str, Any]:
        r = await self.client.patch(
            f"/platform/v1/tenants/{slug}/licence", json=body, headers=self.headers
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def flags(self, slug: str, **flags: bool) -> dict[str, Any]:
        return await self.licence(slug, flags=flags)

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(f"/platform/v1{path}", params=params, headers=self.headers)


def problem_type(r: httpx.Response) -> str:
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    return str(r.json()["type"]).removeprefix("/problems/")


TICKET = {"title": "The printer is on fire", "catalog_item": "itsm_incident"}
