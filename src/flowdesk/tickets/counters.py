"""Business counters of ticket writes, for Prometheus (`GET /metrics`, flowdesk.api.metrics):
tickets created by workflow, and transitions by workflow and action (explicit ones, the
automatic move of an assignment (`on_assign`), status timeouts and admin resets alike).

Counted by the ticket repository when a write statement has returned its row, so every path
that writes is counted once and nothing refused is. Label values come from the catalog
(workflow and action names), never from a client: the label sets stay bounded. A write that
an outer transaction rolls back afterwards (an Idempotency-Key record that failed to store)
is still counted: a counter is a rate to alert on, not an audit (the audit is
ticket_events)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter

TICKETS_CREATED = Counter(
    "flowdesk_tickets_created_total", "Tickets created, by workflow.", ["workflow"]
)
TRANSITIONS = Counter(
    "flowdesk_ticket_transitions_total",
    "Ticket transitions written (explicit, on assignment, timed out, reset), by workflow and "
    "action.",
    ["workflow", "action"],
)

_MOVES = frozenset({"transitioned", "reset"})


def count_created(workflow: str) -> None:
    TICKETS_CREATED.labels(workflow).inc()


def count_transitions(workflow: str, events: Iterable[Mapping[str, Any]]) -> None:
    """Count the transitions among a written change's audit events."""
    for event in events:
        if event["kind"] in _MOVES:
            TRANSITIONS.labels(workflow, str(event["data"].get("action", "?"))).inc()
