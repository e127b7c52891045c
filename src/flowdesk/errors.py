"""The errors a client can be told about.

Services raise these; each class carries the problem type it becomes (its slug, title and
status) and renders itself as an RFC 9457 problem object (`AppError.problem`). Only the HTTP
edge (flowdesk.api.problems) turns one into a response.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

PROBLEM_BASE = "/problems/"
# The members every problem has; a problem's extra members never replace them.
_STANDARD_MEMBERS = frozenset({"type", "title", "status", "detail", "instance"})


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

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 problem object of this error."""
        return problem(self.status, self.slug, self.title, self.detail, self.extra)


def problem(
    status: int, slug: str, title: str, detail: str, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A problem object: the standard members, then the extension members (never in their
    place: an extra named like a standard member is dropped)."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    for name, value in (extra or {}).items():
        if name not in _STANDARD_MEMBERS:
            body[name] = value
    return body


class Unauthorized(AppError):
    status, slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str = "A valid API key is required.") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="flowdesk"'})


class Forbidden(AppError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(AppError):
    status, slug, title = 404, "not-found", "Not found"


def found(value: T | None, detail: str) -> T:
    """The value (a row, a catalog entry), or NotFound saying `detail`: the one get-or-404."""
    if value is None:
        raise NotFound(detail)
    return value


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
