"""Trac ``[ticket-workflow]`` -> flowdesk YAML, keeping Trac's semantics (see docs/workflows.md).

Mirrors ``trac.ticket.default_workflow.parse_workflow_config``: option names are lower-cased as
ConfigParser does, ``<none>`` is the create state, ``.name`` is the old spelling of ``.label``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..model import DEFAULT_RESOLUTIONS
from .common import ImportProblem, slug

# Trac's permission hierarchy (trac.ticket.api.TicketSystem.get_permission_actions, Trac 1.6):
# TICKET_ADMIN implies Trac's own ticket permissions, and only those: a permission a workflow
# adds (enterprise-review's TICKET_REVIEW, through ExtraPermissionsProvider) is not among
# them. TICKET_MODIFY implies APPEND and CHGPROP; TRAC_ADMIN implies everything.
TRAC_IMPLIES = {
    "TRAC_ADMIN": ["*"],
    "TICKET_ADMIN": [
        "TICKET_APPEND",
        "TICKET_BATCH_MODIFY",
        "TICKET_CHGPROP",
        "TICKET_CREATE",
        "TICKET_EDIT_CC",
        "TICKET_EDIT_COMMENT",
        "TICKET_EDIT_DESCRIPTION",
        "TICKET_MODIFY",
        "TICKET_VIEW",
    ],
    "TICKET_MODIFY": ["TICKET_APPEND", "TICKET_CHGPROP"],
}
KNOWN_OPS = {
    "set_owner",
    "set_owner_to_self",
    "may_set_owner",
    "del_owner",
    "set_resolution",
    "del_resolution",
    "leave_status",
    "reset_workflow",
}


@dataclass
class _Action:
    name: str
    line: int
    oldstates: list[str] = field(default_factory=list)
    newstate: str = ""
    label: str = ""
    default: int = 0
    operations: list[str] = field(default_factory=list)
    permissions: list[str] = field(default_factory=list)
    attrs: dict[str, tuple[str, int]] = field(default_factory=dict)


def _to_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def read_section(
    text: str, filename: str, section: str = "ticket-workflow"
) -> list[tuple[str, str, int]]:
    """(option, value, line) of one ini section, with ConfigParser's continuation lines."""
    out: list[tuple[str, str, int]] = []
    current: str | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped[0] in ";#":
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            current = stripped[1:-1].strip()
            continue
        if current != section:
            continue
        if raw[0] in " \t" and out:  # continuation of the previous value
            opt, value, line = out[-1]
            out[-1] = (opt, f"{value}\n{stripped}", line)
            continue
        if "=" not in stripped:
            raise ImportProblem(f"{filename}:{lineno}: expected 'option = value', got {stripped!r}")
        opt, value = stripped.split("=", 1)
        out.append((opt.strip().lower(), value.strip(), lineno))
    if current is None and not out:
        raise ImportProblem(f"{filename}:1: no [{section}] section")
    return out


def _parse(options: list[tuple[str, str, int]], filename: str) -> dict[str, _Action]:
    actions: dict[str, _Action] = {}
    for option, value, line in options:
        name, _, attribute = option.partition(".")
        action = actions.setdefault(name, _Action(name, line))
        if not attribute:
            if "->" not in value:
                raise ImportProblem(f"{filename}:{line}: action '{name}' must read 'a,b -> c'")
            old, new = (x.strip() for x in value.split("->", 1))
            action.oldstates = ["" if s in ("<none>", "< none >") else s for s in _to_list(old)]
            if not old:
                action.oldstates = [""]
            action.newstate = new
            action.line = line
        elif attribute == "default":
            try:
                action.default = int(value)
            except ValueError:
                action.default = 0  # Trac: as_int(value, 0)
        elif attribute in ("operations", "permissions"):
            setattr(action, attribute, _to_list(value))
        elif attribute in ("label", "name"):
            action.label = value
        else:
            action.attrs[attribute] = (value, line)
    for action in actions.values():
        if not action.newstate:
            raise ImportProblem(
                f"{filename}:{action.line}: action '{action.name}' has attributes but no "
                "transition ('a,b -> c')"
            )
        action.label = action.label or action.name.replace("_", " ").strip()
    return actions


def _code_review(action: _Action, filename: str) -> list[tuple[str, str]]:
    """The CodeReviewActionController's outcomes: 'decision -> status' pairs."""
    raw, line = action.attrs.get("code_review", ("", action.line))
    outcomes = []
    for part in _to_list(raw.replace("\n", " ")):
        if "->" not in part:
            raise ImportProblem(
                f"{filename}:{line}: code_review outcome {part!r} must read 'x -> s'"
            )
        decision, status = (x.strip() for x in part.split("->", 1))
        outcomes.append((decision, status))
    if not outcomes:
        raise ImportProblem(
            f"{filename}:{line}: action '{action.name}' uses code_review "
            f"but '{action.name}.code_review' lists no outcomes"
        )
    return outcomes


