"""Spec -> compiled tables: for each status, its outgoing edges with every check precomputed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import cast

from flowdesk.vocabulary import PERMISSIONS, TICKETS_MANAGE, Category, Milestone

from .conditions import compile_condition
from .diagnostics import Pos, Sink
from .model import (
    CREATE,
    RESET,
    RETURN,
    ROLE_ASSIGNEE,
    ROLE_BITS,
    ROLE_REQUESTER,
    STAY,
    Action,
    Edge,
    Reason,
    Status,
    Timeout,
    Workflow,
)
from .spec import ANY, Named, TransitionSpec, WorkflowSpec

STANDARD_STATUSES: tuple[tuple[str, Category, Milestone | None], ...] = (
    ("OPEN", "initial", None),
    ("IN_PROGRESS", "active", None),
    ("RESOLVED", "active", "resolved"),
    ("CLOSED", "inactive", "closed"),
)


def _milestone_by_name(name: str, category: str) -> Milestone | None:
    """Trac's `closed` and RT's `resolved` mean what they say; nothing else is guessed."""
    lowered = name.lower()
    if lowered == "closed" and category == "inactive":
        return "closed"
    if lowered == "resolved" and category != "initial":
        return "resolved"
    return None


BUILTIN_IMPLIES: Mapping[str, tuple[str, ...]] = {"admin": ("*",)}


def _matches(pattern: str, permission: str) -> bool:
    if pattern.endswith("*"):
        return permission.startswith(pattern[:-1])
    return pattern == permission


class Grantors:
    """Which held permissions satisfy a required one, through ``permission_implies`` (closure)."""

    def __init__(self, implies: Mapping[str, tuple[str, ...]]) -> None:
        self.implies = implies
        self._cache: dict[str, frozenset[str]] = {}

    def __call__(self, required: str) -> frozenset[str]:
        found = self._cache.get(required)
        if found is None:
            grant = {required}
            changed = True
            while changed:  # fixpoint: A implies B implies C grants C to holders of A
                changed = False
                for holder, patterns in self.implies.items():
                    if holder not in grant and any(_matches(p, g) for p in patterns for g in grant):
                        grant.add(holder)
                        changed = True
            found = self._cache[required] = frozenset(grant)
        return found


def merge_implies(*layers: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for layer in layers:
        for holder, implied in layer.items():
            out[holder] = tuple(dict.fromkeys(out.get(holder, ()) + implied))
    return out


def _role_reason(roles: tuple[str, ...]) -> Reason:
    if "any" in roles:
        text = "only the assignee, the requester or an admin may do this"
    else:
        text = "only the " + " or the ".join(roles) + " may do this"
    return Reason("role", text, required=roles)


def _action(t: TransitionSpec, to: str) -> Action:
    ops = tuple(op for op, _ in t.operations)
    return Action(
        name=t.action,
        label=t.label,
        sources=tuple(s for s, _ in t.sources),
        to=to,
        roles=tuple(r for r, _ in t.roles),
        forbidden_roles=tuple(r for r, _ in t.forbidden_roles),
        permissions=t.permissions,
        any_permission=t.any_permission,
        conditions=tuple(compile_condition(c) for c in t.conditions),
        operations=ops,
        resolutions=t.resolutions,
        owners=t.owners,
        weight=t.weight,
        update_type=t.update,
        comment_required=t.comment_required,
        external=t.update == "reply",
        pos=t.pos,
    )


class _Builder:
    def __init__(self, spec: WorkflowSpec, implies: Mapping[str, tuple[str, ...]], sink: Sink):
        self.spec = spec
        self.sink = sink
        self.statuses: dict[str, Status] = {}
        self.status_pos: dict[str, Pos] = {}
        self.implies = merge_implies(BUILTIN_IMPLIES, implies, spec.implies)
        self.grantors = Grantors(self.implies)
        self.rights: dict[tuple[str, str], tuple[tuple[str, ...], Pos]] = {}

    def known(self, name: str, pos: Pos, what: str, *, extra: tuple[str, ...] = ()) -> bool:
        if name in self.statuses or name in extra:
            return True
        known = ", ".join(self.statuses)
        self.sink.error(pos, f"unknown status '{name}' in {what} (statuses: {known})")
        return False

    def build_statuses(self) -> None:
        if self.spec.statuses is None:
            for name, category, milestone in STANDARD_STATUSES:
                self.statuses[name] = Status(
                    name, category, label=name.replace("_", " "), milestone=milestone
                )
                self.status_pos[name] = self.spec.pos
            return
        # A workflow that declares no milestone (Trac's and RT's, pasted) gets them by name.
        declared = any(s.milestone for s in self.spec.statuses)
        for s in self.spec.statuses:
            if s.name in self.statuses:
                first = self.status_pos[s.name]
                self.sink.error(s.pos, f"duplicate status '{s.name}' (first at line {first.line})")
                continue
            milestone = (
                cast(Milestone | None, s.milestone)
                if declared
                else _milestone_by_name(s.name, s.category)
            )
            self.statuses[s.name] = Status(
                s.name,
                s.category,  # type: ignore[arg-type]
                s.hidden,
                s.label,
                s.dead_end,
                milestone,
                s.deleted,
                s.final,
                Timeout(s.timeout.after, s.timeout.action) if s.timeout else None,
            )
            self.status_pos[s.name] = s.pos

    def build_rights(self) -> None:
        for r in self.spec.rights:
            ok = (r.source in (ANY, CREATE) or self.known(r.source, r.pos, "rights")) and (
                r.target == ANY or self.known(r.target, r.pos, "rights")
            )
            if (r.source, r.target) in self.rights:
                first = self.rights[(r.source, r.target)][1]
                self.sink.error(
                    r.pos,
                    f"duplicate rights '{r.source} -> {r.target}' (first at line {first.line})",
                )
            elif ok:
                self.rights[(r.source, r.target)] = (r.permissions, r.pos)

    def right_for(self, source: str, target: str) -> tuple[str, ...]:
        """RT's precedence: 'from -> to', '* -> to', 'from -> *', '* -> *'; '*' never means
        creation (Trac's '*' does not include the create state either)."""
        wild = ANY if source != CREATE else None
        for key in ((source, target), (wild, target), (source, ANY), (wild, ANY)):
            found = self.rights.get(key)  # type: ignore[arg-type]
            if found is not None:
                return found[0]
        return ()

    def edge(self, action: Action, source: str, target: str, pos: Pos) -> Edge:
        rights_target = source if target == STAY else (ANY if target == RETURN else target)
        rights = self.right_for(source, rights_target)
        all_of = []
        for perm in dict.fromkeys(action.permissions + rights):
            detail = f"requires the permission '{perm}'"
            if perm in rights and perm not in action.permissions:
                detail += " (rights)"
            all_of.append((self.grantors(perm), Reason("permission", detail, required=(perm,))))
        any_of: tuple[tuple[frozenset[str], Reason], ...] = ()
        if action.any_permission:
            grant = frozenset().union(*(self.grantors(p) for p in action.any_permission))
            names = ", ".join(f"'{p}'" for p in action.any_permission)
            reason = Reason(
                "permission", f"requires one of the permissions {names}", action.any_permission
            )
            any_of = ((grant, reason),)
        role_mask = 0
        for role in action.roles:
            role_mask |= ROLE_BITS.get(role, 0)  # unknown roles were reported by the parser
        forbidden = 0
        for role in action.forbidden_roles:
            forbidden |= ROLE_ASSIGNEE if role == "assignee" else ROLE_REQUESTER
        forbidden_reason = None
        if forbidden:
            names = " or the ".join(action.forbidden_roles)
            forbidden_reason = Reason(
                "role", f"the {names} may not do this", required=action.forbidden_roles
            )
        return Edge(
            action=action,
            source=source,
            target=target,
            role_mask=role_mask,
            role_reason=_role_reason(action.roles) if action.roles else None,
            forbidden_mask=forbidden,
            forbidden_reason=forbidden_reason,
            all_of=tuple(all_of),
            any_of=any_of,
            conditions=action.conditions,
            noop_for_owner=action.operations == ("set_owner_to_self",) and target == source,
            return_targets=frozenset(),
            rights=rights,
        )


def _sorted(edges: list[Edge]) -> tuple[Edge, ...]:
    # Trac's order: `.default` (weight) descending, then the action name descending.
    return tuple(sorted(edges, key=lambda e: (e.action.weight, e.action.name), reverse=True))


def compile_workflow(
    spec: WorkflowSpec, catalog_implies: Mapping[str, tuple[str, ...]], sink: Sink
) -> tuple[Workflow, dict[str, Pos]]:
    b = _Builder(spec, catalog_implies, sink)
    b.build_statuses()
    b.build_rights()
    actions: list[Action] = []
    anywhere: list[Edge] = []  # the `* -> stay` actions (Trac's leave), for unknown statuses
    edges: dict[str, list[Edge]] = {CREATE: [], **{s: [] for s in b.statuses}}
    first_seen: dict[tuple[str, str], Pos] = {}
    for t in spec.transitions:
        to = t.to
        ops = [op for op, _ in t.operations]
        if "leave_status" in ops and to != STAY:
            sink.warn(
                t.to_pos,
                f"action '{t.action}': leave_status keeps the status; 'to: {to}' "
                "is ignored (write 'to: stay')",
            )
            to = STAY
        if to not in (STAY, RETURN) and not b.known(to, t.to_pos, f"action '{t.action}'"):
            continue
        action = _action(t, to)
        if spec.restrict_owner and not action.owners and _OWNER_SETTING & set(action.operations):
            # The owners are everyone holding tickets:manage, looked up like any named owner.
            action = replace(action, owners=(TICKETS_MANAGE,))
        actions.append(action)
        for source, spos in t.sources:
            if source == ANY and to == STAY:
                # Trac offers `* -> *` (leave) in every status, one the workflow no longer
                # defines included.
                anywhere.append(b.edge(action, ANY, STAY, t.pos))
            if source == ANY:
                targets = list(b.statuses)
            elif source == CREATE or b.known(source, spos, f"action '{t.action}'"):
                targets = [source]
            else:
                continue
            if source == CREATE and to in (STAY, RETURN):
                sink.error(t.to_pos, f"action '{t.action}': a create action needs a status")
                continue
            for s in targets:
                key = (s, t.action)
                if key in first_seen:
                    where = "creation" if s == CREATE else f"status '{s}'"
                    sink.error(
                        t.pos,
                        f"duplicate action '{t.action}' out of {where} "
                        f"(first defined at line {first_seen[key].line})",
                    )
                    continue
                first_seen[key] = t.pos
                edges[s].append(b.edge(action, s, to, t.pos))
    initial = [s for s in b.statuses.values() if s.category == "initial"]
    if not edges[CREATE] and not spec.implicit_create:
        sink.warn(
            spec.pos,
            f"workflow '{spec.name}' has no create action: no ticket can be created with it "
            "(as in Trac; `implicit_create: true` makes one per initial status)",
        )
    elif not edges[CREATE]:
        if not initial:
            sink.error(
                spec.pos,
                f"workflow '{spec.name}' has no way to create a ticket: no transition from '' "
                "and no status of category 'initial'",
            )
        for st in initial:
            name = "create" if len(initial) == 1 else f"create_{st.name.lower()}"
            action = Action(name, name.replace("_", " "), (CREATE,), st.name, pos=spec.pos)
            actions.append(action)
            edges[CREATE].append(b.edge(action, CREATE, st.name, spec.pos))
    # `to: return` goes back where the ticket came from: any status with an edge into the source.
    into: dict[str, set[str]] = {}
    for rows in edges.values():
        for e in rows:
            if e.target not in (STAY, RETURN) and e.source not in (CREATE, e.target):
                into.setdefault(e.target, set()).add(e.source)
    for s, rows in edges.items():
        for i, e in enumerate(rows):
            if e.target == RETURN:
                back = frozenset(into.get(s, ()))
                if not back:
                    sink.error(
                        e.action.pos or spec.pos,
                        f"action '{e.action.name}' returns from '{s}', but nothing leads there",
                    )
                rows[i] = _replace_returns(e, back)
    table = {s: _sorted(rows) for s, rows in edges.items()}
    create_targets = tuple(dict.fromkeys(e.target for e in table[CREATE]))
    default = create_targets[0] if create_targets else ""
    if spec.default_status is not None:
        name, dpos = spec.default_status
        if b.known(name, dpos, "default_status") and name not in create_targets:
            sink.error(
                dpos,
                f"default_status '{name}' is not a status a ticket can be created in "
                f"(create actions lead to: {', '.join(create_targets) or 'nothing'})",
            )
        default = name
    reset_edges: tuple[Edge, ...] = ()
    reset = spec.reset
    if reset is None or reset.enabled:
        to = (reset.to if reset else None) or default
        perms = reset.permissions if reset else ("admin",)
        if to and (reset is None or reset.to is None or b.known(to, reset.pos, "reset")):
            label = reset.label if reset else "reset"
            action = Action(
                RESET,
                label,
                (),
                to,
                permissions=perms,
                operations=("reset_workflow",),
                pos=reset.pos if reset else spec.pos,
            )
            reset_edges = (b.edge(action, "", to, action.pos or spec.pos),)
    # A ticket in a status the workflow no longer has: the reset, and what applies anywhere.
    # Out of a final status only the reset leads (seed 004: closed allows no further change).
    only_reset = tuple(e for e in reset_edges if e.action.name == RESET)
    for name, status in b.statuses.items():
        if status.final:
            table[name] = only_reset
    reset_edges = _sorted([*anywhere, *reset_edges])
    workflow = Workflow(
        name=spec.name,
        display_name=spec.display_name,
        statuses=MappingProxyType(b.statuses),
        default_create_status=default,
        create_statuses=create_targets,
        actions=tuple(actions),
        table=MappingProxyType(table),
        index=MappingProxyType(
            {s: MappingProxyType({e.action.name: e for e in rows}) for s, rows in table.items()}
        ),
        reset_edges=reset_edges,
        admin_grantors=b.grantors("admin"),
        permission_implies=MappingProxyType(b.implies),
        rights=tuple((s, t, p) for (s, t), (p, _) in b.rights.items()),
        pos=spec.pos,
        owner_grantors=MappingProxyType(_owner_grantors(actions, b)),
        on_reply=_status_map(b, spec.on_reply, "on_reply"),
        on_assign=_status_map(b, spec.on_assign, "on_assign"),
    )
    _check_lifecycle(spec, b, table)
    positions = dict(b.status_pos)
    for (source, target), (_, rpos) in b.rights.items():
        positions[f"{source} -> {target}"] = rpos  # rights keys contain '->': no status clash
    return workflow, positions


def _status_map(
    b: _Builder, pairs: tuple[tuple[Named, Named], ...], what: str
) -> Mapping[str, str]:
    out: dict[str, str] = {}
    # `on_reply: {waiting: return}`: the reply takes the ticket back where it came from.
    back = (RETURN,) if what == "on_reply" else ()
    for (source, spos), (target, tpos) in pairs:
        if b.known(source, spos, what) and b.known(target, tpos, what, extra=back):
            if b.statuses[source].final:
                b.sink.error(
                    spos, f"{what}: status '{source}' is final; nothing moves a ticket out"
                )
            else:
                out[source] = target
    return MappingProxyType(out)


def _check_lifecycle(
    spec: WorkflowSpec, b: _Builder, table: Mapping[str, tuple[Edge, ...]]
) -> None:
    """Final statuses have no way out but an admin's reset; a timeout names an action that
    leaves its status."""
    for t in spec.transitions:
        for source, spos in t.sources:
            status = b.statuses.get(source)
            if status is not None and status.final:
                b.sink.error(
                    spos,
                    f"action '{t.action}' leaves '{source}', a final status (only an admin's "
                    "reset may move a ticket out of it)",
                )
    for s in spec.statuses or ():
        if s.timeout is None or s.name not in b.statuses:
            continue
        if s.final:
            b.sink.error(s.timeout.pos, f"status '{s.name}' is final: it cannot time out")
        elif not any(e.action.name == s.timeout.action for e in table.get(s.name, ())):
            actions = ", ".join(dict.fromkeys(e.action.name for e in table.get(s.name, ())))
            b.sink.error(
                s.timeout.pos,
                f"timeout of '{s.name}': no action '{s.timeout.action}' leaves it "
                f"(actions out of '{s.name}': {actions or 'none'})",
            )


_OWNER_SETTING = frozenset({"set_owner", "may_set_owner"})


def _owner_grantors(actions: list[Action], b: _Builder) -> dict[str, frozenset[str]]:
    """The owners named by `actions` that are permissions (flowdesk's, or one the catalog
    requires or implies), with what grants each. Any other name is a user or a group."""
    known = set(PERMISSIONS) | set(b.implies)
    known.update(p for ps in b.implies.values() for p in ps if not p.endswith("*"))
    for a in actions:
        known.update(a.permissions, a.any_permission)
    return {o: b.grantors(o) for a in actions for o in a.owners if o in known}


def _replace_returns(e: Edge, back: frozenset[str]) -> Edge:
    return replace(e, return_targets=back)
