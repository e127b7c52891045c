"""All SQL of notifications: claiming outbox messages and due deliveries, what a fan-out needs
to know (tickets, people, endpoints, templates), the delivery log, the monthly e-mail count,
webhook endpoints, templates and the purge. Statements are compiled once (flowdesk.db.query);
batches travel as arrays and are unnested, so one statement serves any batch size."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, TypedDict, TypeVar

from sqlalchemy import (
    Date,
    DateTime,
    Float,
    Integer,
    Join,
    String,
    Table,
    Text,
    Uuid,
    and_,
    bindparam,
    case,
    column,
    delete,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from flowdesk.db.query import Connection, Query, execute, row, rows, value
from flowdesk.models import (
    deliveries,
    email_usage,
    group_members,
    groups,
    notification_templates,
    outbox,
    tenants,
    ticket_comments,
    tickets,
    users,
    webhooks,
)
from flowdesk.tickets.repository import TicketRow
from flowdesk.tickets.sla_statements import clocks_json
from flowdesk.tickets.statements import TICKET_COLUMNS
from flowdesk.vocabulary import ADMIN, TICKETS_MANAGE


def _pairs(tenant_name: str, id_name: str, id_type: Any = Uuid) -> Any:
    """(tenant_id, id) pairs given as two arrays: every table leads its key with tenant_id."""
    return (
        func.unnest(
            bindparam(tenant_name, type_=ARRAY(Uuid)), bindparam(id_name, type_=ARRAY(id_type))
        )
        .table_valued("tenant_id", "id")
        .render_derived(name="k")
    )


_tenant_ids = bindparam("tenant_ids", type_=ARRAY(Uuid))


def _of_keys(table: Table) -> Join:
    """`table` narrowed to the rows whose (tenant_id, id) are given (`_key_arrays`)."""
    keys = _pairs("tenant_ids", "ids")
    return table.join(keys, and_(table.c.tenant_id == keys.c.tenant_id, table.c.id == keys.c.id))


class _Keyed(TypedDict):
    tenant_id: uuid.UUID
    id: uuid.UUID


KeyedT = TypeVar("KeyedT", bound=_Keyed)
Key = tuple[uuid.UUID, uuid.UUID]


async def _by_key(
    conn: Connection, row_type: type[KeyedT], query: Query, keys: Sequence[Key]
) -> dict[Key, KeyedT]:
    """The rows of a statement over `_of_keys`, by (tenant_id, id)."""
    found = await rows(conn, row_type, query, **_key_arrays(keys))
    return {(r["tenant_id"], r["id"]): r for r in found}


def _key_arrays(keys: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> dict[str, list[uuid.UUID]]:
    """The values of a `_pairs` statement: each distinct key once."""
    unique = list(set(keys))
    return {"tenant_ids": [t for t, _ in unique], "ids": [i for _, i in unique]}


def _seconds(amount: Any) -> Any:
    """An interval of `amount` seconds (a bound value or a column)."""
    return amount * literal_column("interval '1 second'")


# --- the outbox ------------------------------------------------------------------------------


class MessageRow(TypedDict):
    tenant_id: uuid.UUID
    id: int
    topic: str
    payload: dict[str, Any]
    created_at: datetime


def _claim_messages() -> Query:
    # SKIP LOCKED: relays running at once take disjoint batches, none waits for another.
    due = (
        select(outbox.c.tenant_id, outbox.c.id)
        .where(outbox.c.delivered_at.is_(None))
        .order_by(outbox.c.id)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True)
        .cte("due")
    )
    return Query(
        update(outbox)
        .where(outbox.c.tenant_id == due.c.tenant_id, outbox.c.id == due.c.id)
        .values(delivered_at=func.now())
        .returning(
            outbox.c.tenant_id, outbox.c.id, outbox.c.topic, outbox.c.payload, outbox.c.created_at
        )
    )


_CLAIM_MESSAGES = _claim_messages()


async def claim_messages(conn: Connection, limit: int) -> list[MessageRow]:
    """Take up to `limit` undelivered messages, oldest first, marking them relayed: the caller
    writes their deliveries in the same transaction, so a crash before its commit gives them
    back."""
    claimed = await rows(conn, MessageRow, _CLAIM_MESSAGES, limit=limit)
    return sorted(claimed, key=lambda m: m["id"])


# --- what a fan-out reads --------------------------------------------------------------------


class TenantNoticeRow(TypedDict):
    id: uuid.UUID
    name: str
    licence_active: bool
    flags: dict[str, object]
    quotas: dict[str, object]
    queue_email: str | None
    mail_from_name: str | None


_TENANTS = Query(
    select(
        tenants.c.id,
        tenants.c.name,
        tenants.c.licence_active,
        tenants.c.flags,
        tenants.c.quotas,
        tenants.c.queue_email,
        tenants.c.mail_from_name,
    ).where(tenants.c.id == func.any(_tenant_ids))
)


async def tenants_by_id(
    conn: Connection, tenant_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, TenantNoticeRow]:
    found = await rows(conn, TenantNoticeRow, _TENANTS, tenant_ids=list(set(tenant_ids)))
    return {t["id"]: t for t in found}


class TicketNoticeRow(TicketRow):
    """A ticket as its JSON shows it (flowdesk.tickets.facts.ticket_json), with the addresses
    of its requester and assignee."""

    requester_email: str
    requester_live: bool
    assignee_email: str | None
    assignee_live: bool | None


def _tickets() -> Query:
    r, a = users.alias("r"), users.alias("a")
    return Query(
        select(
            *TICKET_COLUMNS,
            r.c.name.label("requester_name"),
            r.c.email.label("requester_email"),
            r.c.deleted_at.is_(None).label("requester_live"),
            a.c.name.label("assignee_name"),
            a.c.email.label("assignee_email"),
            a.c.deleted_at.is_(None).label("assignee_live"),
            # The SLA clocks, for the ticket a webhook shows.
            clocks_json(tickets.c.tenant_id, tickets.c.id),
        ).select_from(
            _of_keys(tickets)
            .join(r, and_(r.c.tenant_id == tickets.c.tenant_id, r.c.id == tickets.c.requester_id))
            .outerjoin(
                a, and_(a.c.tenant_id == tickets.c.tenant_id, a.c.id == tickets.c.assignee_id)
            )
        )
    )


_TICKETS = _tickets()


async def tickets_by_key(conn: Connection, keys: Sequence[Key]) -> dict[Key, TicketNoticeRow]:
    return await _by_key(conn, TicketNoticeRow, _TICKETS, keys)


class CommentNoticeRow(TypedDict):
    tenant_id: uuid.UUID
    id: uuid.UUID
    body: str
    visibility: str
    author_name: str


def _comments() -> Query:
    return Query(
        select(
            ticket_comments.c.tenant_id,
            ticket_comments.c.id,
            ticket_comments.c.body,
            ticket_comments.c.visibility,
            users.c.name.label("author_name"),
        ).select_from(
            _of_keys(ticket_comments).join(
                users,
                and_(
                    users.c.tenant_id == ticket_comments.c.tenant_id,
                    users.c.id == ticket_comments.c.author_id,
                ),
            )
        )
    )


_COMMENTS = _comments()


async def comments_by_key(conn: Connection, keys: Sequence[Key]) -> dict[Key, CommentNoticeRow]:
    return await _by_key(conn, CommentNoticeRow, _COMMENTS, keys)


class PersonRow(TypedDict):
    tenant_id: uuid.UUID
    id: uuid.UUID
    name: str
    email: str


def _people() -> Query:
    return Query(
        select(users.c.tenant_id, users.c.id, users.c.name, users.c.email)
        .select_from(_of_keys(users))
        .where(users.c.deleted_at.is_(None))
    )


_PEOPLE = _people()


async def people_by_key(conn: Connection, keys: Sequence[Key]) -> dict[Key, PersonRow]:
    """The live users among `keys` ((tenant id, user id) pairs)."""
    return await _by_key(conn, PersonRow, _PEOPLE, keys)


def _holders(permissions: tuple[str, ...]) -> Query:
    """The live people (not service accounts) of the tenants holding any of `permissions`."""
    return Query(
        select(users.c.tenant_id, users.c.id, users.c.name, users.c.email)
        .where(
            users.c.tenant_id == func.any(_tenant_ids),
            users.c.deleted_at.is_(None),
            users.c.kind == "person",
            select(literal(1))
            .select_from(
                group_members.join(
                    groups,
                    and_(
                        groups.c.tenant_id == group_members.c.tenant_id,
                        groups.c.id == group_members.c.group_id,
                    ),
                )
            )
            .where(
                group_members.c.tenant_id == users.c.tenant_id,
                group_members.c.user_id == users.c.id,
                groups.c.permissions.overlap(
                    func.cast(literal(list(permissions), ARRAY(Text)), ARRAY(Text))
                ),
            )
            .exists(),
        )
        .order_by(users.c.tenant_id, users.c.email)
    )


# Admin implies every permission, so admins work the queue too.
_AGENTS = _holders((TICKETS_MANAGE, ADMIN))
_ADMINS = _holders((ADMIN,))


async def agents_of(
    conn: Connection, tenant_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[PersonRow]]:
    return _by_tenant(await rows(conn, PersonRow, _AGENTS, tenant_ids=list(set(tenant_ids))))


async def admins_of(
    conn: Connection, tenant_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[PersonRow]]:
    return _by_tenant(await rows(conn, PersonRow, _ADMINS, tenant_ids=list(set(tenant_ids))))


def _by_tenant(people: list[PersonRow]) -> dict[uuid.UUID, list[PersonRow]]:
    grouped: dict[uuid.UUID, list[PersonRow]] = {}
    for person in people:
        grouped.setdefault(person["tenant_id"], []).append(person)
    return grouped


# --- webhook endpoints -----------------------------------------------------------------------


class WebhookRow(TypedDict):
    tenant_id: uuid.UUID
    id: uuid.UUID
    url: str
    events: list[str]
    description: str
    secret: str
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


_HOOKS_OF = Query(
    select(webhooks)
    .where(webhooks.c.tenant_id == func.any(_tenant_ids), webhooks.c.enabled)
    .order_by(webhooks.c.tenant_id, webhooks.c.created_at)
)


async def enabled_webhooks_of(
    conn: Connection, tenant_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[WebhookRow]]:
    found = await rows(conn, WebhookRow, _HOOKS_OF, tenant_ids=list(set(tenant_ids)))
    grouped: dict[uuid.UUID, list[WebhookRow]] = {}
    for hook in found:
        grouped.setdefault(hook["tenant_id"], []).append(hook)
    return grouped


_HOOKS_BY_KEY = Query(select(webhooks).select_from(_of_keys(webhooks)))


async def webhooks_by_key(conn: Connection, keys: Sequence[Key]) -> dict[Key, WebhookRow]:
    return await _by_key(conn, WebhookRow, _HOOKS_BY_KEY, keys)


_tenant = bindparam("tenant_id", type_=Uuid)
_id = bindparam("id", type_=Uuid)

_WEBHOOK = Query(select(webhooks).where(webhooks.c.tenant_id == _tenant, webhooks.c.id == _id))
_WEBHOOKS_PAGE = Query(
    select(webhooks)
    .where(
        webhooks.c.tenant_id == _tenant,
        or_(
            bindparam("after_time", type_=DateTime(timezone=True)).is_(None),
            tuple_(webhooks.c.created_at, webhooks.c.id)
            > tuple_(
                bindparam("after_time", type_=DateTime(timezone=True)),
                bindparam("after_id", type_=Uuid),
            ),
        ),
    )
    .order_by(webhooks.c.created_at, webhooks.c.id)
    .limit(bindparam("limit", type_=Integer))
)
_ADD_WEBHOOK = Query(
    pg_insert(webhooks)
    .values(
        tenant_id=_tenant,
        url=bindparam("url", type_=Text),
        events=bindparam("events", type_=ARRAY(Text)),
        description=bindparam("description", type_=String),
        secret=bindparam("secret", type_=String),
    )
    .returning(*webhooks.c)
)
_DELETE_WEBHOOK = Query(
    delete(webhooks).where(webhooks.c.tenant_id == _tenant, webhooks.c.id == _id)
)


async def webhook(
    conn: Connection, tenant_id: uuid.UUID, webhook_id: uuid.UUID
) -> WebhookRow | None:
    return await row(conn, WebhookRow, _WEBHOOK, tenant_id=tenant_id, id=webhook_id)


async def webhooks_page(
    conn: Connection, tenant_id: uuid.UUID, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[WebhookRow]:
    return await rows(
        conn,
        WebhookRow,
        _WEBHOOKS_PAGE,
        tenant_id=tenant_id,
        limit=limit,
        after_time=after[0] if after else None,
        after_id=after[1] if after else None,
    )


async def add_webhook(
    conn: Connection,
    tenant_id: uuid.UUID,
    url: str,
    events: Sequence[str],
    description: str,
    secret: str,
) -> WebhookRow:
    added = await row(
        conn,
        WebhookRow,
        _ADD_WEBHOOK,
        tenant_id=tenant_id,
        url=url,
        events=list(events),
        description=description,
        secret=secret,
    )
    assert added is not None
    return added


async def update_webhook(
    conn: Connection, tenant_id: uuid.UUID, webhook_id: uuid.UUID, changes: dict[str, Any]
) -> WebhookRow | None:
    """Apply `changes` (column -> value; compiled for this call: an admin's edit)."""
    stmt = (
        update(webhooks)
        .where(webhooks.c.tenant_id == tenant_id, webhooks.c.id == webhook_id)
        .values(**changes, updated_at=func.now())
        .returning(*webhooks.c)
    )
    return await row(conn, WebhookRow, stmt)


async def delete_webhook(conn: Connection, tenant_id: uuid.UUID, webhook_id: uuid.UUID) -> bool:
    return await execute(conn, _DELETE_WEBHOOK, tenant_id=tenant_id, id=webhook_id) == 1


_hook_keys = _pairs("tenant_ids", "ids")
_NOTE_SUCCESS = Query(
    update(webhooks)
    .where(
        tuple_(webhooks.c.tenant_id, webhooks.c.id).in_(
            select(_hook_keys.c.tenant_id, _hook_keys.c.id)
        ),
        webhooks.c.failing_since.is_not(None),
    )
    .values(failing_since=None)
)
_NOTE_FAILURE = Query(
    update(webhooks)
    .where(
        tuple_(webhooks.c.tenant_id, webhooks.c.id).in_(
            select(_hook_keys.c.tenant_id, _hook_keys.c.id)
        ),
        webhooks.c.failing_since.is_(None),
    )
    .values(failing_since=func.now())
)
_DISABLE_FAILING = Query(
    update(webhooks)
    .where(
        webhooks.c.enabled,
        webhooks.c.failing_since < func.now() - _seconds(bindparam("after_seconds", type_=Float)),
    )
    .values(
        enabled=False,
        disabled_reason=bindparam("reason", type_=String),
        updated_at=func.now(),
    )
    .returning(*webhooks.c)
)


async def note_webhook_outcomes(
    conn: Connection,
    succeeded: Sequence[tuple[uuid.UUID, uuid.UUID]],
    failed: Sequence[tuple[uuid.UUID, uuid.UUID]],
) -> None:
    """A success ends an endpoint's failing streak; a failure starts one (if none is on)."""
    if succeeded:
        await execute(conn, _NOTE_SUCCESS, **_key_arrays(succeeded))
    if failed:
        await execute(conn, _NOTE_FAILURE, **_key_arrays(failed))


async def disable_failing_webhooks(
    conn: Connection, after_seconds: float, reason: str
) -> list[WebhookRow]:
    """Disable the endpoints failing for longer than `after_seconds`; those disabled."""
    return await rows(
        conn, WebhookRow, _DISABLE_FAILING, after_seconds=after_seconds, reason=reason
    )


# --- templates -------------------------------------------------------------------------------


class TemplateRow(TypedDict):
    tenant_id: uuid.UUID
    event: str
    subject: str
    html: str
    text: str
    created_at: datetime
    updated_at: datetime


_TEMPLATES_OF = Query(
    select(notification_templates).where(
        notification_templates.c.tenant_id == func.any(_tenant_ids)
    )
)
_TEMPLATE = Query(
    select(notification_templates).where(
        notification_templates.c.tenant_id == _tenant,
        notification_templates.c.event == bindparam("event", type_=String),
    )
)


def _put_template() -> Query:
    stmt = pg_insert(notification_templates).values(
        tenant_id=_tenant,
        event=bindparam("event", type_=String),
        subject=bindparam("subject", type_=String),
        html=bindparam("html", type_=Text),
        text=bindparam("text", type_=Text),
    )
    return Query(
        stmt.on_conflict_do_update(
            index_elements=[notification_templates.c.tenant_id, notification_templates.c.event],
            set_={
                "subject": stmt.excluded.subject,
                "html": stmt.excluded.html,
                "text": stmt.excluded.text,
                "updated_at": func.now(),
            },
        ).returning(*notification_templates.c)
    )


_PUT_TEMPLATE = _put_template()
_DELETE_TEMPLATE = Query(
    delete(notification_templates).where(
        notification_templates.c.tenant_id == _tenant,
        notification_templates.c.event == bindparam("event", type_=String),
    )
)


async def templates_of(
    conn: Connection, tenant_ids: Sequence[uuid.UUID]
) -> dict[tuple[uuid.UUID, str], TemplateRow]:
    if not tenant_ids:
        return {}
    found = await rows(conn, TemplateRow, _TEMPLATES_OF, tenant_ids=list(set(tenant_ids)))
    return {(t["tenant_id"], t["event"]): t for t in found}


async def template(conn: Connection, tenant_id: uuid.UUID, event: str) -> TemplateRow | None:
    return await row(conn, TemplateRow, _TEMPLATE, tenant_id=tenant_id, event=event)


async def put_template(
    conn: Connection, tenant_id: uuid.UUID, event: str, subject: str, html: str, text: str
) -> TemplateRow:
    stored = await row(
        conn,
        TemplateRow,
        _PUT_TEMPLATE,
        tenant_id=tenant_id,
        event=event,
        subject=subject,
        html=html,
        text=text,
    )
    assert stored is not None
    return stored


async def delete_template(conn: Connection, tenant_id: uuid.UUID, event: str) -> bool:
    return await execute(conn, _DELETE_TEMPLATE, tenant_id=tenant_id, event=event) == 1


# --- deliveries ------------------------------------------------------------------------------


class NewDelivery(TypedDict):
    tenant_id: uuid.UUID
    id: uuid.UUID
    outbox_id: int | None
    ticket_id: uuid.UUID | None
    event: str
    channel: str
    recipient: str
    webhook_id: uuid.UUID | None
    message_id: str
    content: dict[str, Any]


class DeliveryRow(TypedDict):
    tenant_id: uuid.UUID
    id: uuid.UUID
    outbox_id: int | None
    ticket_id: uuid.UUID | None
    event: str
    channel: str
    recipient: str
    webhook_id: uuid.UUID | None
    state: str
    attempts: int
    next_attempt_at: datetime
    give_up_at: datetime
    last_error: str | None
    quota_month: date | None
    message_id: str
    content: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


_DELIVERY_COLUMNS = (
    "tenant_id",
    "id",
    "outbox_id",
    "ticket_id",
    "event",
    "channel",
    "recipient",
    "webhook_id",
    "message_id",
    "content",
)


def _add_deliveries() -> Query:
    batch = (
        func.jsonb_to_recordset(bindparam("rows", type_=JSONB))
        .table_valued(*(_typed(name) for name in _DELIVERY_COLUMNS))
        .render_derived(name="r", with_types=True)
    )
    give_up = func.now() + _seconds(bindparam("retry_seconds", type_=Float))
    stmt = pg_insert(deliveries).from_select(
        [*_DELIVERY_COLUMNS, "give_up_at"],
        select(*(batch.c[name] for name in _DELIVERY_COLUMNS), give_up),
    )
    return Query(stmt.on_conflict_do_nothing())


def _typed(name: str) -> Any:
    return column(name, deliveries.c[name].type)


_ADD_DELIVERIES = _add_deliveries()


async def add_deliveries(conn: Connection, new: Sequence[NewDelivery], retry_seconds: int) -> int:
    """Write the deliveries (a message's fan-out writes each once, whoever relays it again);
    how many were new."""
    if not new:
        return 0
    return await execute(conn, _ADD_DELIVERIES, rows=list(new), retry_seconds=retry_seconds)


def _claim_due() -> Query:
    due = (
        select(deliveries.c.tenant_id, deliveries.c.id)
        .where(deliveries.c.state == "pending", deliveries.c.next_attempt_at <= func.now())
        .order_by(deliveries.c.next_attempt_at)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True)
        .cte("due")
    )
    lease = func.now() + _seconds(bindparam("lease_seconds", type_=Float))
    return Query(
        update(deliveries)
        .where(deliveries.c.tenant_id == due.c.tenant_id, deliveries.c.id == due.c.id)
        .values(next_attempt_at=lease, attempts=deliveries.c.attempts + 1, updated_at=func.now())
        .returning(*deliveries.c)
    )


