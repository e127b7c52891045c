"""Domain errors and their RFC 9457 problem+json rendering.

Services raise these; only the HTTP layer (the handlers registered by `install_handlers`)
turns them into responses, so a service never knows about status codes beyond the class it
picks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "/problems/"


class AppError(Exception):
    """Base of every error a client can be told about."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})


class Unauthorized(AppError):
    status, slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str = "A valid API key is required.") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="flowdesk"'})


class Forbidden(AppError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(AppError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(AppError):
    status, slug, title = 409, "conflict", "Conflict"


class PreconditionFailed(AppError):
    status, slug, title = 412, "precondition-failed", "Precondition failed"


class PayloadTooLarge(AppError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class InvalidInput(AppError):
    """422 for a payload that parses but cannot be accepted; `errors` point into the body."""

    status, slug, title = 422, "validation-error", "Invalid request"

    def __init__(self, detail: str, errors: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(detail, extra={"errors": [{"pointer": p, "detail": d} for p, d in errors]})


class LicenceInactive(AppError):
    """The tenant has no active ITSM licence: its ticket endpoints are closed (403)."""

    status, slug, title = 403, "licence-inactive", "ITSM licence inactive"

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            detail
            or "The ITSM add-on is not licensed for this tenant; the platform operator "
            "activates it."
        )


class FeatureDisabled(AppError):
    """A feature flag of the tenant's ITSM licence is off (403); `flag` names it."""

    status, slug, title = 403, "feature-disabled", "Feature disabled"

    def __init__(self, flag: str, detail: str = "") -> None:
        super().__init__(
            detail or f"The '{flag}' feature is not enabled for this tenant.",
            extra={"flag": flag},
        )


class QuotaExceeded(AppError):
    """A change that would take the tenant beyond a quota of its licence (409: it conflicts
    with the tenant's current state and succeeds once usage is lowered or the quota raised)."""

    status, slug, title = 409, "quota-exceeded", "Quota exceeded"

    def __init__(self, quota: str, limit: int, current: int, detail: str = "") -> None:
        super().__init__(
            detail or f"This would exceed the '{quota}' quota ({current} in use, limit {limit}).",
            extra={"quota": quota, "limit": limit, "current": current},
        )
        self.quota, self.limit, self.current = quota, limit, current


class RateLimited(AppError):
    status, slug, title = 429, "rate-limited", "Too many requests"

    def __init__(
        self, detail: str, retry_after: int, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(
            detail,
            extra={"retry_after": retry_after},
            headers={**(headers or {}), "Retry-After": str(retry_after)},
        )


class PlatformDisabled(AppError):
    """The platform API has no credential configured (FLOWDESK_PLATFORM_TOKEN is unset)."""

    status, slug, title = 503, "platform-api-disabled", "Platform API not configured"


class ServiceUnavailable(AppError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"

    def __init__(self, detail: str, retry_after: int = 2) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


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
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if extra:
        body.update(extra)
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
)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it wraps (SQLAlchemy's `orig`, Python's `__cause__`)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = getattr(current, "orig", None) or current.__cause__


def _is_database_unreachable(exc: BaseException) -> bool:
    """True for failures that mean "no database right now" rather than a bug."""
    if isinstance(exc, sa_exc.TimeoutError):  # pool acquire deadline
        return True
    # The server is at its connection limit (max_connections, or a role's or database's
    # limit): a retry a little later can succeed. Through SQLAlchemy it comes as a plain
    # DBAPIError wrapping asyncpg's.
    if any(isinstance(e, asyncpg.exceptions.TooManyConnectionsError) for e in _causes(exc)):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.InterfaceError | sa_exc.OperationalError):
        return True
    # The hot paths talk to asyncpg directly (flowdesk.db.raw).
    if isinstance(exc, _ASYNCPG_UNREACHABLE):
        return True
    return isinstance(exc, OSError | TimeoutError)


def is_database_unreachable(exc: BaseException) -> bool:
    """Public name of the check, for code outside the handlers (ASGI middleware)."""
    return _is_database_unreachable(exc)


def database_unavailable_response() -> Response:
    return problem_response(
        503,
        "service-unavailable",
        "Service unavailable",
        "The database is unreachable; retry shortly.",
        headers={"Retry-After": "2"},
    )


def install_handlers(app: FastAPI) -> None:
    async def on_app_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        return problem_response(
            exc.status, exc.slug, exc.title, exc.detail, extra=exc.extra, headers=exc.headers
        )

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
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
        return problem_response(
            exc.status_code, slug, title, detail, headers=getattr(exc, "headers", None)
        )

    async def on_database_error(request: Request, exc: Exception) -> Response:
        if not _is_database_unreachable(exc):
            return await on_unexpected(request, exc)
        logger.warning("database unavailable: %s", exc)
        return problem_response(
            503,
            "service-unavailable",
            "Service unavailable",
            "The database is unreachable; retry shortly.",
            headers={"Retry-After": "2"},
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "internal-error", "Internal error", "An unexpected error.")

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    # Connection-level failures are handled here (not by the catch-all) so that they become a
    # 503 the client can retry, and are not re-raised to the server as crashes.
    for exc_class in (
        sa_exc.DBAPIError,
        sa_exc.TimeoutError,
        OSError,
        TimeoutError,
        *_ASYNCPG_UNREACHABLE,
    ):
        app.add_exception_handler(exc_class, on_database_error)
    app.add_exception_handler(Exception, on_unexpected)
