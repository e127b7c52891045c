"""Loading the catalog: the shipped ``workflows.yaml``, values files merged over it, compiled,
checked. Any error stops the load with every diagnostic (file:line:col: message)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Final

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .approvals import ApprovalPolicy, check_policies, parse_policy
from .catalog_spec import parse_implies, parse_item, parse_map
from .checks import check_workflow
from .compile import compile_workflow, merge_implies
from .conditions import approval_names
from .diagnostics import CatalogError, Diagnostic, Pos, Sink
from .form_catalog import compile_forms, item_form
from .model import DEFAULT_RESOLUTIONS, Catalog, CatalogItem, Status, Workflow
from .sla_spec import SlaLayers, compile_sla, merge_sla
from .spec import parse_workflow, transition_key
from .yamlnodes import (
    boolean,
    check_keys,
    load_text,
    mapping,
    normalize_key,
    pos_of,
    scalar,
    sequence,
    string_list,
)

ENV_VAR: Final = "FLOWDESK_WORKFLOW_FILES"
ROOT_KEYS = frozenset(
    {
        "version",
        "strict",
        "resolutions",
        "workflows",
        "forms",
        "catalog",
        "maps",
        "permission_implies",
        "approvals",
        "calendars",
        "sla_policies",
    }
)


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default()


def shipped_catalog_path() -> Path:
    """The shipped catalog: ``./workflows.yaml`` when run from a checkout (the canonical file at
    the repository root), else the identical copy packaged with flowdesk (wheel, Docker image)."""
    local = Path("workflows.yaml")
    if local.is_file():
        return local
    return Path(str(resources.files("flowdesk.workflow").joinpath("workflows.yaml")))


def split_workflow_files(raw: str) -> list[str]:
    """``FLOWDESK_WORKFLOW_FILES``: values files separated by commas (flowdesk.config reads
    the variable with this same function)."""
    return [p.strip() for p in raw.split(",") if p.strip()]


def env_workflow_files(environ: Mapping[str, str] | None = None) -> list[str]:
    return split_workflow_files((os.environ if environ is None else environ).get(ENV_VAR, ""))


@dataclass
class _Layers:
    """The merged node trees, before parsing: later files replace entries by name."""

    workflows: dict[str, Node] = field(default_factory=dict)
    items: dict[str, Node] = field(default_factory=dict)
    # Intake forms by name (flowdesk.workflow.forms): a later file's replaces an earlier one's.
    forms: dict[str, Node] = field(default_factory=dict)
    maps: dict[tuple[str, str], Node] = field(default_factory=dict)
    implies: list[Node] = field(default_factory=list)
    # `strict: true` makes what Trac and RT tolerate (a status reachable from no creation,
    # kept for old tickets) an error rather than a warning; the last file to say wins.
    strict: bool = False
    # Every file's `resolutions`, together (none declared: Trac's five).
    resolutions: dict[str, None] = field(default_factory=dict)
    # Approval policies by name: a later file's replaces an earlier one's.
    approvals: dict[str, Node] = field(default_factory=dict)
    # Calendars and SLA policies by name (flowdesk.workflow.sla_spec).
    sla: SlaLayers = field(default_factory=SlaLayers)


def _name(node: Node, key: str = "name") -> str | None:
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if normalize_key(str(scalar(k))) == key:
                value = scalar(v)
                return value if isinstance(value, str) else None
    return None


def _merge_named(base: Node, over: Node) -> Node:
    """Lists of named entries (statuses) merge by name: changed entries in place, new appended."""
    if not isinstance(base, SequenceNode) or not isinstance(over, SequenceNode):
        return over
    items = list(base.value)
    for item in over.value:
        name = _name(item)
        idx = next((i for i, b in enumerate(items) if name and _name(b) == name), None)
        if idx is None:
            items.append(item)
        else:
            items[idx] = item
    return SequenceNode(base.tag, items, over.start_mark, over.end_mark)


def _merge_transitions(base: Node, over: Node, sink: Sink) -> Node:
    """``extends`` changes single transitions: same action name and from-statuses replaces the
    base transition, ``remove: true`` drops it, anything else is added."""
    if not isinstance(base, SequenceNode) or not isinstance(over, SequenceNode):
        return over
    items = list(base.value)
    for item in over.value:
        key = transition_key(item)
        fields = mapping(item, Sink(), "transition") or {}
        remove = "remove" in fields and scalar(fields["remove"][1]) is True
        idx = next((i for i, b in enumerate(items) if key and transition_key(b) == key), None)
        if remove:
            if idx is None:
                sink.error(pos_of(item), f"extends: no transition {key} in the base to remove")
            else:
                del items[idx]
        elif idx is None:
            items.append(item)
        else:
            items[idx] = item
    return SequenceNode(base.tag, items, over.start_mark, over.end_mark)


def _merge_mapping(base: Node, over: Node) -> Node:
    if not isinstance(base, MappingNode) or not isinstance(over, MappingNode):
        return over
    keys = {str(scalar(k)) for k, _ in over.value}
    value = [(k, v) for k, v in base.value if str(scalar(k)) not in keys] + list(over.value)
    return MappingNode(base.tag, value, over.start_mark, over.end_mark)


def _extend(base: Node, over: MappingNode, sink: Sink) -> Node:
    if not isinstance(base, MappingNode):
        return over
    over_fields = {normalize_key(str(scalar(k))): (k, v) for k, v in over.value}
    merged: list[tuple[Node, Node]] = []
    for k, v in base.value:
        key = normalize_key(str(scalar(k)))
        if key in over_fields:
            ok, ov = over_fields.pop(key)
            if key == "transitions":
                v = _merge_transitions(v, ov, sink)
            elif key == "statuses":
                v = _merge_named(v, ov)
            elif key in ("rights", "permission_implies"):
                v = _merge_mapping(v, ov)
            else:
                k, v = ok, ov
        merged.append((k, v))
    merged += [(k, v) for key, (k, v) in over_fields.items() if key != "extends"]
    return MappingNode(over.tag, merged, over.start_mark, over.end_mark)


def _merge_file(layers: _Layers, root: Node | None, filename: str, sink: Sink) -> None:
    if root is None:
        return  # an empty values file is legal: it changes nothing
    if isinstance(root, SequenceNode):  # seed 000's form: a bare list of workflows
        root = MappingNode(
            "tag:yaml.org,2002:map",
            [(ScalarNode("tag:yaml.org,2002:str", "workflows"), root)],
            root.start_mark,
        )
    fields = mapping(root, sink, f"{filename}: the catalog")
    if fields is None:
        return
    check_keys(fields, ROOT_KEYS, sink, "catalog")
    if "version" in fields and scalar(fields["version"][1]) != 1:
        sink.error(pos_of(fields["version"][1]), "unsupported catalog version (expected 1)")
    seen: dict[str, Pos] = {}

    def once(kind: str, key: str, node: Node) -> bool:
        if f"{kind}:{key}" in seen:
            first = seen[f"{kind}:{key}"]
            sink.error(pos_of(node), f"duplicate {kind} '{key}' (first at line {first.line})")
            return False
        seen[f"{kind}:{key}"] = pos_of(node)
        return True

    for node in (
        sequence(fields["workflows"][1], sink, "workflows") if "workflows" in fields else []
    ):
        name = _name(node)
        if name is None:
            sink.error(pos_of(node), "workflow: missing 'name'")
            continue
        if not once("workflow", name, node):
            continue
        parent = _name(node, "extends")
        if parent is not None and isinstance(node, MappingNode):
            base = layers.workflows.get(parent)
            if base is None:
                sink.error(pos_of(node), f"workflow '{name}' extends unknown workflow '{parent}'")
                continue
            node = _extend(base, node, sink)
        layers.workflows[name] = node
    for node in sequence(fields["forms"][1], sink, "forms") if "forms" in fields else []:
        name = _name(node)
        if name is not None and once("form", name, node):
            layers.forms[name] = node
        elif name is None:
            sink.error(pos_of(node), "form: missing 'name'")
    for node in sequence(fields["catalog"][1], sink, "catalog") if "catalog" in fields else []:
        name = _name(node)
        if name is not None and once("catalog item", name, node):
            layers.items[name] = node
        elif name is None:
            parse_item(node, sink)  # reports what is missing
    for node in sequence(fields["maps"][1], sink, "maps") if "maps" in fields else []:
        key = (_name(node, "from") or "?", _name(node, "to") or "?")
        if once("map", f"{key[0]} -> {key[1]}", node):
            layers.maps[key] = node
    if "permission_implies" in fields:
        layers.implies.append(fields["permission_implies"][1])
    policies = sequence(fields["approvals"][1], sink, "approvals") if "approvals" in fields else []
    for node in policies:
        name = _name(node)
        if name is not None and once("approval", name, node):
            layers.approvals[name] = node
        elif name is None:
            parse_policy(node, sink)  # reports what is missing
    merge_sla(layers.sla, fields, sink)
    if "resolutions" in fields:
        for value, _ in string_list(fields["resolutions"][1], sink, "resolutions"):
            layers.resolutions[value] = None
    if "strict" in fields:
        strict = boolean(fields["strict"][1], sink, "strict")
        if strict is not None:
            layers.strict = strict


def compile_catalog(sources: Sequence[tuple[str, str]]) -> Catalog:
    """Compile (filename, text) pairs, later ones merged over earlier ones."""
    sink = Sink()
    layers = _Layers()
    for filename, text in sources:
        try:
            root = load_text(text, filename)
        except CatalogError as exc:
            sink.items.extend(exc.diagnostics)
            continue
        _merge_file(layers, root, filename, sink)
    implies = merge_implies(*(parse_implies(n, sink) for n in layers.implies))
    workflows: dict[str, Workflow] = {}
    approvals_named: list[tuple[str, Pos]] = []
    for node in layers.workflows.values():
        spec = parse_workflow(node, sink)
        if spec is None:
            continue
        approvals_named += (
            named for t in spec.transitions for c in t.conditions for named in approval_names(c)
        )
        workflow, status_pos = compile_workflow(spec, implies, sink)
        check_workflow(workflow, status_pos, sink, strict=layers.strict)
        workflows[spec.name] = workflow
    forms = compile_forms(layers.forms.values(), sink)
    items: dict[str, CatalogItem] = {}
    for node in layers.items.values():
        item = parse_item(node, sink)
        if item is None:
            continue
        form, form_ok = (
            item_form(item.form, forms, sink, item.name) if item.form is not None else (None, True)
        )
        if item.workflow[0] not in workflows:
            sink.error(
                item.workflow[1],
                f"catalog item '{item.name}': unknown workflow '{item.workflow[0]}'",
            )
            continue
        if not form_ok:
            continue
        items[item.name] = CatalogItem(
            item.name, item.display_name, item.type, item.workflow[0], item.default_priority, form
        )
    resolutions = tuple(layers.resolutions) or DEFAULT_RESOLUTIONS
    _check_resolutions(workflows, resolutions, sink)
    maps = _compile_maps(layers, workflows, sink)
    approvals = _approval_policies(layers, workflows, approvals_named, sink)
    calendars, sla_policies = compile_sla(layers.sla, workflows, items, sink)
    for name, workflow in workflows.items():
        workflow_policies = tuple(p for p in sla_policies if name in p.workflows)
        if workflow_policies:
            workflows[name] = replace(workflow, sla_policies=workflow_policies)
    sink.raise_if_errors()
    return Catalog(
        workflows=MappingProxyType(workflows),
        items=MappingProxyType(items),
        maps=MappingProxyType(maps),
        warnings=tuple(sink.warnings),
        sources=tuple(f for f, _ in sources),
        resolutions=resolutions,
        unlisted=_statuses_where(workflows, lambda s: s.hidden or s.deleted),
        deleted=_statuses_where(workflows, lambda s: s.deleted),
        approvals=MappingProxyType(approvals),
        calendars=calendars,
        sla_policies=sla_policies,
        forms=MappingProxyType({n: f for n, f in forms.items() if f is not None}),
    )


def _approval_policies(
    layers: _Layers,
    workflows: Mapping[str, Workflow],
    named: list[tuple[str, Pos]],
    sink: Sink,
) -> dict[str, ApprovalPolicy]:
    parsed = (parse_policy(node, sink) for node in layers.approvals.values())
    policies = {p.name: p for p in parsed if p is not None}
    actions = frozenset(a.name for w in workflows.values() for a in w.actions)
    check_policies(policies, named, actions, sink)
    return policies


def _statuses_where(
    workflows: Mapping[str, Workflow], wanted: Callable[[Status], bool]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(workflow, its statuses that are `wanted`) for each workflow that has any."""
    found = (
        (w.name, tuple(s.name for s in w.statuses.values() if wanted(s)))
        for w in workflows.values()
    )
    return tuple((name, statuses) for name, statuses in found if statuses)


