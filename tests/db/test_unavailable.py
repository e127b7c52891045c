"""With the database unreachable, requests get a quick 503 with Retry-After; when it comes
back, the service recovers by itself. The database sits behind a TCP proxy the test cuts."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from flowdesk.app import create_app
from flowdesk.auth.keys import generate_key
from flowdesk.config import Settings
from flowdesk.db.pool import asyncpg_dsn
from tests.sql import execute
from tests.support import new_tenant


class Proxy:
    """Forwards TCP connections to PostgreSQL (TCP or unix socket) until cut."""

    def __init__(self, target: str) -> None:
        url = make_url(target)
        self.socket_dir = url.query.get("host")
        self.host, self.port = url.host, url.port or 5432
        self.server: asyncio.Server | None = None
        self.links: set[asyncio.StreamWriter] = set()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.socket_dir:
            return await asyncio.open_unix_connection(f"{self.socket_dir}/.s.PGSQL.5432")
        return await asyncio.open_connection(self.host, self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await self._connect()
        self.links |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def start(self, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        return int(self.server.sockets[0].getsockname()[1])

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for link in list(self.links):
            link.close()
        self.links.clear()
        await self.server.wait_closed()


@contextlib.asynccontextmanager
async def proxied_app(database_url: str) -> AsyncIterator[tuple[Proxy, int, FastAPI]]:
    proxy = Proxy(database_url)
    port = await proxy.start()
    url = make_url(database_url)
    via_proxy = url.set(host="127.0.0.1", port=port, query={}).render_as_string(hide_password=False)
    app = create_app(
        Settings(
            database_url=via_proxy, seed_demo=False, auth_cache_seconds=0, access_cache_seconds=0
        )
    )
    async with app.router.lifespan_context(app):
        yield proxy, port, app


async def test_503_quickly_and_recovery(database_url: str) -> None:
    async with proxied_app(database_url) as (proxy, port, app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            tenant = await new_tenant(app, client)
            assert (await client.get("/v1/me", headers=tenant.headers)).status_code == 200
            body = {"title": "x", "catalog_item": "incident"}
            ticket = (await client.post("/v1/tickets", json=body, headers=tenant.headers)).json()
            one = f"/v1/tickets/{ticket['id']}"  # a ticket read: the hot path's connection
            public = await tenant.public(tenant.admin)
            assert (await client.get("/public/v1/tickets", headers=public.headers)).is_success

            await proxy.cut()
            for path in ("/v1/me", "/readyz", "/v1/users", "/public/v1/tickets", one, one):
                started = time.monotonic()
                who = public if path.startswith("/public/") else tenant.admin
                r = await client.get(path, headers=who.headers)
                elapsed = time.monotonic() - started
                assert r.status_code == 503, (path, r.text)
                assert r.headers["retry-after"].isdigit()
                assert r.json()["type"] == "/problems/service-unavailable"
                # Generous bound: the point is "not hanging", and the machine is shared.
                assert elapsed < 15, elapsed
            assert (await client.get("/healthz")).status_code == 200

            await proxy.start(port)
            for path in ("/v1/me", one, "/v1/tickets"):
                recovered = False
                for _ in range(50):
                    if (await client.get(path, headers=tenant.headers)).status_code == 200:
                        recovered = True
                        break
                    await asyncio.sleep(0.1)
                assert recovered, path
            await proxy.cut()


async def test_a_server_at_its_connection_limit_is_503_not_500(database_url: str) -> None:
    """PostgreSQL refusing a connection for lack of slots ("too many clients", SQLSTATE
    53300) is a 503 the client may retry, on the key lookup, a ticket list and the readiness
    probe. Provoked for real: a role whose connection limit is 0 gets exactly that refusal."""
    role = f"flowdesk_capped_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0")
        capped = make_url(database_url).set(username=role, password=None)
        app = create_app(
            Settings(database_url=capped.render_as_string(hide_password=False), seed_demo=False)
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                headers = {"Authorization": f"Bearer {generate_key()}"}
                for path in ("/v1/me", "/v1/tickets", "/readyz"):
                    r = await client.get(path, headers=headers)
                    assert r.status_code == 503, (path, r.text)
                    assert r.headers["retry-after"].isdigit()
                    assert r.json()["type"] == "/problems/service-unavailable"
    finally:
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()


async def test_a_statement_timeout_is_not_called_unreachable(settings: Settings) -> None:
    # Issue 16: a statement cut off by the statement timeout answered "The database is
    # unreachable". The database is there: the request asked more of it than allowed.
    impatient = settings.model_copy(update={"db_statement_timeout_ms": 200})
    app = create_app(impatient)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        tenant = await new_tenant(app, client)
        r = await client.post(
            "/v1/tickets",
            json={"title": "Slow", "catalog_item": "itsm_incident"},
            headers=tenant.headers,
        )
        ticket = r.json()
        await execute(
            app,
            "CREATE OR REPLACE FUNCTION test_slow_write() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN PERFORM pg_sleep(2); RETURN NEW; END $$",
            "CREATE TRIGGER test_slow_write BEFORE INSERT ON ticket_comments "
            "FOR EACH ROW EXECUTE FUNCTION test_slow_write()",
        )
        try:
            r = await client.post(
                f"/v1/tickets/{ticket['id']}/comments",
                json={"body": "hello", "visibility": "external"},
                headers=tenant.headers,
            )
        finally:
            await execute(app, "DROP TRIGGER test_slow_write ON ticket_comments")
        assert r.status_code == 503, r.text
        assert "statement timeout" in r.json()["detail"]
        assert "unreachable" not in r.json()["detail"]
