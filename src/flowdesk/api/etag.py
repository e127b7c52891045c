"""Entity tags for reads and If-Match preconditions for writes."""

from __future__ import annotations

from flowdesk.errors import PreconditionFailed


def version_etag(version: int) -> str:
    return f'"{version}"'


def _names_version(tags: str, current_version: int) -> bool:
    """Whether an If-Match or If-None-Match list names this version: `*` names any existing
    one, and a weak tag (W/"3") is compared by its value, since our tags are exact versions
    either way."""
    current = version_etag(current_version)
    return any(t.strip().removeprefix("W/") in (current, "*") for t in tags.split(","))


def not_modified(if_none_match: str | None, current_version: int) -> bool:
    """Whether the client's If-None-Match already names the current version (then: 304)."""
    if not if_none_match:
        return False
    return _names_version(if_none_match, current_version)


def check_if_match(if_match: str | None, current_version: int) -> None:
    """412 when the client's If-Match names a version other than the current one."""
    if if_match is None or _names_version(if_match, current_version):
        return
    raise PreconditionFailed(
        f"The resource has changed: it is now at version {current_version}.",
        extra={"current_etag": version_etag(current_version)},
    )