def _transition(a: _Action, ops: list[str], to: str, filename: str) -> dict[str, Any]:
    t: dict[str, Any] = {"action": a.name}
    if a.label != a.name.replace("_", " ").strip():
        t["label"] = a.label
    t["from"] = (
        "*" if a.oldstates == ["*"] else (a.oldstates[0] if len(a.oldstates) == 1 else a.oldstates)
    )
    t["to"] = to
    if len(a.permissions) == 1:
        t["permissions"] = a.permissions
    elif a.permissions:  # Trac: any one of the listed permissions suffices
        t["any_permission"] = a.permissions
    if ops:
        t["operations"] = ops
    if "set_owner" in a.attrs:
        t["set_owner"] = _to_list(a.attrs["set_owner"][0])
    if "set_resolution" in ops:
        given = a.attrs.get("set_resolution")
        t["set_resolution"] = _to_list(given[0]) if given else list(DEFAULT_RESOLUTIONS)
    if a.default:
        t["weight"] = a.default
    return t


def import_trac(text: str, filename: str, name: str) -> tuple[dict[str, Any], list[str]]:
    """Returns the catalog document and warnings (``file:line: message``)."""
    warnings: list[str] = []
    actions = _parse(read_section(text, filename), filename)
    reset = actions.pop("_reset", None)
    states: dict[str, None] = {}
    for a in actions.values():
        for s in [*a.oldstates, a.newstate]:
            if s not in ("", "*"):
                states[s] = None
        for _, target in _code_review(a, filename) if "code_review" in a.operations else []:
            states[target] = None
    creates = [a for a in actions.values() if "" in a.oldstates]
    if not creates:
        # Trac offers no way to create a ticket with a workflow that defines no create action
        # (its 1.3.2 upgrade adds the default ones to trac.ini; a pasted workflow has none).
        warnings.append(
            f"{filename}: no create action ('<none> -> state'): no ticket can be created with "
            "this workflow, as in Trac"
        )
    creates.sort(key=lambda a: (a.default, a.name), reverse=True)
    transitions: list[dict[str, Any]] = []
    for a in actions.values():
        ops = [op for op in a.operations if op not in ("code_review", "hidden")]
        for op in ops:
            if op not in KNOWN_OPS:
                raise ImportProblem(
                    f"{filename}:{a.line}: action '{a.name}': operation '{op}' "
                    "comes from a Trac plugin flowdesk cannot reproduce"
                )
        if "code_review" in a.operations:
            for decision, target in _code_review(a, filename):
                t = _transition(a, ops, target, filename)
                t["action"] = f"{a.name}_{slug(decision)}"
                t["label"] = f"{a.label}: {decision}"
                # The plugin only offers a review to someone other than the owner.
                t["forbidden_roles"] = ["assignee"]
                transitions.append(t)
            continue
        if "hidden" in a.operations:
            warnings.append(
                f"{filename}:{a.line}: action '{a.name}' is hidden (offered by a "
                "plugin controller only): not imported"
            )
            continue
        to = "stay" if a.newstate == "*" or "leave_status" in ops else a.newstate
        transitions.append(_transition(a, ops, to, filename))
    # The status tickets start in: the first create action's target, else Trac's `new`.
    initial = creates[0].newstate if creates else ("new" if "new" in states else next(iter(states)))
    statuses = [
        {
            "name": s,
            "category": "inactive" if s == "closed" else "initial" if s == initial else "active",
        }
        for s in states
    ]
    workflow: dict[str, Any] = {"name": name, "displayName": name.replace("_", " ").title()}
    if not creates:
        workflow["implicit_create"] = False
    workflow["statuses"] = statuses
    workflow["transitions"] = transitions
    if reset is not None:
        workflow["reset"] = {
            "to": reset.newstate,
            "permissions": reset.permissions,
            "label": reset.label,
        }
    elif "new" in states:  # Trac adds `_reset` only when the workflow has a `new` state
        workflow["reset"] = {"to": "new", "permissions": ["TICKET_ADMIN"], "label": "reset"}
    else:
        workflow["reset"] = False
    workflow["permission_implies"] = TRAC_IMPLIES
    return {"version": 1, "workflows": [workflow]}, warnings
