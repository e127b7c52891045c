"""A real SMTP server for the tests (aiosmtpd, in the test's event loop): it records what
arrives, can refuse a share of the mail, and can go down and come back on the same port."""

from __future__ import annotations

import asyncio
import email
import email.policy
import random
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class Handler:
    """Collects what arrives; answers RCPT or DATA with the reply set, if any."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None
        # The share of mails refused with a temporary error (451) at DATA.
        self.refuse_share = 0.0
        self.refused = 0
        self.logins: list[tuple[bytes, bytes]] = []

    def message_ids(self) -> list[str]:
        return [str(r.message["Message-ID"]) for r in self.received]

    def to(self, address: str) -> list[EmailMessage]:
        """The mails that reached `address`, in arrival order."""
        return [r.message for r in self.received if address in r.rcpt_tos]

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        if self.refuse_share and random.random() < self.refuse_share:
            self.refused += 1
            return "451 4.3.0 try again later"
        assert isinstance(envelope.original_content, bytes)
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        assert envelope.mail_from is not None
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 2.0.0 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        # handled=False: aiosmtpd, not this callback, answers the client.
        return AuthResult(success=data.password == b"p:ss/w@rd", handled=False)


class SmtpServer:
    """aiosmtpd on 127.0.0.1, one protocol object per connection (counted)."""

    def __init__(self, handler: Handler, *, auth: bool = False, port: int = 0) -> None:
        self.handler = handler
        self.auth = auth
        self.sessions: list[SMTP] = []
        self.server: asyncio.Server | None = None
        self.port = port

    @property
    def connections(self) -> int:
        return len(self.sessions)

    def url(self, userinfo: str = "") -> str:
        return f"smtp://{userinfo}127.0.0.1:{self.port}"

    def _session(self) -> SMTP:
        session = SMTP(
            self.handler,
            hostname="localhost",
            loop=asyncio.get_running_loop(),
            # Only for the test: AUTH over plain TCP, since there is no certificate.
            auth_require_tls=not self.auth,
            authenticator=self.handler.authenticate if self.auth else None,
        )
        self.sessions.append(session)
        return session

    async def start(self) -> None:
        # On the port it had before, when it comes back after `stop`.
        self.server = await asyncio.get_running_loop().create_server(
            self._session, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self.server.sockets[0].getsockname()[1]

    def drop_connections(self, farewell: bytes = b"") -> None:
        """Close every connection from the server's side, as an idle timeout or a restart."""
        for session in self.sessions:
            if session.transport is not None:
                assert isinstance(session.transport, asyncio.WriteTransport)
                if farewell:
                    session.transport.write(farewell)
                session.transport.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        self.drop_connections()
        await self.server.wait_closed()
        tasks = [s._handler_coroutine for s in self.sessions if s._handler_coroutine]
        if tasks:
            await asyncio.wait(tasks)
