"""Notification mail: composition, and the transports against a real SMTP server (aiosmtpd,
in the test's event loop) and a real Maildir."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from flowdesk.notifications.mail import (
    DeliveryFailed,
    MailContent,
    MaildirTransport,
    SmtpConfig,
    SmtpTransport,
    compose,
    list_maildir,
    mail_domain,
    new_message_id,
    show_maildir,
    transport_for,
)
from tests.notifications.smtp import Handler, SmtpServer

THREAD_ID = "<ticket-0b5e8a6e-2f3a-4a53-9a55-1f2a3b4c5d6e@example.com>"


def content(**changes: str) -> MailContent:
    mail: MailContent = {
        "from_addr": "Acme Desk <desk@example.com>",
        "to_addr": "zoe@example.com",
        "to_name": "Zoë Ölund",
        "subject": "TKT-000001: printer on fire",
        "text": "Hallo Zoë,\n\nthe printer is on fire.\n",
        "html": "<p>Hallo Zoë,</p><p>the printer is on fire.</p>",
        "thread_id": THREAD_ID,
        "ticket_number": "TKT-000001",
    }
    return {**mail, **changes}  # type: ignore[typeddict-item]


def message_id() -> str:
    return new_message_id(uuid.uuid4(), "example.com")


# --- a real SMTP server ---------------------------------------------------------------------


@pytest.fixture
def handler() -> Handler:
    return Handler()


@pytest.fixture
async def smtp(handler: Handler) -> AsyncIterator[SmtpServer]:
    server = SmtpServer(handler)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def transport(smtp: SmtpServer) -> AsyncIterator[SmtpTransport]:
    sender = SmtpTransport(smtp.url(), timeout=5)
    yield sender
    await sender.close()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port nothing listens on: bound, so nothing else takes it, but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# --- composing ------------------------------------------------------------------------------


def test_compose_headers_and_parts() -> None:
    mid = message_id()
    message = compose(content(), mid)

    assert message["Message-ID"] == mid
    assert message["In-Reply-To"] == THREAD_ID
    assert message["References"] == THREAD_ID
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["X-Flowdesk-Ticket"] == "TKT-000001"
    assert "Precedence" not in message
    assert message["Date"].datetime.utcoffset().total_seconds() == 0
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]

    raw = message.as_bytes()
    assert raw.isascii()
    lines = raw.split(b"\r\n")
    assert b"\n" not in b"".join(lines)  # every line ends CRLF
    assert max(len(line) for line in lines) <= 998
    # The To's display name goes encoded (raw is ASCII) and decodes back.
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["To"].addresses[0].display_name == "Zoë Ölund"


def test_compose_keeps_long_message_ids_unencoded() -> None:
    long_domain = "a-very-long-subdomain.of-some-organisation.example.com"
    thread = f"<ticket-{uuid.uuid4()}@{long_domain}>"
    mid = new_message_id(uuid.uuid4(), long_domain)
    raw = compose(content(thread_id=thread), mid).as_bytes()

    assert f"References: {thread}\r\n".encode() in raw
    assert f"In-Reply-To: {thread}\r\n".encode() in raw
    assert f"Message-ID: {mid}\r\n".encode() in raw


def test_compose_refuses_header_injection() -> None:
    message = compose(
        content(subject="hi\r\nBcc: x@y", to_name="Eve\nBcc: a@b", ticket_number="T\rBcc: c@d"),
        message_id(),
    )
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)

    assert "Bcc" not in parsed
    assert parsed["Subject"] == "hi Bcc: x@y"
    assert [a.addr_spec for a in parsed["To"].addresses] == ["zoe@example.com"]
    assert parsed["To"].addresses[0].display_name == "Eve Bcc: a@b"


@pytest.mark.parametrize("to_addr", ["nobody", "zoe@example.com\r\nBcc: x@y", "a b@example.com"])
def test_compose_bad_address_is_a_permanent_failure(to_addr: str) -> None:
    with pytest.raises(DeliveryFailed) as caught:
        compose(content(to_addr=to_addr), message_id())
    assert caught.value.permanent


def test_compose_idn_domain_goes_as_ascii() -> None:
    message = compose(content(to_addr="zoe@exämple.com"), message_id())
    assert message["To"].addresses[0].addr_spec == "zoe@xn--exmple-cua.com"


def test_compose_refuses_a_malformed_message_id() -> None:
    with pytest.raises(ValueError, match="not a message id"):
        compose(content(), "not-a-message-id")


@pytest.mark.parametrize(
    ("setting", "domain"),
    [
        ("flowdesk <desk@example.com>", "example.com"),
        ("desk@Example.COM", "example.com"),
        ("=?utf-8?q?Fl=C3=B6wdesk?= <desk@mail.example.org>", "mail.example.org"),
        ("desk@exämple.com", "xn--exmple-cua.com"),
        ("flowdesk", "localhost"),
        ("", "localhost"),
    ],
)
def test_mail_domain(setting: str, domain: str) -> None:
    assert mail_domain(setting) == domain


def test_new_message_id() -> None:
    delivery = uuid.UUID("0b5e8a6e-2f3a-4a53-9a55-1f2a3b4c5d6e")
    assert new_message_id(delivery, "example.com") == f"<{delivery}@example.com>"


# --- SMTP URLs ------------------------------------------------------------------------------


def test_smtp_url_plain_default_port() -> None:
    assert SmtpConfig.from_url("smtp://mail.example.com") == SmtpConfig("mail.example.com", 25)


def test_smtp_url_starttls_with_login() -> None:
    config = SmtpConfig.from_url("smtp://us%40er:p%3Ass%2Fw@mail.example.com:587?starttls=true")
    assert config == SmtpConfig(
        "mail.example.com", 587, "us@er", "p:ss/w", implicit_tls=False, starttls=True
    )
    assert "p:ss" not in repr(config)


def test_smtp_url_implicit_tls() -> None:
    assert SmtpConfig.from_url("smtps://user:secret@mail.example.com:465") == SmtpConfig(
        "mail.example.com", 465, "user", "secret", implicit_tls=True
    )
    assert SmtpConfig.from_url("smtps://mail.example.com").port == 465


def test_smtp_url_ipv6() -> None:
    config = SmtpConfig.from_url("smtp://[::1]:2525")
    assert (config.host, config.port, config.address) == ("::1", 2525, "[::1]:2525")


@pytest.mark.parametrize(
    "url",
    [
        "http://mail.example.com",
        "smtp://",
        "smtp://mail.example.com:notaport",
        "smtp://mail.example.com/path",
        "smtp://mail.example.com?tls=true",
        "smtp://mail.example.com?starttls=maybe",
        "smtps://mail.example.com?starttls=true",
    ],
)
def test_smtp_url_refused(url: str) -> None:
    with pytest.raises(ValueError):
        SmtpConfig.from_url(url)


def test_transport_for(tmp_path: Path) -> None:
    maildir = transport_for(None, tmp_path)
    assert isinstance(maildir, MaildirTransport)
    assert maildir.path == tmp_path / "mail"
    smtp = transport_for("smtp://mail.example.com:2525", tmp_path, timeout=3)
    assert isinstance(smtp, SmtpTransport)
    assert (smtp.config.port, smtp.timeout) == (2525, 3)


# --- sending by SMTP ------------------------------------------------------------------------


async def test_smtp_send_arrives_whole(
    smtp: SmtpServer, handler: Handler, transport: SmtpTransport
) -> None:
    mid = message_id()
    await transport.send(compose(content(), mid))

    [received] = handler.received
    assert received.mail_from == "desk@example.com"
    assert received.rcpt_tos == ["zoe@example.com"]
    message = received.message
    assert message["Message-ID"] == mid
    assert message["From"].addresses[0].display_name == "Acme Desk"
    [to] = message["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Zoë Ölund", "zoe@example.com")
    assert message["Subject"] == "TKT-000001: printer on fire"
    assert message["Date"].datetime is not None
    assert message["In-Reply-To"] == THREAD_ID
    assert message["References"] == THREAD_ID
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["X-Flowdesk-Ticket"] == "TKT-000001"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    # Decoded as it came over the wire: with SMTP's CRLF line ends.
    assert text.get_content() == "Hallo Zoë,\r\n\r\nthe printer is on fire.\r\n"
    assert "<p>Hallo Zoë,</p>" in html.get_content()


async def test_smtp_injected_header_does_not_arrive(
    smtp: SmtpServer, handler: Handler, transport: SmtpTransport
) -> None:
    await transport.send(compose(content(subject="hi\r\nBcc: x@y"), message_id()))

    [received] = handler.received
    assert received.rcpt_tos == ["zoe@example.com"]
    assert "Bcc" not in received.message
    assert received.message["Subject"] == "hi Bcc: x@y"


async def test_smtp_reuses_one_connection(
    smtp: SmtpServer, handler: Handler, transport: SmtpTransport
) -> None:
    await transport.send(compose(content(), message_id()))
    await transport.send(compose(content(), message_id()))

    assert len(handler.received) == 2
    assert smtp.connections == 1


@pytest.mark.parametrize("farewell", [b"", b"421 4.4.2 localhost idle timeout\r\n"])
async def test_smtp_survives_a_server_side_disconnect(
    smtp: SmtpServer, handler: Handler, transport: SmtpTransport, farewell: bytes
) -> None:
    await transport.send(compose(content(), message_id()))
    smtp.drop_connections(farewell)
    second = message_id()
    await transport.send(compose(content(), second))

    assert [r.message["Message-ID"] for r in handler.received][1:] == [second]
    assert smtp.connections == 2


@pytest.mark.parametrize(
    ("where", "reply", "permanent"),
    [
        ("rcpt", "550 5.1.1 no such user", True),
        ("rcpt", "451 4.3.0 try later", False),
        ("data", "554 5.7.1 message rejected as spam", True),
        ("data", "451 4.3.0 try later", False),
    ],
)
async def test_smtp_refusal(
    smtp: SmtpServer,
    handler: Handler,
    transport: SmtpTransport,
    where: str,
    reply: str,
    permanent: bool,
) -> None:
    if where == "rcpt":
        handler.rcpt_reply = reply
    else:
        handler.data_reply = reply

    with pytest.raises(DeliveryFailed) as caught:
        await transport.send(compose(content(), message_id()))

    assert caught.value.permanent is permanent
    assert caught.value.reason == f"SMTP {reply}"
    # The connection stays usable for the next mail.
    handler.rcpt_reply = handler.data_reply = None
    await transport.send(compose(content(), message_id()))
    assert len(handler.received) == 1
    assert smtp.connections == 1


async def test_smtp_closed_port_is_temporary(closed_port: int) -> None:
    sender = SmtpTransport(f"smtp://127.0.0.1:{closed_port}", timeout=5)
    try:
        with pytest.raises(DeliveryFailed) as caught:
            await sender.send(compose(content(), message_id()))
    finally:
        await sender.close()

    assert not caught.value.permanent
    assert caught.value.reason == f"connection refused (127.0.0.1:{closed_port})"


async def test_smtp_silent_server_times_out() -> None:
    """A server that accepts the connection but never greets."""
    connected: list[asyncio.StreamWriter] = []
    hung_up = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.append(writer)
        await reader.read()  # until the client hangs up
        writer.close()
        await writer.wait_closed()
        hung_up.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sender = SmtpTransport(f"smtp://127.0.0.1:{port}", timeout=0.2)
    try:
        with pytest.raises(DeliveryFailed) as caught:
            await sender.send(compose(content(), message_id()))
    finally:
        await sender.close()
        server.close()
        await server.wait_closed()
        await hung_up.wait()

    assert len(connected) == 1
    assert not caught.value.permanent
    assert caught.value.reason == f"connection timed out (127.0.0.1:{port})"


async def test_smtp_concurrent_sends_share_the_connection(
    smtp: SmtpServer, handler: Handler, transport: SmtpTransport
) -> None:
    ids = [message_id() for _ in range(5)]
    await asyncio.gather(*(transport.send(compose(content(), mid)) for mid in ids))

    assert sorted(r.message["Message-ID"] for r in handler.received) == sorted(ids)
    assert smtp.connections == 1


async def test_smtp_logs_in_with_decoded_credentials() -> None:
    handler = Handler()
    server = SmtpServer(handler, auth=True)
    await server.start()
    good = SmtpTransport(server.url("us%40er:p%3Ass%2Fw%40rd@"), timeout=5)
    bad = SmtpTransport(server.url("us%40er:wrong@"), timeout=5)
    try:
        await good.send(compose(content(), message_id()))
        with pytest.raises(DeliveryFailed) as caught:
            await bad.send(compose(content(), message_id()))
    finally:
        await good.close()
        await bad.close()
        await server.stop()

    assert handler.logins[0] == (b"us@er", b"p:ss/w@rd")
    assert len(handler.received) == 1
    # A refused login is the configuration's fault, not the mail's: retried later.
    assert not caught.value.permanent
    assert caught.value.reason.startswith("SMTP authentication failed: 535")


async def test_smtp_close_quits(smtp: SmtpServer, handler: Handler) -> None:
    sender = SmtpTransport(smtp.url(), timeout=5)
    await sender.close()  # never connected: nothing to do
    await sender.send(compose(content(), message_id()))
    await sender.close()
    await sender.send(compose(content(), message_id()))  # usable again, on a new connection
    await sender.close()

    assert len(handler.received) == 2
    assert smtp.connections == 2


# --- the Maildir ----------------------------------------------------------------------------


async def test_maildir_send_list_show(tmp_path: Path) -> None:
    path = tmp_path / "data" / "mail"
    maildir = MaildirTransport(path)
    first, second = message_id(), message_id()
    await maildir.send(compose(content(subject="first"), first))
    await maildir.send(compose(content(subject="second", to_name=""), second))
    await maildir.close()

    assert all((path / sub).is_dir() for sub in ("cur", "new", "tmp"))
    listed = list_maildir(path)
    assert [(m.message_id, m.subject) for m in listed] == [(second, "second"), (first, "first")]
    assert listed[0].to == "zoe@example.com"
    assert listed[1].to == "Zoë Ölund <zoe@example.com>"
    assert listed[0].date
    assert [m.message_id for m in list_maildir(path, limit=1)] == [second]

    by_key = show_maildir(path, listed[1].key)
    assert by_key is not None
    assert f"Message-ID: {first}\n" in by_key
    assert "Subject: first\n" in by_key
    assert by_key.endswith("\n\nHallo Zoë,\n\nthe printer is on fire.\n")
    assert show_maildir(path, second) == show_maildir(path, second.strip("<>"))
    assert "Subject: second\n" in (show_maildir(path, second) or "")
    assert show_maildir(path, "<absent@example.com>") is None


def test_maildir_absent(tmp_path: Path) -> None:
    assert list_maildir(tmp_path / "mail") == []
    assert show_maildir(tmp_path / "mail", "anything") is None
