"""Milestones: which statuses resolve or close a ticket (what ticket.resolved and ticket.closed
announce), declared per status, defaulted for the standard statuses and guessed by name only
for workflows that declare none (Trac's and RT's, pasted)."""

from __future__ import annotations

import pytest

from flowdesk.workflow import Catalog, CatalogError

from .conftest import compile_yaml


def milestones(catalog: Catalog, workflow: str) -> dict[str, str | None]:
    return {name: s.milestone for name, s in catalog.workflow(workflow).statuses.items()}


def test_shipped_workflows(shipped: Catalog) -> None:
    assert milestones(shipped, "itsm_default") == {
        "open": None,
        "in_progress": None,
        "resolved": "resolved",
        "closed": "closed",
        "cancelled": None,  # aborted without a resolution: not "resolved"
    }
    platform = milestones(shipped, "platform_request")
    assert platform["DONE"] == "closed"
    assert "resolved" not in platform.values()
    standard = milestones(shipped, "incident_response")
    assert standard == {
        "OPEN": None,
        "IN_PROGRESS": None,
        "RESOLVED": "resolved",
        "CLOSED": "closed",
    }


def test_declared_milestones_replace_the_guess_by_name() -> None:
    catalog = compile_yaml(
        """
        workflows:
          - name: w
            statuses:
              - {name: new, category: initial}
              - {name: resolved, category: active}
              - {name: done, category: inactive, milestone: closed}
            transitions:
              - {action: finish, from: new, to: resolved}
              - {action: close, from: resolved, to: done}
        """
    )
    # Declaring one milestone means every one is declared: `resolved` is just a name here.
    assert milestones(catalog, "w") == {"new": None, "resolved": None, "done": "closed"}


def test_a_workflow_without_declarations_is_read_by_name() -> None:
    catalog = compile_yaml(
        """
        workflows:
          - name: w
            statuses:
              - {name: new, category: initial}
              - {name: resolved, category: inactive}
              - {name: closed, category: inactive}
              - {name: rejected, category: inactive}
            transitions:
              - {action: resolve, from: new, to: resolved}
              - {action: close, from: new, to: closed}
              - {action: reject, from: new, to: rejected}
        """
    )
    assert milestones(catalog, "w") == {
        "new": None,
        "resolved": "resolved",
        "closed": "closed",
        "rejected": None,
    }


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("{name: done, category: inactive, milestone: finished}", "unknown milestone 'finished'"),
        ("{name: done, category: active, milestone: closed}", "needs category 'inactive'"),
        ("{name: new, category: initial, milestone: resolved}", "cannot be an initial status"),
    ],
)
def test_wrong_milestones_are_errors_with_their_position(status: str, message: str) -> None:
    with pytest.raises(CatalogError) as caught:
        compile_yaml(
            f"""
            workflows:
              - name: w
                statuses:
                  - {{name: start, category: initial}}
                  - {status}
                  - {{name: end, category: inactive}}
                transitions:
                  - {{action: go, from: start, to: end}}
            """,
            "bad.yaml",
        )
    text = str(caught.value)
    assert message in text and "bad.yaml:6:" in text
