"""A real browser (headless Chromium) running an SPA at an allowed origin: it signs its user in
at a real local OpenID provider, then files, follows (the live stream) and works a ticket on a
real `flowdesk serve`, another origin, with the token. The same page at an origin the tenant
does not allow can read nothing. Skipped where Chromium is not installed (Debian's
`chromium` package)."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tests.auth.oidc_provider import Provider
from tests.servers import free_port, start_serve, stop, wait_healthy
from tests.support import new_tenant

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGE = (Path(__file__).parent / "browser" / "spa.html").read_text()
PATIENCE = 60.0

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")


class Spa:
    """The SPA's own origin: serves the page, and takes what the page reports."""

    def __init__(self, config: dict[str, str]) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.results: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        page = PAGE.replace("<script>", f"<script data-config='{json.dumps(config)}'>", 1)

        async def index(request: Request) -> Response:
            return HTMLResponse(page)

        async def results(request: Request) -> Response:
            await self.results.put(json.loads(await request.body()))
            return Response(status_code=204)

        app = Starlette(routes=[Route("/", index), Route("/results", results, methods=["POST"])])
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Spa]:
        task = asyncio.create_task(self._server.serve())
        while not self._server.started:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        try:
            yield self
        finally:
            self._server.should_exit = True
            await task


async def _browse(url: str, profile: Path, spa: Spa) -> dict[str, Any]:
    """What the page reports when Chromium opens `url`."""
    assert CHROMIUM is not None
    browser = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={profile}",
        url,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        return await asyncio.wait_for(spa.results.get(), PATIENCE)
    finally:
        browser.kill()
        await browser.wait()


async def test_an_spa_signs_in_and_works_tickets_from_its_origin(
    app: FastAPI, client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    tenant = await new_tenant(app, client)
    agents = await tenant.group("tickets:create", "tickets:manage", "tickets:close")
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    serve = start_serve(
        port,
        log,
        FLOWDESK_DATABASE_URL=database_url,
        FLOWDESK_DATA_DIR=str(tmp_path / "data"),
        FLOWDESK_SEED_DEMO="false",
        FLOWDESK_RELAY_POLL_SECONDS="0",
    )
    try:
        await asyncio.to_thread(wait_healthy, serve, port, log)
        async with Provider() as provider:
            provider.add_key("EC")
            provider.person = {
                "sub": "spa-person",
                "claims": {"email": "pat@corp.example", "name": "Pat", "roles": ["desk"]},
            }
            audience = f"spa-{tenant.slug}"
            r = await client.put(
                "/v1/tenant/identity-providers/corp",
                json={
                    "issuer": provider.issuer,
                    "audience": audience,
                    "groups_claim": "roles",
                    "group_map": {"desk": agents},
                },
                headers=tenant.headers,
            )
            assert r.status_code == 200, r.text
            config = {"api": api, "provider": provider.issuer, "audience": audience}
            async with Spa(config).running() as spa, Spa(config).running() as stranger:
                r = await client.patch(
                    "/v1/tenant", json={"allowed_origins": [spa.origin]}, headers=tenant.headers
                )
                assert r.status_code == 200, r.text

                out = await _browse(f"{spa.origin}/", tmp_path / "profile-1", spa)
                assert "error" not in out, out
                assert out["state"] == "state-1"
                assert out["me"]["user"]["email"] == "pat@corp.example"
                assert out["me"]["tenant"]["slug"] == tenant.slug
                filed = out["filed"]
                assert filed["status"] == 201 and filed["ticket_status"] == "open"
                # Headers an SPA needs are exposed to it.
                assert filed["location"].startswith("/v1/tickets/")
                assert filed["etag"] == '"1"' and filed["request_id"]
                assert out["stream_status"] == 200 and out["commented"] == 201
                assert out["streamed"]["number"] == filed["number"]
                assert out["started"] == {"status": 200, "ticket_status": "in_progress"}
                assert out["streamed_move"] == "transitioned"
                assert out["stale"] == {"status": 412, "type": "/problems/precondition-failed"}

                # The same page at an origin the tenant does not allow reads nothing.
                blocked = await _browse(f"{stranger.origin}/", tmp_path / "profile-2", stranger)
                assert blocked == {"error": "TypeError: Failed to fetch"}
    finally:
        stop(serve)