_CLAIM_DUE = _claim_due()


async def claim_due(conn: Connection, limit: int, lease_seconds: float) -> list[DeliveryRow]:
    """Take up to `limit` due deliveries, moving each a lease ahead: if this worker dies before
    it records the outcome, the delivery comes due again when the lease ends."""
    return await rows(conn, DeliveryRow, _CLAIM_DUE, limit=limit, lease_seconds=lease_seconds)


_TAKE = Query(
    update(deliveries)
    .where(
        deliveries.c.tenant_id == _tenant,
        deliveries.c.id == _id,
        deliveries.c.state == "pending",
    )
    .values(
        next_attempt_at=func.now() + _seconds(bindparam("lease_seconds", type_=Float)),
        attempts=deliveries.c.attempts + 1,
        updated_at=func.now(),
    )
)


async def take(
    conn: Connection, tenant_id: uuid.UUID, delivery_id: uuid.UUID, lease_seconds: float
) -> None:
    """Claim one delivery to send it now, as `claim_due` claims a batch: the relays leave it
    alone for the lease."""
    await execute(conn, _TAKE, tenant_id=tenant_id, id=delivery_id, lease_seconds=lease_seconds)


def _settle() -> Query:
    outcome = (
        func.unnest(
            bindparam("tenant_ids", type_=ARRAY(Uuid)),
            bindparam("ids", type_=ARRAY(Uuid)),
            bindparam("states", type_=ARRAY(String)),
            bindparam("delays", type_=ARRAY(Float)),
            bindparam("errors", type_=ARRAY(Text)),
        )
        .table_valued("tenant_id", "id", "state", "delay", "error")
        .render_derived(name="o")
    )
    next_at = func.now() + _seconds(outcome.c.delay)
    # A retry that would come after the delivery's deadline is the last: it fails now.
    retry_too_late = and_(outcome.c.state == "pending", next_at > deliveries.c.give_up_at)
    sent = outcome.c.state == "sent"
    return Query(
        update(deliveries)
        .where(
            deliveries.c.tenant_id == outcome.c.tenant_id,
            deliveries.c.id == outcome.c.id,
            deliveries.c.state == "pending",
        )
        .values(
            state=case((retry_too_late, literal("failed", String)), else_=outcome.c.state),
            next_attempt_at=case(
                (outcome.c.state == "pending", next_at), else_=deliveries.c.next_attempt_at
            ),
            last_error=outcome.c.error,
            sent_at=case((sent, func.now()), else_=deliveries.c.sent_at),
            # Only a sent mail stays counted (the caller gives the others' counts back).
            quota_month=case((sent, deliveries.c.quota_month), else_=None),
            updated_at=func.now(),
        )
    )


