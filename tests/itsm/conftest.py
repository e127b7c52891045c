"""Fixtures of the ITSM tests."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tests.support import TICKET, Operator, TenantCtx, new_tenant, problem_type

__all__ = ["TICKET", "Operator", "problem_type"]


@pytest.fixture
async def tenant_unlicensed(app: FastAPI, client: httpx.AsyncClient) -> TenantCtx:
    return await new_tenant(app, client, licensed=False)
