"""itsm_default, platform_request conditions and detours, apply inputs, reset, reasons."""

from __future__ import annotations

import pytest

from flowdesk.workflow import (
    RESET,
    Actor,
    ApplyInputs,
    Catalog,
    TicketFacts,
    TransitionRefused,
    UnknownAction,
    action_for_target,
    apply,
    available_actions,
)

from .conftest import ADMIN, compile_yaml

MANAGER = Actor("m", frozenset({"tickets:manage"}))
CLOSER = Actor("c", frozenset({"tickets:manage", "tickets:close"}))
CUSTOMER = Actor("rita", frozenset({"tickets:create"}))


def allowed(catalog: Catalog, wf: str, facts: TicketFacts, actor: Actor) -> dict[str, bool]:
    options = available_actions(catalog.workflow(wf), facts, actor)
    return {o.action: o.allowed for o in options}


# --- itsm_default (seed 004) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "manager", "closer", "customer"),
    [
        ("open", {"start": True, "cancel": True}, {"start": True, "cancel": True}, {}),
        (
            "in_progress",
            {"resolve": False, "cancel": True},
            {"resolve": True, "cancel": True},
            {},
        ),
        (
            "resolved",
            {"close": False, "reopen": False, "cancel": True, "confirm": False, "reject": False},
            {"close": True, "reopen": True, "cancel": True, "confirm": False, "reject": False},
            # The reporter's answer to the proposed solution: theirs alone.
            {"confirm": True, "reject": True},
        ),
        # Final: only an admin's reset leads out.
        ("closed", {"_reset": False}, {"_reset": False}, {}),
        ("cancelled", {"_reset": False}, {"_reset": False}, {}),
    ],
)
def test_itsm_only_agents_and_close_permission(
    shipped: Catalog,
    status: str,
    manager: dict[str, bool],
    closer: dict[str, bool],
    customer: dict[str, bool],
) -> None:
    facts = TicketFacts(status=status, requester="rita")
    assert allowed(shipped, "itsm_default", facts, MANAGER) == manager
    assert allowed(shipped, "itsm_default", facts, CLOSER) == closer
    as_customer = allowed(shipped, "itsm_default", facts, CUSTOMER)
    assert {a for a, ok in as_customer.items() if ok} == {a for a, ok in customer.items() if ok}


def test_itsm_refusal_names_the_missing_permission(shipped: Catalog) -> None:
    wf = shipped.workflow("itsm_default")
    facts = TicketFacts(status="in_progress")
    with pytest.raises(TransitionRefused) as refused:
        apply(wf, "resolve", facts, MANAGER)
    assert [r.to_dict() for r in refused.value.reasons] == [
        {
            "code": "permission",
            "detail": "requires the permission 'tickets:close'",
            "required": ["tickets:close"],
        }
    ]
    assert apply(wf, "resolve", facts, ADMIN).status == "resolved"  # admin implies everything


# --- platform_request (seed 003) -------------------------------------------------------------


def pr(status: str, **kw: object) -> TicketFacts:
    return TicketFacts(status=status, requester="rita", **kw)  # type: ignore[arg-type]


def test_debug_skips_authorize(shipped: Catalog) -> None:
    debug = allowed(shipped, "platform_request", pr("REVIEW", type="debug"), MANAGER)
    assert debug["ready"] is True and debug["request_authorization"] is False
    change = allowed(shipped, "platform_request", pr("REVIEW", type="change"), MANAGER)
    assert change["ready"] is False and change["request_authorization"] is True
    untyped = allowed(shipped, "platform_request", pr("REVIEW"), MANAGER)
    assert untyped["ready"] is False and untyped["request_authorization"] is False


def test_condition_reasons_are_machine_readable(shipped: Catalog) -> None:
    wf = shipped.workflow("platform_request")
    options = {o.action: o for o in available_actions(wf, pr("IN_PROGRESS"), MANAGER)}
    assert options["queue_deployment"].reasons[0].to_dict() == {
        "code": "condition",
        "detail": "the field 'fix_version' must be set",
        "condition": "field_set:fix_version",
    }
    assert options["block"].reasons[0].condition == "link:blocked_by"
    ok = {
        o.action: o.allowed
        for o in available_actions(
            wf,
            pr("IN_PROGRESS", fields={"fix_version": "1.2"}, links=frozenset({"blocked_by"})),
            MANAGER,
        )
    }
    assert ok["queue_deployment"] and ok["block"]
    empty = pr("IN_PROGRESS", fields={"fix_version": ""})
    assert not {o.action: o.allowed for o in available_actions(wf, empty, MANAGER)}[
        "queue_deployment"
    ]


