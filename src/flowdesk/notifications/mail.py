"""Notification e-mail: composing a delivery's stored content into a MIME message, and the
transports that send it (an SMTP server over one kept connection, or a local Maildir that
`list_maildir` and `show_maildir` read back)."""

from __future__ import annotations

import asyncio
import email.errors
import email.policy
import email.utils
import errno
import functools
import mailbox
import os
import re
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import (
    Address,
    AddressHeader,
    BaseHeader,
    HeaderRegistry,
    MessageIDHeader,
)
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from pathlib import Path
from typing import Protocol, TypedDict, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import aiosmtplib


class MailContent(TypedDict):
    """A mail as a delivery stores it (JSON)."""

    from_addr: str  # "Display Name <addr@example.com>" already formatted, or a bare address
    to_addr: str  # a bare address
    to_name: str  # the display name, "" if none
    subject: str
    text: str
    html: str
    thread_id: str  # the ticket's thread: In-Reply-To and References
    ticket_number: str  # X-Flowdesk-Ticket


class DeliveryFailed(Exception):
    """A mail was not sent. `permanent`: sending it again cannot succeed (the server refused
    it with a 5xx reply, or an address is unusable); otherwise a later retry may.
    `unreachable`: no mail can be sent now (the server cannot be reached or refuses us)."""

    def __init__(self, reason: str, *, permanent: bool, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.unreachable = unreachable


# --- composing ------------------------------------------------------------------------------


class _HeaderClasses(HeaderRegistry):
    """The stock registry, with each header's class made once: the stock one builds a new
    class (`type(...)`) for every header set or read, which was a third of composing a mail
    (bench/README.md, "Notifications")."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def map_to_type(self, name: str, cls: type[BaseHeader]) -> None:
        super().map_to_type(name, cls)
        self._made.clear()

    def __getitem__(self, name: str) -> type[BaseHeader]:
        made = self._made.get(name)
        if made is None:
            made = self._made[name] = super().__getitem__(name)
        return made


_HEADERS = _HeaderClasses()
# The stock registry treats In-Reply-To and References as unstructured text, which folds a
# long message id into RFC 2047 encoded words that no mail client threads on.
# (typeshed misses that the registry mixes BaseHeader into the class it is given.)
_MESSAGE_ID_HEADER = cast("type[BaseHeader]", MessageIDHeader)
_HEADERS.map_to_type("in-reply-to", _MESSAGE_ID_HEADER)
_HEADERS.map_to_type("references", _MESSAGE_ID_HEADER)
# cte_type 7bit: bodies that are not plain short-lined ASCII get quoted-printable (or base64),
# so the message needs no 8BITMIME on the way and is stored the same in a Maildir.
POLICY = email.policy.SMTP.clone(header_factory=_HEADERS, cte_type="7bit")


def compose(content: MailContent, message_id: str) -> EmailMessage:
    """The multipart/alternative (text, then HTML) message of `content`, with the Message-ID
    `message_id` (a retry composes it again with the same one).

    Raises DeliveryFailed (permanent) when an address cannot be used, and ValueError for a
    malformed message id or thread id.
    """
    message = EmailMessage(policy=POLICY)
    message["From"] = _from_address(content["from_addr"])
    message["To"] = _mailbox(content["to_name"], content["to_addr"])
    message["Subject"] = _one_line(content["subject"])
    message["Date"] = email.utils.format_datetime(datetime.now(UTC))
    _set_message_id(message, "Message-ID", message_id)
    thread_id = _one_line(content["thread_id"]).strip()
    if thread_id:
        _set_message_id(message, "In-Reply-To", thread_id)
        _set_message_id(message, "References", thread_id)
    # RFC 3834: vacation responders and the like must not answer; Exchange only listens to
    # its own header. (Precedence: bulk is left out: RFC 3834 advises against relying on it.)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    ticket_number = _one_line(content["ticket_number"]).strip()
    if ticket_number:
        message["X-Flowdesk-Ticket"] = ticket_number
    message.set_content(content["text"])
    message.add_alternative(content["html"], subtype="html")
    return message


def _envelope(message: EmailMessage) -> tuple[str, list[str]]:
    """The SMTP envelope of a composed message: its From and To addresses."""
    sender, to = message["From"], message["To"]
    if not isinstance(sender, AddressHeader) or not isinstance(to, AddressHeader):
        raise DeliveryFailed("the mail has no From or To address", permanent=True)
    return sender.addresses[0].addr_spec, [a.addr_spec for a in to.addresses]


def _one_line(value: str) -> str:
    """`value` with every line break (CR, LF and the other separators str.splitlines knows)
    replaced by a space: a header value can never start another header."""
    return " ".join(value.splitlines())


def _set_message_id(message: EmailMessage, name: str, value: str) -> None:
    message[name] = _one_line(value).strip()
    header = message[name]
    if not isinstance(header, BaseHeader) or header.defects:
        del message[name]
        raise ValueError(f"{name} {value!r} is not a message id (<left@right>)")


@functools.lru_cache(maxsize=1024)
def _from_address(value: str) -> Address:
    """The From of a mail (parsed once per sender: every mail of a tenant has the same)."""
    header = _HEADERS("From", _one_line(value))
    addresses = header.addresses if isinstance(header, AddressHeader) else ()
    if header.defects or len(addresses) != 1:
        raise DeliveryFailed(f"bad From address {value!r}", permanent=True)
    return _mailbox(addresses[0].display_name, addresses[0].addr_spec)


def _mailbox(display_name: str, addr_spec: str) -> Address:
    try:
        parsed = Address(addr_spec=_one_line(addr_spec).strip())
        if not parsed.username or not parsed.domain:
            raise ValueError("no local part or no domain")
        # An internationalised domain goes as its ASCII (IDNA) form, which every server
        # takes; a non-ASCII local part needs a server with SMTPUTF8.
        domain = parsed.domain.encode("idna").decode("ascii")
        return Address(_one_line(display_name).strip(), parsed.username, domain)
    except (ValueError, IndexError, email.errors.HeaderParseError) as exc:
        raise DeliveryFailed(f"bad address {addr_spec!r}: {exc}", permanent=True) from exc


_DOMAIN = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|\[[\x21-\x5a\x5e-\x7e]+\]")


def mail_domain(from_setting: str) -> str:
    """The domain of the From setting ("flowdesk <desk@example.com>" or "desk@example.com"),
    for message ids; "localhost" when it has none usable."""
    _, addr = email.utils.parseaddr(from_setting)
    _, at, domain = addr.rpartition("@")
    try:
        domain = domain.strip().encode("idna").decode("ascii")
    except UnicodeError:
        return "localhost"
    return domain.lower() if at and _DOMAIN.fullmatch(domain) else "localhost"


def new_message_id(delivery_id: uuid.UUID, domain: str) -> str:
    """The Message-ID of a delivery's mail: stable, so a retry is recognisable as the same
    mail."""
    return f"<{delivery_id}@{domain}>"


# --- transports -----------------------------------------------------------------------------


class MailTransport(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Send `message`; raises DeliveryFailed."""
        ...

    async def close(self) -> None: ...


def transport_for(smtp_url: str | None, data_dir: Path, *, timeout: float = 10.0) -> MailTransport:
    """The SMTP transport of `smtp_url`, or without one the Maildir data_dir/mail."""
    if smtp_url:
        return SmtpTransport(smtp_url, timeout=timeout)
    return MaildirTransport(data_dir / "mail")


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to reach the SMTP server, from a URL:

    - smtp://host[:port]: plain SMTP (port 25); `?starttls=true` requires STARTTLS,
    - smtps://host[:port]: TLS from the start (port 465),
    - user:password@ (percent-encoded) in either: log in.
    """

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    implicit_tls: bool = False
    starttls: bool = False

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        """Raises ValueError for a URL that is not one of the forms above."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("the SMTP URL's scheme must be smtp or smtps")
        if not parts.hostname:
            raise ValueError("the SMTP URL has no host")
        if parts.path not in ("", "/") or parts.fragment:
            raise ValueError("the SMTP URL must have no path or fragment")
        starttls = False
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name != "starttls":
                raise ValueError(f"unknown SMTP URL parameter {name!r} (known: starttls)")
            if value.lower() not in _BOOLEANS:
                raise ValueError(f"starttls={value!r}: expected true or false")
            starttls = _BOOLEANS[value.lower()]
        implicit_tls = parts.scheme == "smtps"
        if implicit_tls and starttls:
            raise ValueError("smtps is TLS from the start; starttls applies to smtp only")
        port = parts.port  # ValueError for a port that is not a number in range
        return cls(
            host=parts.hostname,
            port=port or (465 if implicit_tls else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            implicit_tls=implicit_tls,
            starttls=starttls,
        )

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

# RFC 4954's replies about authentication or encryption: they say our configuration is wrong,
# not the mail, and every mail would get the same until it is fixed; a retry can succeed then.
_CONFIGURATION_CODES = frozenset({530, 534, 535, 538})


class SmtpTransport:
    """Sends through one SMTP server over one connection, opened at the first send and kept
    for the next ones (one send at a time)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.config = SmtpConfig.from_url(url)
        self.timeout = timeout
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()

    async def send(self, message: EmailMessage) -> None:
        async with self._lock:
            try:
                await self._send(message)
            except asyncio.CancelledError:
                # Cancelled mid-command, the server's reply may still come: the connection
                # could pair it with the next command.
                self._drop()
                raise

    async def close(self) -> None:
        async with self._lock:
            client, self._client = self._client, None
            if client is None or not client.is_connected:
                return
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                pass  # the server went first; the socket is closed below either way
            finally:
                client.close()

    async def _send(self, message: EmailMessage) -> None:
        # The envelope from the headers compose() already parsed, and the message flattened
        # once: aiosmtplib's send_message would parse the headers again, copy the message and
        # refold every header (about half of a mail's CPU, bench/README.md).
        sender, recipients = _envelope(message)
        raw = message.as_bytes()
        client = self._client
        reused = client is not None and client.is_connected
        if client is None or not reused:
            client = await self._connect()
        try:
            await client.sendmail(sender, recipients, raw)
        except Exception as exc:
            if not (reused and _went_away(exc)):
                raise self._failure(exc) from exc
            # A kept connection the server has closed since (idle timeout, restart) shows only
            # when used: send once more on a new one. (Lost after the message's final dot
            # the mail may arrive twice, with the same Message-ID.)
            client = await self._connect()
            try:
                await client.sendmail(sender, recipients, raw)
            except Exception as retry_exc:
                raise self._failure(retry_exc) from retry_exc

    async def _connect(self) -> aiosmtplib.SMTP:
        self._drop()
        config = self.config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.implicit_tls,
            start_tls=config.starttls,
            timeout=self.timeout,
        )
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Whatever fails before a mail is offered (refused, greeting, EHLO, TLS, login) is
            # about the server or the configuration, not the mail: temporary.
            raise DeliveryFailed(
                self._connect_reason(exc), permanent=False, unreachable=True
            ) from exc
        self._client = client
        return client

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _connect_reason(self, exc: BaseException) -> str:
        where = self.config.address
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            return f"SMTP authentication failed: {exc.code} {_one_line(exc.message)}"
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return f"SMTP {exc.code} {_one_line(exc.message)} ({where})"
        if isinstance(exc, TimeoutError):
            return f"connection timed out ({where})"
        cause = exc.__cause__ if isinstance(exc, aiosmtplib.SMTPConnectError) else exc
        if isinstance(cause, OSError) and not isinstance(cause, aiosmtplib.SMTPException):
            return f"{_describe_os_error(cause)} ({where})"
        if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
            return f"connection lost ({where})"
        message = exc.message if isinstance(exc, aiosmtplib.SMTPException) else str(exc)
        return f"{_one_line(message)} ({where})"

    def _failure(self, exc: Exception) -> DeliveryFailed:
        """The DeliveryFailed of an error while offering a mail; anything unforeseen is
        raised as it is."""
        where = self.config.address
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            refused = exc.recipients[0]
            return DeliveryFailed(
                f"SMTP {refused.code} {_one_line(refused.message)}",
                permanent=all(_permanent(r.code) for r in exc.recipients),
            )
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return DeliveryFailed(
                f"SMTP {exc.code} {_one_line(exc.message)}", permanent=_permanent(exc.code)
            )
        if isinstance(exc, TimeoutError):
            return DeliveryFailed(f"SMTP timed out ({where})", permanent=False)
        if isinstance(exc, ConnectionError):  # SMTPServerDisconnected is one
            return DeliveryFailed(f"connection lost ({where})", permanent=False)
        if isinstance(exc, aiosmtplib.SMTPNotSupported):
            # The mail needs what the server lacks (SMTPUTF8 for a non-ASCII address).
            return DeliveryFailed(_one_line(exc.message), permanent=True)
        if isinstance(exc, aiosmtplib.SMTPException):
            return DeliveryFailed(f"{_one_line(exc.message)} ({where})", permanent=False)
        if isinstance(exc, OSError):
            return DeliveryFailed(f"{_describe_os_error(exc)} ({where})", permanent=False)
        if isinstance(exc, ValueError):
            # aiosmtplib refuses an address it cannot put on a command line, before sending.
            return DeliveryFailed(f"bad address: {exc}", permanent=True)
        raise exc


def _permanent(code: int) -> bool:
    return 500 <= code < 600 and code not in _CONFIGURATION_CODES


def _went_away(exc: Exception) -> bool:
    """Whether `exc` says the server closed the connection (421: it is closing it)."""
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return True
    return isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code == 421


def _describe_os_error(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host: {exc.strerror}"
    return f"cannot connect: {exc.strerror or exc}"


class MaildirTransport:
    """Writes each mail into the Maildir at `path` (created when missing), for development:
    `list_maildir` and `show_maildir` read it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def send(self, message: EmailMessage) -> None:
        # Maildir files conventionally end lines with LF, not SMTP's CRLF.
        data = message.as_bytes(policy=message.policy.clone(linesep="\n"))
        try:
            await asyncio.to_thread(self._deliver, data)
        except OSError as exc:
            raise DeliveryFailed(f"cannot write to {self.path}: {exc}", permanent=False) from exc

    async def close(self) -> None:
        pass

    def _deliver(self, data: bytes) -> str:
        # mailbox.Maildir(create=True) creates only a missing last directory, and no
        # cur/new/tmp in an existing one.
        for sub in ("cur", "new", "tmp"):
            (self.path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        return mailbox.Maildir(self.path, factory=None, create=False).add(data)


@dataclass(frozen=True)
class StoredMail:
    key: str  # the Maildir key
    message_id: str
    date: str
    to: str
    subject: str


def list_maildir(path: Path, limit: int = 50) -> list[StoredMail]:
    """The newest `limit` mails of the Maildir at `path` (none if it does not exist), newest
    first, from their headers only."""
    files = sorted(_message_files(path).items(), key=_arrival, reverse=True)[: max(limit, 0)]
    listed = []
    for key, file in files:
        headers = _headers(file)
        date = headers.get("Date")
        if date is None:
            date = email.utils.format_datetime(datetime.fromtimestamp(file.stat().st_mtime, UTC))
        listed.append(
            StoredMail(
                key=key,
                message_id=str(headers.get("Message-ID", "")),
                date=str(date),
                to=str(headers.get("To", "")),
                subject=str(headers.get("Subject", "")),
            )
        )
    return listed


def show_maildir(path: Path, key_or_message_id: str) -> str | None:
    """The mail of the Maildir at `path` with that key or Message-ID (brackets optional) as
    text: its headers decoded, a blank line and its text part; None if there is none."""
    files = _message_files(path)
    file = files.get(key_or_message_id)
    if file is None:
        wanted = _bare_id(key_or_message_id)
        file = next((f for f in files.values() if _message_id(f) == wanted), None)
    if file is None:
        return None
    return _as_text(file.read_bytes())


def _message_files(path: Path) -> dict[str, Path]:
    """Each mail's file by Maildir key: its name up to the info part (":2,..."), in new/ or
    cur/, as mailbox.Maildir names them."""
    files: dict[str, Path] = {}
    for sub in ("new", "cur"):
        try:
            entries = list(os.scandir(path / sub))
        except FileNotFoundError:
            continue
        for entry in entries:
            if not entry.name.startswith(".") and entry.is_file():
                files[entry.name.split(":", 1)[0]] = Path(entry.path)
    return files


# A Maildir unique name "seconds.M<microseconds>P<pid>Q<count>.host": finer than the file's
# time, which the kernel keeps to a few milliseconds, so two quick mails still sort right.
_UNIQUE_NAME = re.compile(r"(\d+)\.M(\d+)P\d+Q(\d+)\.")


def _arrival(item: tuple[str, Path]) -> tuple[int, int, int, int]:
    key, file = item
    named = _UNIQUE_NAME.match(key)
    seconds, micros, count = (int(g) for g in named.groups()) if named else (0, 0, 0)
    return file.stat().st_mtime_ns, seconds, micros, count


def _headers(file: Path) -> EmailMessage:
    with file.open("rb") as stream:
        headers = BytesHeaderParser(policy=email.policy.default).parse(stream)
    assert isinstance(headers, EmailMessage)
    return headers


def _message_id(file: Path) -> str:
    return _bare_id(str(_headers(file).get("Message-ID", "")))


def _bare_id(message_id: str) -> str:
    return message_id.strip().removeprefix("<").removesuffix(">")


def _as_text(raw: bytes) -> str:
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("plain",))
    if body is None:
        return raw.decode("utf-8", "replace")
    headers = "".join(f"{name}: {value}\n" for name, value in message.items())
    return f"{headers}\n{body.get_content()}"
