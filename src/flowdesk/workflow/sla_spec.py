"""SLA policies and business calendars in the catalog: `calendars:` and `sla_policies:` at the
top of a catalog file, parsed, checked against the workflows (file:line:col for every
problem, as for workflows) and compiled into `SlaPolicy` records that the ticket writes and
the SLA tick read (docs/workflows.md, "SLA policies").

```yaml
calendars:
  - {name: office, timezone: Europe/Berlin, days: [mon, tue, wed, thu, fri],
     hours: ["09:00-12:30", "13:30-17:00"], holidays: [2026-12-25]}
sla_policies:
  - name: review
    workflow: platform_request        # or a list; catalog_items: [...] narrows it
    start: [SUBMITTED]                # entering one starts the clock (creation too)
    pause: [BLOCKED]                  # while in one, it does not count
    stop: {leaving: [SUBMITTED], entering: [DONE], events: [agent_reply, requester_reply]}
    target: 48h                       # on `calendar` when named, else the wall clock (24x7)
    warn_at: 75%
    reminders: [{after: 24h, to: requester}]
    on_breach: {escalate: {group: Platform on-call}, action: cancel, note: "..."}
```
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yaml.nodes import MappingNode, Node, ScalarNode

from .calendars import WALL, WEEKDAYS, Calendar
from .diagnostics import Pos, Sink
from .model import CatalogItem, Workflow
from .sla_model import EVENTS, Mark, Recipient, SlaPolicy
from .yamlnodes import (
    check_keys,
    mapping,
    normalize_key,
    pos_of,
    scalar,
    sequence,
    string,
    string_list,
)

CALENDAR_KEYS = frozenset({"name", "timezone", "days", "hours", "holidays"})
POLICY_KEYS = frozenset(
    {
        "name",
        "label",
        "workflow",
        "workflows",
        "catalog_items",
        "start",
        "pause",
        "stop",
        "target",
        "calendar",
        "warn_at",
        "reminders",
        "on_breach",
    }
)
STOP_KEYS = frozenset({"entering", "leaving", "events"})
BREACH_KEYS = frozenset({"escalate", "action", "note"})
REMINDER_KEYS = frozenset({"after", "to"})

MAX_TARGET_SECONDS = 366 * 86400
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_SHARE = re.compile(r"^(\d{1,2}(?:\.\d+)?)%$")


@dataclass
class SlaLayers:
    """The merged `calendars` and `sla_policies` of every file: later ones replace earlier
    ones of the same name."""

    calendars: dict[str, Node] = field(default_factory=dict)
    policies: dict[str, Node] = field(default_factory=dict)


def merge_sla(layers: SlaLayers, fields: dict[str, tuple[Node, Node]], sink: Sink) -> None:
    """A catalog file's `calendars` and `sla_policies`, over what earlier files declared."""
    for key, into in (("calendars", layers.calendars), ("sla_policies", layers.policies)):
        if key not in fields:
            continue
        seen: dict[str, Pos] = {}
        for node in sequence(fields[key][1], sink, key):
            name = _name(node)
            if name is None:
                sink.error(pos_of(node), f"{key}: an entry needs a 'name'")
                continue
            if name in seen:
                sink.error(
                    pos_of(node),
                    f"{key}: duplicate name '{name}' (first at line {seen[name].line})",
                )
                continue
            seen[name] = pos_of(node)
            into[name] = node


def compile_sla(
    layers: SlaLayers,
    workflows: Mapping[str, Workflow],
    items: Mapping[str, CatalogItem],
    sink: Sink,
) -> tuple[Mapping[str, Calendar], tuple[SlaPolicy, ...]]:
    calendars: dict[str, Calendar] = {}
    for name, node in layers.calendars.items():
        calendar = _calendar(name, node, sink)
        if calendar is not None:
            calendars[name] = calendar
    policies = []
    for name, node in layers.policies.items():
        policy = _policy(name, node, workflows, items, calendars, sink)
        if policy is not None:
            policies.append(policy)
    return MappingProxyType(calendars), tuple(policies)


