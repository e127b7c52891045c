"""Which approvals a request waits on once it enters a status (flowdesk.notifications.
addressees.awaited_approvals), on the shipped catalog's platform workflow: the facts alone, no
database. The mails themselves: test_sla_and_approval_mail.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flowdesk.notifications.addressees import awaited_approvals
from flowdesk.workflow import Catalog, TicketFacts, load_catalog

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog([], base=REPO / "workflows.yaml")


def _awaited(catalog: Catalog, status: str, kind: str, **facts: Any) -> tuple[str, ...]:
    workflow = catalog.workflow("platform_request")
    return awaited_approvals(workflow, TicketFacts(status=status, type=kind, **facts))


def _access(level: str, *environments: str, project: str = "Gateway") -> dict[str, Any]:
    return {"access_level": level, "environments": list(environments), "project": project}


@pytest.mark.parametrize(
    ("kind", "answers", "held", "awaited"),
    [
        ("change", {}, frozenset(), ("infra",)),
        ("change", {}, frozenset({"infra"}), ()),
        ("access", _access("read", "prd"), frozenset(), ("infra", "manager")),
        ("access", _access("read", "prd"), frozenset({"manager"}), ("infra",)),
        ("access", _access("read", "dev"), frozenset(), ("infra",)),
        (
            "access",
            _access("contributor", "dev", project="Crypto"),
            frozenset(),
            ("infra", "manager"),
        ),
        # A debug request never goes through Authorize's gate: nobody is asked.
        ("debug", {}, frozenset(), ()),
    ],
)
def test_authorize_waits_on_what_its_gate_misses(
    catalog: Catalog,
    kind: str,
    answers: dict[str, Any],
    held: frozenset[str],
    awaited: tuple[str, ...],
) -> None:
    assert _awaited(catalog, "AUTHORIZE", kind, answers=answers, approvals=held) == awaited


def test_statuses_without_an_approval_gate_wait_on_nobody(catalog: Catalog) -> None:
    for status in ("SUBMITTED", "REVIEW", "PENDING", "IN_PROGRESS", "DONE"):
        assert _awaited(catalog, status, "access", answers=_access("read", "prd")) == ()
