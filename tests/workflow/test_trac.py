"""Trac import: every sample compiles; Trac's semantics hold on the basic workflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowdesk.workflow import (
    RESET,
    Actor,
    ApplyInputs,
    Catalog,
    TicketFacts,
    TransitionRefused,
    apply,
    available_actions,
    compile_catalog,
)
from flowdesk.workflow.importers import ImportProblem, dump_catalog, import_trac

from .conftest import REPO, TRAC_DIR

SAMPLES = sorted(TRAC_DIR.glob("*.ini"))


def imported(path: Path, extra: str | None = None) -> Catalog:
    doc, _ = import_trac(path.read_text(), str(path), "trac")
    sources = [(f"{path.name}.yaml", dump_catalog(doc, ["imported"]))]
    if extra:
        sources.append(("values.yaml", extra))
    return compile_catalog(sources)


def test_all_seven_samples_are_present() -> None:
    assert len(SAMPLES) == 7


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_sample_imports_and_compiles(path: Path) -> None:
    wf = imported(path).workflow("trac")
    assert "closed" in wf.statuses and wf.statuses["closed"].category == "inactive"
    # A way to create a ticket, where the sample defines one (Trac offers none otherwise).
    assert bool(wf.create_statuses) == (path.stem != "enterprise-review-workflow")
    # standalone and merged over the shipped catalog alike
    base = (REPO / "workflows.yaml").read_text()
    doc, _ = import_trac(path.read_text(), str(path), "trac")
    merged = compile_catalog([("workflows.yaml", base), ("trac.yaml", dump_catalog(doc, []))])
    assert "incident_response" in merged.workflows and "trac" in merged.workflows


@pytest.fixture(scope="module")
def basic() -> Catalog:
    return imported(TRAC_DIR / "basic-workflow.ini")


def names(
    catalog: Catalog, facts: TicketFacts, actor: Actor, only_allowed: bool = True
) -> list[str]:
    options = available_actions(catalog.workflow("trac"), facts, actor)
    return [o.action for o in options if o.allowed or not only_allowed]


MODIFY = Actor("dev", frozenset({"TICKET_MODIFY"}))
TADMIN = Actor("boss", frozenset({"TICKET_ADMIN"}))
CREATE = Actor("user", frozenset({"TICKET_CREATE"}))
NOBODY = Actor("anon")


def test_order_is_default_then_name_descending(basic: Catalog) -> None:
    facts = TicketFacts(status="new", owner="someone")
    assert names(basic, facts, TADMIN) == ["leave", "resolve", "reassign", "accept"]
    assert names(basic, TicketFacts(status=None), TADMIN) == ["create", "create_and_assign"]


def test_availability_by_status_and_permission(basic: Catalog) -> None:
    facts = TicketFacts(status="new", owner="someone")
    assert names(basic, facts, MODIFY) == ["leave", "resolve", "reassign", "accept"]
    assert names(basic, facts, CREATE) == ["leave"]
    closed = TicketFacts(status="closed", resolution="fixed")
    assert names(basic, closed, MODIFY) == ["leave"]  # MODIFY does not imply CREATE
    assert names(basic, closed, CREATE) == ["leave", "reopen"]
    assert names(basic, closed, CREATE, only_allowed=False) == ["leave", "reopen"]


def test_permission_hierarchy(basic: Catalog) -> None:
    closed = TicketFacts(status="closed", resolution="fixed")
    assert names(basic, closed, TADMIN) == ["leave", "reopen"]  # TICKET_ADMIN -> TICKET_CREATE
    assert names(basic, closed, Actor("root", frozenset({"TRAC_ADMIN"}))) == ["leave", "reopen"]
    chgprop = Actor("x", frozenset({"TICKET_CHGPROP", "TICKET_APPEND"}))
    assert names(basic, TicketFacts(status="new"), chgprop) == ["leave"]  # no upward implication
    wf = basic.workflow("trac")
    (edge,) = [e for e in wf.table["new"] if e.action.name == "resolve"]
    assert {"TICKET_MODIFY", "TICKET_ADMIN", "TRAC_ADMIN", "admin"} <= edge.all_of[0][0]
    assert "TICKET_MODIFY" in wf.permission_implies and wf.permission_implies["TICKET_MODIFY"] == (
        "TICKET_APPEND",
        "TICKET_CHGPROP",
    )


def test_set_owner_to_self_rule(basic: Catalog) -> None:
    mine = TicketFacts(status="accepted", owner="dev")
    assert "accept" not in names(basic, mine, MODIFY)
    (accept,) = [
        o for o in available_actions(basic.workflow("trac"), mine, MODIFY) if o.action == "accept"
    ]
    assert accept.reasons[0].code == "owner"
    assert "accept" in names(basic, TicketFacts(status="accepted", owner="other"), MODIFY)
    assert "accept" in names(
        basic, TicketFacts(status="new", owner="dev"), MODIFY
    )  # status changes
    out = apply(basic.workflow("trac"), "accept", TicketFacts(status="new", owner="x"), MODIFY)
    assert (out.status, out.owner) == ("accepted", "dev")


def test_reset_for_a_status_no_longer_defined(basic: Catalog) -> None:
    # As Trac: the `* -> *` actions (leave) are offered in a status the workflow no longer
    # defines, to everyone they are offered to elsewhere; the reset to admins.
    gone = TicketFacts(status="testing")
    assert names(basic, gone, TADMIN, only_allowed=False) == ["leave", RESET]
    assert names(basic, gone, MODIFY) == ["leave"]
    assert names(basic, gone, NOBODY) == ["leave"]
    stay = apply(basic.workflow("trac"), "leave", gone, NOBODY)
    assert (stay.status, stay.changes) == ("testing", {})
    assert apply(basic.workflow("trac"), RESET, gone, TADMIN).status == "new"


def test_create_actions(basic: Catalog) -> None:
    wf = basic.workflow("trac")
    assert wf.default_create_status == "new"
    assert names(basic, TicketFacts(status=None), NOBODY) == ["create"]
    out = apply(wf, "create_and_assign", TicketFacts(status=None), MODIFY, ApplyInputs(owner="ann"))
    assert (out.status, out.owner) == ("assigned", "ann")
    out = apply(wf, "create_and_assign", TicketFacts(status=None, owner="comp"), MODIFY)
    assert out.owner == "comp"  # may_set_owner defaults to the existing owner


def test_leave_resolve_reopen(basic: Catalog) -> None:
    wf = basic.workflow("trac")
    facts = TicketFacts(status="assigned", owner="dev")
    leave = apply(wf, "leave", facts, NOBODY)
    assert (leave.status, leave.changes) == ("assigned", {})
    with pytest.raises(TransitionRefused):
        apply(wf, "resolve", facts, MODIFY)  # set_resolution needs a value
    out = apply(wf, "resolve", facts, MODIFY, ApplyInputs(resolution="wontfix"))
    assert (out.status, out.resolution) == ("closed", "wontfix")
    back = apply(wf, "reopen", TicketFacts(status="closed", resolution="wontfix"), CREATE)
    assert (back.status, back.resolution) == ("reopened", None)


def test_deployment_maps_flowdesk_permissions_onto_trac(tmp_path: Path) -> None:
    values = (
        "permission_implies:\n"
        "  tickets:manage: [TICKET_MODIFY]\n"
        "  tickets:create: [TICKET_CREATE]\n"
    )
    catalog = imported(TRAC_DIR / "basic-workflow.ini", values)
    agent = Actor("agent", frozenset({"tickets:manage"}))
    assert names(catalog, TicketFacts(status="new"), agent) == [
        "leave",
        "resolve",
        "reassign",
        "accept",
    ]
    customer = Actor("c", frozenset({"tickets:create"}))
    assert "reopen" in names(catalog, TicketFacts(status="closed"), customer)
    assert not catalog.warnings  # the aliases silence the "only admins" warning
    assert imported(TRAC_DIR / "basic-workflow.ini").warnings  # ...which fires without them


def test_code_review_becomes_three_outcomes() -> None:
    catalog = imported(TRAC_DIR / "enterprise-review-workflow.ini")
    wf = catalog.workflow("trac")
    reviewer = Actor("rev", frozenset({"TICKET_REVIEW"}))
    facts = TicketFacts(status="in_review", owner="dev")
    options = {o.action: o for o in available_actions(wf, facts, reviewer)}
    assert {k: (o.to, o.allowed) for k, o in options.items() if k.startswith("review")} == {
        "review_approve": ("in_QA", True),
        "review_approve_as_noted": ("post_review", True),
        "review_request_changes": ("in_work", True),
    }
    own = {
        o.action: o
        for o in available_actions(wf, facts, Actor("dev", frozenset({"TICKET_REVIEW"})))
    }
    assert own["review_approve"].reasons[0].detail == "the assignee may not do this"
    # TICKET_REVIEW is the workflow's own permission: Trac's TICKET_ADMIN does not imply it
    # (only Trac's own TICKET_* permissions); TRAC_ADMIN implies everything.
    boss = {
        o.action: o.allowed
        for o in available_actions(wf, facts, Actor("b", frozenset({"TICKET_ADMIN"})))
    }
    assert not boss["review_approve"]
    root = {
        o.action: o.allowed
        for o in available_actions(wf, facts, Actor("r", frozenset({"TRAC_ADMIN"})))
    }
    assert root["review_approve"]
    # The sample defines no create action, and Trac offers none: neither does flowdesk.
    assert wf.create_statuses == ()
    assert not available_actions(wf, TicketFacts(), Actor("r", frozenset({"TRAC_ADMIN"})))


def test_multi_permission_is_any_of() -> None:
    text = (
        "[ticket-workflow]\ncreate = <none> -> new\n"
        "fix = new -> closed\nfix.permissions = A_PERM, B_PERM\n"
    )
    doc, _ = import_trac(text, "x.ini", "trac")
    wf = compile_catalog([("x.yaml", dump_catalog(doc, []))]).workflow("trac")
    facts = TicketFacts(status="new")
    for perm in ("A_PERM", "B_PERM"):
        assert apply(wf, "fix", facts, Actor("u", frozenset({perm}))).status == "closed"
    with pytest.raises(TransitionRefused) as refused:
        apply(wf, "fix", facts, Actor("u"))
    assert refused.value.reasons[0].required == ("A_PERM", "B_PERM")


def test_plugin_operation_is_rejected_precisely() -> None:
    text = (
        "[ticket-workflow]\ncreate = <none> -> new\nvote = new -> new\nvote.operations = vote_up\n"
    )
    with pytest.raises(
        ImportProblem, match=r"x.ini:3: action 'vote': operation 'vote_up' comes from a Trac plugin"
    ):
        import_trac(text, "x.ini", "trac")
