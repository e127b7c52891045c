"""Entity tags for reads and If-Match preconditions for writes."""

from __future__ import annotations

from flowdesk.tickets.versions import VersionCheck, any_version


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


def if_match(header: str | None) -> VersionCheck:
    """The client's If-Match as the check a write makes on the version it is about to
    change (flowdesk.tickets answers 412 when it fails)."""
    if header is None:
        return any_version
    return lambda version: _names_version(header, version)
