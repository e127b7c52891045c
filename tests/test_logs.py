"""Log lines (flowdesk.logs): FLOWDESK_LOG_FORMAT=json gives one JSON object per line with the
request id and the exception; text stays the default."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from flowdesk.logs import logging_config, request_id_var


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
