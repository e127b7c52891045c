"""Seeding a growth database with PostgreSQL's bulk path: tenants made by flowdesk itself,
then tickets, their audit events, comments and outbox history by `INSERT … SELECT
generate_series`, then VACUUM ANALYZE."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from loadbench import database
from loadbench.seed import seed_flowdesk
from sqlalchemy.engine import make_url

from flowdesk.db import migrate

# Title words: "printer" is in every tenth ticket, "zeppelin" in one in 50,000.
WORDS = "'{vpn,printer,email,laptop,password,network,screen,keyboard,access,license}'"

SEED_SQL = [
    # People of the big tenant: requesters and agents (agents through the admin group).
    """
    INSERT INTO users (tenant_id, id, email, name, kind)
    SELECT $1, gen_random_uuid(), 'user' || n || '@big.example', 'User ' || n, 'person'
    FROM generate_series(1, 70) AS n
    """,
    """
    INSERT INTO group_members (tenant_id, group_id, user_id)
    SELECT u.tenant_id, g.id, u.id
    FROM (SELECT tenant_id, id FROM users WHERE tenant_id = $1 AND email LIKE 'user%'
          ORDER BY email LIMIT 20) u
    JOIN groups g ON g.tenant_id = u.tenant_id AND 'admin' = ANY (g.permissions)
    """,
    # Tickets: tenant t's k-th ticket; the big tenant takes the first `big` of them.
    """
    WITH people AS (
      SELECT tenant_id, array_agg(id ORDER BY email) AS ids FROM users GROUP BY tenant_id
    ), placed AS (
      SELECT k, CASE WHEN k < $2 THEN 0 ELSE 1 + (k - $2) % ($3 - 1) END AS t
      FROM generate_series(0, $1 - 1) AS k
    ), numbered AS (
      SELECT k, t, row_number() OVER (PARTITION BY t ORDER BY k) AS number,
             count(*) OVER (PARTITION BY t) AS total
      FROM placed
    )
    INSERT INTO tickets (tenant_id, id, number, prefix, title, description, type, catalog_item,
                         workflow, status, status_category, priority, requester_id,
                         assignee_id, created_at, updated_at, started_at, resolved_at,
                         closed_at)
    SELECT ten.id, gen_random_uuid(), n.number, 'TKT',
           ("""
    + WORDS
    + """::text[])[1 + k % 10] || ' trouble '
             || CASE WHEN k % 50000 = 17 THEN 'zeppelin' ELSE 'ticket ' || (k % 1000) END,
           'Seeded ticket ' || k,
           CASE WHEN k % 3 = 0 THEN 'service_request' ELSE 'incident' END,
           CASE WHEN k % 3 = 0 THEN 'itsm_service_request' ELSE 'itsm_incident' END,
           'itsm_default', s.status, s.category,
           (ARRAY['LOW','MEDIUM','HIGH','CRITICAL'])[1 + (k * 37 / 7) % 4],
           p.ids[1 + (k % array_length(p.ids, 1))],
           CASE WHEN s.status = 'open' OR k % 7 = 3 THEN NULL
                ELSE p.ids[1 + (k % LEAST(21, array_length(p.ids, 1)))] END,
           c.at, c.at + interval '2 hours',
           CASE WHEN s.status <> 'open' THEN c.at + interval '1 hour' END,
           CASE WHEN s.status IN ('resolved', 'closed') THEN c.at + interval '2 hours' END,
           CASE WHEN s.status = 'closed' THEN c.at + interval '2 hours' END
    FROM numbered n
    JOIN (SELECT id, row_number() OVER (ORDER BY slug) - 1 AS t FROM tenants) ten ON ten.t = n.t
    JOIN people p ON p.tenant_id = ten.id
    CROSS JOIN LATERAL (
      -- (k / 3) % 20: independent of the title word (k % 10) and of the priority.
      SELECT CASE (k / 3) % 20 WHEN 0 THEN 'open' WHEN 1 THEN 'in_progress'
                  WHEN 2 THEN 'resolved' WHEN 3 THEN 'cancelled'
                  ELSE 'closed' END AS status) s0
    CROSS JOIN LATERAL (
      SELECT s0.status, CASE s0.status WHEN 'open' THEN 'initial'
                          WHEN 'in_progress' THEN 'active' WHEN 'resolved' THEN 'active'
                          ELSE 'inactive' END AS category) s
    CROSS JOIN LATERAL (
      SELECT now() - interval '3 years' * (1 - n.number::float8 / n.total) AS at) c
    """,
    "UPDATE ticket_counters c SET last_number = m.top FROM (SELECT tenant_id, max(number) "
    "AS top FROM tickets GROUP BY tenant_id) m WHERE c.tenant_id = m.tenant_id",
    # ~5 audit events a ticket (created, assigned, transitioned x2, commented).
    """
    INSERT INTO ticket_events (tenant_id, ticket_id, kind, actor_id, data, created_at)
    SELECT t.tenant_id, t.id, e.kind, t.requester_id, '{}'::jsonb,
           t.created_at + e.n * interval '20 minutes'
    FROM tickets t
    CROSS JOIN (VALUES (0, 'created'), (1, 'assigned'), (2, 'transitioned'),
                       (3, 'commented'), (4, 'transitioned')) AS e(n, kind)
    """,
    """
    INSERT INTO ticket_comments (tenant_id, ticket_id, author_id, body, visibility, created_at)
    SELECT tenant_id, id, requester_id, 'Seeded comment', 'external',
           created_at + interval '1 hour'
    FROM tickets
    """,
    """
    INSERT INTO outbox (tenant_id, topic, payload, created_at, delivered_at)
    SELECT t.tenant_id, o.topic, jsonb_build_object('ticket_id', t.id), t.created_at,
           t.created_at + interval '1 second'
    FROM tickets t CROSS JOIN (VALUES ('ticket.created'), ('ticket.closed')) AS o(topic)
    """,
    # One ticket of the big tenant with 1,000 events.
    """
    INSERT INTO ticket_events (tenant_id, ticket_id, kind, actor_id, data, created_at)
    SELECT t.tenant_id, t.id, 'field_changed', t.requester_id, '{}'::jsonb,
           t.created_at + n * interval '1 minute'
    FROM (SELECT * FROM tickets WHERE tenant_id = $1 AND number = 1) t,
         generate_series(1, 995) AS n
    """,
]


@dataclass(frozen=True)
class Size:
    """What a growth database holds: `tickets` over `tenants`, `big` of them in the first."""

    tickets: int
    big: int
    tenants: int = 1000

    @classmethod
    def scaled(cls, scale: float) -> Size:
        return cls(round(5_000_000 * scale), round(1_000_000 * scale), max(10, round(1000 * scale)))

    def describe(self) -> str:
        return f"{self.tickets:,} tickets, {self.tenants:,} tenants, {self.big:,} in the big one"


@dataclass
class Seeded:
    keys: list[str]  # every tenant's admin key, the big tenant's first
    steps: list[tuple[str, float]] = field(default_factory=list)  # (statement, seconds)


async def recreate(server: database.Server, name: str) -> str:
    """A fresh database `name` on `server` (`make bench`'s way), migrated to head; its DSN."""
    await database.recreate(server, [name])
    await asyncio.to_thread(migrate.upgrade, server.sqlalchemy_url(name))
    return server.dsn(name)


def asyncpg_url(dsn: str) -> str:
    """A DSN (postgresql://, as asyncpg and the reference app take it) as flowdesk's settings
    take it: postgresql+asyncpg://. For PgBouncer's URL too, which no `Server` names."""
    return make_url(dsn).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


async def seed(url: str, size: Size) -> Seeded:
    print(f"seeding {size.describe()}", flush=True)
    started = time.perf_counter()
    keys = await seed_flowdesk(asyncpg_url(url), size.tenants, concurrency=2)
    done = Seeded(keys, [("tenants (flowdesk's create_tenant)", time.perf_counter() - started)])
    conn = await asyncpg.connect(url)
    try:
        big_id = await conn.fetchval("SELECT id FROM tenants ORDER BY slug LIMIT 1")
        for sql in [*SEED_SQL, "VACUUM ANALYZE"]:
            args: list[Any] = [big_id] if "$1" in sql else []
            if "$3" in sql:
                args = [size.tickets, size.big, size.tenants]
            step = time.perf_counter()
            await conn.execute(sql, *args)
            text = " ".join(sql.split())[:70]
            done.steps.append((text, time.perf_counter() - step))
            print(f"  {done.steps[-1][1]:7.1f} s  {text}", flush=True)
    finally:
        await conn.close()
    print(f"seeded in {time.perf_counter() - started:.0f} s", flush=True)
    return done


def save_keys(path: Path, keys: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(keys) + "\n")


def load_keys(path: Path) -> list[str]:
    return path.read_text().split()
