"""What every log line carries: the id of the request being served (set by the HTTP
middleware, `-` outside a request), through a filter on the process's log handlers; and the
two formats of a line, text or one JSON object (FLOWDESK_LOG_FORMAT=json), configured alike in
the command's process and in every uvicorn worker (`logging_config`)."""

from __future__ import annotations

import contextvars
import logging
import logging.config
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
# The ASGI scope of the request being served (set with the request id). Who is calling and
# which route answers are read from it only when a line is written: the router leaves the
# matched route in it, authentication the principal in its state, so a request that logs
# nothing pays for none of it.
request_scope_var: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "request_scope", default=None
)

TEXT_FORMAT = "%(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    """Adds the current request id to every log record (`%(request_id)s`), and who the
    request is from and which route serves it: `tenant` (the tenant's slug), `key_id` (the
    API key's id, never the key) and `route` (the template, `/v1/tickets/{ref}`, never the
    path with its values), each "-" when unknown (outside a request, before authentication
    or routing)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.tenant, record.key_id, record.route = _caller(request_scope_var.get())
        return True


def _caller(scope: Mapping[str, Any] | None) -> tuple[str, str, str]:
    if scope is None:
        return "-", "-", "-"
    route = getattr(scope.get("route"), "path", None) or "-"
    principal = (scope.get("state") or {}).get("principal")
    if principal is None:
        return "-", "-", route
    tenant = getattr(principal, "tenant_slug", None) or "-"
    key_id = getattr(principal, "key_id", None)
    return str(tenant), str(key_id) if key_id is not None else "-", route


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, RFC 3339), level, logger, message, request_id,
    on a request's lines its tenant, key_id and route, and the exception's type and
    traceback when there is one.

    uvicorn's access line is written as method, path and status, without the client's address
    or the query string (they may be personal data)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self._message(record),
            "request_id": getattr(record, "request_id", request_id_var.get()),
        }
        scope = request_scope_var.get()
        if scope is not None:  # a request's line: who and which route, "-" when not known yet
            tenant, key_id, route = _caller(scope)
            line |= {"tenant": tenant, "key_id": key_id, "route": route}
        if record.name == "uvicorn.access" and _is_access_args(record.args):
            _client, method, path, _version, status = record.args  # type: ignore[misc]
            line |= {"method": method, "path": str(path).partition("?")[0], "status": status}
        if record.exc_info and record.exc_info[0] is not None:
            line["exc_type"] = record.exc_info[0].__name__
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()

    @staticmethod
    def _message(record: logging.LogRecord) -> str:
        if record.name == "uvicorn.access" and _is_access_args(record.args):
            _client, method, path, version, status = record.args  # type: ignore[misc]
            return f'"{method} {str(path).partition("?")[0]} HTTP/{version}" {status}'
        return record.getMessage()


def _is_access_args(args: object) -> bool:
    return isinstance(args, tuple) and len(args) == 5


def logging_config(log_format: str) -> dict[str, Any]:
    """The dictConfig of a flowdesk process: one stderr handler on the root logger (flowdesk's
    loggers and uvicorn's), every line with the request id. Passed to uvicorn as its
    log_config, so that worker processes, which uvicorn starts afresh, log the same way."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"flowdesk": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "flowdesk",
                "filters": ["request_id"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
        "loggers": {
            # uvicorn sets its loggers' levels from --log-level after this config; their lines
            # go to the root's one handler.
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
            # Never the statements' parameters (personal data): SQLAlchemy's engine logger is
            # kept quiet whatever the root's level.
            "sqlalchemy.engine": {"level": "WARNING"},
        },
    }


def configure(log_format: str) -> None:
    """Configure this process's logging (the command's; uvicorn's workers get the same dict)."""
    logging.config.dictConfig(logging_config(log_format))
