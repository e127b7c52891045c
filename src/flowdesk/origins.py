"""Browser origins as CORS compares them: `scheme://host[:port]`, in the form a browser sends
in its `Origin` header (lower case, no default port), so that an allowed origin is matched by
plain string equality. Used by the deployment's setting (FLOWDESK_CORS_ORIGINS) and a tenant's
`allowed_origins` alike."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, StringConstraints

MAX_ORIGIN_LENGTH = 300
MAX_TENANT_ORIGINS = 20

_DEFAULT_PORTS = {"https": 443, "http": 80}
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalise_origin(value: str) -> str:
    """The origin as a browser sends it, or ValueError saying what is wrong with `value`.

    https only, except on loopback addresses (development); no path, query, fragment, user
    or wildcard: an origin is exact."""
    if "*" in value:
        raise ValueError("wildcards are not allowed: list each origin")
    if not value.isascii() or any(c.isspace() for c in value):
        raise ValueError("an origin is ASCII without spaces (write IDNs in punycode, xn--…)")
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc:
        raise ValueError("an origin is scheme://host[:port] with the scheme https (or http)")
    if parts.path or parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValueError("an origin has no path (not even '/'), query or fragment")
    if parts.username is not None or parts.password is not None:
        raise ValueError("an origin has no user or password")
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("the port is not a number from 1 to 65535") from exc
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
        if not _HOSTNAME.match(host):
            raise ValueError(f"'{host}' is not a host name") from None
    if scheme != "https" and not _loopback(host):
        raise ValueError("an origin must use https, except on loopback addresses")
    shown = f"[{ip.compressed}]" if ip is not None and ip.version == 6 else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        shown = f"{shown}:{port}"
    return f"{scheme}://{shown}"


def normalise_origins(values: list[str]) -> list[str]:
    """Each origin normalised, duplicates dropped, in the given order."""
    return list(dict.fromkeys(normalise_origin(v) for v in values))


# An origin in a request body: checked and normalised (https://App.example:443 is stored as
# https://app.example, the form browsers send).
Origin = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ORIGIN_LENGTH),
    AfterValidator(normalise_origin),
]