_SETTLE = _settle()


class Outcome(TypedDict):
    tenant_id: uuid.UUID
    id: uuid.UUID
    state: str  # sent | pending (retry after `delay` seconds) | failed | dropped
    delay: float
    error: str | None


async def settle(conn: Connection, outcomes: Sequence[Outcome]) -> int:
    """Record the outcome of each attempt in one statement."""
    if not outcomes:
        return 0
    return await execute(
        conn,
        _SETTLE,
        tenant_ids=[o["tenant_id"] for o in outcomes],
        ids=[o["id"] for o in outcomes],
        states=[o["state"] for o in outcomes],
        delays=[o["delay"] for o in outcomes],
        errors=[o["error"] for o in outcomes],
    )


_counted_keys = _pairs("tenant_ids", "ids")
_MARK_COUNTED = Query(
    update(deliveries)
    .where(
        deliveries.c.tenant_id == _counted_keys.c.tenant_id,
        deliveries.c.id == _counted_keys.c.id,
    )
    .values(quota_month=bindparam("month", type_=Date))
)


async def mark_counted(
    conn: Connection, keys: Sequence[tuple[uuid.UUID, uuid.UUID]], month: date
) -> None:
    """Note that these mails are counted in `month` against the tenant's quota."""
    if keys:
        await execute(conn, _MARK_COUNTED, **_key_arrays(keys), month=month)


