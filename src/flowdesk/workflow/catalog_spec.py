"""The catalog-level schema: catalog items, status maps and permission implications."""

from __future__ import annotations

from dataclasses import dataclass

from yaml.nodes import Node

from flowdesk.vocabulary import PRIORITIES

from .diagnostics import Pos, Sink
from .yamlnodes import check_keys, mapping, pos_of, scalar, string, string_list

Named = tuple[str, Pos]
ITEM_KEYS = frozenset({"name", "display_name", "type", "workflow", "default_priority", "form"})
MAP_KEYS = frozenset({"from", "to", "statuses"})


@dataclass(frozen=True, slots=True)
class ItemSpec:
    name: str
    display_name: str
    type: str
    workflow: Named
    default_priority: str
    pos: Pos
    # `form:` as written: a form's name or a form of the item's own (flowdesk.workflow.forms).
    form: Node | None = None


@dataclass(frozen=True, slots=True)
class MapSpec:
    source: Named
    target: Named
    statuses: tuple[tuple[Named, Named], ...]
    pos: Pos


def parse_implies(node: Node, sink: Sink) -> dict[str, tuple[str, ...]]:
    fields = mapping(node, sink, "permission_implies", normalize=False)
    return {
        str(scalar(knode)): tuple(v for v, _ in string_list(vnode, sink, "permission_implies"))
        for _, (knode, vnode) in (fields or {}).items()
    }


def parse_item(node: Node, sink: Sink) -> ItemSpec | None:
    fields = mapping(node, sink, "catalog item")
    if fields is None:
        return None
    check_keys(fields, ITEM_KEYS, sink, "catalog item")
    missing = [k for k in ("name", "type", "workflow") if k not in fields]
    if missing:
        sink.error(pos_of(node), f"catalog item: missing {', '.join(repr(k) for k in missing)}")
        return None
    name = string(fields["name"][1], sink, "name")
    itype = string(fields["type"][1], sink, "type")
    wf = string(fields["workflow"][1], sink, "workflow")
    display = name
    if "display_name" in fields:
        display = string(fields["display_name"][1], sink, "displayName")
    priority = "MEDIUM"
    if "default_priority" in fields:
        pnode = fields["default_priority"][1]
        priority = string(pnode, sink, "defaultPriority") or priority
        if priority not in PRIORITIES:
            sink.error(
                pos_of(pnode),
                f"unknown priority '{priority}' (expected one of: {', '.join(PRIORITIES)})",
            )
    if name is None or itype is None or wf is None or display is None:
        return None
    return ItemSpec(
        name,
        display,
        itype,
        (wf, pos_of(fields["workflow"][1])),
        priority,
        pos_of(node),
        fields["form"][1] if "form" in fields else None,
    )


def parse_map(node: Node, sink: Sink) -> MapSpec | None:
    fields = mapping(node, sink, "map")
    if fields is None:
        return None
    check_keys(fields, MAP_KEYS, sink, "map")
    if any(k not in fields for k in MAP_KEYS):
        sink.error(pos_of(node), "map: needs 'from', 'to' and 'statuses'")
        return None
    src = string(fields["from"][1], sink, "from")
    dst = string(fields["to"][1], sink, "to")
    pairs = []
    for _, (knode, vnode) in (
        mapping(fields["statuses"][1], sink, "statuses", normalize=False) or {}
    ).items():
        k = string(knode, sink, "status")
        v = string(vnode, sink, "status")
        if k and v:
            pairs.append(((k, pos_of(knode)), (v, pos_of(vnode))))
    if src is None or dst is None:
        return None
    return MapSpec(
        (src, pos_of(fields["from"][1])), (dst, pos_of(fields["to"][1])), tuple(pairs), pos_of(node)
    )
