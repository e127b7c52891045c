"""The webhook sender against real HTTP receivers on 127.0.0.1: signing, outcomes, the address
policy and its pinning, redirects, timeouts and the response cap; and the URL check."""

from __future__ import annotations

import asyncio
import base64
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import h11
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from flowdesk.errors import InvalidInput
from flowdesk.notifications.webhook_http import WebhookSender, check_url, new_secret
from tests.notifications.receiver import Receiver, Seen, Send, answer
from tests.servers import free_port

BODY = b'{"type":"ticket.created","data":{"id":"t_1","title":"Printer \xc3\xa9t\xc3\xa9"}}'


async def never_answer(seen: Seen, send: Send) -> None:
    await asyncio.Event().wait()  # until the receiver stops


async def drip(seen: Seen, send: Send) -> None:
    """A 200, then a body that trickles for ever."""
    await send(h11.Response(status_code=200, headers=[("content-length", str(10**9))]))
    while True:
        await send(h11.Data(data=b"x"))
        await asyncio.sleep(0.05)


@dataclass
class Firehose:
    """A 200 whose body is far larger than any socket buffers: it can only be sent whole to a
    client that reads it all."""

    total: int = 1 << 30
    sent: int = 0
    broken: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, seen: Seen, send: Send) -> None:
        chunk = b"x" * 65536
        try:
            await send(h11.Response(status_code=200, headers=[("content-length", str(self.total))]))
            while self.sent < self.total:
                await send(h11.Data(data=chunk))
                self.sent += len(chunk)
        except ConnectionError:
            self.broken = True
        finally:
            self.done.set()


@asynccontextmanager
async def sender(
    *, allow_private: bool = True, timeout_s: float = 5.0
) -> AsyncIterator[WebhookSender]:
    webhooks = WebhookSender(allow_private=allow_private, timeout=timeout_s)
    try:
        yield webhooks
    finally:
        await webhooks.close()


@pytest.fixture
def secret() -> str:
    return new_secret()


# ---- signing and headers -----------------------------------------------------------------


