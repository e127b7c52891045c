"""The platform operator, as the ITSM tests drive it: its token, and licence changes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support import PLATFORM_TOKEN, TenantCtx, bearer, new_tenant


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


@pytest.fixture
def operator(client: httpx.AsyncClient) -> Operator:
    return Operator(client)


def problem_type(r: httpx.Response) -> str:
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    return str(r.json()["type"]).removeprefix("/problems/")


TICKET = {"title": "The printer is on fire", "catalog_item": "itsm_incident"}


@pytest.fixture
async def tenant_unlicensed(app: FastAPI, client: httpx.AsyncClient) -> TenantCtx:
    return await new_tenant(app, client, licensed=False)
