"""Mermaid ``stateDiagram-v2`` and Graphviz DOT renderings, roles and permissions on the edges.

Pure no-op actions (``leave_status`` alone, Trac's `leave`) are left out: drawn on every status
they would only hide the real edges.
"""

from __future__ import annotations

import re

from .model import CREATE, RETURN, STAY, Edge, Workflow

_ID = re.compile(r"[^A-Za-z0-9_]")


def _sid(status: str) -> str:
    return "s_" + _ID.sub("_", status)


def _annotations(e: Edge) -> list[str]:
    a = e.action
    notes = []
    if a.roles:
        notes.append("role: " + " | ".join(a.roles))
    if a.forbidden_roles:
        notes.append("not: " + " | ".join(a.forbidden_roles))
    perms = list(dict.fromkeys(a.permissions + e.rights))
    if perms:
        notes.append("needs: " + " + ".join(perms))
    if a.any_permission:
        notes.append("needs one of: " + " | ".join(a.any_permission))
    if a.conditions:
        notes.append("if: " + ", ".join(c.reason.condition or "" for c in a.conditions))
    return notes


def _drawn(workflow: Workflow) -> list[tuple[str, str, Edge]]:
    out = []
    for source, edges in workflow.table.items():
        for e in edges:
            if e.target == STAY:
                if e.action.operations in ((), ("leave_status",)):
                    continue
                out.append((source, source, e))
            elif e.target == RETURN:
                out += [(source, back, e) for back in sorted(e.return_targets)]
            else:
                out.append((source, e.target, e))
    return out


def _clean(text: str) -> str:
    # Mermaid treats ':' in a transition label as text, but ';' and '#' end or escape it.
    return text.replace(";", ",").replace("#", "")


def render_mermaid(workflow: Workflow) -> str:
    lines = ["stateDiagram-v2", f"    %% {workflow.display_name} ({workflow.name})"]
    for status in workflow.statuses.values():
        lines.append(f'    state "{_clean(status.label or status.name)}" as {_sid(status.name)}')
    for source, target, e in _drawn(workflow):
        src = "[*]" if source == CREATE else _sid(source)
        label = " / ".join([e.action.label, *_annotations(e)])
        lines.append(f"    {src} --> {_sid(target)}: {_clean(label)}")
    for status in workflow.statuses.values():
        if status.category == "inactive":
            lines.append(f"    {_sid(status.name)} --> [*]")
    return "\n".join(lines) + "\n"


def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(workflow: Workflow) -> str:
    lines = [
        f"digraph {_dot_str(workflow.name)} {{",
        f"  label={_dot_str(workflow.display_name)};",
        "  rankdir=LR;",
        "  node [shape=box, style=rounded];",
        '  "__create__" [shape=point, label=""];',
    ]
    shape = {"initial": "bold", "active": "rounded", "inactive": "rounded,filled"}
    for s in workflow.statuses.values():
        style = shape[s.category] + (",dashed" if s.hidden else "")
        lines.append(
            f"  {_dot_str(s.name)} [label={_dot_str(s.label or s.name)}, style={_dot_str(style)}];"
        )
    for source, target, e in _drawn(workflow):
        src = "__create__" if source == CREATE else source
        label = "\\n".join(
            [e.action.label.replace('"', '\\"'), *(n.replace('"', '\\"') for n in _annotations(e))]
        )
        lines.append(f'  {_dot_str(src)} -> {_dot_str(target)} [label="{label}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"
