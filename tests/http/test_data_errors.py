"""A value PostgreSQL refuses (SQLSTATE class 22) is the request's fault: a 422 problem, never
a 500 (issue 16, item 2). Validation keeps such values out of every route; this is the net
under it, caught on a route of the test's own."""

from __future__ import annotations

import httpx
from fastapi import Request

from flowdesk.app import create_app
from flowdesk.config import Settings
from flowdesk.runtime import runtime_of
from tests.support import problem_type


async def test_a_data_exception_is_a_422_problem(settings: Settings) -> None:
    app = create_app(settings)

    async def divide(request: Request) -> None:
        async with runtime_of(request).db.transaction() as conn:
            await conn.execute("SELECT 1 / 0")  # SQLSTATE 22012

    app.add_api_route("/test/divide", divide, methods=["POST"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        r = await client.post("/test/divide")
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert problem_type(r) == "validation-error"
        assert "1 / 0" not in r.text and "division" not in r.text
