"""Webhook delivery over HTTP: one signed POST (Standard Webhooks) to a tenant's endpoint, the
address policy that keeps those requests off internal networks, and the outcome of a delivery
as a `WebhookResult`; plus the endpoint URL check and secret generation used at registration.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import math
import secrets
import socket
import ssl
import time
from collections.abc import AsyncGenerator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpcore
import httpx
from standardwebhooks.webhooks import Webhook

from flowdesk.errors import InvalidInput

MAX_URL_LENGTH = 2000
_SCHEMES = frozenset({"http", "https"})
# The well-known NAT64 prefix (RFC 6052): its addresses reach the IPv4 address in their last
# 32 bits, so they are judged by that address.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def new_secret() -> str:
    """A new signing secret: "whsec_" and the base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def check_url(url: str) -> str:
    """The endpoint URL, stripped, if it can be registered; InvalidInput saying why not."""
    url = url.strip()
    problem = _url_problem(url)
    if problem is not None:
        raise InvalidInput(f"The webhook URL cannot be used: {problem}.", [("/url", problem)])
    return url


def _url_problem(url: str) -> str | None:
    if not url:
        return "it is empty"
    if len(url) > MAX_URL_LENGTH:
        return f"it is longer than {MAX_URL_LENGTH} characters"
    if any(ch <= " " or ch == "\x7f" for ch in url):
        return "it contains spaces or control characters"
    # Parsers disagree about backslashes (browsers read them as "/"); refusing them means
    # every reader of a stored URL sees the same host as the sender does.
    if "\\" in url:
        return "it contains a backslash"
    if "#" in url:
        return "it has a fragment"
    try:
        # The parser the sender itself uses, so the host checked here is the host requested.
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"it is not a valid URL ({exc})"
    if parsed.scheme not in _SCHEMES:
        return "the scheme must be http or https"
    if not parsed.host:
        return "it has no host"
    if parsed.userinfo:
        return "credentials in the URL are not accepted"
    if parsed.port is not None and not 0 < parsed.port < 65536:
        return "the port is out of range"
    return None


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """The outcome of one delivery attempt."""

    ok: bool  # the endpoint answered 2xx
    status: int | None  # the HTTP status; None when there was no answer
    error: str | None  # why not ok
    permanent: bool  # retrying cannot help (a refused address, 410 Gone)
    duration_ms: int


class _Refused(Exception):
    """The endpoint's address is one the policy does not let the sender reach."""


class _Unresolvable(Exception):
    """The endpoint's host name does not resolve (now: DNS can change)."""


