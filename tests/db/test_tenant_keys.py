"""Every tenant-owned table leads its primary key and every foreign key with tenant_id, so the
schema can be distributed by tenant and no row can point into another tenant. This reads the
live schema (pg_catalog), so a table added later cannot break the rule silently."""

from __future__ import annotations

import asyncpg

from flowdesk.db.pool import asyncpg_dsn

ROOT_TABLES = {"tenants", "alembic_version"}

# Each table's primary key and foreign keys, with their columns in key order.
CONSTRAINTS = """
SELECT t.relname::text AS table_name, c.contype::text AS kind,
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
WHERE s.nspname = 'public' AND c.contype IN ('p', 'f')
"""


async def test_tenant_id_leads_every_key(database_url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        } - ROOT_TABLES
        constraints = await conn.fetch(CONSTRAINTS)
    finally:
        await conn.close()
    assert len(tables) >= 4
    problems: list[str] = []
    keyed = {c["table_name"] for c in constraints if c["kind"] == "p"}
    problems += [f"{table}: no primary key" for table in sorted(tables - keyed)]
    for c in constraints:
        table, cols = c["table_name"], c["columns"]
        if table not in tables:
            continue
        if c["kind"] == "p" and cols[0] != "tenant_id":
            problems.append(f"{table}: primary key {cols} does not lead with tenant_id")
        if c["kind"] == "f":
            if cols[0] != "tenant_id":
                problems.append(f"{table}: foreign key {cols} does not lead with tenant_id")
            if c["referred_table"] != "tenants" and c["referred_columns"][0] != "tenant_id":
                problems.append(f"{table}: foreign key to {c['referred_table']} skips tenant_id")
    assert problems == []