async def test_a_delivery_is_signed_per_standard_webhooks(secret: str) -> None:
    async with Receiver(answer(204)) as receiver, sender() as webhooks:
        result = await webhooks.send(receiver.url("/hook?tenant=7"), secret, "msg_1", BODY)

    assert result.ok and result.status == 204
    assert result.error is None and not result.permanent
    [seen] = receiver.requests
    assert (seen.method, seen.target, seen.body) == ("POST", "/hook?tenant=7", BODY)
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["user-agent"] == "flowdesk-webhooks/1"
    assert seen.headers["webhook-id"] == "msg_1"
    assert seen.headers["webhook-timestamp"].isdigit()
    assert seen.headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(seen.body, seen.headers) == {
        "type": "ticket.created",
        "data": {"id": "t_1", "title": "Printer été"},
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(seen.body, seen.headers)


async def test_the_timestamp_given_is_signed_whatever_its_zone(secret: str) -> None:
    at = datetime.now(timezone(timedelta(hours=-5))) - timedelta(seconds=30)
    async with Receiver(answer(200)) as receiver, sender() as webhooks:
        result = await webhooks.send(receiver.url(), secret, "msg_2", BODY, timestamp=at)

    assert result.ok
    [seen] = receiver.requests
    assert int(seen.headers["webhook-timestamp"]) == int(at.timestamp())
    Webhook(secret).verify(seen.body, seen.headers)


def test_new_secrets_are_32_random_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32


# ---- outcomes ----------------------------------------------------------------------------


async def test_a_server_error_is_a_temporary_failure(secret: str) -> None:
    async with Receiver(answer(500)) as receiver, sender() as webhooks:
        result = await webhooks.send(receiver.url(), secret, "msg_1", BODY)

    assert (result.ok, result.status, result.error, result.permanent) == (
        False,
        500,
        "HTTP 500",
        False,
    )
    assert len(receiver.requests) == 1


async def test_gone_is_permanent(secret: str) -> None:
    async with Receiver(answer(410)) as receiver, sender() as webhooks:
        result = await webhooks.send(receiver.url(), secret, "msg_1", BODY)

    assert (result.ok, result.status, result.error, result.permanent) == (
        False,
        410,
        "HTTP 410",
        True,
    )


async def test_a_redirect_is_not_followed(secret: str) -> None:
    async with Receiver(answer(200)) as elsewhere:
        moved = answer(302, [("location", elsewhere.url("/internal"))])
        async with Receiver(moved) as receiver, sender() as webhooks:
            result = await webhooks.send(receiver.url(), secret, "msg_1", BODY)

    assert (result.ok, result.status, result.permanent) == (False, 302, False)
    assert result.error == "redirect (302) not followed"
    assert len(receiver.requests) == 1
    assert elsewhere.connections == 0


async def test_connections_are_pooled(secret: str) -> None:
    async with Receiver(answer(200)) as receiver, sender() as webhooks:
        for msg_id in ("msg_1", "msg_2", "msg_3"):
            assert (await webhooks.send(receiver.url(), secret, msg_id, BODY)).ok

    assert [seen.headers["webhook-id"] for seen in receiver.requests] == ["msg_1", "msg_2", "msg_3"]
    assert receiver.connections == 1


# ---- the address policy ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://10.0.0.1/", "refused: 10.0.0.1 is a private address"),
        (
            "http://169.254.169.254/latest/meta-data",
            "refused: 169.254.169.254 is a link-local address",
        ),
        ("http://[::1]:1/", "refused: ::1 is a loopback address"),
        ("http://[::ffff:10.0.0.1]/", "refused: ::ffff:a00:1 is a private address"),
        ("https://[fd00::1]/", "refused: fd00::1 is a private address"),
        ("http://0.0.0.0:1/", "refused: 0.0.0.0 is an unspecified address"),
        # Alibaba Cloud's metadata service, in the shared address space.
        ("http://100.100.100.200/", "refused: 100.100.100.200 is a non-public address"),
        # 127.0.0.1 spelled as one number: judged by what it resolves to.
        ("http://2130706433/", "refused: 127.0.0.1 is a loopback address"),
    ],
)
async def test_internal_addresses_are_refused(url: str, error: str, secret: str) -> None:
    async with sender(allow_private=False) as webhooks:
        result = await webhooks.send(url, secret, "msg_1", BODY)

    assert (result.ok, result.status, result.error, result.permanent) == (False, None, error, True)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_refused_address_is_never_connected_to(host: str, secret: str) -> None:
    async with Receiver(answer(200)) as receiver, sender(allow_private=False) as webhooks:
        result = await webhooks.send(receiver.url(host=host), secret, "msg_1", BODY)

    assert result.error == "refused: 127.0.0.1 is a loopback address"
    assert result.permanent
    assert receiver.connections == 0


async def test_the_connection_keeps_the_host_name(secret: str) -> None:
    """The request goes to the address resolved and checked, under the URL's own host name."""
    async with Receiver(answer(200)) as receiver, sender() as webhooks:
        result = await webhooks.send(receiver.url(host="localhost"), secret, "msg_1", BODY)

    assert result.ok
    assert receiver.requests[0].headers["host"] == f"localhost:{receiver.port}"


@pytest.fixture(scope="module")
def tls_server_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server context with a self-signed certificate for localhost (which the sender, rightly,
    does not trust)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a certificate")
    directory: Path = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=localhost"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_tls_is_checked_against_the_host_name(
    tls_server_context: ssl.SSLContext, secret: str
) -> None:
    async with (
        Receiver(answer(200), tls=tls_server_context) as receiver,
        sender() as webhooks,
    ):
        result = await webhooks.send(
            receiver.url(host="localhost", scheme="https"), secret, "msg_1", BODY
        )

    assert (result.ok, result.status, result.permanent) == (False, None, False)
    assert result.error is not None
    assert result.error.startswith("TLS certificate rejected: self-signed certificate")
    assert receiver.server_names == ["localhost"]
    assert receiver.requests == []


async def test_proxies_from_the_environment_are_ignored(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    async with Receiver(answer(200)) as proxy, Receiver(answer(200)) as receiver:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.url(path=""))
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        async with sender() as webhooks:
            result = await webhooks.send(receiver.url(), secret, "msg_1", BODY)

    assert result.ok
    assert len(receiver.requests) == 1
    assert proxy.connections == 0


# ---- network failures --------------------------------------------------------------------


