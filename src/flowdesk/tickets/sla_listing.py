"""What ticket lists ask of SLA clocks: the `sla_state` filter and the `sla_due` sort
(flowdesk.tickets.listing builds them into its statements). Both judge a clock on the
statement's now(), so a list agrees with the ticket's JSON whether or not a tick has run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, DateTime, and_, func, literal, or_, select

from flowdesk.models import sla_clocks, tickets

SLA_DUE: Final = "sla_due"
# The key of a ticket with no running clock: after every real due time.
NOT_DUE: Final = datetime(9999, 12, 31, tzinfo=UTC)

c = sla_clocks.c


def _of_ticket() -> ColumnElement[bool]:
    return and_(c.tenant_id == tickets.c.tenant_id, c.ticket_id == tickets.c.id)


def sla_filter(state: str) -> ColumnElement[bool]:
    """`breached`: a clock past due (running, or stopped late); `at_risk`: a running clock
    past its warning and not yet due."""
    now = func.now()
    if state == "breached":
        missed = or_(c.state == "breached", and_(c.state == "running", c.due_at <= now))
    else:
        missed = and_(c.state == "running", c.warn_at <= now, c.due_at > now)
    return select(c.name).where(_of_ticket(), missed).exists()


def sla_due_key() -> ColumnElement[Any]:
    """The nearest due time of the ticket's running clocks (overdue ones first), or
    `NOT_DUE`."""
    nearest = (
        select(func.min(c.due_at))
        .where(_of_ticket(), c.stopped_at.is_(None), c.due_at.is_not(None))
        .scalar_subquery()
    )
    return func.coalesce(nearest, literal(NOT_DUE, DateTime(timezone=True)))
