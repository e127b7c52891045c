"""The SLA tick: the timed marks of running clocks (reminders, warnings, breaches) and the
automatic actions of breaches (seed 003's cancel after 72 hours of silence), each done once.

A clock's `next_action_at` is when it next has something to do (NULL: nothing), kept by the
writes that start, pause, resume and stop it and by the tick itself; a partial index holds
only the clocks that have one, so a tick reads what is due and nothing else, whatever the
number of running clocks. Due clocks are claimed FOR UPDATE SKIP LOCKED in the transaction
that acts on them: any number of processes tick side by side and each mark is done once
(its `stage` moves in the same statement as its audit event and outbox message); a crash
rolls its batch back for the next tick.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypedDict

from sqlalchemy import (
    DateTime,
    Integer,
    SmallInteger,
    String,
    Text,
    Uuid,
    bindparam,
    func,
    select,
    update,
)

from flowdesk.db.pool import Database
from flowdesk.db.query import Connection, Query, row, rows, value
from flowdesk.models import sla_clocks
from flowdesk.periodic import Periodic
from flowdesk.tickets import lifecycle, sla
from flowdesk.tickets.facts import facts_of
from flowdesk.tickets.repository import Event, Message, Ref, TicketRepository, TicketRow
from flowdesk.tickets.sla_statements import CLOCK_COLUMNS
from flowdesk.tickets.statements import audited
from flowdesk.tickets.timers import SYSTEM
from flowdesk.workflow import (
    ApplyInputs,
    Catalog,
    TransitionRefused,
    UnknownAction,
    Workflow,
    apply,
)
from flowdesk.workflow.sla_model import Mark, SlaPolicy

logger = logging.getLogger(__name__)

BATCH = 100
# A mark is done when the clock has counted its offset, to within this (the offsets the
# writes store went through floating point and, on business calendars, the process's clock).
TOLERANCE_SECONDS = 1.0
TOPICS = {
    "reminder": "ticket.sla_reminder",
    "warning": "ticket.sla_warning",
    "breach": "ticket.sla_breached",
}

c = sla_clocks.c
_at = bindparam("at", type_=DateTime(timezone=True))

_DUE = Query(
    select(
        c.tenant_id,
        c.ticket_id,
        *CLOCK_COLUMNS,
        # `at` NULL: the database's now (one clock with the writes that set next_action_at).
        func.coalesce(_at, func.now()).label("now"),
    )
    .where(c.next_action_at <= func.coalesce(_at, func.now()))
    .order_by(c.next_action_at)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)


# Whether anything is due, outside a transaction: the common answer (no) in one round trip.
_ANY_DUE = Query(
    select(c.next_action_at).where(c.next_action_at <= func.coalesce(_at, func.now())).limit(1)
)


def _fire() -> Query:
    """Record the clock's marks done (its stage, next action, state) with their events and
    messages, in one statement."""
    written = (
        update(sla_clocks)
        .where(
            c.tenant_id == bindparam("tenant_id", type_=Uuid),
            c.ticket_id == bindparam("id", type_=Uuid),
            c.name == bindparam("name", type_=Text),
        )
        .values(
            stage=bindparam("stage", type_=SmallInteger),
            next_action_at=bindparam("next_action_at", type_=DateTime(timezone=True)),
            state=bindparam("state", type_=String),
            breached_at=bindparam("breached_at", type_=DateTime(timezone=True)),
        )
        .returning(c.tenant_id, c.ticket_id.label("id"))
        .cte("written")
    )
    return audited(written, select(written.c.id))


_FIRE = _fire()


class _Due(TypedDict):
    tenant_id: uuid.UUID
    ticket_id: uuid.UUID
    name: str
    state: str
    target_seconds: int
    elapsed_seconds: float
    started_at: datetime
    running_since: datetime | None
    due_at: datetime | None
    warn_at: datetime | None
    paused_at: datetime | None
    breached_at: datetime | None
    stopped_at: datetime | None
    stage: int
    now: datetime


class _Written(TypedDict):
    id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Fired:
    """What the tick did for one clock."""

    ticket_id: uuid.UUID
    clock: str
    marks: tuple[str, ...]  # reminder | warning | breach, in order
    action: str | None = None  # the breach's automatic action, when taken
    to_status: str | None = None
    note: str = ""  # why an action was not taken, or the clock dropped
    recipients: tuple[dict[str, str], ...] = field(default=())


async def run_due(db: Database, catalog: Catalog, at: datetime | None = None) -> list[Fired]:
    """Do everything due at `at` (default: the database's now), batch by batch."""
    async with db.connection() as conn:
        if await value(conn, _ANY_DUE, at=at) is None:
            return []
    done: list[Fired] = []
    while True:
        fired, claimed = await _batch(db, catalog, at, commit=True)
        done += fired
        # A full batch that did nothing only rescheduled (never expected): stop rather than
        # claim the same rows again.
        if claimed < BATCH or not any(f.marks or f.note for f in fired):
            return done


async def preview(db: Database, catalog: Catalog, at: datetime | None = None) -> list[Fired]:
    """What `run_due` would do first at `at` (one batch), with nothing changed."""
    fired, _ = await _batch(db, catalog, at, commit=False)
    return fired


class _RolledBack(Exception):
    def __init__(self, fired: list[Fired], claimed: int) -> None:
        super().__init__("rolled back")
        self.fired, self.claimed = fired, claimed


async def _batch(
    db: Database, catalog: Catalog, at: datetime | None, *, commit: bool
) -> tuple[list[Fired], int]:
    try:
        async with db.transaction() as conn:
            due = await rows(conn, _Due, _DUE, at=at, limit=BATCH)
            fired = [await _act(conn, catalog, d) for d in due]
            if not commit:
                raise _RolledBack(fired, len(due))
    except _RolledBack as dry:
        return dry.fired, dry.claimed
    return fired, len(due)


def _policy(workflow: Workflow | None, ticket: TicketRow, name: str) -> SlaPolicy | None:
    if workflow is None:
        return None
    return next(
        (p for p in sla.policies_for(workflow, ticket["catalog_item"]) if p.name == name), None
    )


async def _act(conn: Connection, catalog: Catalog, due: _Due) -> Fired:
    repo = TicketRepository(conn, due["tenant_id"], requester_only=None)
    ticket = await repo.get(Ref(id=due["ticket_id"]))
    assert ticket is not None  # the clock's row goes with its ticket (ON DELETE CASCADE)
    workflow = catalog.workflows.get(ticket["workflow"])
    policy = _policy(workflow, ticket, due["name"])
    if workflow is None or policy is None:
        # The catalog changed under the clock: nothing is declared for it any more.
        await _record(conn, due, due["stage"], None, due["state"], due["breached_at"], [], [])
        return Fired(ticket["id"], due["name"], (), note="no such SLA policy any more")
    marks = _due_marks(policy, due)
    # A stopped clock has nothing more to do once its breach (if any) is reported.
    stage = len(policy.marks) if due["stopped_at"] is not None else due["stage"] + len(marks)
    state, breached_at = due["state"], due["breached_at"]
    events: list[Event] = []
    outbox: list[Message] = []
    for mark in marks:
        event, message = _announce(policy, due, mark)
        events.append(event)
        outbox.append(message)
        if mark.kind == "breach":
            state, breached_at = "breached", due["due_at"]
    await _record(
        conn, due, stage, _next_action(policy, due, stage), state, breached_at, events, outbox
    )
    fired = Fired(
        ticket["id"],
        policy.name,
        tuple(m.kind for m in marks),
        recipients=tuple(m.to.to_dict() for m in marks if m.to is not None),
    )
    breached = any(m.kind == "breach" for m in marks)
    if breached and policy.action and due["stopped_at"] is None:
        return await _take_action(repo, workflow, policy, fired)
    return fired


def _due_marks(policy: SlaPolicy, due: _Due) -> list[Mark]:
    """The marks not yet done that the clock has reached by `now`. A clock stopped past its
    due time before a tick saw it reports its breach alone: its reminders and warning speak
    of a wait that is over."""
    pending = policy.marks[due["stage"] :]
    if due["stopped_at"] is not None:
        return [m for m in pending if m.kind == "breach"][:1] if due["breached_at"] is None else []
    counted = due["elapsed_seconds"]
    if due["running_since"] is not None:
        counted += policy.calendar.span(due["running_since"], due["now"])
    return [m for m in pending if m.offset <= counted + TOLERANCE_SECONDS]


def _next_action(policy: SlaPolicy, due: _Due, stage: int) -> datetime | None:
    if due["stopped_at"] is not None or due["running_since"] is None:
        return None
    if stage >= len(policy.marks):
        return None
    left = policy.marks[stage].offset - due["elapsed_seconds"]
    return policy.calendar.add(due["running_since"], max(0.0, left))


def _announce(policy: SlaPolicy, due: _Due, mark: Mark) -> tuple[Event, Message]:
    data: dict[str, Any] = {
        "name": policy.name,
        "label": policy.label,
        "due_at": due["due_at"],
        "automatic": True,
    }
    if mark.to is not None:
        data["to" if mark.kind == "reminder" else "escalated_to"] = mark.to.to_dict()
    if mark.kind == "breach" and due["stopped_at"] is not None:
        data["late"] = True  # it stopped after its due time, before a tick saw it
    event: Event = {
        "kind": f"sla_{'breached' if mark.kind == 'breach' else mark.kind}",
        "data": data,
    }
    return event, {"topic": TOPICS[mark.kind], "payload": dict(data)}


async def _record(
    conn: Connection,
    due: _Due,
    stage: int,
    next_action_at: datetime | None,
    state: str,
    breached_at: datetime | None,
    events: list[Event],
    outbox: list[Message],
) -> None:
    written = await row(
        conn,
        _Written,
        _FIRE,
        tenant_id=due["tenant_id"],
        id=due["ticket_id"],
        name=due["name"],
        stage=stage,
        next_action_at=next_action_at,
        state=state,
        breached_at=breached_at,
        actor_id=None,
        events=events,
        outbox=outbox,
    )
    assert written is not None  # the row is locked by this transaction


async def _take_action(
    repo: TicketRepository, workflow: Workflow, policy: SlaPolicy, fired: Fired
) -> Fired:
    """The breach's action (seed 003's `cancel`), taken by the system through the workflow,
    with the policy's note on the record; refused, it is logged and the breach stands."""
    ticket = await repo.get(Ref(id=fired.ticket_id))
    assert ticket is not None
    assert policy.action is not None
    try:
        # The note is the action's comment (an action that asks for one gets it).
        inputs = ApplyInputs(comment=policy.note or None)
        outcome = apply(workflow, policy.action, facts_of(ticket), SYSTEM, inputs)
    except (UnknownAction, TransitionRefused) as exc:
        logger.warning(
            "SLA '%s' of ticket %s: cannot take '%s' in %s: %s",
            policy.name,
            ticket["id"],
            policy.action,
            ticket["status"],
            exc,
        )
        return replace(fired, note=str(exc))
    changes, outbox = lifecycle.moving(workflow, ticket, outcome.status)
    moved: dict[str, Any] = {
        "action": outcome.action,
        "from": ticket["status"],
        "to": outcome.status,
        "automatic": True,
        "reason": f"SLA '{policy.name}' breached",
    }
    if policy.note:
        moved["note"] = policy.note
    if outcome.resolution != ticket["resolution"]:
        changes["resolution"] = outcome.resolution
        moved["resolution"] = outcome.resolution
    for message in outbox:
        message["payload"] = {**message["payload"], "note": policy.note, "automatic": True}
    event: Event = {"kind": "transitioned", "data": moved}
    written = await repo.update(ticket, changes, None, [event], outbox)
    if written is None:
        # Changed by someone else since it was read (a PATCH, which moves no clock): the
        # breach stands, recorded; the clock's own change will show where it went.
        logger.warning("SLA '%s' of ticket %s: it changed meanwhile", policy.name, ticket["id"])
        return replace(fired, note="the ticket changed meanwhile")
    return replace(fired, action=outcome.action, to_status=outcome.status)


def sla_job(db: Database, catalog: Catalog, interval: float) -> Periodic:
    """Due SLA marks and actions, every `interval` seconds in each process (0: never)."""
    return Periodic("sla-clocks", interval, lambda: run_due(db, catalog))
