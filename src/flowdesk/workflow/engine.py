"""The decisions: what may this actor do to this ticket, and what changes if they do.

``available_actions`` is one dict lookup plus a tight loop over precompiled edges: every reason
object is built at load time, so a decision allocates only the options it returns.
"""

from __future__ import annotations

from .model import (
    CREATE,
    RETURN,
    ROLE_ADMIN,
    ROLE_ASSIGNEE,
    ROLE_REQUESTER,
    STAY,
    Action,
    ActionOption,
    Actor,
    ApplyInputs,
    Edge,
    Outcome,
    Reason,
    TicketFacts,
    TransitionRefused,
    UnknownAction,
    Workflow,
)

_OWNER_NOOP = Reason(
    "owner",
    "you already own this ticket and the action would change nothing",
    required=("not_owner",),
)
_NO_PREVIOUS = Reason(
    "condition",
    "the status to return to is unknown (the ticket's previous status is not one that leads here)",
    condition="previous_status",
)


def _edges(workflow: Workflow, status: str | None) -> tuple[Edge, ...]:
    edges = workflow.table.get(CREATE if status is None else status)
    # A status the workflow no longer has: only the reset is offered (Trac's `_reset`).
    return workflow.reset_edges if edges is None else edges


def _role_bits(workflow: Workflow, facts: TicketFacts, actor: Actor) -> int:
    user = actor.user
    bits = 0
    if facts.owner is not None and facts.owner == user:
        bits |= ROLE_ASSIGNEE
    if facts.requester is not None and facts.requester == user:
        bits |= ROLE_REQUESTER
    if not actor.permissions.isdisjoint(workflow.admin_grantors):
        bits |= ROLE_ADMIN
    return bits


def _check(e: Edge, facts: TicketFacts, actor: Actor, bits: int) -> tuple[Reason, ...]:
    reasons: list[Reason] = []
    if e.role_mask and not e.role_mask & bits:
        reasons.append(e.role_reason)  # type: ignore[arg-type]
    if e.forbidden_mask & bits:
        reasons.append(e.forbidden_reason)  # type: ignore[arg-type]
    perms = actor.permissions
    for grantors, reason in e.all_of:
        if perms.isdisjoint(grantors):
            reasons.append(reason)
    for grantors, reason in e.any_of:
        if perms.isdisjoint(grantors):
            reasons.append(reason)
    for cond in e.conditions:
        if not cond.holds(facts):
            # Exactly what is missing (a rule's approval, an answer), not the whole rule.
            reasons.extend(cond.missing(facts))
    if e.noop_for_owner and facts.owner == actor.user:
        reasons.append(_OWNER_NOOP)
    if e.target == RETURN and facts.previous_status not in e.return_targets:
        reasons.append(_NO_PREVIOUS)
    return tuple(reasons)


def _owners(action: Action, facts: TicketFacts) -> tuple[str, ...]:
    """The users the action's owners stand for, in the order named (each once)."""
    directory = facts.owner_candidates
    if directory is None or not action.owners:
        return action.owners
    return tuple(dict.fromkeys(u for name in action.owners for u in directory.get(name, ())))


def _nobody_to_own(action: Action, facts: TicketFacts) -> Reason | None:
    """An action that must set one of its named owners, when they name nobody here."""
    if not action.owners or "set_owner" not in action.operations or _owners(action, facts):
        return None
    names = ", ".join(action.owners)
    return Reason(
        "owner",
        f"the owners this action names ({names}) are nobody in this tenant",
        required=action.owners,
    )


def _target(e: Edge, facts: TicketFacts) -> str | None:
    target = e.target
    if target == STAY:
        return facts.status
    if target == RETURN:
        prev = facts.previous_status
        return prev if prev in e.return_targets else None
    return target


def available_actions(workflow: Workflow, facts: TicketFacts, actor: Actor) -> list[ActionOption]:
    """Every action out of the ticket's current status, in display order, allowed or not."""
    bits = _role_bits(workflow, facts, actor)
    out = []
    for e in _edges(workflow, facts.status):
        a = e.action
        reasons = _check(e, facts, actor, bits)
        nobody = _nobody_to_own(a, facts) if a.owners else None
        if nobody is not None:
            reasons = (*reasons, nobody)
        out.append(
            ActionOption(
                a.name,
                a.label,
                _target(e, facts),
                not reasons,
                reasons,
                a.update_type,
                a.operations,
                a.resolutions,
                _owners(a, facts),
                a.comment_required,
                a.external,
            )
        )
    return out


