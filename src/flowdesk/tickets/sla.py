"""SLA clocks of a ticket: what a status change or a reply does to them, and how they show in
the ticket's JSON.

A change of a ticket decides, from the catalog's policies (flowdesk.workflow.sla_spec) and
the ticket's clocks as read with it, a list of operations (start, pause, resume, stop), and
the write applies them in its own statement (flowdesk.tickets.sla_statements): a clock moves
exactly when the status does. `lifecycle.entering` adds them to a change as `changes["sla"]`.

- Entering a `start` status starts the clock (afresh, if it had stopped); one that runs or
  is paused goes on.
- Entering a `pause` status pauses it; leaving for a status that does not pause resumes it.
- Leaving a `stop.leaving` status, entering a `stop.entering` one or an inactive one (the
  ticket is done), or a reply named in `stop.events`, stops it: `met` in time, else
  `breached`.

Times a clock keeps are computed as offsets from now, for the statement's now() to apply:
on the wall clock they are exact; on a business calendar they are the calendar's working
seconds from this process's now, which is the database's within the clocks' skew.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from flowdesk.workflow import Workflow
from flowdesk.workflow.sla_model import SlaPolicy

# A clock as the ticket's row carries it (flowdesk.tickets.sla_statements.clocks_json).
ClockJson = dict[str, Any]


class ClockOp(TypedDict, total=False):
    name: str
    op: str  # start | pause | resume | stop
    target: int
    due_in: float
    warn_in: float | None
    next_in: float | None
    elapsed_add: float | None


@dataclass(frozen=True, slots=True)
class Clock:
    name: str
    state: str
    target: int
    elapsed: float
    started_at: datetime
    running_since: datetime | None
    due_at: datetime | None
    warn_at: datetime | None
    paused_at: datetime | None
    breached_at: datetime | None
    stopped_at: datetime | None
    stage: int

    @property
    def active(self) -> bool:
        return self.stopped_at is None

    @classmethod
    def of(cls, raw: ClockJson) -> Clock:
        return cls(
            name=raw["name"],
            state=raw["state"],
            target=int(raw["target_seconds"]),
            elapsed=float(raw["elapsed_seconds"]),
            started_at=_time(raw["started_at"]) or datetime.now(UTC),
            running_since=_time(raw.get("running_since")),
            due_at=_time(raw.get("due_at")),
            warn_at=_time(raw.get("warn_at")),
            paused_at=_time(raw.get("paused_at")),
            breached_at=_time(raw.get("breached_at")),
            stopped_at=_time(raw.get("stopped_at")),
            stage=int(raw.get("stage") or 0),
        )


def _time(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def clocks_of(raw: Iterable[ClockJson] | None) -> dict[str, Clock]:
    return {clock.name: clock for clock in (Clock.of(r) for r in raw or ())}


def policies_for(workflow: Workflow, item: str) -> tuple[SlaPolicy, ...]:
    policies = workflow.sla_policies
    if not policies:
        return ()
    return tuple(p for p in policies if p.applies_to(item))


# --- what a change does to the clocks ----------------------------------------------------------


def on_status(
    workflow: Workflow,
    item: str,
    source: str | None,
    target: str,
    raw: Iterable[ClockJson] | None,
    now: datetime | None = None,
) -> list[ClockOp]:
    """The operations a move from `source` (None: creation) into `target` makes."""
    policies = policies_for(workflow, item)
    if not policies:
        return []
    now = now or datetime.now(UTC)
    clocks = clocks_of(raw)
    done = workflow.status_category(target) == "inactive"
    ops: list[ClockOp] = []
    for policy in policies:
        clock = clocks.get(policy.name)
        active = clock is not None and clock.active
        stops = (
            done
            or target in policy.stop_entering
            or (source is not None and source in policy.stop_leaving and source != target)
        )
        if active and stops:
            ops.append(_stop(policy, clock, now))  # type: ignore[arg-type]  # active: a clock
        elif not active and target in policy.start and not done:
            ops.append(_start(policy, now))
        elif active and clock is not None:
            if target in policy.pause and clock.state == "running":
                ops.append(_pause(policy, clock, now))
            elif target not in policy.pause and clock.state == "paused":
                ops.append(_resume(policy, clock, now))
    return ops


def on_reply(
    workflow: Workflow,
    item: str,
    raw: Iterable[ClockJson] | None,
    *,
    by_requester: bool,
    now: datetime | None = None,
) -> list[ClockOp]:
    """The clocks an external reply stops (`stop: {events: [requester_reply]}`, or
    `agent_reply` for anyone else's)."""
    policies = policies_for(workflow, item)
    if not policies:
        return []
    event = "requester_reply" if by_requester else "agent_reply"
    now = now or datetime.now(UTC)
    clocks = clocks_of(raw)
    return [
        _stop(policy, clock, now)
        for policy in policies
        if event in policy.stop_on
        and (clock := clocks.get(policy.name)) is not None
        and clock.active
    ]


def merged(first: Sequence[ClockOp], then: Sequence[ClockOp]) -> list[ClockOp]:
    """One operation per clock: a stop wins over anything else of the same change."""
    out: dict[str, ClockOp] = {op["name"]: op for op in first}
    for op in then:
        if op["name"] not in out or op["op"] == "stop":
            out[op["name"]] = op
    return list(out.values())


def _start(policy: SlaPolicy, now: datetime) -> ClockOp:
    return {
        "name": policy.name,
        "op": "start",
        "target": policy.target,
        **_schedule(policy, now, elapsed=0.0, stage=0),
    }


def _resume(policy: SlaPolicy, clock: Clock, now: datetime) -> ClockOp:
    return {
        "name": policy.name,
        "op": "resume",
        **_schedule(policy, now, elapsed=clock.elapsed, stage=clock.stage),
    }


def _pause(policy: SlaPolicy, clock: Clock, now: datetime) -> ClockOp:
    return {"name": policy.name, "op": "pause", "elapsed_add": _counted(policy, clock, now)}


def _stop(policy: SlaPolicy, clock: Clock, now: datetime) -> ClockOp:
    return {"name": policy.name, "op": "stop", "elapsed_add": _counted(policy, clock, now)}


def _counted(policy: SlaPolicy, clock: Clock, now: datetime) -> float | None:
    """The seconds the clock counted since it last (re)started; None on the wall clock,
    where the statement counts them on the database's clock."""
    if policy.calendar.wall or clock.running_since is None:
        return None
    return policy.calendar.span(clock.running_since, now)


def _schedule(policy: SlaPolicy, now: datetime, *, elapsed: float, stage: int) -> ClockOp:
    """When a clock (re)started now, having counted `elapsed` and done `stage` marks, is due,
    at risk, and next has something to do (offsets from now)."""
    calendar = policy.calendar

    def offset(clock_seconds: float) -> float:
        return (calendar.add(now, max(0.0, clock_seconds - elapsed)) - now).total_seconds()

    pending = policy.marks[stage:]
    return {
        "due_in": offset(policy.target),
        "warn_in": offset(policy.warn_at) if policy.warn_at is not None else None,
        "next_in": offset(pending[0].offset) if pending else None,
    }


# --- the ticket's JSON -------------------------------------------------------------------------


def sla_json(raw: Iterable[ClockJson] | None, now: datetime | None = None) -> list[dict[str, Any]]:
    """The ticket's `sla`: each clock with its state and the time left (or past due).

    A running clock past its due time is shown `breached` at once, whether or not a tick
    has reported it yet; `remaining_seconds` of a paused clock is the clock's own time left
    (working seconds on a business calendar)."""
    if not raw:
        return []
    now = now or datetime.now(UTC)
    out = []
    for clock in clocks_of(raw).values():
        state = clock.state
        late = clock.due_at is not None and clock.due_at <= (clock.stopped_at or now)
        if state == "running" and late:
            state = "breached"
        remaining = overdue = None
        if state == "breached" and clock.due_at is not None:
            overdue = max(0, int(((clock.stopped_at or now) - clock.due_at).total_seconds()))
        elif state == "running" and clock.due_at is not None:
            remaining = int((clock.due_at - now).total_seconds())
        elif state == "paused":
            remaining = int(clock.target - clock.elapsed)
        out.append(
            {
                "name": clock.name,
                "state": state,
                "started_at": clock.started_at,
                "due_at": clock.due_at,
                "warn_at": clock.warn_at,
                "at_risk": state == "running"
                and clock.warn_at is not None
                and clock.warn_at <= now,
                "remaining_seconds": remaining,
                "overdue_seconds": overdue,
                "paused_at": clock.paused_at,
                "stopped_at": clock.stopped_at,
                "breached_at": clock.breached_at or (clock.due_at if state == "breached" else None),
            }
        )
    return out