def duration(text: str | None) -> int | None:
    """`30m`, `48h`, `7d`, `1d12h`: whole minutes, hours or days, in seconds."""
    match = _DURATION.match(text or "")
    if match is None or not any(match.groups()):
        return None
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60


def _name(node: Node) -> str | None:
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if normalize_key(str(scalar(k))) == "name":
                value = scalar(v)
                return value if isinstance(value, str) and value else None
    return None


# --- calendars ---------------------------------------------------------------------------------


def _calendar(name: str, node: Node, sink: Sink) -> Calendar | None:
    fields = mapping(node, sink, f"calendar '{name}'")
    if fields is None:
        return None
    check_keys(fields, CALENDAR_KEYS, sink, f"calendar '{name}'")
    if name == WALL.name:
        sink.error(pos_of(node), f"calendar '{name}': the name is the wall clock's (24x7)")
        return None
    ok = True
    zone = ZoneInfo("UTC")
    if "timezone" not in fields:
        sink.error(pos_of(node), f"calendar '{name}': needs a 'timezone' (e.g. Europe/London)")
        ok = False
    else:
        znode = fields["timezone"][1]
        text = string(znode, sink, "timezone")
        try:
            zone = ZoneInfo(text or "")
        except (ZoneInfoNotFoundError, ValueError):
            sink.error(pos_of(znode), f"calendar '{name}': unknown time zone '{text}' (IANA)")
            ok = False
    days = frozenset(range(5))
    if "days" in fields:
        found = set()
        for day, dnode in string_list(fields["days"][1], sink, "days"):
            if day.lower()[:3] not in WEEKDAYS:
                sink.error(pos_of(dnode), f"calendar '{name}': unknown day '{day}' (mon ... sun)")
                ok = False
            else:
                found.add(WEEKDAYS.index(day.lower()[:3]))
        days = frozenset(found)
    hours: list[tuple[int, int]] = []
    if "hours" not in fields:
        sink.error(pos_of(node), f"calendar '{name}': needs 'hours' (e.g. \"09:00-17:00\")")
        ok = False
    else:
        for text, hnode in string_list(fields["hours"][1], sink, "hours"):
            span = _hours(text)
            if span is None:
                sink.error(
                    pos_of(hnode),
                    f"calendar '{name}': hours '{text}' must read HH:MM-HH:MM, the end after "
                    "the start (24:00 for midnight)",
                )
                ok = False
            else:
                hours.append(span)
        hours.sort()
        if any(a[1] > b[0] for a, b in itertools.pairwise(hours)):
            sink.error(pos_of(fields["hours"][1]), f"calendar '{name}': hours overlap")
            ok = False
    holidays = set()
    if "holidays" in fields:
        for hnode in sequence(fields["holidays"][1], sink, "holidays"):
            value = scalar(hnode)
            if isinstance(value, date):
                holidays.add(value)
            else:
                try:
                    holidays.add(date.fromisoformat(str(value)))
                except ValueError:
                    sink.error(pos_of(hnode), f"calendar '{name}': '{value}' is not a YYYY-MM-DD")
                    ok = False
    if ok and (not days or not hours):
        sink.error(pos_of(node), f"calendar '{name}': it has no working time at all")
        ok = False
    if not ok:
        return None
    return Calendar(name, zone, days, tuple(hours), frozenset(holidays))


def _hours(text: str) -> tuple[int, int] | None:
    match = _HOURS.match(text.strip())
    if match is None:
        return None
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    first, last = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or last > 24 * 60 or last <= first:
        return None
    return first, last


# --- policies ----------------------------------------------------------------------------------


