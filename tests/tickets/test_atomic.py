"""Every ticket write is all or nothing: with a fault injected into the audit trail (the write
after the change itself), no use case leaves its change behind without its record.

The fault is a test-only trigger that makes inserts into ticket_events fail for one tenant:
each write below then fails as a whole, and the ticket, its counter, comments, links and
approvals are as they were before it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.sql import execute, fetch, fetchval
from tests.tickets.conftest import Desk

_INSTALL = (
    "CREATE TABLE IF NOT EXISTS test_failing_tenants (tenant_id uuid PRIMARY KEY)",
    """
CREATE OR REPLACE FUNCTION test_fail_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM test_failing_tenants WHERE tenant_id = NEW.tenant_id) THEN
        RAISE EXCEPTION 'injected fault';
    END IF;
    RETURN NEW;
END $$
""",
    "DROP TRIGGER IF EXISTS test_fail_event ON ticket_events",
    "CREATE TRIGGER test_fail_event BEFORE INSERT ON ticket_events "
    "FOR EACH ROW EXECUTE FUNCTION test_fail_event()",
)


@pytest.fixture
async def faulty(app: FastAPI, desk: Desk) -> AsyncIterator[Any]:
    """Call `await faulty()` to make the desk's tenant's audit writes fail from then on."""
    await execute(app, *_INSTALL)

    async def arm() -> None:
        await execute(app, "INSERT INTO test_failing_tenants VALUES ($1)", args=(desk.tenant.id,))

    yield arm
    await execute(
        app, "DELETE FROM test_failing_tenants WHERE tenant_id = $1", args=(desk.tenant.id,)
    )


async def _state(app: FastAPI, tenant_id: uuid.UUID) -> dict[str, object]:
    """Everything a ticket write can change in a tenant."""
    counts = {}
    for table in ("tickets", "ticket_comments", "ticket_links", "ticket_approvals", "outbox"):
        counts[table] = await fetchval(
            app, f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant_id
        )
    versions = await fetch(
        app, "SELECT id, version, status, assignee_id FROM tickets WHERE tenant_id = $1", tenant_id
    )
    counter = await fetchval(
        app, "SELECT last_number FROM ticket_counters WHERE tenant_id = $1", tenant_id
    )
    return {**counts, "tickets_rows": sorted(map(tuple, versions)), "counter": counter}


async def test_no_write_outlives_a_failed_audit_record(
    app: FastAPI, desk: Desk, faulty: Any
) -> None:
    ticket = await desk.open()
    other = await desk.open()
    await desk.assign(ticket, desk.assignee)
    link = await desk.client.post(
        f"/v1/tickets/{ticket['id']}/links",
        json={"kind": "relates_to", "target": other["number"]},
        headers=desk.agent.headers,
    )
    assert link.status_code == 201, link.text
    # The `infra` approval is given by "INFRA approvers" only: the agent may, so that the
    # write is attempted.
    await desk.join("INFRA approvers", desk.agent)
    await faulty()
    before = await _state(app, desk.tenant.id)
    base = f"/v1/tickets/{ticket['id']}"
    agent = desk.agent.headers
    writes = [
        ("POST", "/v1/tickets", {"title": "x", "catalog_item": "itsm_incident"}, agent),
        ("PATCH", base, {"title": "A new title", "priority": "HIGH"}, agent),
        ("POST", f"{base}/transitions", {"action": "resolve", "comment": "Fixed"}, agent),
        ("POST", f"{base}/comments", {"body": "Hello", "visibility": "external"}, agent),
        ("POST", f"{base}/links", {"kind": "blocked_by", "target": other["number"]}, agent),
        ("DELETE", f"{base}/links/{link.json()['id']}", None, agent),
        ("POST", f"{base}/approvals", {"name": "infra"}, agent),
    ]
    # A client that sees the 500 the app answers, rather than the exception behind it.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://flowdesk.test") as client:
        for method, url, body, headers in writes:
            r = await client.request(method, url, json=body, headers=headers)
            assert r.status_code == 500, (method, url, r.status_code, r.text)
            assert await _state(app, desk.tenant.id) == before, (method, url)