def _check_resolutions(
    workflows: Mapping[str, Workflow], declared: tuple[str, ...], sink: Sink
) -> None:
    """Trac: the resolutions an action sets "must be defined in the database"."""
    known = set(declared)
    for workflow in workflows.values():
        for action in workflow.actions:
            for value in action.resolutions:
                if value not in known:
                    sink.error(
                        action.pos or workflow.pos or Pos("<unknown>", 0, 0),
                        f"action '{action.name}': resolution '{value}' is not one of the "
                        f"catalog's resolutions ({', '.join(declared)}); declare it under "
                        "`resolutions`",
                    )


def _compile_maps(
    layers: _Layers, workflows: dict[str, Workflow], sink: Sink
) -> dict[tuple[str, str], Mapping[str, str]]:
    out: dict[tuple[str, str], Mapping[str, str]] = {}
    for node in layers.maps.values():
        spec = parse_map(node, sink)
        if spec is None:
            continue
        sides = [workflows.get(spec.source[0]), workflows.get(spec.target[0])]
        for (name, pos), wf in zip((spec.source, spec.target), sides, strict=True):
            if wf is None:
                sink.warn(pos, f"map refers to unknown workflow '{name}': it is never used")
        table: dict[str, str] = {}
        for (src, spos), (dst, dpos) in spec.statuses:
            ok = True
            for (status, pos), wf in (((src, spos), sides[0]), ((dst, dpos), sides[1])):
                if wf is not None and status not in wf.statuses:
                    ok = False
                    sink.error(
                        pos,
                        f"unknown status '{status}' in map "
                        f"'{spec.source[0]} -> {spec.target[0]}' (workflow '{wf.name}')",
                    )
            if ok:
                table[src] = dst
        src_wf, dst_wf = sides
        if src_wf is not None and dst_wf is not None:
            missing = [s for s in src_wf.statuses if s not in table and s not in dst_wf.statuses]
            if missing:
                sink.warn(
                    spec.pos,
                    f"map '{src_wf.name} -> {dst_wf.name}' has no entry for "
                    f"{', '.join(missing)}: moving such a ticket will fail",
                )
        out[(spec.source[0], spec.target[0])] = MappingProxyType(table)
    return out


def load_catalog(
    paths: Sequence[str | Path], *, base: str | Path | _Default | None = DEFAULT
) -> Catalog:
    """Load the shipped catalog (``base``; ``None`` for none) with ``paths`` merged over it."""
    files: list[Path] = []
    if base is DEFAULT:
        files.append(shipped_catalog_path())
    elif base is not None:
        files.append(Path(str(base)))
    files += [Path(p) for p in paths]
    sources = []
    for path in files:
        try:
            sources.append((str(path), path.read_text(encoding="utf-8")))
        except OSError as exc:
            raise CatalogError(
                [Diagnostic(str(path), 0, 0, f"cannot read: {exc.strerror}")]
            ) from None
    return compile_catalog(sources)
