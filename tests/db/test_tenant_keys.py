"""Every tenant-owned table leads its primary key and every foreign key with tenant_id, so the
schema can be distributed by tenant and no row can point into another tenant. This reads the
live schema, so a table added later cannot break the rule silently."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

ROOT_TABLES = {"tenants", "alembic_version"}


async def test_tenant_id_leads_every_key(database_url: str) -> None:
    engine = create_async_engine(database_url)
    problems: list[str] = []
    try:
        async with engine.connect() as conn:

            def check(sync_conn: object) -> list[str]:
                insp = inspect(sync_conn)
                tables = [t for t in insp.get_table_names() if t not in ROOT_TABLES]
                assert len(tables) >= 4
                found = []
                for table in tables:
                    pk = insp.get_pk_constraint(table)["constrained_columns"]
                    if not pk or pk[0] != "tenant_id":
                        found.append(f"{table}: primary key {pk} does not lead with tenant_id")
                    for fk in insp.get_foreign_keys(table):
                        cols = fk["constrained_columns"]
                        if cols[0] != "tenant_id":
                            found.append(
                                f"{table}: foreign key {cols} does not lead with tenant_id"
                            )
                        if (
                            fk["referred_table"] != "tenants"
                            and fk["referred_columns"][0] != "tenant_id"
                        ):
                            found.append(
                                f"{table}: foreign key to {fk['referred_table']} skips tenant_id"
                            )
                return found

            problems = await conn.run_sync(check)
    finally:
        await engine.dispose()
    assert problems == []
