"""The compiled SLA policies (flowdesk.workflow.sla_spec builds them): what starts, pauses and
stops a clock, its target on a calendar, and the timed marks the tick acts on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .calendars import Calendar
from .diagnostics import Pos

# What besides a status change moves a clock: a reply (an external comment) by the ticket's
# requester, or by anyone else (an agent's answer: "time to first response").
EVENTS = ("agent_reply", "requester_reply")

MarkKind = Literal["reminder", "warning", "breach"]


@dataclass(frozen=True, slots=True)
class Recipient:
    """Whom a reminder or an escalation is addressed to: the ticket's `requester` or
    `assignee`, a tenant's group (by name) or a user (by e-mail)."""

    kind: Literal["requester", "assignee", "group", "user"]
    name: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name} if self.name else {"kind": self.kind}


@dataclass(frozen=True, slots=True)
class Mark:
    """Something the tick does when a clock has counted `offset` seconds."""

    offset: float
    kind: MarkKind
    to: Recipient | None = None


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    name: str
    label: str
    workflows: frozenset[str]
    items: frozenset[str] | None  # None: every catalog item of its workflows
    start: frozenset[str]
    pause: frozenset[str]
    stop_entering: frozenset[str]
    stop_leaving: frozenset[str]
    stop_on: frozenset[str]
    target: int  # seconds of the calendar
    calendar: Calendar
    warn_at: float | None  # seconds of the calendar
    # Reminders, the warning and the breach, by offset (the breach last).
    marks: tuple[Mark, ...]
    escalate: Recipient | None = None
    action: str | None = None
    note: str = ""
    pos: Pos | None = field(default=None, compare=False)

    def applies_to(self, item: str) -> bool:
        return self.items is None or item in self.items
