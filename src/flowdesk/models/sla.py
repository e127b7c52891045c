"""SLA clocks (the catalog's `sla_policies`): one row per ticket and policy, written in the
statement of the status change that starts, pauses, resumes or stops it
(flowdesk.tickets.sla), and claimed by the tick when its next timed action is due
(flowdesk.tickets.sla_tick)."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Uuid,
    text,
)

from flowdesk.db.base import metadata
from flowdesk.models.columns import tenant_id

CLOCK_STATES = ("running", "paused", "met", "breached")

sla_clocks = Table(
    "sla_clocks",
    metadata,
    tenant_id(references_tenant=False),
    Column("ticket_id", Uuid, primary_key=True),
    # The policy's name in the catalog.
    Column("name", String(100), primary_key=True),
    Column("state", String(10), nullable=False),
    # The target, in the clock's own seconds (business seconds on a business calendar).
    Column("target_seconds", Integer, nullable=False),
    # Counted before the current run (`running_since`): what pauses leave behind.
    Column("elapsed_seconds", Float, nullable=False, server_default=text("0")),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("running_since", DateTime(timezone=True)),
    # Unknown (NULL) while paused: the time left is then target - elapsed.
    Column("due_at", DateTime(timezone=True)),
    Column("warn_at", DateTime(timezone=True)),
    Column("paused_at", DateTime(timezone=True)),
    Column("breached_at", DateTime(timezone=True)),
    Column("stopped_at", DateTime(timezone=True)),
    # How many of the policy's timed marks (reminders, warning, breach, by offset) are done.
    Column("stage", SmallInteger, nullable=False, server_default=text("0")),
    # When the tick has something to do for this clock; NULL: nothing (paused, stopped, done).
    Column("next_action_at", DateTime(timezone=True)),
    CheckConstraint("state IN ('running', 'paused', 'met', 'breached')", name="state"),
    ForeignKeyConstraint(
        ["tenant_id", "ticket_id"], ["tickets.tenant_id", "tickets.id"], ondelete="CASCADE"
    ),
    # The tick reads only what is due, whatever the number of running clocks.
    Index(
        "ix_sla_clocks_next_action_at",
        "next_action_at",
        postgresql_where=text("next_action_at IS NOT NULL"),
    ),
)
