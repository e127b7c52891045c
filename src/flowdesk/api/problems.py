"""Errors as RFC 9457 problem+json responses: the handlers for every error the app can raise,
and the mapping of database failures to 503 (unreachable) or 500 (a bug)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from flowdesk.api.auth import current_principal
from flowdesk.errors import AppError, Forbidden, Unauthorized, problem

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


def error_response(exc: AppError) -> Response:
    return Response(
        orjson.dumps(exc.problem()),
        status_code=exc.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=exc.headers,
    )


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    instance: str | None = None,
) -> Response:
    body = problem(status, slug, title, detail, extra)
    if instance:
        body["instance"] = instance
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _pointer(loc: Sequence[int | str]) -> str:
    """FastAPI's error location ("body", "title") as a JSON pointer ("/title").

    Query, path and header parameters have no place in the body; they keep their source as
    the first segment ("/query/limit") so a client can still tell what was wrong.
    """
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    escaped = [str(p).replace("~", "~0").replace("/", "~1") for p in parts]
    return "/" + "/".join(escaped)


_STATUS_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


_ASYNCPG_UNREACHABLE = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    # The server is at its connection limit (max_connections, or a role's or database's).
    asyncpg.exceptions.TooManyConnectionsError,
)


def is_database_unreachable(exc: BaseException) -> bool:
    """True for failures that mean "no database right now" rather than a bug: the pool's
    acquire deadline, a lost or refused connection, a server at its connection limit (a retry
    a little later can succeed), or one shutting down."""
    return isinstance(exc, (*_ASYNCPG_UNREACHABLE, OSError, TimeoutError))


def database_unavailable_response(exc: BaseException | None = None) -> Response:
    """503 for a database that cannot answer now, saying which way: unreachable, or a
    statement cut off by FLOWDESK_DB_STATEMENT_TIMEOUT_MS (the database is there, but the
    request asked more of it than the timeout allows)."""
    detail = "The database is unreachable; retry shortly."
    if isinstance(exc, asyncpg.exceptions.QueryCanceledError):
        detail = (
            "The database did not finish within its statement timeout; retry shortly, "
            "or ask for less."
        )
    return problem_response(
        503,
        "service-unavailable",
        "Service unavailable",
        detail,
        headers={"Retry-After": "2"},
    )


# What FastAPI says of a body it could not decode before any endpoint code ran.
_UNPARSABLE_BODY = "There was an error parsing the body"


async def _unauthenticated(request: Request) -> Response | None:
    """FastAPI decodes a JSON body before it runs the endpoint's dependencies, so a body that
    does not decode would be answered before the caller is authenticated. An API request
    without a valid credential is a 401 whatever its body (and one with a key of the other
    channel a 403): the refusal it would have had, or None when the caller is authenticated
    (then the body's error stands)."""
    if not request.url.path.startswith(("/v1/", "/public/v1/")):
        return None
    try:
        await current_principal(request)
    except (Unauthorized, Forbidden) as exc:
        return error_response(exc)
    return None


def _allowed_methods(request: Request) -> list[str]:
    """The methods of the resource the path names: every route of the first matching route's
    template (GET and PATCH of /v1/tickets/{ref} are two routes). Not those of a later,
    broader template that also matches (/v1/tickets/counts is not a ticket's {ref})."""
    methods: set[str] = set()
    template = None
    for route in request.app.router.routes:
        path = getattr(route, "path", None)
        if template is not None and path != template:
            continue
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            template = path
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def install_handlers(app: FastAPI) -> None:
    async def on_app_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        return error_response(exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if any(err.get("type") == "json_invalid" for err in exc.errors()):
            refused = await _unauthenticated(request)
            if refused is not None:
                return refused
        errors = [
            {"pointer": _pointer(err.get("loc", ())), "detail": str(err.get("msg", "invalid"))}
            for err in exc.errors()
        ]
        return problem_response(
            422,
            "validation-error",
            "Invalid request",
            "The request did not pass validation; see errors.",
            extra={"errors": errors},
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        slug, title = _STATUS_SLUGS.get(exc.status_code, ("error", "Error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 400 and detail == _UNPARSABLE_BODY:
            # A body that is not even text (not UTF-8): the same 422 as one that is not JSON.
            refused = await _unauthenticated(request)
            if refused is not None:
                return refused
            return problem_response(
                422,
                "validation-error",
                "Invalid request",
                "The request did not pass validation; see errors.",
                extra={"errors": [{"pointer": "/", "detail": "the body is not UTF-8 JSON"}]},
            )
        if exc.status_code == 405:
            # Starlette names the methods of the first route that matched the path; RFC 9110
            # wants all the resource's, which several routes (GET, PATCH, …) share.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem_response(exc.status_code, slug, title, detail, headers=headers)

    async def on_database_error(request: Request, exc: Exception) -> Response:
        if not is_database_unreachable(exc):
            return await on_unexpected(request, exc)
        logger.warning("database unavailable: %s", exc)
        return database_unavailable_response(exc)

    async def on_data_error(request: Request, exc: Exception) -> Response:
        # A value PostgreSQL cannot take (SQLSTATE class 22: out of range, bad encoding,
        # division by zero...) that validation let through: the request's fault, not a 500.
        # The message is not logged: it may quote the value.
        logger.warning(
            "data exception %s on %s %s",
            getattr(exc, "sqlstate", "22000"),
            request.method,
            request.url.path,
        )
        return problem_response(
            422,
            "validation-error",
            "Invalid request",
            "A value in the request is outside what the service can store.",
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "internal-error", "Internal error", "An unexpected error.")

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(asyncpg.exceptions.DataError, on_data_error)
    # Connection-level failures are handled here (not by the catch-all) so that they become a
    # 503 the client can retry, and are not re-raised to the server as crashes.
    for exc_class in (OSError, TimeoutError, *_ASYNCPG_UNREACHABLE):
        app.add_exception_handler(exc_class, on_database_error)
    app.add_exception_handler(Exception, on_unexpected)
