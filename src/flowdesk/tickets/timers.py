"""The catalog's timed moves (a status's `timeout`, e.g. itsm_default's resolved ticket that
closes itself after 7 days): due tickets are moved by the declared action, taken by the system.

A ticket's timer is armed by the write that moves it into such a status and cleared by the
one that moves it out (flowdesk.tickets.lifecycle), so a tick reads only what is due (a
partial index on `timer_due_at`), whatever the number of open tickets. Due tickets are
claimed FOR UPDATE SKIP LOCKED in the transaction that moves them: any number of processes
tick side by side and each ticket moves once; a crash rolls its batch back for the next tick.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from sqlalchemy import DateTime, Integer, bindparam, func, select

from flowdesk.db.pool import Database
from flowdesk.db.query import Connection, Query, rows
from flowdesk.models import tickets
from flowdesk.periodic import Periodic
from flowdesk.tickets import lifecycle
from flowdesk.tickets.facts import facts_of
from flowdesk.tickets.repository import Event, Ref, TicketRepository, TicketRow
from flowdesk.vocabulary import ADMIN
from flowdesk.workflow import Actor, Catalog, TransitionRefused, UnknownAction, apply

logger = logging.getLogger(__name__)

# The system acts with every permission; the action's conditions and roles still apply.
SYSTEM = Actor(user="system", permissions=frozenset({ADMIN}))
BATCH = 100

_DUE = Query(
    select(tickets.c.tenant_id, tickets.c.id)
    # `at` NULL: the database's now (one clock with the writes that armed the timers).
    .where(
        tickets.c.timer_due_at
        <= func.coalesce(bindparam("at", type_=DateTime(timezone=True)), func.now())
    )
    .order_by(tickets.c.timer_due_at)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)


class _Due(TypedDict):
    tenant_id: uuid.UUID
    id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Moved:
    ticket_id: uuid.UUID
    action: str | None  # None: the timer was dropped (see `reason`)
    from_status: str
    to_status: str | None
    reason: str = ""


async def run_due(db: Database, catalog: Catalog, at: datetime | None = None) -> list[Moved]:
    """Move every ticket whose timer is due at `at` (default: the database's now)."""
    done: list[Moved] = []
    while True:
        moved, claimed = await _batch(db, catalog, at, commit=True)
        done += moved
        if claimed < BATCH:
            return done


async def preview(db: Database, catalog: Catalog, at: datetime | None = None) -> list[Moved]:
    """What `run_due` would move first at `at` (one batch), with nothing changed."""
    moved, _ = await _batch(db, catalog, at, commit=False)
    return moved


class _RolledBack(Exception):
    def __init__(self, moved: list[Moved], claimed: int) -> None:
        super().__init__("rolled back")
        self.moved, self.claimed = moved, claimed


async def _batch(
    db: Database, catalog: Catalog, at: datetime | None, *, commit: bool
) -> tuple[list[Moved], int]:
    try:
        async with db.transaction() as conn:
            due = await rows(conn, _Due, _DUE, at=at, limit=BATCH)
            moved = [m for d in due if (m := await _move(conn, catalog, d)) is not None]
            if not commit:
                raise _RolledBack(moved, len(due))
    except _RolledBack as dry:
        return dry.moved, dry.claimed
    return moved, len(due)


async def _move(conn: Connection, catalog: Catalog, due: _Due) -> Moved | None:
    repo = TicketRepository(conn, due["tenant_id"], requester_only=None)
    row = await repo.get(Ref(id=due["id"]))
    if row is None:
        return None
    workflow = catalog.workflows.get(row["workflow"])
    timeout = workflow.timeout(row["status"]) if workflow else None
    if workflow is None or timeout is None:
        # The catalog changed under the ticket: nothing is declared any more.
        await _drop(repo, row)
        return Moved(row["id"], None, row["status"], None, "no timeout declared any more")
    try:
        outcome = apply(workflow, timeout.action, facts_of(row), SYSTEM)
    except (UnknownAction, TransitionRefused) as exc:
        logger.warning(
            "timeout of ticket %s in %s/%s cannot take '%s': %s",
            row["id"],
            row["workflow"],
            row["status"],
            timeout.action,
            exc,
        )
        await _drop(repo, row)
        return Moved(row["id"], None, row["status"], None, str(exc))
    changes, outbox = lifecycle.moving(workflow, row, outcome.status)
    after = f"{timeout.after.total_seconds() / 3600:g}h"
    event: Event = {
        "kind": "transitioned",
        "data": {
            "action": outcome.action,
            "from": row["status"],
            "to": outcome.status,
            "automatic": True,
            "reason": f"no change for {after} in '{row['status']}'",
        },
    }
    written = await repo.update(row, changes, None, [event], outbox)
    assert written is not None  # the row is locked by this transaction
    return Moved(row["id"], outcome.action, row["status"], outcome.status)


async def _drop(repo: TicketRepository, row: TicketRow) -> None:
    await repo.update(row, {"timer_due_at": None}, None, [], [])


def timer_job(db: Database, catalog: Catalog, interval: float) -> Periodic:
    """Due timers, every `interval` seconds in each process (0: never)."""
    return Periodic("ticket-timers", interval, lambda: run_due(db, catalog))