def test_authorize_needs_the_infra_approval(shipped: Catalog) -> None:
    wf = shipped.workflow("platform_request")
    # A change request: the manager-approval matrix of access requests does not apply
    # (tests/workflow/test_conditions.py walks it).
    with pytest.raises(TransitionRefused) as refused:
        apply(wf, "authorize", pr("AUTHORIZE", type="change"), MANAGER)
    assert [r.condition for r in refused.value.reasons] == ["approval:infra"]
    facts = pr("AUTHORIZE", type="change", approvals=frozenset({"infra"}))
    assert apply(wf, "authorize", facts, MANAGER).status == "PENDING"


def test_detours_return_where_they_came_from(shipped: Catalog) -> None:
    wf = shipped.workflow("platform_request")
    into = apply(
        wf, "wait_on_customer", pr("AUTHORIZE"), MANAGER, ApplyInputs(comment="which env?")
    )
    assert into.status == "WAITING_ON_CUSTOMER"
    back = apply(wf, "resume", pr("WAITING_ON_CUSTOMER", previous_status="AUTHORIZE"), MANAGER)
    assert back.status == "AUTHORIZE"
    (resume,) = [o for o in available_actions(wf, pr("BLOCKED"), MANAGER) if o.action == "resume"]
    assert resume.to is None and not resume.allowed
    assert resume.reasons[0].condition == "previous_status"
    # SUBMITTED never leads into BLOCKED, so it is no place to return to
    with pytest.raises(TransitionRefused):
        apply(wf, "resume", pr("BLOCKED", previous_status="SUBMITTED"), MANAGER)


def test_complete_sets_its_only_resolution_and_cancel_requires_a_reply(shipped: Catalog) -> None:
    wf = shipped.workflow("platform_request")
    done = apply(wf, "complete", pr("IN_PROGRESS"), MANAGER)
    assert (done.status, done.resolution) == ("DONE", "completed")
    assert done.changes == {"status": ("IN_PROGRESS", "DONE"), "resolution": (None, "completed")}
    with pytest.raises(TransitionRefused) as refused:
        apply(wf, "cancel", pr("REVIEW"), MANAGER)
    assert refused.value.reasons[0].to_dict() == {
        "code": "input",
        "detail": "'cancel' requires an external reply",
        "required": ["comment"],
    }


# --- apply inputs, owner operations, reset ---------------------------------------------------

OPS = """
workflows:
  - name: ops
    statuses:
      - {name: new, category: initial}
      - {name: doing, category: active}
      - {name: done, category: inactive}
    transitions:
      - {action: take, from: new, to: doing, operations: [set_owner_to_self]}
      - {action: give, from: [new, doing], to: doing, set_owner: [ann, bob]}
      - {action: keep, from: doing, to: doing, operations: [set_owner_to_self]}
      - {action: finish, from: doing, to: done, set_resolution: [fixed, wontfix], update: comment}
      - {action: reopen, from: done, to: doing, operations: [del_resolution, del_owner]}
"""


def test_owner_and_resolution_operations() -> None:
    wf = compile_yaml(OPS).workflow("ops")
    me = Actor("me")
    assert apply(wf, "take", TicketFacts(status="new"), me).owner == "me"
    with pytest.raises(TransitionRefused) as refused:
        apply(wf, "give", TicketFacts(status="new"), me, ApplyInputs(owner="eve"))
    assert refused.value.reasons[0].detail == "owner must be one of: ann, bob"
    assert apply(wf, "give", TicketFacts(status="new"), me, ApplyInputs(owner="bob")).owner == "bob"
    facts = TicketFacts(status="doing", owner="me")
    with pytest.raises(TransitionRefused) as refused:
        apply(wf, "finish", facts, me, ApplyInputs(comment="x"))
    assert refused.value.reasons[0].detail == "a resolution is required (one of: fixed, wontfix)"
    with pytest.raises(TransitionRefused) as refused:
        apply(wf, "finish", facts, me, ApplyInputs(resolution="done", comment="x"))
    assert refused.value.reasons[0].detail == "resolution must be one of: fixed, wontfix"
    with pytest.raises(TransitionRefused) as refused:
        apply(wf, "finish", facts, me, ApplyInputs(resolution="fixed"))
    assert refused.value.reasons[0].detail == "'finish' requires a comment"
    with pytest.raises(TransitionRefused) as refused:
        apply(wf, "take", TicketFacts(status="new"), me, ApplyInputs(resolution="fixed"))
    assert refused.value.reasons[0].detail == "'take' does not set a resolution"
    out = apply(wf, "finish", facts, me, ApplyInputs(resolution="fixed", comment="done"))
    assert (out.status, out.resolution) == ("done", "fixed")
    out = apply(wf, "reopen", TicketFacts(status="done", owner="me", resolution="fixed"), me)
    assert (out.owner, out.resolution) == (None, None)
    assert out.changes == {
        "status": ("done", "doing"),
        "owner": ("me", None),
        "resolution": ("fixed", None),
    }


