"""The reference: the fastest known way to serve flowdesk's ticket writes over HTTP.

A minimal FastAPI app on a raw asyncpg pool (uvloop + httptools, like `flowdesk serve`), on a
database of its own with flowdesk's schema (the runner migrates it with flowdesk's migrations,
so the tables, indexes, generated columns and foreign keys are exactly flowdesk's and the
database does the same work per request). What it leaves out is everything that is not the
database's work: the ORM, the service layers, middleware, per-request sessions.

- create      one statement: a CTE that increments the tenant's counter (UPDATE … RETURNING),
              inserts the ticket, its "created" event and its outbox message, and returns the
              ticket with its requester's name
- transition  optimistic, like flowdesk's: read the ticket's status and version, check the move
              in the workflow, then one statement that UPDATEs the ticket if the version is
              unchanged (else read and decide again), INSERTs the event and the outbox
              messages (status_changed, and resolved when it is) and returns it with the names
- get, list   one SELECT each

Auth is a dictionary lookup of the bearer token (tokens loaded from `ref_tokens` at start),
like flowdesk's in-process key cache without its expiry.

    python bench/reference_app.py --dsn postgresql://... --port 8100 --workers 1
"""

from __future__ import annotations

import argparse
import base64
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

# The catalog item the benchmark files tickets against and the workflow it uses
# (workflows.yaml: itsm_incident -> itsm_default).
CATALOG = {
    "itsm_incident": ("incident", "itsm_default", "HIGH"),
    "itsm_service_request": ("service_request", "itsm_default", "MEDIUM"),
}
INITIAL = {"itsm_default": "open"}
CATEGORY = {
    "open": "initial",
    "in_progress": "active",
    "resolved": "active",
    "closed": "inactive",
    "cancelled": "inactive",
}
ACTIONS = {
    ("open", "start"): "in_progress",
    ("in_progress", "resolve"): "resolved",
    ("resolved", "close"): "closed",
    ("resolved", "reopen"): "in_progress",
    ("open", "cancel"): "cancelled",
    ("in_progress", "cancel"): "cancelled",
    ("resolved", "cancel"): "cancelled",
}
MOVES = {(source, target): action for (source, action), target in ACTIONS.items()}

