"""Load-time checks on a compiled workflow: what makes it unusable (errors) or suspicious
(warnings). Each message names the file, line and column of the declaration at fault."""

from __future__ import annotations

from collections import deque

from .compile import Grantors
from .diagnostics import Pos, Sink
from .model import CREATE, FLOWDESK_PERMISSIONS, RETURN, STAY, Workflow


def _successors(workflow: Workflow) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {s: set() for s in (CREATE, *workflow.statuses)}
    for source, edges in workflow.table.items():
        for e in edges:
            if e.target == RETURN:
                graph[source] |= e.return_targets
            elif e.target != STAY:
                graph[source].add(e.target)
    return graph


def _closure(graph: dict[str, set[str]], start: set[str]) -> set[str]:
    seen = set(start)
    queue = deque(start)
    while queue:
        for nxt in graph.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def check_workflow(
    workflow: Workflow, status_pos: dict[str, Pos], sink: Sink, *, strict: bool = False
) -> None:
    fallback = workflow.pos or Pos("<unknown>", 0, 0)
    graph = _successors(workflow)
    if workflow.table[CREATE]:
        reachable = _closure(graph, {CREATE})
        for name in workflow.statuses:
            if name not in reachable:
                # Trac and RT accept such a status (kept for old tickets, or reached by a
                # reset): a warning, unless the catalog asks for strictness.
                message = (
                    f"workflow '{workflow.name}': status '{name}' is unreachable from creation"
                )
                if strict:
                    sink.error(status_pos.get(name, fallback), message)
                else:
                    sink.warn(
                        status_pos.get(name, fallback),
                        f"{message} (only tickets already in it, or moved there by a reset, "
                        "can be; `strict: true` makes this an error)",
                    )
    reverse: dict[str, set[str]] = {s: set() for s in graph}
    for source, targets in graph.items():
        for t in targets:
            reverse[t].add(source)
    inactive = {s for s, st in workflow.statuses.items() if st.category == "inactive"}
    can_finish = _closure(reverse, inactive)
    for name, status in workflow.statuses.items():
        if name not in can_finish and not status.dead_end:
            sink.error(
                status_pos.get(name, fallback),
                f"workflow '{workflow.name}': no inactive status can be reached from "
                f"'{name}' (mark the status 'dead_end: true' if that is intended)",
            )
    for action in workflow.actions:
        pos = action.pos or fallback
        if "set_resolution" in action.operations and not action.resolutions:
            sink.error(
                pos,
                f"action '{action.name}': set_resolution needs its allowed values "
                "(set_resolution: [fixed, ...])",
            )
        if action.owners and not {"set_owner", "may_set_owner"} & set(action.operations):
            sink.warn(
                pos, f"action '{action.name}': set_owner lists owners but no operation uses them"
            )
    _warn_permissions(workflow, status_pos, sink, fallback)
    _warn_labels(workflow, sink, fallback)


_GRANTING = frozenset(FLOWDESK_PERMISSIONS) - {"admin"}


def _warn_permissions(
    workflow: Workflow, positions: dict[str, Pos], sink: Sink, fallback: Pos
) -> None:
    """A permission no flowdesk permission grants is usable by admins only: legal, suspicious
    (typical after importing a Trac or RT workflow without aliasing its permissions)."""
    grantors = Grantors(workflow.permission_implies)
    warned: set[str] = set()

    def ungranted(perm: str) -> bool:
        return perm not in warned and grantors(perm).isdisjoint(_GRANTING)

    for action in workflow.actions:
        for perm in action.permissions + action.any_permission:
            if perm == "admin" or not ungranted(perm):
                continue
            warned.add(perm)
            sink.warn(
                action.pos or fallback,
                f"permission '{perm}' (action '{action.name}') is not a flowdesk permission and "
                "no permission_implies entry grants it: only admins can use it "
                f"(e.g. permission_implies: {{tickets:manage: [{perm}]}})",
            )
    for source, target, perms in workflow.rights:
        for perm in perms:
            if perm != "admin" and ungranted(perm):
                warned.add(perm)
                sink.warn(
                    positions.get(f"{source} -> {target}", fallback),
                    f"permission '{perm}' (rights) is not a flowdesk permission and no "
                    "permission_implies entry grants it: only admins can use it",
                )


def _warn_labels(workflow: Workflow, sink: Sink, fallback: Pos) -> None:
    for source, edges in workflow.table.items():
        seen: dict[str, str] = {}
        for e in edges:
            other = seen.setdefault(e.action.label.lower(), e.action.name)
            if other != e.action.name:
                where = "creation" if source == CREATE else f"status '{source}'"
                sink.warn(
                    e.action.pos or fallback,
                    f"actions '{other}' and '{e.action.name}' out of {where} share the label "
                    f"'{e.action.label}'",
                )
