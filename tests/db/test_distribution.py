"""The preconditions of distributing the schema by tenant (Citus, docs/scaling.md), checked on
the live schema and on the SQL the app actually sends.

1. Keys: every tenant-owned table (one with a tenant_id column, derived from the models and
   the live schema, so tables added later are covered) leads its primary key with tenant_id,
   and each of its unique constraints and unique indexes and each foreign key includes it
   (Citus refuses a distributed table whose unique index lacks the distribution column).
   Tables without tenant_id are named: reference tables or coordinator-local ones.
2. Queries: a scripted walk through the API (tenants, users, groups, keys, tickets, comments,
   transitions, lists, counts, links, approvals, assets, notifications, platform admin) and one
   run of every periodic job, with asyncpg's query logger on every pooled connection. Each
   statement is parsed with PostgreSQL's own parser (pglast) and every reference to a tenant
   table must be pinned by a `tenant_id = …` (or `= any(…)`) predicate at its query level,
   directly or through an equality with a pinned table's tenant_id. What legitimately crosses
   tenants is allow-listed below, each with what replaces it under Citus.
3. What would be node-local under Citus: identity columns (sequences), advisory locks and
   triggers are listed here with their replacement; a new one fails until it is looked at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from asyncpg.connection import LoggedQuery
from pglast import ast, parse_sql
from pglast.enums.parsenodes import A_Expr_Kind
from pglast.enums.primnodes import BoolExprType

from flowdesk.app import create_app
from flowdesk.config import Settings
from flowdesk.db.pool import asyncpg_dsn
from flowdesk.idempotency.repository import purge_expired
from flowdesk.itsm.quotas import run_quota_check
from flowdesk.models import metadata
from flowdesk.notifications.relay import purge
from flowdesk.tickets.sla_tick import run_due as run_sla_due
from flowdesk.tickets.timers import run_due
from tests.support import ALL_SCOPES, PLATFORM_TOKEN, bearer, new_tenant, runtime

SRC = Path(__file__).resolve().parents[2] / "src" / "flowdesk"

# Tables without tenant_id, and what they are under Citus.
REFERENCE_TABLES = {
    # One row per tenant, read by id or slug (the platform API, sign-up); every tenant-owned
    # table's foreign key to it is allowed from a distributed table to a reference table.
    "tenants": "reference table (create_reference_table): small, rarely written",
}
# How a reference table joins a tenant-pinned chain: its key (what tenant_id refers to), and
# other unique columns that pin it.
REFERENCE_KEYS = {"tenants": ("id", {"slug"})}
COORDINATOR_LOCAL = {"alembic_version": "Alembic's bookkeeping, left on the coordinator"}

# Unique indexes that are global on purpose, with their replacement under Citus.
GLOBAL_UNIQUE = {
    "uq_identity_providers_issuer_audience": (
        "a token's (iss, aud) names one tenant's provider before the tenant is known; under "
        "Citus the rule moves to a reference table identity_provider_audiences(issuer, "
        "audience) -> tenant_id written with the provider (docs/scaling.md)"
    ),
}


@dataclass(frozen=True)
class CrossTenant:
    """A statement allowed to reach a tenant table without a tenant_id predicate: the table,
    a column its predicate names (what identifies the statement), and why."""

    table: str
    column: str
    why: str
    under_citus: str


ALLOWED_CROSS_TENANT = [
    CrossTenant(
        "api_keys",
        "key_hash",
        "authentication finds a key by its hash before the tenant is known",
        "a router query on key_hash fans out to every shard (one index probe each); at scale "
        "a reference table key_hash -> tenant_id, or the tenant carried in the key",
    ),
    CrossTenant(
        "identity_providers",
        "issuer",
        "an OpenID token names its provider by (iss, aud), before the tenant is known",
        "the reference table identity_provider_audiences (see GLOBAL_UNIQUE)",
    ),
    CrossTenant(
        "outbox",
        "delivered_at",
        "the relay claims pending messages of every tenant (FOR UPDATE SKIP LOCKED); the purge "
        "deletes relayed ones past retention",
        "run per worker node (run_command_on_shards / a job per node), or claim per tenant",
    ),
    CrossTenant(
        "deliveries",
        "next_attempt_at",
        "the relay claims due deliveries of every tenant",
        "as the outbox claim: per node",
    ),
    CrossTenant(
        "deliveries",
        "updated_at",
        "the purge of settled deliveries past retention",
        "as the outbox purge: per node",
    ),
    CrossTenant(
        "idempotency_keys",
        "expires_at",
        "the purge of expired Idempotency-Key records",
        "as the outbox purge: per node",
    ),
    CrossTenant(
        "sla_clocks",
        "next_action_at",
        "the SLA tick finds due SLA marks of every tenant",
        "per node, as the timer tick",
    ),
    CrossTenant(
        "tickets",
        "timer_due_at",
        "the timer tick finds due tickets of every tenant",
        "per node; the moves themselves are per ticket and carry tenant_id",
    ),
]

# Tables read across tenants by design, whatever the predicate: under Citus a multi-shard
# query, fine for how seldom it runs.
ALLOWED_SCANS = {
    "quota_alerts": "the platform's quota-alert list and the background quota check's "
    "resolution of alerts (every few minutes)",
}

# Identity columns (sequences) on tenant tables: under Citus a bigint sequence hands each
# node its own range, so ids stay unique but are ordered only per node (a tenant lives on one
# node, so per-tenant order holds while inserts go through the coordinator).
SEQUENCES = {
    "ticket_events.id": "per-tenant order kept (the live stream's replay cursor is per tenant)",
    "outbox.id": "unique per node; the relay's claim order is per node",
    "quota_alerts.id": "unique; only ordered per node",
    "licence_events.id": "unique; only ordered per node",
    "admin_audit_log.id": "unique; only ordered per node",
}

# Advisory locks: taken on the node a statement runs on. Each named with its replacement.
ADVISORY_LOCKS = {
    "auth/identity.py": (
        "pg_advisory_xact_lock(hash(tenant, issuer, subject)) serialises one person's first "
        "sign-ins: keep it, taken in the same tenant-pinned transaction (it runs on the "
        "coordinator, which sees every sign-in)"
    ),
    "itsm/repository.py": (
        "pg_try_advisory_xact_lock(QUOTA_CHECK_LOCK_KEY): one background quota check at a time; "
        "taken on the coordinator, where every process connects"
    ),
}

# Triggers on tenant tables: they run where the shard is (a worker), so a NOTIFY from one is
# heard only by listeners on that worker.
TRIGGERS = {
    "notify_access": (
        "NOTIFY flowdesk_access on key/user/group/licence changes: under Citus the writing "
        "transaction sends pg_notify on the coordinator instead (docs/scaling.md)"
    ),
    "notify_ticket_events": (
        "NOTIFY of ticket events for watched tenants: the same, from the coordinator"
    ),
    "append_only": "refuses UPDATE/DELETE of the admin audit log: propagated to every shard",
    "append_only_truncate": "refuses TRUNCATE of the admin audit log: propagated",
}


def tenant_tables() -> set[str]:
    return {t.name for t in metadata.sorted_tables if "tenant_id" in t.c}


# --- 1. keys ---------------------------------------------------------------------------------

CONSTRAINTS = """
SELECT t.relname::text AS table_name, c.conname::text AS name, c.contype::text AS kind,
       array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
             ORDER BY k.n)::text[] AS columns,
       r.relname::text AS referred_table,
       array(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum
             ORDER BY k.n)::text[] AS referred_columns
FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid
JOIN pg_namespace s ON s.oid = t.relnamespace
LEFT JOIN pg_class r ON r.oid = c.confrelid
WHERE s.nspname = 'public' AND c.contype IN ('p', 'u', 'f', 'x')
"""

# Unique indexes, whether or not a constraint stands behind them (expression and partial
# ones too): the key's plain columns (an expression contributes none).
UNIQUE_INDEXES = """
SELECT t.relname::text AS table_name, i.relname::text AS name,
       array(SELECT a.attname FROM unnest(x.indkey) AS k(attnum)
             JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum)::text[]
         AS columns
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace s ON s.oid = t.relnamespace
WHERE s.nspname = 'public' AND x.indisunique
"""

COLUMNS = """
SELECT c.relname::text AS table_name, a.attname::text AS column_name,
       a.attidentity::text AS identity, pg_get_expr(d.adbin, d.adrelid) AS default_expr
FROM pg_class c
JOIN pg_namespace s ON s.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE s.nspname = 'public' AND c.relkind IN ('r', 'p')
"""

TRIGGER_NAMES = """
SELECT DISTINCT t.tgname::text AS name, c.relname::text AS table_name
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace s ON s.oid = c.relnamespace
WHERE s.nspname = 'public' AND NOT t.tgisinternal
"""


async def _fetch(database_url: str, *queries: str) -> list[list[asyncpg.Record]]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return [await conn.fetch(q) for q in queries]
    finally:
        await conn.close()


async def test_every_table_is_tenant_keyed_or_named(database_url: str) -> None:
    [columns] = await _fetch(database_url, COLUMNS)
    live: dict[str, set[str]] = {}
    for c in columns:
        live.setdefault(c["table_name"], set()).add(c["column_name"])
    modelled = tenant_tables()
    assert len(modelled) >= 20, modelled
    problems = [
        f"{t}: in the models with tenant_id but not in the database"
        for t in sorted(modelled - set(live))
    ]
    unkeyed = {t for t, cols in live.items() if "tenant_id" not in cols}
    named = set(REFERENCE_TABLES) | set(COORDINATOR_LOCAL)
    problems += [
        f"{t}: has no tenant_id and is neither a reference nor a coordinator-local table"
        for t in sorted(unkeyed - named)
    ]
    assert problems == []


async def test_keys_and_unique_indexes_include_tenant_id(database_url: str) -> None:
    constraints, indexes, columns = await _fetch(database_url, CONSTRAINTS, UNIQUE_INDEXES, COLUMNS)
    keyed = {c["table_name"] for c in columns if c["column_name"] == "tenant_id"}
    keyed |= tenant_tables()
    problems: list[str] = []
    primary = {c["table_name"] for c in constraints if c["kind"] == "p"}
    problems += [f"{t}: no primary key" for t in sorted(keyed - primary)]
    for c in constraints:
        table, cols, name = c["table_name"], list(c["columns"]), c["name"]
        if table not in keyed:
            continue
        if c["kind"] == "p" and cols[0] != "tenant_id":
            problems.append(f"{table}: primary key {cols} does not lead with tenant_id")
        if c["kind"] in ("u", "x") and "tenant_id" not in cols and name not in GLOBAL_UNIQUE:
            problems.append(f"{table}: constraint {name} {cols} lacks tenant_id")
        if c["kind"] == "f":
            if "tenant_id" not in cols:
                problems.append(f"{table}: foreign key {name} {cols} lacks tenant_id")
            elif c["referred_table"] not in REFERENCE_TABLES:
                # Co-located join: tenant_id must meet tenant_id.
                at = cols.index("tenant_id")
                if c["referred_columns"][at] != "tenant_id":
                    problems.append(f"{table}: foreign key {name} maps tenant_id elsewhere")
    for i in indexes:
        lacking = i["table_name"] in keyed and "tenant_id" not in i["columns"]
        if lacking and i["name"] not in GLOBAL_UNIQUE:
            problems.append(f"{i['table_name']}: unique index {i['name']} lacks tenant_id")
    assert problems == []


async def test_sequences_and_triggers_are_listed(database_url: str) -> None:
    columns, triggers = await _fetch(database_url, COLUMNS, TRIGGER_NAMES)
    sequenced = {
        f"{c['table_name']}.{c['column_name']}"
        for c in columns
        if c["identity"] or "nextval(" in (c["default_expr"] or "")
    }
    assert sorted(sequenced - set(SEQUENCES)) == [], "name each sequence's fate under Citus"
    names = {t["name"] for t in triggers}
    assert sorted(names - set(TRIGGERS)) == [], "name each trigger's fate under Citus"


def test_advisory_locks_are_listed() -> None:
    used = {
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if re.search(r"pg_(try_)?advisory\w*\(", path.read_text())
    }
    assert used == set(ADVISORY_LOCKS), "name each advisory lock's fate under Citus"


def test_the_scaling_guide_distributes_every_tenant_table() -> None:
    """docs/scaling.md's commands: every tenant table distributed by tenant_id, co-located
    with users, after the tables it refers to; the reference tables made so first."""
    guide = (SRC.parents[1] / "docs" / "scaling.md").read_text()
    text = guide.split("### The commands, in order", 1)[1].split("\n### ", 1)[0]
    made = re.findall(r"create_reference_table\('(\w+)'\)", text)
    assert made == list(REFERENCE_TABLES)
    order = [*made]
    for table, colocated in re.findall(
        r"create_distributed_table\('(\w+)', 'tenant_id'(?:, colocate_with => '(\w+)')?\)", text
    ):
        assert colocated == ("" if not order[len(made) :] else "users"), table
        order.append(table)
    assert sorted(order[len(made) :]) == sorted(tenant_tables())
    for t in metadata.sorted_tables:
        for fk in t.foreign_keys:
            referred = fk.column.table.name
            if t.name in order and referred != t.name:
                assert order.index(referred) < order.index(t.name), (t.name, referred)


# --- 2. queries ------------------------------------------------------------------------------


@dataclass
class Unpinned:
    """Tenant tables of one query level reached without a tenant_id predicate (joined to each
    other on tenant_id, if several), and the (table, column) pairs their predicates name."""

    tables: set[str]
    columns: set[tuple[str, str]]
    sql: str


@dataclass
class _Level:
    """One query level: the relations of its FROM (alias -> table), and its conjuncts."""

    relations: dict[str, str] = field(default_factory=dict)
    conjuncts: list[Any] = field(default_factory=list)


def _and_terms(node: Any) -> Iterator[Any]:
    if node is None:
        return
    if isinstance(node, ast.BoolExpr) and node.boolop == BoolExprType.AND_EXPR:
        for arg in node.args or ():
            yield from _and_terms(arg)
    else:
        yield node


def _from_items(level: _Level, items: Any, ctes: set[str]) -> None:
    for item in items or ():
        if isinstance(item, ast.RangeVar):
            relname = str(item.relname)
            alias = str(item.alias.aliasname) if item.alias else relname
            level.relations[alias] = "" if relname in ctes else relname
        elif isinstance(item, ast.JoinExpr):
            _from_items(level, (item.larg, item.rarg), ctes)
            level.conjuncts.extend(_and_terms(item.quals))
        elif isinstance(item, ast.RangeSubselect) and item.alias:
            level.relations[str(item.alias.aliasname)] = ""  # its own level, checked on its own


def _column_refs(node: Any) -> Iterator[tuple[str, ...]]:
    """Column references of an expression, not looking into subqueries (their own level)."""
    if isinstance(node, ast.SubLink):
        return
    if isinstance(node, ast.ColumnRef):
        yield tuple(str(f.sval) for f in node.fields or () if isinstance(f, ast.String))
        return
    if isinstance(node, ast.Node):
        for name in node:
            yield from _column_refs(getattr(node, name))
    elif isinstance(node, tuple):
        for item in node:
            yield from _column_refs(item)


class _Checker:
    def __init__(self, tables: set[str]) -> None:
        self.tables = tables

    def check(self, sql: str) -> list[Unpinned]:
        found: list[Unpinned] = []
        for raw in parse_sql(sql):
            ctes = {str(n.ctename) for n in _walk(raw.stmt) if isinstance(n, ast.CommonTableExpr)}
            for node in _walk(raw.stmt):
                level = self._level(node, ctes, found, sql)
                if level is not None:
                    found += self._unpinned(level, sql)
        return found

    def _level(self, node: Any, ctes: set[str], found: list[Unpinned], sql: str) -> _Level | None:
        level = _Level()
        if isinstance(node, ast.SelectStmt):
            if not node.fromClause:
                return None
            _from_items(level, node.fromClause, ctes)
        elif isinstance(node, ast.UpdateStmt):
            _from_items(level, (node.relation, *(node.fromClause or ())), ctes)
        elif isinstance(node, ast.DeleteStmt):
            _from_items(level, (node.relation, *(node.usingClause or ())), ctes)
        elif isinstance(node, ast.InsertStmt):
            table = str(node.relation.relname) if node.relation else ""
            cols = {c.name for c in node.cols or ()}
            if table in self.tables and "tenant_id" not in cols:
                found.append(Unpinned({table}, {(table, c) for c in cols}, sql))
            return None
        else:
            return None
        level.conjuncts.extend(_and_terms(node.whereClause))
        return level

    def _unpinned(self, level: _Level, sql: str) -> list[Unpinned]:
        tenant_aliases = {a for a, t in level.relations.items() if t in self.tables}
        if not tenant_aliases:
            return []
        # A reference table (tenants) joins the chain by its key: `tenants.id = $1` (or its
        # slug) pins it, and `x.tenant_id = tenants.id` then pins x.
        keyed = tenant_aliases | {a for a, t in level.relations.items() if t in REFERENCE_KEYS}

        def key_of(alias: str) -> str:
            return REFERENCE_KEYS.get(level.relations[alias], ("tenant_id", set()))[0]

        def pins(alias: str, column: str) -> bool:
            key, also = REFERENCE_KEYS.get(level.relations[alias], ("tenant_id", set()))
            return column == key or column in also

        def owner(ref: tuple[str, ...]) -> str | None:
            """The local keyed alias a column reference belongs to, if any."""
            if len(ref) >= 2 and ref[-2] in keyed:
                return ref[-2]
            if len(ref) == 1 and len(level.relations) == 1 and len(keyed) == 1:
                return next(iter(keyed))
            return None

        pinned: set[str] = set()
        edges: list[tuple[str, str]] = []
        named: dict[str, set[str]] = {a: set() for a in keyed}
        for term in level.conjuncts:
            for ref in _column_refs(term):
                alias = owner(ref)
                if alias is not None:
                    named[alias].add(ref[-1])
            if not isinstance(term, ast.A_Expr) or term.kind not in (
                A_Expr_Kind.AEXPR_OP,
                A_Expr_Kind.AEXPR_OP_ANY,
                A_Expr_Kind.AEXPR_IN,
            ):
                continue
            if [n.sval for n in term.name or ()] != ["="]:
                continue
            sides = [list(_column_refs(term.lexpr)), list(_column_refs(term.rexpr))]
            owned = [[(owner(r), r[-1]) for r in side if owner(r)] for side in sides]
            for this, other in ((0, 1), (1, 0)):
                if len(sides[this]) != 1 or not owned[this]:
                    continue
                alias, column = owned[this][0]
                assert alias is not None
                if not owned[other] and pins(alias, column):
                    pinned.add(alias)  # = a parameter, a constant, a CTE's or outer column
                elif len(owned[other]) == 1 and column == key_of(alias):
                    peer, peer_column = owned[other][0]
                    assert peer is not None
                    if peer_column == key_of(peer):
                        edges.append((alias, peer))
        changed = True
        while changed:
            changed = False
            for a, b in edges:
                if (a in pinned) != (b in pinned):
                    pinned |= {a, b}
                    changed = True
        # Unpinned tables joined on tenant_id make one co-located multi-shard query: one
        # finding, allowed if any of its tables' predicates is.
        groups: dict[str, set[str]] = {a: {a} for a in keyed - pinned}
        for a, b in edges:
            if a in groups and b in groups and groups[a] is not groups[b]:
                merged = groups[a] | groups[b]
                for alias in merged:
                    groups[alias] = merged
        found: list[Unpinned] = []
        for group in {id(g): g for g in groups.values()}.values():
            tables = sorted(group & tenant_aliases)
            if tables:
                found.append(
                    Unpinned(
                        {level.relations[a] for a in tables},
                        {(level.relations[a], c) for a in tables for c in named[a]},
                        sql,
                    )
                )
        return found


def _walk(node: Any) -> Iterator[Any]:
    if isinstance(node, ast.Node):
        yield node
        for name in node:
            yield from _walk(getattr(node, name))
    elif isinstance(node, tuple):
        for item in node:
            yield from _walk(item)


def _allowed(u: Unpinned) -> bool:
    if u.tables <= set(ALLOWED_SCANS):
        return True
    return any((a.table, a.column) in u.columns for a in ALLOWED_CROSS_TENANT)


def test_the_checker_sees_what_it_must() -> None:
    """The checker itself: pinned shapes pass, unpinned ones are caught."""
    checker = _Checker({"tickets", "users", "ticket_events"})
    ok = [
        "SELECT * FROM tickets WHERE tickets.tenant_id = $1 AND tickets.id = $2",
        "SELECT * FROM tickets t JOIN users u ON u.tenant_id = t.tenant_id AND u.id = "
        "t.assignee_id WHERE t.tenant_id = $1",
        "UPDATE tickets SET title = $3 WHERE tickets.tenant_id = $1 AND tickets.id = $2",
        "WITH t AS (SELECT tenant_id, id FROM tickets WHERE tenant_id = $1) "
        "DELETE FROM ticket_events USING t WHERE ticket_events.tenant_id = t.tenant_id",
        "INSERT INTO ticket_events (tenant_id, ticket_id, kind) VALUES ($1, $2, 'x')",
        "SELECT * FROM tickets WHERE tickets.tenant_id = any($1::uuid[])",
        "SELECT * FROM tickets JOIN tenants ON tenants.id = tickets.tenant_id "
        "WHERE tenants.slug = $1",
    ]
    for sql in ok:
        assert checker.check(sql) == [], sql
    bad = [
        "SELECT * FROM tickets WHERE tickets.id = $1",
        "SELECT * FROM tickets t JOIN users u ON u.id = t.assignee_id WHERE t.tenant_id = $1",
        "SELECT * FROM tickets WHERE tickets.tenant_id = $1 OR tickets.id = $2",
        "DELETE FROM ticket_events WHERE ticket_events.created_at < now()",
        "INSERT INTO ticket_events (ticket_id, kind) VALUES ($1, 'x')",
        "SELECT * FROM tickets JOIN tenants ON tenants.id = tickets.tenant_id "
        "WHERE tickets.number = $1",
        "SELECT * FROM users WHERE users.tenant_id = $1 AND users.id IN "
        "(SELECT assignee_id FROM tickets WHERE tickets.status = 'open')",
    ]
    for sql in bad:
        assert checker.check(sql) != [], sql


async def _walk_the_api(client: httpx.AsyncClient, app: Any) -> None:
    """A representative slice of the suite's traffic, every answer checked."""
    t = await new_tenant(app, client)
    other = await new_tenant(app, client)

    async def ok(r: httpx.Response, *codes: int) -> dict[str, Any]:
        assert r.status_code in (codes or (200, 201, 204)), (r.request.url, r.text)
        return r.json() if r.content and r.headers.get("content-type", "").endswith("json") else {}

    admin = t.headers
    agent = await t.user("tickets:create", "tickets:manage", "tickets:close", name="Ada")
    requester = await t.user("tickets:create", name="Rita")
    await ok(await client.get("/v1/me", headers=admin))
    await ok(await client.get("/v1/tenant", headers=admin))
    await ok(await client.get("/v1/users", params={"q": "ad"}, headers=admin))
    await ok(await client.get("/v1/groups", headers=admin))
    await ok(await client.get("/v1/api-keys", headers=admin))
    await ok(await client.get("/v1/catalog", headers=admin))
    await ok(await client.get("/v1/agents", params={"q": "a"}, headers=admin))
    webhook = await ok(
        await client.post(
            "/v1/webhooks",
            json={"url": "https://hooks.example.com/x", "events": ["ticket.created"]},
            headers=admin,
        ),
        201,
    )
    await ok(await client.get("/v1/webhooks", headers=admin))
    await ok(
        await client.patch(f"/v1/webhooks/{webhook['id']}", json={"enabled": False}, headers=admin)
    )
    await ok(
        await client.put(
            "/v1/notification-templates/ticket.created",
            json={"subject": "New {{ ticket_number }}", "html": "<p>x</p>", "text": "x"},
            headers=admin,
        )
    )
    asset = await ok(
        await client.post(
            "/v1/assets",
            json={"external_ref": "A-1", "name": "Laptop", "type": "laptop"},
            headers=agent.headers,
        ),
        201,
    )
    await ok(
        await client.post(
            f"/v1/assets/{asset['id']}/movements",
            json={"to_location": "Desk 4", "moved_at": "2026-01-01T00:00:00Z"},
            headers=agent.headers,
        ),
        201,
    )
    await ok(await client.get("/v1/assets", params={"q": "lap"}, headers=agent.headers))
    await ok(await client.get(f"/v1/assets/{asset['id']}/movements", headers=agent.headers))
    tickets = []
    for n in range(3):
        tickets.append(
            await ok(
                await client.post(
                    "/v1/tickets",
                    json={
                        "title": f"VPN drops {n}",
                        "catalog_item": "itsm_incident",
                        **({"asset_id": asset["id"]} if n == 0 else {}),
                    },
                    headers={**requester.headers, "Idempotency-Key": f"walk-{n}"},
                ),
                201,
            )
        )
    # A retry answered from the idempotency record.
    await ok(
        await client.post(
            "/v1/tickets",
            json={"title": "VPN drops 0", "catalog_item": "itsm_incident", "asset_id": asset["id"]},
            headers={**requester.headers, "Idempotency-Key": "walk-0"},
        ),
        201,
    )
    first, second, third = tickets
    ref = f"/v1/tickets/{first['id']}"
    await ok(await client.get(ref, headers=agent.headers))
    await ok(await client.get(f"/v1/tickets/{first['number']}", headers=requester.headers))
    await ok(await client.get(f"{ref}/transitions", headers=agent.headers))
    patched = await ok(
        await client.patch(
            ref,
            json={"assignee_id": agent.id, "priority": "HIGH"},
            headers={**admin, "If-Match": f'"{first["version"]}"'},
        )
    )
    await ok(
        await client.post(
            f"{ref}/comments",
            json={"body": "On it", "visibility": "external"},
            headers=agent.headers,
        ),
        201,
    )
    await ok(
        await client.post(
            f"{ref}/comments",
            json={"body": "Note", "visibility": "internal"},
            headers=agent.headers,
        ),
        201,
    )
    await ok(await client.get(f"{ref}/comments", headers=requester.headers))
    await ok(await client.get(f"{ref}/events", headers=agent.headers))
    await ok(
        await client.post(
            f"{ref}/links",
            json={"kind": "blocked_by", "target": second["number"]},
            headers=agent.headers,
        ),
        201,
    )
    await ok(await client.get(f"{ref}/links", headers=agent.headers))
    await ok(await client.get(f"{ref}/approvals", headers=agent.headers))
    moved = await ok(
        await client.post(
            f"/v1/tickets/{third['id']}/transitions",
            json={"action": "assign", "assignee_id": agent.id},
            headers=agent.headers,
        ),
        200,
        409,
    )
    del moved, patched
    await ok(
        await client.post(
            f"/v1/tickets/{second['id']}/transitions",
            json={"to": "cancelled", "resolution": "duplicate"},
            headers=admin,
        ),
        200,
        409,
    )
    lists: list[dict[str, Any]] = [
        {},
        {"sort": "-updated"},
        {"sort": "priority"},
        {"sort": "created", "limit": 1},
        {"status": "open", "status_category": "active"},
        {"assignee": "me"},
        {"assignee": "none"},
        {"requester": requester.id, "priority": "HIGH", "type": "incident"},
        {"catalog_item": "itsm_incident", "created_after": "2020-01-01T00:00:00Z"},
        {"q": "vpn"},
        {"stale": "true"},
    ]
    for params in lists:
        page = await ok(await client.get("/v1/tickets", params=params, headers=agent.headers))
        if page.get("next_cursor"):
            await ok(
                await client.get(
                    "/v1/tickets",
                    params={**params, "cursor": page["next_cursor"]},
                    headers=agent.headers,
                )
            )
    await ok(await client.get("/v1/tickets", headers=requester.headers))
    for group_by in ("status", "status_category", "assignee", "priority"):
        await ok(
            await client.get(
                "/v1/tickets/counts", params={"group_by": group_by}, headers=agent.headers
            )
        )
    await ok(await client.get(f"/v1/assets/{asset['id']}/tickets", headers=agent.headers))
    await ok(await client.get("/v1/notifications/deliveries", headers=admin))
    await ok(await client.get("/v1/usage", headers=admin))
    # Another tenant's anything is 404.
    await ok(await client.get(ref, headers=other.headers), 404)
    # The public API, and the platform operator's.
    public_key = await t.key(agent.id, ALL_SCOPES, channel="public")
    await ok(await client.get("/public/v1/tickets", headers=bearer(public_key)), 200, 403)
    platform = bearer(PLATFORM_TOKEN)
    await ok(await client.get("/platform/v1/tenants", headers=platform))
    await ok(await client.get(f"/platform/v1/tenants/{t.slug}", headers=platform))
    await ok(
        await client.patch(
            f"/platform/v1/tenants/{t.slug}/licence",
            json={"quotas": {"max_agents": 100}},
            headers=platform,
        )
    )
    await ok(await client.get(f"/platform/v1/tenants/{t.slug}/licence/events", headers=platform))
    await ok(await client.get("/platform/v1/quota-alerts", headers=platform))
    await ok(await client.get(f"/platform/v1/tenants/{t.slug}/usage", headers=platform))