def test_set_owner_to_self_alone_is_not_offered_to_the_owner() -> None:
    wf = compile_yaml(OPS).workflow("ops")
    options = {
        o.action: o
        for o in available_actions(wf, TicketFacts(status="doing", owner="me"), Actor("me"))
    }
    assert options["keep"].allowed is False
    assert options["keep"].reasons[0].code == "owner"
    other = {
        o.action: o.allowed
        for o in available_actions(wf, TicketFacts(status="doing", owner="x"), Actor("me"))
    }
    assert other["keep"] is True


def test_unknown_status_offers_only_reset_to_admins() -> None:
    wf = compile_yaml(OPS).workflow("ops")
    gone = TicketFacts(status="archived")
    (option,) = available_actions(wf, gone, Actor("me"))
    assert (option.action, option.to, option.allowed) == (RESET, "new", False)
    assert option.reasons[0].required == ("admin",)
    assert apply(wf, RESET, gone, ADMIN).status == "new"
    with pytest.raises(UnknownAction):
        apply(wf, "finish", gone, ADMIN)


def test_own_reset_and_no_reset() -> None:
    own = OPS + "    reset: {to: doing, permissions: [tickets:manage], label: repair}\n"
    (option,) = available_actions(
        compile_yaml(own).workflow("ops"), TicketFacts(status="x"), MANAGER
    )
    assert (option.label, option.to, option.allowed) == ("repair", "doing", True)
    none = OPS + "    reset: false\n"
    assert (
        available_actions(compile_yaml(none).workflow("ops"), TicketFacts(status="x"), ADMIN) == []
    )


def test_action_for_target(shipped: Catalog) -> None:
    wf = shipped.workflow("itsm_default")
    facts = TicketFacts(status="resolved")
    assert action_for_target(wf, facts, CLOSER, "in_progress") == "reopen"
    with pytest.raises(TransitionRefused) as refused:
        action_for_target(wf, facts, MANAGER, "closed")
    assert refused.value.action == "close"
    with pytest.raises(UnknownAction, match="no action leads from 'resolved' to 'open'"):
        action_for_target(wf, facts, CLOSER, "open")
    with pytest.raises(UnknownAction, match="no action 'fly' out of status 'resolved'"):
        apply(wf, "fly", facts, CLOSER)


def test_roles_lists_and_forbidden_roles() -> None:
    text = """
    workflows:
      - name: r
        transitions:
          - {from: OPEN, to: IN_PROGRESS, role: [assignee, requester]}
          - {from: IN_PROGRESS, to: RESOLVED, forbidden_roles: [assignee]}
          - {from: RESOLVED, to: CLOSED}
    """
    wf = compile_yaml(text).workflow("r")
    facts = TicketFacts(status="OPEN", requester="rita", owner="alex")
    assert [o.allowed for o in available_actions(wf, facts, Actor("rita"))] == [True]
    assert [o.allowed for o in available_actions(wf, facts, ADMIN)] == [False]  # no "any"
    facts = TicketFacts(status="IN_PROGRESS", requester="rita", owner="alex")
    (opt,) = available_actions(wf, facts, Actor("alex"))
    assert opt.reasons[0].detail == "the assignee may not do this"
    assert available_actions(wf, facts, Actor("bob"))[0].allowed


NAMED = """
workflows:
  - name: w
    statuses:
      - {name: new, category: initial}
      - {name: assigned, category: active}
      - {name: closed, category: inactive}
    transitions:
      - {action: reassign, from: new, to: assigned, set_owner: [ann, qa]}
      - {action: close, from: [new, assigned], to: closed}
"""


def test_named_owners_stand_for_who_the_directory_says() -> None:
    workflow = compile_yaml(NAMED).workflow("w")
    actor = Actor("u-9", frozenset({"tickets:manage"}))
    directory = {"ann": ("u-1",), "qa": ("u-2", "u-3", "u-1")}
    facts = TicketFacts(status="new", owner_candidates=directory)
    option = next(o for o in available_actions(workflow, facts, actor) if o.action == "reassign")
    assert option.allowed and option.owners == ("u-1", "u-2", "u-3")
    outcome = apply(workflow, "reassign", facts, actor, ApplyInputs(owner="u-3"))
    assert outcome.owner == "u-3"
    with pytest.raises(TransitionRefused):
        apply(workflow, "reassign", facts, actor, ApplyInputs(owner="ann"))  # a name, not a user


def test_owners_who_are_nobody_make_the_action_unavailable() -> None:
    workflow = compile_yaml(NAMED).workflow("w")
    actor = Actor("u-9", frozenset({"tickets:manage"}))
    facts = TicketFacts(status="new", owner_candidates={"ann": (), "qa": ()})
    option = next(o for o in available_actions(workflow, facts, actor) if o.action == "reassign")
    assert not option.allowed and option.owners == ()
    assert [r.code for r in option.reasons] == ["owner"]
    with pytest.raises(TransitionRefused) as refused:
        apply(workflow, "reassign", facts, actor)
    assert refused.value.reasons[0].code == "owner"
