"""Entity tags for reads and If-Match preconditions for writes."""

from __future__ import annotations

from flowdesk.errors import PreconditionFailed


def version_etag(version: int) -> str:
    return f'"{version}"'


def not_modified(if_none_match: str | None, current_version: int) -> bool:
    """Whether the client's If-None-Match already names the current version (then: 304)."""
    if not if_none_match:
        return False
    current = version_etag(current_version)
    return any(t.strip().removeprefix("W/") in (current, "*") for t in if_none_match.split(","))


def check_if_match(if_match: str | None, current_version: int) -> None:
    """412 when the client's If-Match names a version other than the current one.

    `*` matches any existing resource; a weak tag (W/"3") is compared by its value, since our
    tags are exact versions either way.
    """
    if if_match is None:
        return
    candidates = [c.strip() for c in if_match.split(",")]
    if "*" in candidates:
        return
    current = version_etag(current_version)
    if any(c.removeprefix("W/") == current for c in candidates):
        return
    raise PreconditionFailed(
        f"The resource has changed: it is now at version {current_version}.",
        extra={"current_etag": current},
    )