_released_keys = _pairs("tenant_ids", "ids")
_RELEASE = Query(
    update(deliveries)
    .where(
        deliveries.c.tenant_id == _released_keys.c.tenant_id,
        deliveries.c.id == _released_keys.c.id,
        deliveries.c.state == "pending",
    )
    .values(
        next_attempt_at=func.now(),
        attempts=func.greatest(deliveries.c.attempts - 1, 0),
        quota_month=None,
        updated_at=func.now(),
    )
)


async def release(conn: Connection, keys: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> None:
    """Give back claimed deliveries that were not tried: due now, the claim not counted as an
    attempt, their quota count cleared (the caller gives the counts back)."""
    if keys:
        await execute(conn, _RELEASE, **_key_arrays(keys))


_DELIVERIES_PAGE = Query(
    select(deliveries)
    .where(
        deliveries.c.tenant_id == _tenant,
        or_(
            bindparam("state", type_=String).is_(None),
            deliveries.c.state == bindparam("state", type_=String),
        ),
        or_(
            bindparam("channel", type_=String).is_(None),
            deliveries.c.channel == bindparam("channel", type_=String),
        ),
        or_(
            bindparam("ticket_id", type_=Uuid).is_(None),
            deliveries.c.ticket_id == bindparam("ticket_id", type_=Uuid),
        ),
        or_(
            bindparam("before_time", type_=DateTime(timezone=True)).is_(None),
            tuple_(deliveries.c.created_at, deliveries.c.id)
            < tuple_(
                bindparam("before_time", type_=DateTime(timezone=True)),
                bindparam("before_id", type_=Uuid),
            ),
        ),
    )
    .order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc())
    .limit(bindparam("limit", type_=Integer))
)