def _find(workflow: Workflow, action: str, status: str | None) -> Edge:
    for e in _edges(workflow, status):
        if e.action.name == action:
            return e
    raise UnknownAction(action, status)


def _input(detail: str, field: str) -> Reason:
    return Reason("input", detail, required=(field,))


def apply(
    workflow: Workflow,
    action: str,
    facts: TicketFacts,
    actor: Actor,
    inputs: ApplyInputs | None = None,
) -> Outcome:
    """The new status and field changes, or ``TransitionRefused`` with the same reasons."""
    inputs = inputs or ApplyInputs()
    e = _find(workflow, action, facts.status)
    a = e.action
    reasons = list(_check(e, facts, actor, _role_bits(workflow, facts, actor)))
    nobody = _nobody_to_own(a, facts) if a.owners else None
    if nobody is not None:
        reasons.append(nobody)
    if reasons:
        raise TransitionRefused(action, tuple(reasons))
    owners = _owners(a, facts)
    ops = a.operations
    owner, resolution = facts.owner, facts.resolution
    owner_ops = {"set_owner", "may_set_owner", "set_owner_to_self", "del_owner"} & set(ops)
    if inputs.owner is not None and not {"set_owner", "may_set_owner"} & owner_ops:
        reasons.append(_input(f"'{action}' does not let you choose the owner", "owner"))
    if inputs.resolution is not None and "set_resolution" not in ops:
        reasons.append(_input(f"'{action}' does not set a resolution", "resolution"))
    for op in ops:  # in declared order, as Trac applies them
        if op == "del_owner":
            owner = None
        elif op == "set_owner_to_self":
            owner = actor.user
        elif op in ("set_owner", "may_set_owner"):
            if inputs.owner is not None:
                owner = inputs.owner
            elif len(owners) == 1:
                owner = owners[0]
            elif op == "set_owner":
                owner = actor.user  # Trac: "defaults to the current user"
            if a.owners and owner not in owners and (op == "set_owner" or inputs.owner):
                allowed = ", ".join(a.owners)
                reasons.append(_input(f"owner must be one of: {allowed}", "owner"))
        elif op == "set_resolution":
            resolution = inputs.resolution
            if resolution is None and len(a.resolutions) == 1:
                resolution = a.resolutions[0]
            if resolution is None:
                allowed = ", ".join(a.resolutions)
                reasons.append(
                    _input(f"a resolution is required (one of: {allowed})", "resolution")
                )
            elif resolution not in a.resolutions:
                allowed = ", ".join(a.resolutions)
                reasons.append(_input(f"resolution must be one of: {allowed}", "resolution"))
        elif op == "del_resolution":
            resolution = None
    if a.comment_required and not (inputs.comment and inputs.comment.strip()):
        kind = "an external reply" if a.external else "a comment"
        reasons.append(_input(f"'{action}' requires {kind}", "comment"))
    if reasons:
        raise TransitionRefused(action, tuple(reasons))
    status = _target(e, facts)
    assert status is not None  # _check refused a return with no known previous status
    changes: dict[str, tuple[object, object]] = {}
    for name, old, new in (
        ("status", facts.status, status),
        ("owner", facts.owner, owner),
        ("resolution", facts.resolution, resolution),
    ):
        if old != new:
            changes[name] = (old, new)
    return Outcome(a.name, facts.status, status, owner, resolution, changes)


def action_for_target(workflow: Workflow, facts: TicketFacts, actor: Actor, to_status: str) -> str:
    """The action for an API call ``{"to": STATUS}``: the first allowed one leading there."""
    options = [o for o in available_actions(workflow, facts, actor) if o.to == to_status]
    if not options:
        where = "creation" if facts.status is None else f"'{facts.status}'"
        raise UnknownAction(
            "", facts.status, f"no action leads from {where} to '{to_status}' in '{workflow.name}'"
        )
    for option in options:
        if option.allowed:
            return option.action
    raise TransitionRefused(options[0].action, options[0].reasons)
