"""Keys are issued for a channel, the first-party API (/v1) or the public API (/public/v1),
and refused on the other (issue 16, item 5; docs/adr/0020-key-channels-and-tenant-budget.md).

Without it, a key the public API refuses (its `public_api` flag off) or throttles would be
served on /v1, where neither applies. Every way in (API keys and sign-in tokens alike) goes
through `ensure_channel`, called by the endpoints' authentication (flowdesk.api.auth).
"""

from __future__ import annotations

from flowdesk.auth.principal import Principal
from flowdesk.errors import Forbidden
from flowdesk.vocabulary import FIRST_PARTY, PUBLIC

PUBLIC_PREFIX = "/public/"


class WrongChannel(Forbidden):
    slug, title = "key-channel", "Key not issued for this API"


def channel_of(path: str) -> str:
    """The channel a request path belongs to."""
    return PUBLIC if path.startswith(PUBLIC_PREFIX) else FIRST_PARTY


def ensure_channel(principal: Principal, path: str) -> None:
    """403 `key-channel` when the caller's key was issued for the other API."""
    channel = channel_of(path)
    if principal.channel != channel:
        where = "/public/v1" if principal.channel == PUBLIC else "/v1"
        raise WrongChannel(
            f"This API key was issued for the {principal.channel.replace('_', '-')} API "
            f"({where}); use a key issued for the {channel.replace('_', '-')} API here.",
            extra={"key_channel": principal.channel, "channel": channel},
        )
