"""Ticket events are NOTIFYed only for tenants someone watches live: a notifying commit costs
every writer, so nobody pays for streams nobody has open."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
from fastapi import FastAPI

from flowdesk.db.pool import asyncpg_dsn
from flowdesk.tickets.live import CHANNEL
from tests.support import TICKET, new_tenant, runtime


async def test_only_watched_tenants_are_notified(
    app: FastAPI, client: httpx.AsyncClient, database_url: str
) -> None:
    quiet, watched = await new_tenant(app, client), await new_tenant(app, client)
    heard: asyncio.Queue[str] = asyncio.Queue()
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.add_listener(CHANNEL, lambda *args: heard.put_nowait(args[-1]))
        await runtime(app).live.watch(watched.id)
        for tenant in (quiet, watched):
            r = await client.post("/v1/tickets", json=TICKET, headers=tenant.headers)
            assert r.status_code == 201, r.text
        payload = await asyncio.wait_for(heard.get(), 10)
        assert str(watched.id) in payload
        # The quiet tenant's write, committed first, was never notified.
        await asyncio.sleep(0.2)
        assert heard.empty()
    finally:
        await conn.close()