def _policy(
    name: str,
    node: Node,
    workflows: Mapping[str, Workflow],
    items: Mapping[str, CatalogItem],
    calendars: Mapping[str, Calendar],
    sink: Sink,
) -> SlaPolicy | None:
    what = f"sla policy '{name}'"
    fields = mapping(node, sink, what)
    if fields is None:
        return None
    check_keys(fields, POLICY_KEYS, sink, what)
    errors = len(sink.errors)

    # Which workflows, and which of their catalog items.
    named: list[tuple[str, Node]] = []
    for key in ("workflow", "workflows"):
        if key in fields:
            named += string_list(fields[key][1], sink, key)
    if not named:
        sink.error(pos_of(node), f"{what}: needs 'workflow' (a name or a list)")
        return None
    flows: list[Workflow] = []
    for wname, wnode in named:
        found = workflows.get(wname)
        if found is None:
            sink.error(pos_of(wnode), f"{what}: unknown workflow '{wname}'")
        else:
            flows.append(found)
    scoped: frozenset[str] | None = None
    if "catalog_items" in fields:
        scoped_items = []
        for iname, inode in string_list(fields["catalog_items"][1], sink, "catalog_items"):
            item = items.get(iname)
            if item is None:
                sink.error(pos_of(inode), f"{what}: unknown catalog item '{iname}'")
            elif item.workflow not in {w.name for w in flows}:
                sink.error(
                    pos_of(inode),
                    f"{what}: catalog item '{iname}' runs workflow '{item.workflow}', not one "
                    "of the policy's",
                )
            scoped_items.append(iname)
        scoped = frozenset(scoped_items)

    def statuses(key: str, fields_: dict[str, tuple[Node, Node]]) -> frozenset[str]:
        if key not in fields_:
            return frozenset()
        out = []
        for status, snode in string_list(fields_[key][1], sink, key):
            for flow in flows:
                if status not in flow.statuses:
                    sink.error(
                        pos_of(snode),
                        f"{what}: unknown status '{status}' in {key} (workflow '{flow.name}')",
                    )
            out.append(status)
        return frozenset(out)

    start = statuses("start", fields)
    if not start:
        sink.error(pos_of(node), f"{what}: needs 'start' (the statuses that start the clock)")
    pause = statuses("pause", fields)
    stop_entering: frozenset[str] = frozenset()
    stop_leaving: frozenset[str] = frozenset()
    stop_on: set[str] = set()
    if "stop" in fields:
        stop = mapping(fields["stop"][1], sink, f"{what}: stop") or {}
        check_keys(stop, STOP_KEYS, sink, f"{what}: stop")
        stop_entering = statuses("entering", stop)
        stop_leaving = statuses("leaving", stop)
        if "events" in stop:
            for event, enode in string_list(stop["events"][1], sink, "events"):
                if event not in EVENTS:
                    sink.error(
                        pos_of(enode),
                        f"{what}: unknown event '{event}' (expected one of: {', '.join(EVENTS)})",
                    )
                stop_on.add(event)
    if start & pause:
        sink.error(
            pos_of(fields["pause"][1]),
            f"{what}: {', '.join(sorted(start & pause))} both start and pause the clock",
        )

    calendar = WALL
    if "calendar" in fields:
        cnode = fields["calendar"][1]
        cname = string(cnode, sink, "calendar")
        if cname is not None and cname != WALL.name:
            found_calendar = calendars.get(cname)
            if found_calendar is None:
                known = ", ".join([WALL.name, *sorted(calendars)])
                sink.error(pos_of(cnode), f"{what}: unknown calendar '{cname}' (known: {known})")
            else:
                calendar = found_calendar

    target = 0
    if "target" not in fields:
        sink.error(pos_of(node), f"{what}: needs a 'target' (e.g. 48h)")
    else:
        tnode = fields["target"][1]
        parsed = duration(_text(tnode))
        if parsed is None or not 0 < parsed <= MAX_TARGET_SECONDS:
            sink.error(
                pos_of(tnode),
                f"{what}: target '{scalar(tnode)}' must be whole minutes, hours or days "
                "(30m, 48h, 7d, 1d12h), more than 0 and at most 366d",
            )
        else:
            target = parsed

    warn_at = None
    marks: list[Mark] = []
    if "warn_at" in fields:
        wnode = fields["warn_at"][1]
        match = _SHARE.match(_text(wnode) or "")
        share = float(match.group(1)) if match else 0.0
        if not 0 < share < 100:
            sink.error(
                pos_of(wnode), f"{what}: warn_at must be a share of the target, e.g. 75% (1-99%)"
            )
        elif target:
            warn_at = target * share / 100
            marks.append(Mark(warn_at, "warning"))
    for rnode in (
        sequence(fields["reminders"][1], sink, "reminders") if "reminders" in fields else []
    ):
        reminder = mapping(rnode, sink, f"{what}: reminder") or {}
        check_keys(reminder, REMINDER_KEYS, sink, f"{what}: reminder")
        if "after" not in reminder:
            sink.error(pos_of(rnode), f"{what}: a reminder needs 'after' (e.g. 48h)")
            continue
        after = duration(_text(reminder["after"][1]))
        if after is None or after <= 0 or (target and after >= target):
            sink.error(
                pos_of(reminder["after"][1]),
                f"{what}: a reminder's 'after' must be a duration within the target",
            )
            continue
        to = (
            _recipient(reminder["to"][1], sink, what)
            if "to" in reminder
            else Recipient("requester")
        )
        if to is not None:
            marks.append(Mark(float(after), "reminder", to))

    escalate = None
    action = None
    note = ""
    needs_note = False
    if "on_breach" in fields:
        breach = mapping(fields["on_breach"][1], sink, f"{what}: on_breach") or {}
        check_keys(breach, BREACH_KEYS, sink, f"{what}: on_breach")
        if "escalate" in breach:
            escalate = _recipient(breach["escalate"][1], sink, what)
        if "action" in breach:
            anode = breach["action"][1]
            action = string(anode, sink, "action")
            for flow in flows:
                # The clock runs in its start statuses (and where it resumes): the action must
                # be one the system can take out of each of them.
                for status in sorted(start):
                    edge = flow.index.get(status, {}).get(action or "")
                    if action and edge is None:
                        sink.error(
                            pos_of(anode),
                            f"{what}: no action '{action}' out of '{status}' in workflow "
                            f"'{flow.name}' to take on breach",
                        )
                    elif edge is not None and edge.action.comment_required:
                        needs_note = True
        if "note" in breach:
            note = string(breach["note"][1], sink, "note") or ""
        if needs_note and not note:
            sink.error(
                pos_of(fields["on_breach"][1]),
                f"{what}: the action '{action}' needs a comment: give the breach a 'note'",
            )
    if target:
        marks.append(Mark(float(target), "breach", escalate))
    label = name
    if "label" in fields:
        label = string(fields["label"][1], sink, "label") or name
    if len(sink.errors) > errors:
        return None
    return SlaPolicy(
        name=name,
        label=label,
        workflows=frozenset(w.name for w in flows),
        items=scoped,
        start=start,
        pause=pause,
        stop_entering=stop_entering,
        stop_leaving=stop_leaving,
        stop_on=frozenset(stop_on),
        target=target,
        calendar=calendar,
        warn_at=warn_at,
        # Stable: at one offset, reminders before the warning before the breach.
        marks=tuple(sorted(marks, key=lambda m: (m.offset, _ORDER[m.kind]))),
        escalate=escalate,
        action=action,
        note=note,
        pos=pos_of(node),
    )


_ORDER = {"reminder": 0, "warning": 1, "breach": 2}


def _text(node: Node) -> str | None:
    value = scalar(node)
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


def _recipient(node: Node, sink: Sink, what: str) -> Recipient | None:
    if isinstance(node, ScalarNode):
        value = scalar(node)
        if value in ("requester", "assignee"):
            return Recipient(value)
    else:
        fields = mapping(node, sink, f"{what}: recipient")
        if fields is not None and len(fields) == 1:
            ((kind, (_, vnode)),) = fields.items()
            name = string(vnode, sink, kind)
            if kind in ("group", "user") and name:
                return Recipient(kind, name)  # type: ignore[arg-type]  # checked just above
    sink.error(
        pos_of(node),
        f"{what}: a recipient is requester, assignee, {{group: NAME}} or {{user: EMAIL}}",
    )
    return None