def _forbidden_kind(address: IPAddress) -> str | None:
    """What makes `address` unreachable under the policy ("loopback", "private", ...), or None
    for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        # These reach the IPv4 address they carry, and are judged as that address.
        embedded = address.ipv4_mapped
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return _forbidden_kind(embedded)
    kinds = [
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("private", address.is_private),
        # Beyond is_private: shared address space (100.64.0.0/10), where some clouds keep
        # their metadata service.
        ("non-public", not address.is_global),
    ]
    for kind, applies in kinds:
        if applies:
            return kind
    # 6to4 reaches its IPv4 address through a relay: both must be public.
    if isinstance(address, ipaddress.IPv6Address) and address.sixtofour is not None:
        return _forbidden_kind(address.sixtofour)
    return None


def _refusal(address: IPAddress) -> str | None:
    kind = _forbidden_kind(address)
    if kind is None:
        return None
    article = "an" if kind[0] in "aeiou" else "a"
    return f"{address} is {article} {kind} address"


async def _resolve(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise _Unresolvable(f"cannot resolve host {host} ({exc})") from exc
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            address = ipaddress.ip_address(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        raise _Unresolvable(f"cannot resolve host {host} (no IP address)")
    return addresses


# The policy is applied here, where connections are made, rather than before the request:
# the address checked is the address connected to, so DNS rebinding has no gap to use. And the
# request keeps its host name (no rewriting of the URL to the IP), so TLS verifies the
# certificate for that name, and the pool, which keys connections by host, never lends a
# connection verified for one name to a request for another that resolves to the same IP.
class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to addresses the policy allows, and only to the very address
    it checked."""

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    # The signature is httpcore's (it passes the connect timeout along).
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port)
        if not self._allow_private:
            # Any bad address refuses the host: which address is used is not ours to choose.
            for address in addresses:
                refusal = _refusal(address)
                if refusal is not None:
                    raise _Refused(refusal)
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a connection pool whose connections go through `_CheckedBackend`."""

    def __init__(self, *, allow_private: bool, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        # httpx has no parameter for the network backend: its pool is replaced by an
        # equivalent one that has ours. httpx is pinned (constraints.txt); should its internals
        # change, this fails loudly rather than send unchecked.
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("httpx's transport has no connection pool to replace")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_CheckedBackend(allow_private=allow_private),
        )


class WebhookSender:
    """Delivers webhooks; one per process, its connection pool shared by all deliveries.

    `allow_private` lets it reach loopback and private addresses (development and tests only).
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        timeout: float = 5.0,
        max_response_bytes: int = 65536,
        user_agent: str = "flowdesk-webhooks/1",
    ) -> None:
        self._timeout = timeout
        self._max_response_bytes = max_response_bytes
        self._user_agent = user_agent
        self._client = httpx.AsyncClient(
            transport=_CheckedTransport(allow_private=allow_private, limits=httpx.Limits()),
            # A redirect could lead anywhere, another host included: never followed.
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(timeout),
        )

    async def send(
        self,
        url: str,
        secret: str,
        msg_id: str,
        body: bytes,
        *,
        timestamp: datetime | None = None,
    ) -> WebhookResult:
        """POST `body` (UTF-8 JSON) to `url`, signed with `secret`, as message `msg_id`.

        Network problems and refusals are results, never exceptions; a malformed secret, a
        body that is not UTF-8 or a naive `timestamp` raise ValueError (they are bugs).
        """
        started = time.monotonic()
        headers = self._headers(secret, msg_id, body, timestamp or datetime.now(UTC))

        def failure(error: str, *, permanent: bool = False) -> WebhookResult:
            return WebhookResult(False, None, error, permanent, _elapsed_ms(started))

        # Checked again here: a stored URL may predate a rule.
        url = url.strip()
        problem = _url_problem(url)
        if problem is not None:
            return failure(f"refused: invalid URL ({problem})", permanent=True)

        status: int | None = None
        try:
            # httpx's timeout bounds each step; this bounds the whole, a slow drip included.
            async with (
                asyncio.timeout(self._timeout),
                self._client.stream("POST", url, content=body, headers=headers) as response,
            ):
                status = response.status_code
                await self._drain(response)
        except _Refused as exc:
            return failure(f"refused: {exc}", permanent=True)
        except _Unresolvable as exc:
            return failure(str(exc))
        # Once the status has arrived the endpoint has decided; trouble with the rest of its
        # answer does not undo that (and a retry would deliver the event twice).
        except (TimeoutError, httpx.TimeoutException):
            if status is None:
                return failure(f"timed out after {self._timeout:g}s")
        except httpx.TransportError as exc:
            if status is None:
                return failure(_describe(exc))
        assert status is not None
        return _answered(status, _elapsed_ms(started))

    async def close(self) -> None:
        """Closes the pooled connections; the sender cannot be used afterwards."""
        await self._client.aclose()

    def _headers(self, secret: str, msg_id: str, body: bytes, when: datetime) -> dict[str, str]:
        if when.tzinfo is None:
            raise ValueError("the webhook timestamp must be timezone-aware")
        seconds = math.floor(when.timestamp())
        try:
            webhook = Webhook(secret)
        except Exception as exc:  # the library raises its own, unrelated, exception types
            raise ValueError(f"malformed webhook secret: {exc}") from exc
        # The library reads its datetime as UTC whatever its zone, hence the conversion.
        signature = webhook.sign(msg_id, datetime.fromtimestamp(seconds, UTC), body.decode())
        return {
            "content-type": "application/json",
            "user-agent": self._user_agent,
            # The answer's body is read raw and never decoded: no compressed answers.
            "accept-encoding": "identity",
            "webhook-id": msg_id,
            "webhook-timestamp": str(seconds),
            "webhook-signature": signature,
        }

    async def _drain(self, response: httpx.Response) -> None:
        """Reads the answer's body up to the cap, so that the connection can be reused; past
        the cap it stops, and closing the response drops the connection."""
        received = 0
        chunks = response.aiter_raw()
        try:
            async for chunk in chunks:
                received += len(chunk)
                if received > self._max_response_bytes:
                    break
        finally:
            if isinstance(chunks, AsyncGenerator):
                await chunks.aclose()


def _answered(status: int, duration_ms: int) -> WebhookResult:
    if 200 <= status < 300:
        return WebhookResult(True, status, None, False, duration_ms)
    if 300 <= status < 400:
        return WebhookResult(False, status, f"redirect ({status}) not followed", False, duration_ms)
    # 410 Gone: the endpoint says it is gone for good.
    return WebhookResult(False, status, f"HTTP {status}", status == 410, duration_ms)


def _describe(exc: httpx.TransportError) -> str:
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate rejected: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or cause}"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {exc}"
    if isinstance(exc, httpx.ProtocolError):
        return f"bad HTTP exchange: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the exceptions it was raised from or during."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            for inner in current.exceptions:
                yield from _causes(inner)
        current = current.__cause__ or current.__context__


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
