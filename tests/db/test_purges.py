"""The periodic purges keep the tables from growing without bound: expired idempotency records
and usage counters past their window go, in batches (several here: more rows than a batch),
and nothing still in force is touched."""

from __future__ import annotations

from fastapi import FastAPI

from flowdesk.db.batches import DEFAULT_BATCH
from flowdesk.idempotency.repository import purge_expired
from flowdesk.usage.retention import purge_usage
from tests.sql import execute, fetchval
from tests.support import TenantCtx, runtime

EXPIRED = 2 * DEFAULT_BATCH + 17


async def _admin_key_id(app: FastAPI, tenant: TenantCtx) -> object:
    return await fetchval(app, "SELECT id FROM api_keys WHERE tenant_id = $1 LIMIT 1", tenant.id)


async def test_expired_idempotency_records_go_in_batches(app: FastAPI, tenant: TenantCtx) -> None:
    key_id = await _admin_key_id(app, tenant)
    await execute(
        app,
        "INSERT INTO idempotency_keys (tenant_id, api_key_id, key, request_hash, state, "
        "expires_at) SELECT $1, $2, 'old-' || n, '\\x00'::bytea, 'done', now() - interval '1 s' "
        f"FROM generate_series(1, {EXPIRED}) AS n",
        "INSERT INTO idempotency_keys (tenant_id, api_key_id, key, request_hash, state, "
        "expires_at) SELECT $1, $2, 'new-' || n, '\\x00'::bytea, 'done', now() + interval '1 h' "
        "FROM generate_series(1, 5) AS n",
        args=(tenant.id, key_id),
    )
    assert await purge_expired(runtime(app).db) >= EXPIRED
    left = await fetchval(
        app,
        "SELECT array_agg(DISTINCT left(key, 3)) || count(*)::text FROM idempotency_keys "
        "WHERE tenant_id = $1",
        tenant.id,
    )
    assert left == ["new", "5"]


async def test_usage_counters_past_their_window_go(app: FastAPI, tenant: TenantCtx) -> None:
    key_id = await _admin_key_id(app, tenant)
    retention = 400
    # One row per day from 2,450 days ago to today: the days before the window go.
    await execute(
        app,
        "INSERT INTO api_usage (tenant_id, day, api_key_id, family, status_class, count) "
        "SELECT $1, current_date - n, $2, 'v1.tickets', 2, 1 "
        "FROM generate_series(0, 2449) AS n",
        args=(tenant.id, key_id),
    )
    await execute(
        app,
        "INSERT INTO email_usage (tenant_id, month, sent) "
        "SELECT DISTINCT $1::uuid, date_trunc('month', current_date - n * 31)::date, 1 "
        "FROM generate_series(0, 30) AS n",
        args=(tenant.id,),
    )
    deleted = await purge_usage(runtime(app).db, retention)
    assert deleted >= 2450 - (retention + 1)
    oldest_day = await fetchval(
        app, "SELECT current_date - min(day) FROM api_usage WHERE tenant_id = $1", tenant.id
    )
    assert oldest_day == retention
    days = await fetchval(app, "SELECT count(*) FROM api_usage WHERE tenant_id = $1", tenant.id)
    assert days == retention + 1
    # E-mail months: kept while a day of theirs is in the window.
    stale_months = await fetchval(
        app,
        "SELECT count(*) FROM email_usage WHERE tenant_id = $1 "
        "AND month < date_trunc('month', current_date - $2::int)",
        tenant.id,
        retention,
    )
    assert stale_months == 0
    kept = await fetchval(app, "SELECT count(*) FROM email_usage WHERE tenant_id = $1", tenant.id)
    assert kept == await fetchval(
        app,
        "SELECT count(DISTINCT date_trunc('month', current_date - n * 31)) "
        "FROM generate_series(0, 30) AS n "
        "WHERE date_trunc('month', current_date - n * 31) "
        ">= date_trunc('month', current_date - $1::int)",
        retention,
    )
