"""The relay: turns outbox messages into deliveries and sends the deliveries that are due.

Two loops per relay, each safe to run in any number of processes at once:

- fan-out claims a batch of outbox messages (FOR UPDATE SKIP LOCKED) and, in the same
  transaction, writes one delivery per recipient per channel with what is to be sent (the
  rendered mail, the webhook body). The unique (message, channel, recipient) key makes a
  repeated fan-out write nothing twice.
- sending claims a batch of due deliveries, moving each a lease ahead, commits, sends, then
  records each outcome: sent, a retry with exponential back-off and jitter, `failed` once the
  retry window (about 24 h) is over, or `dropped` (the month's e-mail quota is spent, or the
  endpoint was disabled). A worker that dies mid-send leaves its claims to come due again when
  their lease ends: at least once, with the same Message-ID or webhook-id, so receivers can
  drop the duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import formataddr, parseaddr
from typing import Any

from flowdesk.config import Settings
from flowdesk.db.pool import Database
from flowdesk.db.query import Connection
from flowdesk.itsm import repository as itsm_repo
from flowdesk.itsm.vocabulary import resolved_flags, resolved_quotas
from flowdesk.notifications import addressees
from flowdesk.notifications import repository as repo
from flowdesk.notifications.addressees import APPROVAL_REQUESTED, ApprovalAsk
from flowdesk.notifications.audience import Audience
from flowdesk.notifications.content import (
    event_context,
    render_mail,
    template_source,
    ticket_context,
)
from flowdesk.notifications.mail import (
    DeliveryFailed,
    MailContent,
    MailTransport,
    compose,
    mail_domain,
    new_message_id,
    transport_for,
)
from flowdesk.notifications.recipients import Recipient, mail_recipients
from flowdesk.notifications.repository import (
    CommentNoticeRow,
    DeliveryRow,
    MessageRow,
    NewDelivery,
    Outcome,
    PersonRow,
    TemplateRow,
    TenantNoticeRow,
    TicketNoticeRow,
    WebhookRow,
)
from flowdesk.notifications.templates import TemplateSource, builtin
from flowdesk.notifications.webhook_http import WebhookResult, WebhookSender
from flowdesk.periodic import Periodic
from flowdesk.tickets.facts import dump_json, needs, ticket_json
from flowdesk.vocabulary import TICKET_TOPICS, WEBHOOK_DISABLED
from flowdesk.workflow import Catalog

logger = logging.getLogger(__name__)

# How many webhook requests one relay has in flight at once.
WEBHOOK_CONCURRENCY = 16
PURGE_BATCH = 1000
# A batch's outcomes are recorded after every this many sends.
RECORD_EVERY = 10
# The longest pause of a relay loop after failures in a row.
MAX_FAILURE_PAUSE = 60.0


def this_month(now: datetime | None = None) -> date:
    """The calendar month (UTC) that mails count against."""
    now = now or datetime.now(UTC)
    return date(now.year, now.month, 1)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_seconds: float
    max_seconds: float

    def delay(self, attempts: int) -> float:
        """Seconds before the next attempt after `attempts` tries: doubling from the base up
        to the cap, with ±20% jitter so that a burst of failures does not retry in step."""
        # The exponent is bounded: 2.0 ** 1024 raises OverflowError, and a short cap allows
        # that many attempts within the retry window.
        doublings = min(max(attempts - 1, 0), 1000)
        raw = min(self.base_seconds * 2.0**doublings, self.max_seconds)
        return raw * random.uniform(0.8, 1.2)


class Relay:
    """One process's relay (a serve process's background task, or `flowdesk worker`)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        catalog: Catalog,
        *,
        sender: WebhookSender | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._catalog = catalog
        smtp_url = settings.smtp_url.get_secret_value() if settings.smtp_url else None
        # Mails go over several connections at once: each mail waits on a few round trips to
        # the server, which the other connections' mails fill.
        self._transports = [
            transport_for(smtp_url, settings.data_dir, timeout=settings.smtp_timeout_seconds)
            for _ in range(settings.smtp_connections)
        ]
        self._sender = sender or WebhookSender(
            allow_private=settings.webhook_allow_private,
            timeout=settings.webhook_timeout_seconds,
        )
        self._retry = RetryPolicy(
            settings.delivery_retry_base_seconds, settings.delivery_retry_max_seconds
        )
        self._from_name, self._from_addr = parseaddr(settings.mail_from)
        self._domain = mail_domain(settings.mail_from)
        self._batch = settings.relay_batch_size
        self._due = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._webhook_slots = asyncio.Semaphore(WEBHOOK_CONCURRENCY)

    @property
    def webhook_sender(self) -> WebhookSender:
        """The relay's sender, shared with the endpoint that tests a webhook."""
        return self._sender

    # --- running ------------------------------------------------------------------------

    def start(self) -> None:
        if self._settings.relay_poll_seconds <= 0 or self._tasks:
            return
        self._tasks = [
            asyncio.create_task(
                self._loop("relay-fan-out", self.fan_out, None), name="relay-fan-out"
            ),
            asyncio.create_task(
                self._loop("relay-send", self.send_due, self._due), name="relay-send"
            ),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for transport in self._transports:
            await transport.close()
        await self._sender.close()

    async def _loop(
        self, name: str, step: Callable[[], Awaitable[int]], wake: asyncio.Event | None
    ) -> None:
        poll = self._settings.relay_poll_seconds
        failures = 0
        while True:
            try:
                done = await step()
                failures = 0
            except Exception:
                # The database or a transport is down: back off (up to a minute) rather than
                # log the same failure every poll. (Bounded: after ~17 h down, 2**failures
                # would no longer convert to float, and the loop would die.)
                failures = min(failures + 1, 64)
                logger.warning("%s failed; trying again shortly", name, exc_info=True)
                await asyncio.sleep(min(poll * 2**failures, MAX_FAILURE_PAUSE))
                continue
            if done >= self._batch:
                continue  # more is waiting
            if wake is None:
                await asyncio.sleep(poll)
                continue
            # Idle: wait for the poll interval, or less when this process's fan-out made
            # deliveries (the send loop need not wait for its next poll to see them).
            # Not wait_for: on 3.11 it drops a stop landing as the wake fires (gh-86296).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await wake.wait()
            wake.clear()

    async def drain(self) -> None:
        """Fan out and send until nothing is due now (the CLI's `--once`, and tests)."""
        while await self.fan_out() or await self.send_due():
            pass

    # --- fan-out ------------------------------------------------------------------------

    async def fan_out(self) -> int:
        """Turn one batch of outbox messages into deliveries; how many messages it took."""
        async with self._db.transaction() as conn:
            messages = await repo.claim_messages(conn, self._batch)
            if not messages:
                return 0
            plan = await _FanOut.read(conn, messages, self._catalog)
            # Rendering is CPU work (a tenant's template may take its whole budget, up to about
            # half a second): off the event loop, which serves requests in a serve process.
            new = await asyncio.to_thread(self._deliveries_of_all, messages, plan)
            await repo.add_deliveries(conn, new, self._retry_window())
        if new:
            self._due.set()
        return len(messages)

    def _retry_window(self) -> int:
        return round(self._settings.delivery_retry_hours * 3600)

    def _deliveries_of_all(self, messages: list[MessageRow], plan: _FanOut) -> list[NewDelivery]:
        return [d for m in messages for d in self._deliveries_of(m, plan)]

    def _deliveries_of(self, message: MessageRow, plan: _FanOut) -> list[NewDelivery]:
        tenant = plan.tenants.get(message["tenant_id"])
        ticket = plan.ticket_of(message)
        if tenant is None or ticket is None or message["topic"] not in TICKET_TOPICS:
            return []  # the ticket (or tenant) is gone: nobody to tell about it
        made: list[NewDelivery] = []
        flags = resolved_flags(tenant["flags"])
        if tenant["licence_active"] and flags["email_notifications"]:
            made += self._mails_of(message, tenant, ticket, plan, custom=flags["email_templates"])
        for hook in plan.hooks.get(message["tenant_id"], ()):
            if message["topic"] in hook["events"]:
                made.append(self._webhook_delivery(message, ticket, hook, plan))
        return made

    def _mails_of(
        self,
        message: MessageRow,
        tenant: TenantNoticeRow,
        ticket: TicketNoticeRow,
        plan: _FanOut,
        *,
        custom: bool,
    ) -> list[NewDelivery]:
        payload = message["payload"]
        topic = message["topic"]
        comment = plan.comment_of(message)
        reporter = (
            _person(ticket["requester_email"], ticket["requester_name"], ticket["requester_id"])
            if ticket["requester_live"]
            else None
        )
        assignee = plan.person(message["tenant_id"], payload.get("assignee_id"))
        if topic in addressees.APPROVAL_TOPICS:
            assignee = addressees.assignee_of(ticket)
        addressed: list[Recipient] = []
        policy = None
        if topic in addressees.SLA_TOPICS:
            policy = addressees.sla_policy(self._catalog, ticket, payload.get("name"))
            target = addressees.sla_target(topic, payload, policy)
            addressed = addressees.sla_recipients(topic, target, ticket, plan.audience)
        queue: list[Recipient]
        if message["topic"] != "ticket.created":
            queue = []
        elif tenant["queue_email"]:
            queue = [Recipient(tenant["queue_email"], f"{tenant['name']} queue", None)]
        else:
            queue = [_recipient(p) for p in plan.agents.get(message["tenant_id"], ())]
        recipients = mail_recipients(
            message["topic"],
            payload,
            reporter=reporter,
            assignee=assignee,
            queue=queue,
            comment_visibility=comment["visibility"] if comment else None,
            addressed=addressed,
        )
        asks = plan.asks.get((message["tenant_id"], message["id"]), [])
        if not recipients and not asks:
            return []
        actor = plan.person(message["tenant_id"], payload.get("actor_id"))
        approver = plan.person(message["tenant_id"], payload.get("approver_id"))
        context = ticket_context(
            ticket,
            payload,
            catalog=self._catalog,
            portal_url=self._settings.portal_url,
            tenant_name=tenant["name"],
            comment_body=comment["body"] if comment else "",
            actor_name=actor.name if actor else "",
        ) | event_context(
            topic,
            payload,
            catalog=self._catalog,
            ticket=ticket,
            policy=policy,
            approver_name=approver.name if approver else "",
        )

        def source_of(event: str) -> TemplateSource:
            return template_source(
                event, plan.templates.get((tenant["id"], event)) if custom else None
            )

        made = self._rendered(
            message, tenant, ticket, topic, source_of(topic), context, [(r, {}) for r in recipients]
        )
        # Those who may give an approval the request now waits on (a status change into
        # Authorize): asked once each, unless the change's own mail reaches them already.
        mailed = {r.email.strip().casefold() for r in recipients}
        asked = [
            (a.recipient, {"approval_name": " and ".join(a.labels)})
            for a in asks
            if a.recipient.email.strip().casefold() not in mailed
        ]
        if asked:
            made += self._rendered(
                message,
                tenant,
                ticket,
                APPROVAL_REQUESTED,
                source_of(APPROVAL_REQUESTED),
                context,
                asked,
            )
        return made

    def _rendered(
        self,
        message: MessageRow,
        tenant: TenantNoticeRow,
        ticket: TicketNoticeRow,
        event: str,
        source: TemplateSource,
        context: dict[str, str],
        people: list[tuple[Recipient, dict[str, str]]],
    ) -> list[NewDelivery]:
        """The mails of one event to `people`, each rendered with their name (and their own
        values on top of `context`)."""
        number = context["ticket_number"]
        sender = formataddr((tenant["mail_from_name"] or self._from_name, self._from_addr))
        made: list[NewDelivery] = []
        for person, own in people:
            delivery_id = uuid.uuid4()
            mail = render_mail(source, event, {**context, **own, "recipient_name": person.name})
            content: MailContent = {
                "from_addr": sender,
                "to_addr": person.email,
                "to_name": person.name,
                "subject": mail.subject,
                "text": mail.text,
                "html": mail.html,
                "thread_id": f"<ticket-{ticket['id']}@{self._domain}>",
                "ticket_number": number,
            }
            made.append(
                {
                    "tenant_id": message["tenant_id"],
                    "id": delivery_id,
                    "outbox_id": message["id"],
                    "ticket_id": ticket["id"],
                    "event": event,
                    "channel": "email",
                    "recipient": person.email,
                    "webhook_id": None,
                    "message_id": new_message_id(delivery_id, self._domain),
                    "content": dict(content),
                }
            )
        return made

    def _webhook_delivery(
        self, message: MessageRow, ticket: TicketNoticeRow, hook: WebhookRow, plan: _FanOut
    ) -> NewDelivery:
        delivery_id = uuid.uuid4()
        payload = {k: v for k, v in message["payload"].items() if k != "ticket_id"}
        data: dict[str, Any] = {"ticket": ticket_json(ticket), **payload}
        comment = plan.comment_of(message)
        if comment is not None:
            data["comment"] = {
                "id": comment["id"],
                "visibility": comment["visibility"],
                "body": comment["body"],
                "author": comment["author_name"],
            }
        body = {"type": message["topic"], "timestamp": message["created_at"], "data": data}
        return {
            "tenant_id": message["tenant_id"],
            "id": delivery_id,
            "outbox_id": message["id"],
            "ticket_id": ticket["id"],
            "event": message["topic"],
            "channel": "webhook",
            "recipient": str(hook["id"]),
            "webhook_id": hook["id"],
            "message_id": f"msg_{delivery_id.hex}",
            "content": {"body": dump_json(body).decode()},
        }

    # --- sending ------------------------------------------------------------------------

    async def send_due(self) -> int:
        """Send one batch of due deliveries and record their outcomes; how many it took.

        Outcomes are recorded every few sends, not once at the end: a relay that dies
        mid-batch sends again only what it had not yet recorded, and a slow server cannot
        hold a batch past its lease. Past half the lease, the rest of the batch is given
        back untried for the next claim."""
        month = this_month()
        lease = self._settings.delivery_lease_seconds
        async with self._db.transaction() as conn:
            claimed = await repo.claim_due(conn, self._batch, lease)
            if not claimed:
                return 0
            sendable, outcomes = await self._admit(conn, claimed, month)
            hooks = await repo.webhooks_by_key(
                conn,
                [(d["tenant_id"], d["webhook_id"]) for d in sendable if d["webhook_id"]],
            )
            if outcomes:
                await repo.settle(conn, outcomes)
        started = time.monotonic()
        unreachable: str | None = None
        for first in range(0, len(sendable), RECORD_EVERY):
            if time.monotonic() - started > lease / 2:
                await self._release(sendable[first:])
                break
            chunk = sendable[first : first + RECORD_EVERY]
            mails = [d for d in chunk if d["channel"] == "email"]
            calls = [d for d in chunk if d["channel"] != "email"]
            # Mails one after another (one SMTP connection), webhooks side by side with them.
            (mailed, unreachable), called = await asyncio.gather(
                self._send_mails(mails, unreachable),
                asyncio.gather(*(self._call_webhook(d, hooks) for d in calls)),
            )
            await self._record([*zip(mails, mailed, strict=True), *zip(calls, called, strict=True)])
        return len(claimed)

    async def _admit(
        self, conn: Connection, claimed: list[DeliveryRow], month: date
    ) -> tuple[list[DeliveryRow], list[Outcome]]:
        """Count the claimed mails against each tenant's monthly quota (once per mail: one
        claimed again after its relay died is counted already); those over it are dropped
        (never retried) and the tenant's quota alert raised."""
        mails: dict[uuid.UUID, list[DeliveryRow]] = {}
        sendable: list[DeliveryRow] = []
        for delivery in claimed:
            if delivery["channel"] == "email" and delivery["quota_month"] is None:
                mails.setdefault(delivery["tenant_id"], []).append(delivery)
            else:
                sendable.append(delivery)
        dropped: list[Outcome] = []
        if not mails:
            return sendable, dropped
        tenants = await repo.tenants_by_id(conn, list(mails))
        counted: list[DeliveryRow] = []
        for tenant_id, batch in sorted(mails.items()):
            tenant = tenants.get(tenant_id)
            limit = resolved_quotas(tenant["quotas"] if tenant else {})["max_emails_month"]
            granted, count = await repo.reserve_emails(conn, tenant_id, month, len(batch), limit)
            counted += batch[:granted]
            for delivery in batch[granted:]:
                dropped.append(
                    _outcome(
                        delivery,
                        "dropped",
                        f"the tenant's monthly e-mail quota ({limit}) is reached",
                    )
                )
            if granted < len(batch) and limit is not None:
                await itsm_repo.open_over_quota_alert(
                    conn, tenant_id, "max_emails_month", limit, count + len(batch) - granted
                )
        await repo.mark_counted(conn, [(d["tenant_id"], d["id"]) for d in counted], month)
        sendable += [{**d, "quota_month": month} for d in counted]
        return sendable, dropped

    async def _call_webhook(
        self, delivery: DeliveryRow, hooks: dict[tuple[uuid.UUID, uuid.UUID], WebhookRow]
    ) -> Attempt:
        hook = hooks.get((delivery["tenant_id"], delivery["webhook_id"]))  # type: ignore[arg-type]
        if hook is None or not hook["enabled"]:
            return Attempt(ok=False, error="the endpoint is disabled", permanent=True, drop=True)
        async with self._webhook_slots:
            result = await self._sender.send(
                hook["url"],
                hook["secret"],
                delivery["message_id"],
                delivery["content"]["body"].encode(),
            )
        return _attempt_of(result)

    async def _send_mails(
        self, mails: list[DeliveryRow], unreachable: str | None
    ) -> tuple[list[Attempt], str | None]:
        """Send the mails, each connection taking its share in order; (their attempts, why the
        server could not be reached if it could not: the batch's later mails are then not
        tried)."""
        lanes = self._transports[: len(mails)]
        attempts: list[Attempt] = [Attempt(ok=False)] * len(mails)
        cut_off = _CutOff(unreachable)

        async def lane(number: int, transport: MailTransport) -> None:
            for index in range(number, len(mails), len(lanes)):
                attempts[index] = await self._send_mail(transport, mails[index], cut_off)

        await asyncio.gather(*(lane(n, t) for n, t in enumerate(lanes)))
        return attempts, cut_off.reason

    @staticmethod
    async def _send_mail(
        transport: MailTransport, delivery: DeliveryRow, cut_off: _CutOff
    ) -> Attempt:
        if cut_off.reason is not None:
            # Each would wait out a connection timeout now: they wait for their retry.
            return Attempt(ok=False, error=cut_off.reason)
        content: MailContent = delivery["content"]  # type: ignore[assignment]
        try:
            await transport.send(compose(content, delivery["message_id"]))
        except DeliveryFailed as exc:
            if exc.unreachable:
                cut_off.reason = str(exc)
            return Attempt(ok=False, error=str(exc), permanent=exc.permanent)
        except Exception as exc:  # a mail that cannot be composed or sent at all
            logger.warning("mail %s could not be sent", delivery["id"], exc_info=True)
            return Attempt(ok=False, error=f"{type(exc).__name__}: {exc}")
        return Attempt(ok=True)

    async def _release(self, untried: list[DeliveryRow]) -> None:
        async with self._db.transaction() as conn:
            await repo.release(conn, [(d["tenant_id"], d["id"]) for d in untried])
            await self._give_back_counts(conn, untried)

    @staticmethod
    async def _give_back_counts(conn: Connection, unsent: Sequence[DeliveryRow]) -> None:
        """Give back the quota counts of mails that were counted but not sent."""
        counts: dict[tuple[uuid.UUID, date], int] = {}
        for delivery in unsent:
            if delivery["quota_month"] is not None:
                key = (delivery["tenant_id"], delivery["quota_month"])
                counts[key] = counts.get(key, 0) + 1
        for (tenant_id, month), count in sorted(counts.items()):
            await repo.release_emails(conn, tenant_id, month, count)

    async def _record(self, attempts: Sequence[tuple[DeliveryRow, Attempt]]) -> None:
        outcomes: list[Outcome] = []
        unsent: list[DeliveryRow] = []
        hook_ok: list[tuple[uuid.UUID, uuid.UUID]] = []
        hook_failed: list[tuple[uuid.UUID, uuid.UUID]] = []
        for delivery, attempt in attempts:
            if attempt.ok:
                outcomes.append(_outcome(delivery, "sent", None))
            elif attempt.drop:
                outcomes.append(_outcome(delivery, "dropped", attempt.error))
            elif attempt.permanent:
                outcomes.append(_outcome(delivery, "failed", attempt.error))
            else:
                delay = self._retry.delay(delivery["attempts"])
                outcomes.append(_outcome(delivery, "pending", attempt.error, delay))
            if not attempt.ok:
                unsent.append(delivery)
            if delivery["webhook_id"] is not None and not attempt.drop:
                key = (delivery["tenant_id"], delivery["webhook_id"])
                (hook_ok if attempt.ok else hook_failed).append(key)
        async with self._db.transaction() as conn:
            await repo.settle(conn, outcomes)
            await self._give_back_counts(conn, unsent)
            await repo.note_webhook_outcomes(conn, hook_ok, hook_failed)
            if hook_failed:
                disabled = await repo.disable_failing_webhooks(
                    conn,
                    self._settings.webhook_disable_after_hours * 3600,
                    f"every delivery failed for {self._settings.webhook_disable_after_hours:g} h",
                )
                if disabled:
                    await self._tell_admins(conn, disabled)

    async def _tell_admins(self, conn: Connection, disabled: list[WebhookRow]) -> None:
        """Mail the admins of each tenant whose endpoint was just disabled."""
        tenant_ids = [h["tenant_id"] for h in disabled]
        admins = await repo.admins_of(conn, tenant_ids)
        tenants = await repo.tenants_by_id(conn, tenant_ids)
        source = builtin(WEBHOOK_DISABLED)
        new: list[NewDelivery] = []
        for hook in disabled:
            tenant = tenants.get(hook["tenant_id"])
            for admin in admins.get(hook["tenant_id"], ()):
                delivery_id = uuid.uuid4()
                mail = render_mail(
                    source,
                    WEBHOOK_DISABLED,
                    {
                        "webhook_url": hook["url"],
                        "webhook_description": hook["description"],
                        "disabled_reason": hook["disabled_reason"] or "",
                        "tenant_name": tenant["name"] if tenant else "",
                        "recipient_name": admin["name"],
                    },
                )
                content: MailContent = {
                    "from_addr": formataddr(
                        ((tenant and tenant["mail_from_name"]) or self._from_name, self._from_addr)
                    ),
                    "to_addr": admin["email"],
                    "to_name": admin["name"],
                    "subject": mail.subject,
                    "text": mail.text,
                    "html": mail.html,
                    "thread_id": f"<webhook-{hook['id']}@{self._domain}>",
                    "ticket_number": "",
                }
                new.append(
                    {
                        "tenant_id": hook["tenant_id"],
                        "id": delivery_id,
                        "outbox_id": None,
                        "ticket_id": None,
                        "event": WEBHOOK_DISABLED,
                        "channel": "email",
                        "recipient": admin["email"],
                        "webhook_id": None,
                        "message_id": new_message_id(delivery_id, self._domain),
                        "content": dict(content),
                    }
                )
        await repo.add_deliveries(conn, new, self._retry_window())
        logger.warning("disabled %d failing webhook endpoint(s)", len(disabled))


@dataclass(slots=True)
class _CutOff:
    """Why the mail server could not be reached during a batch, once it could not."""

    reason: str | None


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    error: str | None = None
    permanent: bool = False
    # Not an attempt at all: nothing will ever send it (a disabled endpoint).
    drop: bool = False


def _attempt_of(result: WebhookResult) -> Attempt:
    return Attempt(ok=result.ok, error=result.error, permanent=result.permanent)


def _outcome(delivery: DeliveryRow, state: str, error: str | None, delay: float = 0.0) -> Outcome:
    return {
        "tenant_id": delivery["tenant_id"],
        "id": delivery["id"],
        "state": state,
        "delay": delay,
        "error": error[:2000] if error else None,
    }


def _person(email: str | None, name: str | None, user_id: uuid.UUID) -> Recipient | None:
    return Recipient(email, name or "", user_id) if email else None


def _recipient(person: PersonRow) -> Recipient:
    return Recipient(person["email"], person["name"], person["id"])


@dataclass(slots=True)
class _FanOut:
    """What a batch's fan-out reads, in one query per kind for the whole batch."""

    tenants: dict[uuid.UUID, TenantNoticeRow]
    tickets: dict[tuple[uuid.UUID, uuid.UUID], TicketNoticeRow]
    comments: dict[tuple[uuid.UUID, uuid.UUID], CommentNoticeRow]
    people: dict[tuple[uuid.UUID, uuid.UUID], PersonRow]
    agents: dict[uuid.UUID, list[PersonRow]]
    hooks: dict[uuid.UUID, list[WebhookRow]]
    templates: dict[tuple[uuid.UUID, str], TemplateRow]
    audience: Audience
    # By message key: the people asked for the approvals the message's ticket waits on.
    asks: dict[tuple[uuid.UUID, int], list[ApprovalAsk]]

    @classmethod
    async def read(cls, conn: Connection, messages: list[MessageRow], catalog: Catalog) -> _FanOut:
        tenant_ids = list({m["tenant_id"] for m in messages})
        tenants = await repo.tenants_by_id(conn, tenant_ids)
        mailing = [
            t
            for t in tenants.values()
            if t["licence_active"] and resolved_flags(t["flags"])["email_notifications"]
        ]
        tickets = await repo.tickets_by_key(
            conn, [k for m in messages if (k := _key(m, "ticket_id"))]
        )
        comments = await repo.comments_by_key(
            conn, [k for m in messages if (k := _key(m, "comment_id"))]
        )
        people = await repo.people_by_key(
            conn,
            [
                k
                for m in messages
                for f in ("actor_id", "assignee_id", "approver_id")
                if (k := _key(m, f))
            ],
        )
        need_agents = {
            m["tenant_id"]
            for m in messages
            if m["topic"] == "ticket.created"
            and m["tenant_id"] in tenants
            and not tenants[m["tenant_id"]]["queue_email"]
        }
        agents = await repo.agents_of(conn, list(need_agents)) if need_agents else {}
        hooks = await repo.enabled_webhooks_of(conn, tenant_ids)
        custom = [t["id"] for t in mailing if resolved_flags(t["flags"])["email_templates"]]
        templates = await repo.templates_of(conn, custom)
        mailing_ids = {t["id"] for t in mailing}
        mailed: list[tuple[MessageRow, TicketNoticeRow]] = []
        for message in messages:
            key = _key(message, "ticket_id")
            ticket = tickets.get(key) if key else None
            if ticket is not None and message["tenant_id"] in mailing_ids:
                mailed.append((message, ticket))
        audience, asks = await _indirect(conn, catalog, mailed)
        return cls(tenants, tickets, comments, people, agents, hooks, templates, audience, asks)

    def ticket_of(self, message: MessageRow) -> TicketNoticeRow | None:
        key = _key(message, "ticket_id")
        return self.tickets.get(key) if key else None

    def comment_of(self, message: MessageRow) -> CommentNoticeRow | None:
        key = _key(message, "comment_id")
        return self.comments.get(key) if key else None

    def person(self, tenant_id: uuid.UUID, user_id: object) -> Recipient | None:
        key = _key_of(tenant_id, user_id)
        found = self.people.get(key) if key else None
        return _recipient(found) if found else None


async def _indirect(
    conn: Connection, catalog: Catalog, mailed: list[tuple[MessageRow, TicketNoticeRow]]
) -> tuple[Audience, dict[tuple[uuid.UUID, int], list[ApprovalAsk]]]:
    """The people the batch's mailed messages name indirectly (SLA targets, approvers), read
    in one query per kind; and who is asked for an approval, by message. A status change asks
    only while its ticket is still in the status it entered (it waits on nothing else now)."""
    group_keys: list[tuple[uuid.UUID, str]] = []
    email_keys: list[tuple[uuid.UUID, str]] = []
    entered: list[tuple[MessageRow, TicketNoticeRow]] = []
    for message, ticket in mailed:
        tenant = message["tenant_id"]
        if message["topic"] in addressees.SLA_TOPICS:
            policy = addressees.sla_policy(catalog, ticket, message["payload"].get("name"))
            target = addressees.sla_target(message["topic"], message["payload"], policy)
            target_groups, target_emails = addressees.target_groups_and_emails(target)
            group_keys += [(tenant, n) for n in target_groups]
            email_keys += [(tenant, e) for e in target_emails]
        elif message["topic"] == "ticket.status_changed":
            workflow = catalog.workflows.get(ticket["workflow"])
            if (
                workflow is not None
                and message["payload"].get("to") == ticket["status"]
                and needs(workflow, "approval")
            ):
                entered.append((message, ticket))
    held = (
        await Audience.read(conn, tickets=[(t["tenant_id"], t["id"]) for _, t in entered])
        if entered
        else Audience()
    )
    awaited: dict[tuple[uuid.UUID, int], tuple[str, ...]] = {}
    managed: list[tuple[uuid.UUID, uuid.UUID]] = []
    for message, ticket in entered:
        names = addressees.awaited_for(
            catalog, ticket, held.approvals_of(ticket["tenant_id"], ticket["id"])
        )
        if not names:
            continue
        awaited[(message["tenant_id"], message["id"])] = names
        found_groups, found_emails = addressees.approval_groups_and_emails(catalog, names)
        group_keys += [(ticket["tenant_id"], n) for n in found_groups]
        email_keys += [(ticket["tenant_id"], e) for e in found_emails]
        if addressees.needs_manager(catalog, names):
            managed.append((ticket["tenant_id"], ticket["requester_id"]))
    audience = (
        await Audience.read(conn, groups=group_keys, emails=email_keys, reports=managed)
        if group_keys or email_keys or managed
        else Audience()
    )
    asks = {
        key: addressees.approvers(catalog, ticket, awaited[key], audience)
        for message, ticket in entered
        if (key := (message["tenant_id"], message["id"])) in awaited
    }
    return audience, asks


def _key(message: MessageRow, field: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    return _key_of(message["tenant_id"], message["payload"].get(field))


def _key_of(tenant_id: uuid.UUID, value: object) -> tuple[uuid.UUID, uuid.UUID] | None:
    try:
        return (tenant_id, uuid.UUID(str(value))) if value else None
    except ValueError:
        return None


async def purge(db: Database, settings: Settings) -> int:
    """Delete settled deliveries and relayed messages past the retention period, in bounded
    batches (each its own short transaction: no long lock, and autovacuum keeps up)."""
    older_than = round(settings.notification_retention_days * 86400)
    total = 0
    for purge_batch in (repo.purge_settled_deliveries, repo.purge_relayed_messages):
        while True:
            async with db.transaction() as conn:
                deleted = await purge_batch(conn, older_than, PURGE_BATCH)
            total += deleted
            if deleted < PURGE_BATCH:
                break
    return total


def purge_job(db: Database, settings: Settings) -> Periodic:
    return Periodic(
        "notification-purge", settings.notification_purge_seconds, lambda: purge(db, settings)
    )
