"""GET /metrics (flowdesk.api.metrics): protected, labelled by route template, and added up
across the workers of a real `flowdesk serve`; and that serve's JSON log lines."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from flowdesk.app import create_app
from flowdesk.config import Settings
from tests.servers import free_port, start_serve, stop, wait_healthy
from tests.support import PLATFORM_TOKEN, TICKET, bearer, new_tenant

METRICS_TOKEN = "metrics-token-0123456789"


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric, by their sorted labels."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


@pytest.fixture(scope="module")
async def metrics_app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(
        settings.model_copy(
            update={"metrics_enabled": True, "metrics_token": SecretStr(METRICS_TOKEN)}
        )
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def metrics_client(metrics_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=metrics_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://flowdesk.test") as c:
        yield c


async def test_metrics_need_the_metrics_or_the_platform_token(
    metrics_client: httpx.AsyncClient,
) -> None:
    r = await metrics_client.get("/metrics")
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    r = await metrics_client.get("/metrics", headers=bearer("not-the-token"))
    assert r.status_code == 401
    for token in (METRICS_TOKEN, PLATFORM_TOKEN):
        r = await metrics_client.get("/metrics", headers=bearer(token))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain")


async def test_requests_are_counted_by_route_template_not_by_path(
    metrics_client: httpx.AsyncClient,
) -> None:
    def failures(text: str) -> float:
        found = samples(text, "flowdesk_authentication_failures_total")
        return found.get((("route", "/v1/tickets/{ref}"),), 0.0)

    before = (await metrics_client.get("/metrics", headers=bearer(METRICS_TOKEN))).text
    for number in ("TKT-1", "TKT-2", "TKT-3"):
        r = await metrics_client.get(f"/v1/tickets/{number}", headers=bearer("fdk_unknown"))
        assert r.status_code == 401
    r = await metrics_client.get("/no/such/place")
    assert r.status_code == 404
    after = (await metrics_client.get("/metrics", headers=bearer(METRICS_TOKEN))).text

    assert failures(after) - failures(before) == 3
    requests = samples(after, "flowdesk_http_requests_total")
    assert requests[(("method", "GET"), ("route", "/v1/tickets/{ref}"), ("status", "4xx"))] >= 3
    assert (("method", "GET"), ("route", "unmatched"), ("status", "4xx")) in requests
    # Raw paths never become labels.
    assert "TKT-1" not in after and "/no/such/place" not in after
    assert samples(after, "flowdesk_http_request_duration_seconds_count")
    assert samples(after, "flowdesk_db_pool_max_connections") == {(("pool", "requests"),): 10}
    assert samples(after, "flowdesk_outbox_pending_messages")


async def test_tickets_created_and_transitions_are_counted_by_workflow_and_action(
    metrics_app: FastAPI, metrics_client: httpx.AsyncClient
) -> None:
    def counted(text: str) -> tuple[float, dict[tuple[tuple[str, str], ...], float]]:
        created = samples(text, "flowdesk_tickets_created_total")
        return (
            created.get((("workflow", "itsm_default"),), 0.0),
            samples(text, "flowdesk_ticket_transitions_total"),
        )

    tenant = await new_tenant(metrics_app, metrics_client)
    before = (await metrics_client.get("/metrics", headers=bearer(METRICS_TOKEN))).text
    r = await metrics_client.post("/v1/tickets", json=TICKET, headers=tenant.headers)
    assert r.status_code == 201, r.text
    ticket = r.json()
    # A refused write counts nothing.
    r = await metrics_client.post(
        "/v1/tickets", json={**TICKET, "catalog_item": "nope"}, headers=tenant.headers
    )
    assert r.status_code == 422
    action = "start"  # itsm_default: open -> in_progress
    r = await metrics_client.post(
        f"/v1/tickets/{ticket['id']}/transitions",
        json={"action": action},
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text
    after = (await metrics_client.get("/metrics", headers=bearer(METRICS_TOKEN))).text

    created_before, moved_before = counted(before)
    created_after, moved_after = counted(after)
    assert created_after - created_before == 1
    label = (("action", action), ("workflow", "itsm_default"))
    assert moved_after[label] - moved_before.get(label, 0.0) == 1
    # Labels are the catalog's words, never a client's value.
    assert ticket["number"] not in after and tenant.slug not in after


async def test_metrics_are_off_unless_enabled(client: httpx.AsyncClient) -> None:
    r = await client.get("/metrics", headers=bearer(PLATFORM_TOKEN))
    assert r.status_code == 404


def test_two_workers_are_added_up_and_log_json_lines(database_url: str, tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "serve.log"
    proc = start_serve(
        port,
        log,
        FLOWDESK_DATABASE_URL=database_url,
        FLOWDESK_DATA_DIR=str(tmp_path / "data"),
        FLOWDESK_SEED_DEMO="false",
        FLOWDESK_RELAY_POLL_SECONDS="0",
        FLOWDESK_WORKERS="2",
        FLOWDESK_METRICS_ENABLED="true",
        FLOWDESK_METRICS_TOKEN=METRICS_TOKEN,
        FLOWDESK_LOG_FORMAT="json",
        FLOWDESK_LOG_LEVEL="info",
        FLOWDESK_ACCESS_LOG="true",
    )
    try:
        wait_healthy(proc, port, log)
        base = f"http://127.0.0.1:{port}"
        # New connections, so that both workers take some of them.
        for i in range(40):
            r = httpx.get(
                f"{base}/v1/tickets/TKT-{i}",
                params={"email": "someone@example.com"},
                headers=bearer("fdk_unknown") | {"X-Request-ID": f"req-{i}"},
            )
            assert r.status_code == 401
        text = httpx.get(f"{base}/metrics", headers=bearer(METRICS_TOKEN)).text
        route = (("method", "GET"), ("route", "/v1/tickets/{ref}"), ("status", "4xx"))
        assert samples(text, "flowdesk_http_requests_total")[route] == 40
        failures = samples(text, "flowdesk_authentication_failures_total")
        assert failures[(("route", "/v1/tickets/{ref}"),)] == 40
        # Each worker writes files of its own; the scrape added both up.
        histograms = list((tmp_path / "data" / "prometheus").glob("histogram_*.db"))
        assert len(histograms) == 2
    finally:
        assert stop(proc) == 0

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert lines, log.read_text()
    for line in lines:
        assert {"time", "level", "logger", "message", "request_id"} <= line.keys()
    served = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert {line["request_id"] for line in served} >= {f"req-{i}" for i in range(40)}
    # Each request's line names its route template; an unknown key names no tenant nor key.
    refused = [line for line in served if line["request_id"].startswith("req-")]
    assert {(line["route"], line["tenant"], line["key_id"]) for line in refused} == {
        ("/v1/tickets/{ref}", "-", "-")
    }
    # No personal data: the access line has neither the query string nor the client address.
    assert "someone@example.com" not in log.read_text()
    assert all("127.0.0.1" not in line["message"] for line in served)