NAMES = [
    "tenant_id",
    "id",
    "number",
    "prefix",
    "title",
    "description",
    "type",
    "catalog_item",
    "workflow",
    "status",
    "status_category",
    "priority",
    "requester_id",
    "assignee_id",
    "resolution",
    "fields",
    "created_at",
    "updated_at",
    "version",
]
COLUMNS = ", ".join(NAMES)
# The names of the people on the ticket come with it (flowdesk's answers carry them).
WITH_NAMES = """
SELECT w.*, r.name AS requester_name, a.name AS assignee_name
FROM written w
JOIN users r ON r.tenant_id = w.tenant_id AND r.id = w.requester_id
LEFT JOIN users a ON a.tenant_id = w.tenant_id AND a.id = w.assignee_id
"""
# One autocommitted statement: the counter (taken only for a live requester, as flowdesk
# does), the ticket, its "created" event and its outbox message, returned with the names.
CREATE_SQL = f"""
WITH requester AS (
    SELECT u.id FROM users u
    WHERE u.tenant_id = $1 AND u.id = $11 AND u.deleted_at IS NULL
), counter AS (
    UPDATE ticket_counters c SET last_number = c.last_number + 1
    FROM requester, tenants t
    WHERE c.tenant_id = $1 AND t.id = $1
    RETURNING c.last_number, t.ticket_prefix
), written AS (
    INSERT INTO tickets (tenant_id, id, number, prefix, title, description, type, catalog_item,
                         workflow, status, status_category, priority, requester_id)
    SELECT $1, $2, counter.last_number, counter.ticket_prefix, $3, $4, $5, $6, $7, $8, $9, $10,
           $11
    FROM counter
    RETURNING {COLUMNS}
), events AS (
    INSERT INTO ticket_events (tenant_id, ticket_id, kind, actor_id, data)
    SELECT w.tenant_id, w.id, 'created', $11, $12::jsonb FROM written w
), messages AS (
    INSERT INTO outbox (tenant_id, topic, payload)
    SELECT w.tenant_id, 'ticket.created', $13::jsonb FROM written w
)
{WITH_NAMES}
"""
READ_SQL = "SELECT status, version FROM tickets WHERE tenant_id = $1 AND id = $2"
# Optimistic: written only if the version read is still current (else decided again), in one
# autocommitted statement with its event and outbox messages, returned with the names.
UPDATE_SQL = f"""
WITH written AS (
    UPDATE tickets SET status = $3, status_category = $4, previous_status = status,
                       version = version + 1, updated_at = now()
    WHERE tenant_id = $1 AND id = $2 AND version = $9
    RETURNING {COLUMNS}
), events AS (
    INSERT INTO ticket_events (tenant_id, ticket_id, kind, actor_id, data)
    SELECT w.tenant_id, w.id, 'transitioned', $5, $6::jsonb FROM written w
), messages AS (
    INSERT INTO outbox (tenant_id, topic, payload)
    SELECT w.tenant_id, m.topic, m.payload
    FROM written w, unnest($7::text[], $8::jsonb[]) AS m(topic, payload)
)
{WITH_NAMES}
"""
_NAMES_JOIN = """
JOIN users r ON r.tenant_id = w.tenant_id AND r.id = w.requester_id
LEFT JOIN users a ON a.tenant_id = w.tenant_id AND a.id = w.assignee_id
"""
_W_COLUMNS = ", ".join(f"w.{c}" for c in NAMES)
GET_SQL = f"""
SELECT {_W_COLUMNS}, r.name AS requester_name, a.name AS assignee_name
FROM tickets w {_NAMES_JOIN}
WHERE w.tenant_id = $1 AND w.id = $2
"""
# The page is chosen from tickets alone, then joined to the names: with the join at the same
# level, a generic plan (asyncpg prepares, PostgreSQL switches to generic plans after five
# runs) sorts every ticket of a hot tenant instead of reading the created_at index backwards.
LIST_SQL = f"""
SELECT {_W_COLUMNS}, r.name AS requester_name, a.name AS assignee_name
FROM (SELECT * FROM tickets WHERE tenant_id = $1
      ORDER BY created_at DESC, id DESC LIMIT $2) w {_NAMES_JOIN}
ORDER BY w.created_at DESC, w.id DESC
"""


class TicketIn(BaseModel):
    title: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=20_000)
    catalog_item: str


class TransitionIn(BaseModel):
    action: str | None = None
    to: str | None = None


def _dumps(value: Any) -> bytes:
    # asyncpg returns its own UUID type, which orjson leaves to `default`.
    return orjson.dumps(value, default=str)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(body), status, headers, media_type="application/json")


def _problem(status: int, title: str) -> Response:
    body = {"type": "about:blank", "title": title, "status": status}
    return Response(orjson.dumps(body), status, media_type="application/problem+json")


