"""Request Tracker lifecycles (RT's ``%Lifecycles`` structure as JSON) -> flowdesk YAML.

Accepts one lifecycle object, or the whole ``%Lifecycles`` hash (``{name: lifecycle, ...,
"__maps__": {...}}``) as RT_SiteConfig.pm writes it; see docs/workflows.md for the readings.
"""

from __future__ import annotations

from typing import Any

from .common import ImportProblem

LIFECYCLE_KEYS = {
    "type",
    "initial",
    "active",
    "inactive",
    "defaults",
    "transitions",
    "rights",
    "actions",
    "__maps__",
}
UPDATE = {"comment": "comment", "respond": "reply"}


def _pairs(value: Any, what: str) -> list[tuple[str, Any]]:
    """RT writes `actions` as a Perl list of pairs; JSON may carry it as an object or a list."""
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list):
        if all(isinstance(v, list) and len(v) == 2 for v in value):
            return [(str(k), v) for k, v in value]
        if len(value) % 2 == 0:
            return [(str(value[i]), value[i + 1]) for i in range(0, len(value), 2)]
    raise ImportProblem(f"{what}: expected an object or a list of 'from -> to', {{...}} pairs")


def _arrow(key: str, what: str) -> tuple[str, str]:
    parts = [p.strip() for p in key.split("->")]
    if len(parts) != 2:
        raise ImportProblem(f"{what} '{key}': expected 'from -> to'")
    return parts[0], parts[1]


def _right_for(rights: dict[tuple[str, str], Any], source: str, target: str) -> Any:
    # RT::Lifecycle::CheckRight: the most specific rule wins.
    for key in ((source, target), ("*", target), (source, "*"), ("*", "*")):
        if key in rights:
            return rights[key]
    return None


