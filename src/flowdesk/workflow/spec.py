"""The catalog schema: YAML nodes -> spec records that still know where they came from.

Validation of *shape* happens here (types, known keys, known roles/operations/condition kinds);
validation of *meaning* (statuses exist, reachability, ...) happens in ``checks.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from yaml.nodes import MappingNode, Node, ScalarNode

from flowdesk.vocabulary import CATEGORIES, MILESTONES

from .catalog_spec import parse_implies
from .conditions import ConditionSpec, parse_condition
from .diagnostics import Pos, Sink
from .model import (
    CREATE,
    OPERATIONS,
    RETURN,
    ROLES,
    STAY,
    UPDATE_TYPES,
)
from .yamlnodes import (
    boolean,
    check_keys,
    integer,
    mapping,
    pos_of,
    scalar,
    sequence,
    string,
    string_list,
)

ANY = "*"
Named = tuple[str, Pos]

WORKFLOW_KEYS = frozenset(
    {
        "name",
        "display_name",
        "description",
        "extends",
        "statuses",
        "default_status",
        "transitions",
        "rights",
        "reset",
        "permission_implies",
        "on_reply",
        "on_assign",
        "implicit_create",
        "restrict_owner",
    }
)
STATUS_KEYS = frozenset(
    {"name", "category", "hidden", "deleted", "label", "dead_end", "milestone", "final", "timeout"}
)
TIMEOUT_KEYS = frozenset({"after", "action"})
# `after: 7d`: a whole number of minutes, hours or days, at most a year.
_DURATION = re.compile(r"^([1-9][0-9]{0,5})([mhd])$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}
_MAX_TIMEOUT = timedelta(days=366)
TRANSITION_KEYS = frozenset(
    {
        "action",
        "label",
        "from",
        "to",
        "role",
        "forbidden_roles",
        "permissions",
        "any_permission",
        "conditions",
        "operations",
        "set_owner",
        "set_resolution",
        "weight",
        "update",
        "comment_required",
        "remove",
    }
)
RESET_KEYS = frozenset({"to", "permissions", "label"})


@dataclass(frozen=True, slots=True)
class StatusSpec:
    name: str
    category: str
    hidden: bool
    label: str
    dead_end: bool
    pos: Pos
    milestone: str | None = None
    deleted: bool = False
    final: bool = False
    timeout: TimeoutSpec | None = None


@dataclass(frozen=True, slots=True)
class TimeoutSpec:
    """`timeout: {after: 7d, action: close}`: a ticket left in the status that long is moved
    by that action, taken by the system."""

    after: timedelta
    action: str
    pos: Pos


@dataclass(frozen=True, slots=True)
class TransitionSpec:
    action: str
    label: str
    sources: tuple[Named, ...]  # CREATE ('') and ANY ('*') allowed
    to: str  # status, STAY or RETURN
    to_pos: Pos
    roles: tuple[Named, ...]
    forbidden_roles: tuple[Named, ...]
    permissions: tuple[str, ...]
    any_permission: tuple[str, ...]
    conditions: tuple[ConditionSpec, ...]
    operations: tuple[Named, ...]
    resolutions: tuple[str, ...]
    owners: tuple[str, ...]
    weight: int
    update: str | None
    comment_required: bool
    pos: Pos


@dataclass(frozen=True, slots=True)
class RightSpec:
    source: str
    target: str
    permissions: tuple[str, ...]
    pos: Pos


@dataclass(frozen=True, slots=True)
class ResetSpec:
    enabled: bool
    to: str | None
    permissions: tuple[str, ...]
    label: str
    pos: Pos


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    name: str
    display_name: str
    statuses: tuple[StatusSpec, ...] | None  # None: the standard four
    default_status: Named | None
    transitions: tuple[TransitionSpec, ...]
    rights: tuple[RightSpec, ...]
    reset: ResetSpec | None
    implies: dict[str, tuple[str, ...]]
    pos: Pos
    # RT's AutoOpen: a requester's reply on a ticket in a source status moves it to the target.
    on_reply: tuple[tuple[Named, Named], ...] = ()
    # Assigning an agent to a ticket in a source status moves it to the target in the same
    # write (seed 004: "open" means nobody is assigned yet).
    on_assign: tuple[tuple[Named, Named], ...] = ()
    # Without create actions, one per initial status is made (flowdesk's default); `false`
    # keeps none, as Trac does for a workflow that defines none.
    implicit_create: bool = True
    # Trac's `[ticket] restrict_owner`: an action that sets the owner from no list offers the
    # tenant's agents (holders of tickets:manage) and accepts no one else.
    restrict_owner: bool = False


def default_action_name(to: str) -> str:
    """Seed 000 transitions carry no names: the action is named after its target status."""
    return to.lower()


def parse_sources(node: Node, sink: Sink, what: str) -> tuple[Named, ...]:
    if isinstance(node, ScalarNode) and scalar(node) is None:
        return ((CREATE, pos_of(node)),)
    out = tuple(
        (s.strip(), p) for s, p in ((v, pos_of(n)) for v, n in string_list(node, sink, what))
    )
    if not out:
        sink.error(pos_of(node), f"{what} must name at least one status")
    return out


def transition_key(node: Node) -> tuple[str, tuple[str, ...]] | None:
    """Identity used by ``extends``: the action name and its from-statuses as written."""
    if not isinstance(node, MappingNode):
        return None
    fields = mapping(node, Sink(), "transition")
    if fields is None or "from" not in fields:
        return None
    scratch = Sink()
    sources = tuple(sorted(s for s, _ in parse_sources(fields["from"][1], scratch, "from")))
    if "action" in fields:
        name = scalar(fields["action"][1])
    else:
        name = scalar(fields["to"][1]) if "to" in fields else None
        name = default_action_name(name) if isinstance(name, str) else None
    return (name, sources) if isinstance(name, str) else None


def parse_transition(node: Node, sink: Sink) -> TransitionSpec | None:
    fields = mapping(node, sink, "transition")
    if fields is None:
        return None
    check_keys(fields, TRANSITION_KEYS, sink, "transition")
    pos = pos_of(node)
    for required in ("from", "to"):
        if required not in fields:
            sink.error(pos, f"transition: missing '{required}'")
    if "from" not in fields or "to" not in fields:
        return None
    sources = parse_sources(fields["from"][1], sink, "from")
    to_node = fields["to"][1]
    to = string(to_node, sink, "to") or STAY
    if "action" in fields:
        action = string(fields["action"][1], sink, "action") or "?"
    elif to in (STAY, RETURN):
        sink.error(pos, f"transition: 'to: {to}' needs an explicit 'action' name")
        action = "?"
    else:
        action = default_action_name(to)

    def names(key: str) -> tuple[Named, ...]:
        if key not in fields:
            return ()
        return tuple((v, pos_of(n)) for v, n in string_list(fields[key][1], sink, key))

    def strs(key: str) -> tuple[str, ...]:
        return tuple(v for v, _ in names(key))

    roles = names("role")
    for role, rpos in roles:
        if role not in ROLES:
            sink.error(rpos, f"unknown role '{role}' (expected one of: {', '.join(ROLES)})")
    forbidden = names("forbidden_roles")
    for role, rpos in forbidden:
        if role not in ("assignee", "requester"):
            sink.error(rpos, f"unknown forbidden role '{role}' (expected assignee or requester)")
    operations = list(names("operations"))
    for op, opos in operations:
        if op not in OPERATIONS:
            sink.error(opos, f"unknown operation '{op}' (expected one of: {', '.join(OPERATIONS)})")
    # Listing owners or resolutions implies the operation: less to write, same meaning as Trac.
    for implied in ("set_owner", "set_resolution"):
        if implied in fields and implied not in (op for op, _ in operations):
            operations.append((implied, pos_of(fields[implied][0])))
    update = None
    if "update" in fields:
        update = string(fields["update"][1], sink, "update")
        if update is not None and update not in UPDATE_TYPES:
            sink.error(
                pos_of(fields["update"][1]),
                f"unknown update type '{update}' (expected one of: {', '.join(UPDATE_TYPES)})",
            )
    comment_required = update in ("comment", "reply")
    if "comment_required" in fields:
        comment_required = boolean(fields["comment_required"][1], sink, "comment_required")
    conditions: list[ConditionSpec] = []
    if "conditions" in fields:
        for cnode in sequence(fields["conditions"][1], sink, "conditions"):
            cond = parse_condition(cnode, sink)
            if cond is not None:
                conditions.append(cond)
    label_default = action.replace("_", " ").strip()
    label = label_default
    if "label" in fields:
        label = string(fields["label"][1], sink, "label") or label_default
    weight = integer(fields["weight"][1], sink, "weight") if "weight" in fields else 0
    return TransitionSpec(
        action=action,
        label=label,
        sources=sources,
        to=to,
        to_pos=pos_of(to_node),
        roles=roles,
        forbidden_roles=forbidden,
        permissions=strs("permissions"),
        any_permission=strs("any_permission"),
        conditions=tuple(conditions),
        operations=tuple(operations),
        resolutions=strs("set_resolution"),
        owners=strs("set_owner"),
        weight=weight,
        update=update,
        comment_required=comment_required,
        pos=pos,
    )


def parse_status(node: Node, sink: Sink) -> StatusSpec | None:
    fields = mapping(node, sink, "status")
    if fields is None:
        return None
    check_keys(fields, STATUS_KEYS, sink, "status")
    if "name" not in fields or "category" not in fields:
        sink.error(pos_of(node), "status: needs 'name' and 'category'")
        return None
    name = string(fields["name"][1], sink, "status name")
    category = string(fields["category"][1], sink, "category")
    if category is not None and category not in CATEGORIES:
        sink.error(
            pos_of(fields["category"][1]),
            f"unknown category '{category}' (expected one of: {', '.join(CATEGORIES)})",
        )
        return None
    if name is None or category is None:
        return None
    if name in (STAY, RETURN, ANY):
        sink.error(pos_of(fields["name"][1]), f"'{name}' is reserved and cannot name a status")
    flag = {
        k: boolean(fields[k][1], sink, k)
        for k in ("hidden", "deleted", "dead_end", "final")
        if k in fields
    }
    for key in ("deleted", "final"):
        if flag.get(key) and category != "inactive":
            sink.error(
                pos_of(fields[key][1]),
                f"status '{name}': a {key} status needs category 'inactive'",
            )
    timeout = parse_timeout(fields["timeout"][1], sink) if "timeout" in fields else None
    label = string(fields["label"][1], sink, "label") if "label" in fields else None
    milestone = None
    if "milestone" in fields:
        milestone = string(fields["milestone"][1], sink, "milestone")
        if milestone is not None and milestone not in MILESTONES:
            sink.error(
                pos_of(fields["milestone"][1]),
                f"unknown milestone '{milestone}' (expected one of: {', '.join(MILESTONES)})",
            )
            milestone = None
        elif milestone == "closed" and category != "inactive":
            sink.error(
                pos_of(fields["milestone"][1]),
                f"status '{name}': milestone 'closed' needs category 'inactive'",
            )
            milestone = None
        elif milestone == "resolved" and category == "initial":
            sink.error(
                pos_of(fields["milestone"][1]),
                f"status '{name}': milestone 'resolved' cannot be an initial status",
            )
            milestone = None
    return StatusSpec(
        name,
        category,
        flag.get("hidden", False),
        label or name.replace("_", " "),
        flag.get("dead_end", False),
        pos_of(node),
        milestone,
        flag.get("deleted", False),
        flag.get("final", False),
        timeout,
    )


def parse_timeout(node: Node, sink: Sink) -> TimeoutSpec | None:
    fields = mapping(node, sink, "timeout")
    if fields is None:
        return None
    check_keys(fields, TIMEOUT_KEYS, sink, "timeout")
    if "after" not in fields or "action" not in fields:
        sink.error(pos_of(node), "timeout: needs 'after' (e.g. 7d, 48h, 30m) and 'action'")
        return None
    after_node = fields["after"][1]
    after = _duration(string(after_node, sink, "after"))
    if after is None or after > _MAX_TIMEOUT:
        sink.error(
            pos_of(after_node),
            "timeout: 'after' must be a whole number of minutes, hours or days (30m, 48h, 7d), "
            "at most 366d",
        )
        return None
    action = string(fields["action"][1], sink, "timeout action")
    if action is None:
        return None
    return TimeoutSpec(after, action, pos_of(fields["action"][1]))


def _duration(text: str | None) -> timedelta | None:
    match = _DURATION.match(text or "")
    if match is None:
        return None
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def parse_rights(node: Node, sink: Sink) -> list[RightSpec]:
    fields = mapping(node, sink, "rights", normalize=False)
    out: list[RightSpec] = []
    for key, (knode, vnode) in (fields or {}).items():
        raw = scalar(knode)
        parts = str(raw).split("->")
        if len(parts) != 2:
            sink.error(pos_of(knode), f"rights: '{raw}' must read 'FROM -> TO' ('*' for any)")
            continue
        perms = tuple(v for v, _ in string_list(vnode, sink, f"rights '{key}'"))
        out.append(RightSpec(parts[0].strip(), parts[1].strip(), perms, pos_of(knode)))
    return out


def parse_reset(node: Node, sink: Sink) -> ResetSpec | None:
    if isinstance(node, ScalarNode) and scalar(node) is False:
        return ResetSpec(False, None, (), "reset", pos_of(node))
    fields = mapping(node, sink, "reset")
    if fields is None:
        return None
    check_keys(fields, RESET_KEYS, sink, "reset")
    to = string(fields["to"][1], sink, "reset to") if "to" in fields else None
    perms: tuple[str, ...] = ("admin",)
    if "permissions" in fields:
        perms = tuple(v for v, _ in string_list(fields["permissions"][1], sink, "permissions"))
    label = string(fields["label"][1], sink, "label") if "label" in fields else None
    return ResetSpec(True, to, perms, label or "reset", pos_of(node))


def parse_workflow(node: Node, sink: Sink) -> WorkflowSpec | None:
    fields = mapping(node, sink, "workflow")
    if fields is None:
        return None
    check_keys(fields, WORKFLOW_KEYS, sink, "workflow")
    if "name" not in fields:
        sink.error(pos_of(node), "workflow: missing 'name'")
        return None
    name = string(fields["name"][1], sink, "workflow name")
    if name is None:
        return None
    display = name
    if "display_name" in fields:
        display = string(fields["display_name"][1], sink, "displayName") or name
    statuses = None
    if "statuses" in fields:
        parsed = (parse_status(n, sink) for n in sequence(fields["statuses"][1], sink, "statuses"))
        statuses = tuple(s for s in parsed if s is not None)
    default_status = None
    if "default_status" in fields:
        dnode = fields["default_status"][1]
        value = string(dnode, sink, "default_status")
        default_status = (value, pos_of(dnode)) if value else None
    transitions: list[TransitionSpec] = []
    if "transitions" in fields:
        for tnode in sequence(fields["transitions"][1], sink, "transitions"):
            t = parse_transition(tnode, sink)
            if t is not None:
                transitions.append(t)
    rights = parse_rights(fields["rights"][1], sink) if "rights" in fields else []
    reset = parse_reset(fields["reset"][1], sink) if "reset" in fields else None
    implies = (
        parse_implies(fields["permission_implies"][1], sink)
        if "permission_implies" in fields
        else {}
    )
    on_reply = parse_status_map(fields, "on_reply", sink)
    on_assign = parse_status_map(fields, "on_assign", sink)
    implicit_create = (
        boolean(fields["implicit_create"][1], sink, "implicit_create")
        if "implicit_create" in fields
        else True
    )
    restrict_owner = (
        boolean(fields["restrict_owner"][1], sink, "restrict_owner")
        if "restrict_owner" in fields
        else False
    )
    return WorkflowSpec(
        name,
        display,
        statuses,
        default_status,
        tuple(transitions),
        tuple(rights),
        reset,
        implies,
        pos_of(node),
        on_reply,
        on_assign,
        implicit_create,
        restrict_owner,
    )


def parse_status_map(
    workflow: dict[str, tuple[Node, Node]], key: str, sink: Sink
) -> tuple[tuple[Named, Named], ...]:
    """`on_reply: {new: open, resolved: open}` (or `on_assign`): status -> status."""
    if key not in workflow:
        return ()
    fields = mapping(workflow[key][1], sink, key, normalize=False)
    out: list[tuple[Named, Named]] = []
    for source, (knode, vnode) in (fields or {}).items():
        target = string(vnode, sink, f"{key} target")
        if target:
            out.append(((source, pos_of(knode)), (target, pos_of(vnode))))
    return tuple(out)
