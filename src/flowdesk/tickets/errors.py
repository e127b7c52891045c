"""Ticket domain errors (problem+json types) and the translation of the engine's verdicts."""

from __future__ import annotations

from flowdesk.errors import Conflict, PreconditionFailed
from flowdesk.workflow import StatusMapMissing, TransitionRefused, UnknownAction


class TransitionRefusedError(Conflict):
    slug, title = "transition-refused", "Transition refused"

    @classmethod
    def from_engine(cls, exc: TransitionRefused) -> TransitionRefusedError:
        return cls(
            f"The workflow refuses '{exc.action}': "
            + "; ".join(r.detail for r in exc.reasons)
            + ".",
            extra={"action": exc.action, "reasons": [r.to_dict() for r in exc.reasons]},
        )


class TransitionUnavailable(Conflict):
    slug, title = "transition-unavailable", "No such transition from this status"

    @classmethod
    def from_engine(cls, exc: UnknownAction, workflow: str) -> TransitionUnavailable:
        return cls(
            f"{exc}.",
            extra={"action": exc.action or None, "status": exc.status, "workflow": workflow},
        )


class StatusMapMissingError(Conflict):
    slug, title = "status-map-missing", "No status map for this move"

    @classmethod
    def from_engine(cls, exc: StatusMapMissing) -> StatusMapMissingError:
        return cls(
            f"Cannot move the ticket: workflow '{exc.to_workflow}' has no status '{exc.status}' "
            f"and no map from '{exc.from_workflow}' says where it goes.",
            extra={
                "from_workflow": exc.from_workflow,
                "to_workflow": exc.to_workflow,
                "missing_status": exc.status,
            },
        )


class TicketClosed(Conflict):
    """A write to a ticket in a final status (seed 004: closed allows no further change)."""

    slug, title = "ticket-closed", "Ticket closed"


class StaleVersion(PreconditionFailed):
    """The client's If-Match names another version of the ticket than the current one."""

    def __init__(self, current_version: int) -> None:
        super().__init__(
            f"The resource has changed: it is now at version {current_version}.",
            # The ETag of that version, as flowdesk.api.etag writes it.
            extra={"current_etag": f'"{current_version}"'},
        )