def _lifecycle(name: str, lc: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    where = f"lifecycle '{name}'"
    for key in lc:
        if key not in LIFECYCLE_KEYS:
            warnings.append(f"{where}: key '{key}' has no flowdesk equivalent: ignored")
    statuses: dict[str, dict[str, Any]] = {}
    for category in ("initial", "active", "inactive"):
        for s in lc.get(category, []):
            statuses[str(s)] = {"name": str(s), "category": category}
    transitions_raw = lc.get("transitions", {})
    if not isinstance(transitions_raw, dict):
        raise ImportProblem(f"{where}: 'transitions' must be an object")
    pairs: list[tuple[str, str]] = []
    for source, targets in transitions_raw.items():
        for target in targets:
            pairs.append((source, str(target)))
    referenced = {s for p in pairs for s in p if s}
    if "deleted" in referenced and "deleted" not in statuses:
        # RT treats `deleted` as the standard inactive status even when a lifecycle omits it
        # from its lists (the guide's full `orders` config does): keep it, hidden.
        warnings.append(f"{where}: 'deleted' is used but not listed: imported as inactive, hidden")
        statuses["deleted"] = {"name": "deleted", "category": "inactive"}
    if "deleted" in statuses:
        # RT: a deleted ticket "will never show up in search results".
        statuses["deleted"]["hidden"] = True
        statuses["deleted"]["deleted"] = True
    for s in sorted(referenced - set(statuses)):
        raise ImportProblem(
            f"{where}: transitions use status '{s}', which is not in initial/active/inactive"
        )
    rights: dict[tuple[str, str], Any] = {}
    for key, right in _pairs(lc.get("rights", {}), f"{where} rights"):
        rights[_arrow(key, f"{where} rights")] = right
    out_rights = {f"{s} -> {t}": r for (s, t), r in rights.items()}
    # RT's fallback when no rule matches: DeleteTicket into `deleted`, ModifyTicket otherwise.
    for source, target in pairs:
        if source and _right_for(rights, source, target) is None:
            if target == "deleted":
                out_rights[f"{source} -> deleted"] = "DeleteTicket"
            else:
                out_rights.setdefault("* -> *", "ModifyTicket")
    labels: dict[tuple[str, str], tuple[str | None, str | None, int]] = {}
    listed = _pairs(lc.get("actions", []), f"{where} actions")
    for index, (key, info) in enumerate(listed):
        source, target = _arrow(key, f"{where} actions")
        matched = [p for p in pairs if source in ("*", p[0]) and target in ("*", p[1]) and p[0]]
        if not matched:
            warnings.append(
                f"{where}: action '{key}' is not an allowed transition: ignored "
                "(RT does not show it either)"
            )
        info = info if isinstance(info, dict) else {}
        update = info.get("update")
        kind = UPDATE.get(str(update).lower(), "quick") if update else "quick"
        # RT's menu follows the order of `actions`; flowdesk orders by weight, so encode it.
        for pair in matched:
            labels.setdefault(pair, (info.get("label"), kind, len(listed) - index))
    groups: dict[tuple[Any, ...], list[str]] = {}
    for source, target in pairs:
        label, update_type, weight = labels.get((source, target), (None, None, 0))
        group = (source == "", target, label, update_type, weight)
        groups.setdefault(group, []).append(source)
    transitions = []
    for (_, target, label, update_type, weight), sources in groups.items():
        t: dict[str, Any] = {"from": sources[0] if len(sources) == 1 else sources, "to": target}
        if label:
            t["label"] = label
        if sources == [""]:
            t["permissions"] = ["CreateTicket"]  # RT checks CreateTicket, not lifecycle rights
        if update_type:
            t["update"] = update_type
        if weight:
            t["weight"] = weight
        transitions.append(t)
    workflow: dict[str, Any] = {
        "name": name,
        "displayName": name.replace("_", " ").title(),
        "statuses": list(statuses.values()),
    }
    defaults = lc.get("defaults", {})
    if "on_create" in defaults:
        workflow["default_status"] = defaults["on_create"]
    for key in defaults:
        if key != "on_create":
            warnings.append(f"{where}: defaults.{key} has no flowdesk equivalent: ignored")
    workflow["transitions"] = transitions
    workflow["rights"] = out_rights
    return workflow


RT_DEFAULT = "default"
SHIPPED_RT_DEFAULT = "rt_default"


def _maps(raw: Any, rename: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for key, table in _pairs(raw or {}, "__maps__"):
        source, target = _arrow(key, "__maps__")
        out.append(
            {
                "from": rename.get(source, source),
                "to": rename.get(target, target),
                "statuses": dict(table),
            }
        )
    return out


def import_rt(doc: Any, name: str | None, source: str) -> tuple[dict[str, Any], list[str]]:
    """Returns the catalog document and warnings."""
    if not isinstance(doc, dict):
        raise ImportProblem(f"{source}: expected a JSON object (an RT lifecycle)")
    warnings: list[str] = []
    if LIFECYCLE_KEYS & (set(doc) - {"__maps__"}):
        lifecycles = {name or "imported": doc}
        maps = doc.get("__maps__")
        rename: dict[str, str] = {}
    else:  # the whole %Lifecycles hash
        lifecycles = {k: v for k, v in doc.items() if k != "__maps__"}
        maps = doc.get("__maps__")
        rename = {}
        if name is not None and len(lifecycles) == 1:
            (old,) = lifecycles
            rename = {old: name}
            lifecycles = {name: lifecycles[old]}
        elif name is not None:
            if name not in lifecycles:
                raise ImportProblem(
                    f"{source}: no lifecycle '{name}' (have: {', '.join(lifecycles)})"
                )
            lifecycles = {name: lifecycles[name]}
    workflows = []
    for lc_name, lc in lifecycles.items():
        if not isinstance(lc, dict):
            raise ImportProblem(f"{source}: lifecycle '{lc_name}' must be an object")
        if lc.get("type", "ticket") != "ticket":
            raise ImportProblem(
                f"{source}: lifecycle '{lc_name}' is of type '{lc['type']}'; "
                "only ticket lifecycles can be imported"
            )
        workflows.append(_lifecycle(lc_name, lc, warnings))
    out: dict[str, Any] = {"version": 1, "workflows": workflows}
    if maps:
        # RT's own `default` lifecycle ships in flowdesk's catalog as `rt_default`: maps to and
        # from it find it there, unless the import brings a `default` of its own.
        if RT_DEFAULT not in lifecycles:
            rename = {RT_DEFAULT: SHIPPED_RT_DEFAULT, **rename}
        out["maps"] = _maps(maps, rename)
    return out, warnings