def _ticket(row: asyncpg.Record) -> dict[str, Any]:
    assignee = None
    if row["assignee_id"] is not None:
        assignee = {"id": row["assignee_id"], "name": row["assignee_name"]}
    return {
        "id": row["id"],
        "number": f"{row['prefix']}-{row['number']:06d}",
        "title": row["title"],
        "description": row["description"],
        "type": row["type"],
        "catalog_item": row["catalog_item"],
        "workflow": row["workflow"],
        "status": row["status"],
        "status_category": row["status_category"],
        "priority": row["priority"],
        "requester": {"id": row["requester_id"], "name": row["requester_name"]},
        "assignee": assignee,
        "resolution": row["resolution"],
        "fields": orjson.loads(row["fields"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "version": row["version"],
    }


def create_app() -> FastAPI:
    dsn = os.environ["REFERENCE_DSN"]
    pool_size = int(os.environ.get("REFERENCE_POOL_SIZE", "30"))
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Grows on demand up to the size of flowdesk's pool (size + overflow), as flowdesk's
        # does, and lets go of connections idle for a few seconds: the two systems share the
        # server's max_connections (100 by default) and take turns, so the one waiting must
        # not hold what the one under load needs.
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min(10, pool_size),
            max_size=pool_size,
            max_inactive_connection_lifetime=3.0,
            server_settings={"jit": "off"},
        )
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT token, tenant_id, user_id FROM ref_tokens")
        state["pool"] = pool
        state["tokens"] = {r["token"]: (r["tenant_id"], r["user_id"]) for r in rows}
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    def caller(request: Request) -> tuple[uuid.UUID, uuid.UUID] | None:
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        found: tuple[uuid.UUID, uuid.UUID] | None = state["tokens"].get(token)
        return found

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/tickets")
    async def create(request: Request, body: TicketIn) -> Response:
        who = caller(request)
        if who is None:
            return _problem(401, "Unauthorized")
        item = CATALOG.get(body.catalog_item)
        if item is None:
            return _problem(422, "Unknown catalog item")
        kind, workflow, priority = item
        status = INITIAL[workflow]
        tenant_id, user_id = who
        event = {"status": status, "priority": priority, "catalog_item": body.catalog_item}
        async with state["pool"].acquire() as conn:
            row = await conn.fetchrow(
                CREATE_SQL,
                tenant_id,
                uuid.uuid4(),
                body.title,
                body.description,
                kind,
                body.catalog_item,
                workflow,
                status,
                CATEGORY[status],
                priority,
                user_id,
                orjson.dumps(event).decode(),
                _dumps({"actor_id": user_id}).decode(),
            )
        headers = {"ETag": f'"{row["version"]}"', "Location": f"/v1/tickets/{row['id']}"}
        return _json(201, _ticket(row), headers)

    @app.post("/v1/tickets/{ticket_id}/transitions")
    async def transition(request: Request, ticket_id: uuid.UUID, body: TransitionIn) -> Response:
        who = caller(request)
        if who is None:
            return _problem(401, "Unauthorized")
        tenant_id, user_id = who
        async with state["pool"].acquire() as conn:
            for _ in range(3):  # a concurrent change between read and write: decide again
                current = await conn.fetchrow(READ_SQL, tenant_id, ticket_id)
                if current is None:
                    return _problem(404, "Not found")
                source = current["status"]
                action = body.action or MOVES.get((source, body.to or ""))
                target = ACTIONS.get((source, action or ""))
                if action is None or target is None:
                    return _problem(409, "Transition not allowed")
                event = {"action": action, "from": source, "to": target}
                topics = ["ticket.status_changed"]
                payloads = [orjson.dumps({"from": source, "to": target}).decode()]
                if target == "resolved":
                    topics.append("ticket.resolved")
                    payloads.append("{}")
                elif CATEGORY[target] == "inactive":
                    topics.append("ticket.closed")
                    payloads.append(orjson.dumps({"status": target}).decode())
                row = await conn.fetchrow(
                    UPDATE_SQL,
                    tenant_id,
                    ticket_id,
                    target,
                    CATEGORY[target],
                    user_id,
                    orjson.dumps(event).decode(),
                    topics,
                    payloads,
                    current["version"],
                )
                if row is not None:
                    return _json(200, _ticket(row), {"ETag": f'"{row["version"]}"'})
        return _problem(409, "Concurrent changes")

    @app.get("/v1/tickets/{ticket_id}")
    async def get_one(request: Request, ticket_id: uuid.UUID) -> Response:
        who = caller(request)
        if who is None:
            return _problem(401, "Unauthorized")
        row = await state["pool"].fetchrow(GET_SQL, who[0], ticket_id)
        if row is None:
            return _problem(404, "Not found")
        return _json(200, _ticket(row), {"ETag": f'"{row["version"]}"'})

    @app.get("/v1/tickets")
    async def list_page(request: Request, limit: int = 50) -> Response:
        who = caller(request)
        if who is None:
            return _problem(401, "Unauthorized")
        limit = max(1, min(limit, 100))
        rows = await state["pool"].fetch(LIST_SQL, who[0], limit + 1)
        items = [_ticket(r) for r in rows[:limit]]
        cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            raw = _dumps([last["created_at"], last["id"]])
            cursor = base64.urlsafe_b64encode(raw).decode()
        return _json(200, {"items": items, "next_cursor": cursor})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True, help="postgresql:// DSN of the reference DB")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pool-size", type=int, default=30)
    args = parser.parse_args()
    os.environ["REFERENCE_DSN"] = args.dsn
    os.environ["REFERENCE_POOL_SIZE"] = str(args.pool_size)
    uvicorn.run(
        "reference_app:create_app",
        factory=True,
        app_dir=os.path.dirname(os.path.abspath(__file__)),
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