async def test_every_query_on_a_tenant_table_filters_by_tenant(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"usage_flush_seconds": 3600.0}))
    seen: list[str] = []

    def log(query: LoggedQuery) -> None:
        seen.append(query.query)

    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://flowdesk.test") as client,
    ):
        rt = runtime(app)
        await rt.db.add_query_logger(log)
        await _walk_the_api(client, app)
        # One run of every periodic job, and of the write-behind flushes.
        await rt.relay.drain()
        await purge(rt.db, settings)
        await purge_expired(rt.db)
        await run_quota_check(rt.db)
        await run_due(rt.db, rt.catalog)
        await run_sla_due(rt.db, rt.catalog)
        await rt.usage_meter.flush()
        await rt.authenticator.flush_uses()
    assert len(seen) > 100
    # Lists and counts are planned per call, outside asyncpg's statement cache (ADR 0023):
    # they must reach the loggers too, or this test would not see the most varied statements.
    assert any(sql.startswith("SELECT page.") for sql in seen), "no ticket list was logged"
    assert any("GROUP BY" in sql and "FROM tickets" in sql for sql in seen), "no count logged"
    checker = _Checker(tenant_tables())
    found = [u for sql in set(seen) for u in checker.check(sql)]
    problems = sorted(
        {f"{sorted(u.tables)} (by {sorted(u.columns)}): {u.sql}" for u in found if not _allowed(u)}
    )
    assert problems == []
