"""Fixtures of the ITSM tests."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tests.support import TenantCtx, new_tenant


@pytest.fixture
async def tenant_unlicensed(app: FastAPI, client: httpx.AsyncClient) -> TenantCtx:
    return await new_tenant(app, client, licensed=False)
