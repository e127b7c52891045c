"""The SQL of a ticket's SLA clocks that rides on the ticket's own statements: the clocks as
JSON beside every ticket row read or written, and the CTEs that apply a change's clock
operations (flowdesk.tickets.sla) in the statement of the change itself, from its `written`
CTE, so that a clock moves exactly when the status does.

Operations travel as one JSON array (`[{name, op, target, due_in, warn_in, next_in,
elapsed_add}]`); times are offsets in seconds from the statement's now(), so every moment a
clock holds is on the database's clock, as the ticket's own moments are.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    CTE,
    ColumnElement,
    DateTime,
    Float,
    Integer,
    Text,
    and_,
    bindparam,
    case,
    column,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by, insert

from flowdesk.models import sla_clocks

c = sla_clocks.c
_now = func.now()
_SECOND: ColumnElement[Any] = literal_column("interval '1 second'")


# What a clock is, as the ticket JSON shows it and the tick reads it.
CLOCK_COLUMNS = (
    c.name,
    c.state,
    c.target_seconds,
    c.elapsed_seconds,
    c.started_at,
    c.running_since,
    c.due_at,
    c.warn_at,
    c.paused_at,
    c.breached_at,
    c.stopped_at,
    c.stage,
)


def clocks_json(tenant_id: ColumnElement[Any], ticket_id: ColumnElement[Any]) -> Any:
    """The ticket's clocks as a JSON array (empty without any), by name."""
    clock = func.jsonb_build_object(
        *(
            part
            for col in CLOCK_COLUMNS
            # Keys written into the statement: two dozen parameters cost every ticket read.
            for part in (literal_column(f"'{col.name}'"), cast(ColumnElement[Any], col))
        )
    )
    ordered = aggregate_order_by(clock, c.name)
    return (
        select(func.coalesce(func.jsonb_agg(ordered), literal_column("'[]'::jsonb")))
        .where(c.tenant_id == tenant_id, c.ticket_id == ticket_id)
        .scalar_subquery()
        .label("sla")
    )


def _after(seconds: ColumnElement[Any]) -> ColumnElement[Any]:
    """now() plus an offset in seconds (NULL stays NULL)."""
    return type_coerce(_now + seconds * _SECOND, DateTime(timezone=True))


def clock_changes(written: CTE, param: str) -> tuple[CTE, CTE]:
    """The CTEs that apply the operations in the JSON parameter `param` to the clocks of the
    ticket `written` holds (none when it holds no row: a write that lost its version check
    moves no clock)."""
    ops = (
        func.jsonb_to_recordset(bindparam(param, type_=JSONB))
        .table_valued(
            column("name", Text),
            column("op", Text),
            column("target", Integer),
            column("due_in", Float),
            column("warn_in", Float),
            column("next_in", Float),
            column("elapsed_add", Float),
        )
        .render_derived(name="o", with_types=True)
    )
    o = ops.c
    fresh = {
        "state": literal("running", Text),
        "target_seconds": o.target,
        "elapsed_seconds": literal(0.0, Float),
        "started_at": _now,
        "running_since": _now,
        "due_at": _after(o.due_in),
        "warn_at": _after(o.warn_in),
        "paused_at": null(),
        "breached_at": null(),
        "stopped_at": null(),
        "stage": literal(0, Integer),
        "next_action_at": _after(o.next_in),
    }
    started = insert(sla_clocks).from_select(
        ["tenant_id", "ticket_id", "name", *fresh],
        select(written.c.tenant_id, written.c.id, o.name, *fresh.values())
        .select_from(written.join(ops, literal(True)))
        .where(o.op == "start"),
    )
    # A clock starts over only once it stopped: entering a start status again while it runs
    # (or is paused) leaves it as it is.
    started = started.on_conflict_do_update(
        index_elements=["tenant_id", "ticket_id", "name"],
        set_={name: getattr(started.excluded, name) for name in fresh},
        where=c.stopped_at.is_not(None),
    )
    counted = c.elapsed_seconds + func.coalesce(
        o.elapsed_add, func.extract("epoch", _now - c.running_since)
    )
    overdue = and_(c.state == "running", c.due_at <= _now)
    changed = (
        update(sla_clocks)
        .where(
            c.tenant_id == written.c.tenant_id,
            c.ticket_id == written.c.id,
            c.name == o.name,
            c.stopped_at.is_(None),
            or_(
                o.op == "stop",
                and_(o.op == "pause", c.state == "running", c.due_at > _now),
                and_(o.op == "resume", c.state == "paused"),
            ),
        )
        .values(
            state=case(
                (o.op == "pause", "paused"),
                (o.op == "resume", "running"),
                (or_(c.state == "breached", overdue), "breached"),
                else_="met",
            ),
            elapsed_seconds=case(
                (or_(o.op == "pause", and_(o.op == "stop", c.state == "running")), counted),
                else_=c.elapsed_seconds,
            ),
            running_since=case((o.op == "resume", _now), else_=null()),
            paused_at=case((o.op == "pause", _now), else_=null()),
            due_at=case(
                (o.op == "pause", null()), (o.op == "resume", _after(o.due_in)), else_=c.due_at
            ),
            warn_at=case(
                (o.op == "pause", null()), (o.op == "resume", _after(o.warn_in)), else_=c.warn_at
            ),
            stopped_at=case((o.op == "stop", _now), else_=null()),
            # A clock stopped past its due time before a tick saw it keeps its breach for the
            # tick to report (once: breached_at is set when it is reported).
            next_action_at=case(
                (o.op == "resume", _after(o.next_in)),
                (and_(o.op == "stop", overdue, c.breached_at.is_(None)), c.due_at),
                else_=null(),
            ),
        )
    )
    return started.cte(f"{param}_started"), changed.cte(f"{param}_changed")
