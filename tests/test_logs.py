"""Log lines (flowdesk.logs): FLOWDESK_LOG_FORMAT=json gives one JSON object per line with the
request id, the tenant, key id and route of the request, and the exception; text stays the
default."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from fastapi.routing import APIRoute

from flowdesk.api.auth import Authenticated
from flowdesk.app import create_app
from flowdesk.config import Settings
from flowdesk.logs import logging_config, request_id_var, request_scope_var
from tests.support import new_tenant


@pytest.fixture
def json_logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing through the JSON configuration's formatter and filter."""
    config = logging_config("json")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    formatter = config["formatters"]["flowdesk"]["()"]()
    handler.setFormatter(formatter)
    handler.addFilter(config["filters"]["request_id"]["()"]())
    logger = logging.getLogger("flowdesk.test_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_a_json_line_has_the_request_id_and_the_exception(
    json_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_logger
    token = request_id_var.set("req-42")
    try:
        try:
            raise ValueError("broken")
        except ValueError:
            logger.exception("it %s", "failed")
    finally:
        request_id_var.reset(token)
    logger.warning("outside")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "it failed" and first["level"] == "ERROR"
    assert first["logger"] == "flowdesk.test_logs" and first["request_id"] == "req-42"
    assert first["exc_type"] == "ValueError" and "broken" in first["exc_info"]
    assert first["time"].endswith("+00:00")
    assert second["request_id"] == "-" and "exc_info" not in second


def test_the_access_line_leaves_out_the_query_and_the_client(
    json_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    _, stream = json_logger
    handler = logging.getLogger("flowdesk.test_logs").handlers[0]
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("203.0.113.9:5555", "GET", "/v1/users?email=a@b.example", "1.1", 200),
        None,
    )
    handler.handle(record)
    line = json.loads(stream.getvalue())
    assert line["path"] == "/v1/users" and line["status"] == 200 and line["method"] == "GET"
    assert "203.0.113.9" not in stream.getvalue() and "a@b.example" not in stream.getvalue()


async def test_a_request_line_says_tenant_key_and_route_never_the_key(
    settings: Settings, json_logger: tuple[logging.Logger, io.StringIO]
) -> None:
    """Through the real middleware: a line logged while serving names the tenant, the key's
    id and the route template; never the key, nor the values in the path."""
    logger, stream = json_logger
    app = create_app(settings)

    async def probe(ref: str, principal: Authenticated) -> dict[str, str]:
        logger.warning("probing %s", "something")
        return {}

    app.router.routes.insert(0, APIRoute("/v1/_log_probe/{ref}", probe))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t.test") as client:
            tenant = await new_tenant(app, client)
            r = await client.get("/v1/_log_probe/TKT-000042", headers=tenant.headers)
            assert r.status_code == 200, r.text
            key_id = (await client.get("/v1/me", headers=tenant.headers)).json()["key_id"]
    logger.warning("after")
    served, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert served["message"] == "probing something"
    assert served["tenant"] == tenant.slug and served["key_id"] == key_id
    assert served["route"] == "/v1/_log_probe/{ref}" and served["request_id"] != "-"
    text = stream.getvalue()
    assert tenant.admin.key not in text and "TKT-000042" not in text
    assert tenant.admin.email not in text
    # Outside a request: none of them.
    assert "tenant" not in outside and "route" not in outside


def test_a_line_before_authentication_and_routing_says_so(
    json_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_logger
    token = request_scope_var.set({"type": "http", "path": "/v1/tickets"})
    try:
        logger.warning("early")
    finally:
        request_scope_var.reset(token)
    line = json.loads(stream.getvalue())
    assert (line["tenant"], line["key_id"], line["route"]) == ("-", "-", "-")