async def deliveries_page(
    conn: Connection,
    tenant_id: uuid.UUID,
    *,
    state: str | None,
    channel: str | None,
    ticket_id: uuid.UUID | None,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[DeliveryRow]:
    """The tenant's deliveries, newest first, before the cursor; one more than `limit` when
    there is a next page."""
    return await rows(
        conn,
        DeliveryRow,
        _DELIVERIES_PAGE,
        tenant_id=tenant_id,
        state=state,
        channel=channel,
        ticket_id=ticket_id,
        before_time=before[0] if before else None,
        before_id=before[1] if before else None,
        limit=limit,
    )


_DELIVERY = Query(
    select(deliveries).where(deliveries.c.tenant_id == _tenant, deliveries.c.id == _id)
)
_RETRY = Query(
    update(deliveries)
    .where(
        deliveries.c.tenant_id == _tenant,
        deliveries.c.id == _id,
        or_(deliveries.c.state == "failed", deliveries.c.state == "dropped"),
    )
    .values(
        state="pending",
        next_attempt_at=func.now(),
        give_up_at=func.now() + _seconds(bindparam("retry_seconds", type_=Float)),
        last_error=None,
        updated_at=func.now(),
    )
    .returning(*deliveries.c)
)


async def delivery(
    conn: Connection, tenant_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryRow | None:
    return await row(conn, DeliveryRow, _DELIVERY, tenant_id=tenant_id, id=delivery_id)


async def retry(
    conn: Connection, tenant_id: uuid.UUID, delivery_id: uuid.UUID, retry_seconds: int
) -> DeliveryRow | None:
    """Send a failed or dropped delivery again, now, with a fresh retry window; None when it
    is in neither state."""
    return await row(
        conn, DeliveryRow, _RETRY, tenant_id=tenant_id, id=delivery_id, retry_seconds=retry_seconds
    )


# --- the monthly e-mail count ----------------------------------------------------------------

_month = bindparam("month", type_=Date)
_ENSURE_MONTH = Query(
    pg_insert(email_usage).values(tenant_id=_tenant, month=_month, sent=0).on_conflict_do_nothing()
)
_LOCK_MONTH = Query(
    select(email_usage.c.sent)
    .where(email_usage.c.tenant_id == _tenant, email_usage.c.month == _month)
    .with_for_update()
)
_ADD_TO_MONTH = Query(
    update(email_usage)
    .where(email_usage.c.tenant_id == _tenant, email_usage.c.month == _month)
    .values(sent=func.greatest(email_usage.c.sent + bindparam("count", type_=Integer), 0))
)


async def reserve_emails(
    conn: Connection, tenant_id: uuid.UUID, month: date, wanted: int, limit: int | None
) -> tuple[int, int]:
    """Count up to `wanted` mails against the tenant's month, within `limit` (None: no limit):
    (how many were granted, the month's count after). The row is locked for the transaction,
    so relays claiming at once never grant past the limit between them."""
    await execute(conn, _ENSURE_MONTH, tenant_id=tenant_id, month=month)
    locked = await value(conn, _LOCK_MONTH, tenant_id=tenant_id, month=month)
    before = locked if isinstance(locked, int) else 0
    granted = wanted if limit is None else max(0, min(wanted, limit - before))
    if granted:
        await execute(conn, _ADD_TO_MONTH, tenant_id=tenant_id, month=month, count=granted)
    return granted, before + granted


async def release_emails(conn: Connection, tenant_id: uuid.UUID, month: date, count: int) -> None:
    """Give back the count of mails that were not sent after all."""
    await execute(conn, _ADD_TO_MONTH, tenant_id=tenant_id, month=month, count=-count)


# --- retention -------------------------------------------------------------------------------

_cutoff = func.now() - _seconds(bindparam("older_than_seconds", type_=Float))
_batch = bindparam("batch", type_=Integer)


def _purge_deliveries() -> Query:
    old = (
        select(deliveries.c.tenant_id, deliveries.c.id)
        .where(deliveries.c.state != "pending", deliveries.c.updated_at < _cutoff)
        # In the index's order: a batch steps over the index entries the batches before it
        # killed, instead of a scan over every dead row they left (bench/purge.py).
        .order_by(deliveries.c.updated_at)
        .limit(_batch)
        .with_for_update(skip_locked=True)
        .cte("old")
    )
    return Query(
        delete(deliveries).where(
            deliveries.c.tenant_id == old.c.tenant_id, deliveries.c.id == old.c.id
        )
    )


def _purge_outbox() -> Query:
    old = (
        select(outbox.c.tenant_id, outbox.c.id)
        .where(outbox.c.delivered_at < _cutoff)
        .order_by(outbox.c.delivered_at)  # see _purge_deliveries
        .limit(_batch)
        .with_for_update(skip_locked=True)
        .cte("old")
    )
    return Query(
        delete(outbox).where(outbox.c.tenant_id == old.c.tenant_id, outbox.c.id == old.c.id)
    )


_PURGE_DELIVERIES = _purge_deliveries()
_PURGE_OUTBOX = _purge_outbox()


async def purge_settled_deliveries(conn: Connection, older_than_seconds: int, batch: int) -> int:
    return await execute(
        conn, _PURGE_DELIVERIES, older_than_seconds=older_than_seconds, batch=batch
    )


async def purge_relayed_messages(conn: Connection, older_than_seconds: int, batch: int) -> int:
    return await execute(conn, _PURGE_OUTBOX, older_than_seconds=older_than_seconds, batch=batch)
