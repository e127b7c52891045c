"""Seed 000's five workflows, transition by transition and role by role, refusals included."""

from __future__ import annotations

import pytest

from flowdesk.workflow import (
    Actor,
    Catalog,
    TicketFacts,
    TransitionRefused,
    UnknownAction,
    action_for_target,
    apply,
    available_actions,
)

from .conftest import ADMIN, AGENT, ASSIGNEE, REQUESTER

# The seed's tables, copied by hand (not derived from workflows.yaml).
SEED = {
    "incident_response": [
        ("OPEN", "IN_PROGRESS", "assignee"),
        ("IN_PROGRESS", "RESOLVED", "assignee"),
        ("RESOLVED", "CLOSED", "requester"),
        ("RESOLVED", "IN_PROGRESS", "any"),
    ],
    "service_request": [
        ("OPEN", "IN_PROGRESS", "assignee"),
        ("IN_PROGRESS", "RESOLVED", "assignee"),
        ("RESOLVED", "CLOSED", "any"),
        ("RESOLVED", "IN_PROGRESS", "requester"),
    ],
    "change_request": [
        ("OPEN", "IN_PROGRESS", "assignee"),
        ("IN_PROGRESS", "RESOLVED", "assignee"),
        ("RESOLVED", "CLOSED", "assignee"),
        ("RESOLVED", "IN_PROGRESS", "any"),
    ],
    "problem_investigation": [
        ("OPEN", "IN_PROGRESS", "assignee"),
        ("IN_PROGRESS", "OPEN", "assignee"),
        ("IN_PROGRESS", "RESOLVED", "assignee"),
        ("RESOLVED", "CLOSED", "any"),
        ("RESOLVED", "IN_PROGRESS", "any"),
    ],
    "access_request": [
        ("OPEN", "IN_PROGRESS", "assignee"),
        ("IN_PROGRESS", "OPEN", "any"),
        ("IN_PROGRESS", "RESOLVED", "assignee"),
        ("RESOLVED", "CLOSED", "requester"),
    ],
}
ACTORS = {"requester": REQUESTER, "assignee": ASSIGNEE, "agent": AGENT, "admin": ADMIN}
# Who each seed role admits: "any (either side, plus admins)"; another agent never.
ADMITS = {
    "assignee": {"assignee"},
    "requester": {"requester"},
    "any": {"requester", "assignee", "admin"},
}
STATUSES = ("OPEN", "IN_PROGRESS", "RESOLVED", "CLOSED")
CASES = [
    (wf, src, dst, role, who)
    for wf, rows in SEED.items()
    for src, dst, role in rows
    for who in ACTORS
]


def facts(status: str | None) -> TicketFacts:
    return TicketFacts(status=status, requester="rita", owner="alex", type="incident")


@pytest.mark.parametrize(("wf", "src", "dst", "role", "who"), CASES)
def test_each_transition_for_each_actor(
    shipped: Catalog, wf: str, src: str, dst: str, role: str, who: str
) -> None:
    workflow = shipped.workflow(wf)
    actor = ACTORS[who]
    option = next(o for o in available_actions(workflow, facts(src), actor) if o.to == dst)
    expected = who in ADMITS[role]
    assert option.allowed is expected
    if expected:
        assert option.reasons == ()
        outcome = apply(workflow, option.action, facts(src), actor)
        assert (outcome.from_status, outcome.status) == (src, dst)
        assert outcome.changes == {"status": (src, dst)}
        assert action_for_target(workflow, facts(src), actor, dst) == option.action
    else:
        assert [r.code for r in option.reasons] == ["role"]
        assert option.reasons[0].required == (role,)
        with pytest.raises(TransitionRefused) as refused:
            apply(workflow, option.action, facts(src), actor)
        assert refused.value.reasons == option.reasons
        with pytest.raises(TransitionRefused):
            action_for_target(workflow, facts(src), actor, dst)


@pytest.mark.parametrize("wf", SEED)
def test_exactly_the_seed_transitions_exist(shipped: Catalog, wf: str) -> None:
    workflow = shipped.workflow(wf)
    assert list(workflow.statuses) == list(STATUSES)
    assert [s.category for s in workflow.statuses.values()] == [
        "initial",
        "active",
        "active",
        "inactive",
    ]
    assert workflow.default_create_status == "OPEN"
    found = set()
    for status in STATUSES:
        for option in available_actions(workflow, facts(status), ADMIN):
            found.add((status, option.to))
    assert found == {(s, d) for s, d, _ in SEED[wf]}


@pytest.mark.parametrize("wf", SEED)
def test_transitions_not_in_the_seed_are_unknown(shipped: Catalog, wf: str) -> None:
    workflow = shipped.workflow(wf)
    allowed = {(s, d) for s, d, _ in SEED[wf]}
    for src in STATUSES:
        for dst in STATUSES:
            if (src, dst) in allowed:
                continue
            with pytest.raises(UnknownAction):
                action_for_target(workflow, facts(src), ADMIN, dst)


def test_closed_is_final_everywhere(shipped: Catalog) -> None:
    for wf in SEED:
        assert available_actions(shipped.workflow(wf), facts("CLOSED"), ADMIN) == []


def test_create_in_open_for_anyone(shipped: Catalog) -> None:
    workflow = shipped.workflow("incident_response")
    (option,) = available_actions(workflow, facts(None), Actor("someone"))
    assert (option.action, option.to, option.allowed) == ("create", "OPEN", True)
    outcome = apply(workflow, "create", facts(None), Actor("someone"))
    assert (outcome.from_status, outcome.status) == (None, "OPEN")


def test_unassigned_ticket_cannot_be_started(shipped: Catalog) -> None:
    workflow = shipped.workflow("incident_response")
    unassigned = TicketFacts(status="OPEN", requester="rita", owner=None)
    for actor in ACTORS.values():
        (option,) = available_actions(workflow, unassigned, actor)
        assert not option.allowed


def test_order_is_weight_then_name_descending(shipped: Catalog) -> None:
    workflow = shipped.workflow("problem_investigation")
    names = [o.action for o in available_actions(workflow, facts("RESOLVED"), ADMIN)]
    assert names == ["in_progress", "closed"]
    names = [o.action for o in available_actions(workflow, facts("IN_PROGRESS"), ADMIN)]
    assert names == ["resolved", "open"]
