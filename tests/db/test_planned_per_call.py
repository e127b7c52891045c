"""Lists and counts are planned for each call's values, never kept prepared (ADR 0023): a
statement asyncpg keeps prepared is run with PostgreSQL's generic plan after five calls, and for
a list that plan reads a large tenant's every match (bench/results/growth.md). The pool here has
one connection, so every statement of the requests below ran on the connection inspected."""

from __future__ import annotations

import httpx

from flowdesk.app import create_app
from flowdesk.config import Settings
from tests.support import new_tenant, runtime


async def test_lists_and_counts_are_not_kept_prepared(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"db_pool_size": 1}))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://flowdesk.test") as client,
    ):
        t = await new_tenant(app, client)
        made = await client.post(
            "/v1/tickets",
            json={"title": "Printer jammed", "catalog_item": "itsm_incident"},
            headers=t.headers,
        )
        assert made.status_code == 201, made.text
        # Past the five calls after which PostgreSQL may switch a prepared one to a generic plan.
        for _ in range(7):
            for path, params in (
                ("/v1/tickets", {"q": "printer"}),
                ("/v1/tickets", {"sort": "sla_due"}),
                ("/v1/tickets/counts", {"group_by": "status"}),
            ):
                r = await client.get(path, params=params, headers=t.headers)
                assert r.status_code == 200, r.text
            r = await client.get(f"/v1/tickets/{made.json()['id']}", headers=t.headers)
            assert r.status_code == 200, r.text
        async with runtime(app).db.connection() as conn:
            kept = [
                row["statement"]
                for row in await conn.fetch("SELECT statement FROM pg_prepared_statements")
            ]
    # The hot paths' statements are kept prepared (getting a ticket among them)...
    assert any("FROM tickets" in sql and "WHERE tickets.tenant_id" in sql for sql in kept), kept
    # ...the lists' and counts' are not.
    assert not [sql for sql in kept if sql.startswith("SELECT page.") or "GROUP BY" in sql]