async def test_a_closed_port_is_a_temporary_failure(secret: str) -> None:
    async with sender() as webhooks:
        result = await webhooks.send(f"http://127.0.0.1:{free_port()}/", secret, "msg_1", BODY)

    assert (result.ok, result.status, result.error, result.permanent) == (
        False,
        None,
        "connection refused",
        False,
    )


async def test_a_name_that_does_not_resolve_is_a_temporary_failure(secret: str) -> None:
    async with sender(allow_private=False) as webhooks:
        result = await webhooks.send("https://flowdesk-hooks.invalid/", secret, "msg_1", BODY)

    assert (result.ok, result.status, result.permanent) == (False, None, False)
    assert result.error is not None
    assert result.error.startswith("cannot resolve host flowdesk-hooks.invalid")


async def test_a_slow_receiver_times_out(secret: str) -> None:
    async with Receiver(never_answer) as receiver, sender(timeout_s=0.5) as webhooks:
        result = await webhooks.send(receiver.url(), secret, "msg_1", BODY)

    assert (result.ok, result.status, result.error, result.permanent) == (
        False,
        None,
        "timed out after 0.5s",
        False,
    )
    assert len(receiver.requests) == 1


async def test_a_body_that_never_ends_does_not_hold_the_sender(secret: str) -> None:
    """The status decides; a 2xx whose body drips for ever still returns, as delivered."""
    async with Receiver(drip) as receiver, sender(timeout_s=0.5) as webhooks:
        result = await webhooks.send(receiver.url(), secret, "msg_1", BODY)

    assert (result.ok, result.status, result.error) == (True, 200, None)


async def test_a_huge_answer_is_not_read_beyond_the_cap(secret: str) -> None:
    hose = Firehose()
    async with Receiver(hose) as receiver, sender() as webhooks:
        result = await webhooks.send(receiver.url(), secret, "msg_1", BODY)
        async with asyncio.timeout(10):
            await hose.done.wait()

    assert (result.ok, result.status, result.error) == (True, 200, None)
    # The client hung up long before the end.
    assert hose.broken
    assert hose.sent < hose.total


async def test_an_invalid_url_is_refused_without_raising(secret: str) -> None:
    async with sender() as webhooks:
        result = await webhooks.send("ftp://example.com/hook", secret, "msg_1", BODY)

    assert (result.ok, result.status, result.permanent) == (False, None, True)
    assert result.error == "refused: invalid URL (the scheme must be http or https)"


async def test_a_naive_timestamp_is_a_bug(secret: str) -> None:
    async with sender() as webhooks:
        with pytest.raises(ValueError, match="timezone-aware"):
            await webhooks.send(
                "https://example.com/", secret, "msg_1", BODY, timestamp=datetime.now()
            )


async def test_a_malformed_secret_is_a_bug() -> None:
    async with sender() as webhooks:
        with pytest.raises(ValueError, match="malformed webhook secret"):
            await webhooks.send("https://example.com/", "whsec_", "msg_1", BODY)


# ---- check_url ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://hooks.example.com/flowdesk?tenant=7",
            "https://hooks.example.com/flowdesk?tenant=7",
        ),
        ("  http://hooks.example.com:8080/in \n", "http://hooks.example.com:8080/in"),
        ("https://[2001:db8::1]/hook", "https://[2001:db8::1]/hook"),
    ],
)
def test_check_url_accepts_http_and_https(url: str, expected: str) -> None:
    assert check_url(url) == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://hooks.example.com/", "the scheme must be http or https"),
        ("file:///etc/passwd", "the scheme must be http or https"),
        ("hooks.example.com/in", "the scheme must be http or https"),
        ("https://user:secret@hooks.example.com/", "credentials in the URL are not accepted"),
        ("https://token@hooks.example.com/", "credentials in the URL are not accepted"),
        ("https:///in", "it has no host"),
        ("https://", "it has no host"),
        ("https://hooks.example.com/in#part", "it has a fragment"),
        ("https://hooks.example.com\\@evil.example/", "it contains a backslash"),
        ("https://hooks.example.com/a b", "it contains spaces or control characters"),
        ("https://hooks.example.com:99999/", "the port is out of range"),
        ("   ", "it is empty"),
        ("https://hooks.example.com/" + "a" * 2000, "it is longer than 2000 characters"),
    ],
)
def test_check_url_refuses(url: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_url(url)

    assert caught.value.extra["errors"] == [{"pointer": "/url", "detail": reason}]
