"""Transition conditions: their YAML form, and their compiled form with every reason prebuilt.

A condition is a mapping with one key, its kind:

    {field_set: fix_version}                 # the custom field is set
    {field_in: {environment: [prd, xat]}}    # the custom field's value is one of these
    {answer_set: justification}              # the intake form's answer is given
    {answer_in: {access_level: [write]}}     # the answer (or, multi-choice, any of it) is one of
    {link: blocked_by}  {approval: infra}  {type_in: [change]}  {type_not_in: [debug]}
    {any: [COND, ...]}  {all: [COND, ...]}  {not: COND}

or a rule, which requires something only where it applies (seed 003's manager-approval
matrix is one rule per row), with the reason a refusal appends to what is missing:

    {when: COND, require: COND, because: "write access to production"}

A failing condition answers with exactly what is missing (``Condition.missing``): the
approval, the answer or the field, each with a machine-readable `condition` and a sentence.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from yaml.nodes import Node

from .diagnostics import Pos, Sink
from .model import CONDITION_KINDS, Condition, Reason, normal
from .yamlnodes import check_keys, mapping, pos_of, sequence, string, string_list

# Kinds whose value is one name (a field or an answer key).
_KEYED = frozenset({"field_set", "answer_set"})
# Kinds whose value is {KEY: [values]}.
_VALUE_TESTS = frozenset({"field_in", "answer_in"})
_COMBINATORS = frozenset({"any", "all"})
RULE_KEYS = frozenset({"when", "require", "because"})


@dataclass(frozen=True, slots=True)
class ConditionSpec:
    kind: str
    values: tuple[str, ...]
    pos: Pos
    key: str = ""  # field_set, field_in, answer_set, answer_in
    parts: tuple[ConditionSpec, ...] = ()  # any, all, not; when: (when, require)
    because: str = ""  # when

    def leaves(self) -> Iterator[ConditionSpec]:
        if not self.parts:
            yield self
        for part in self.parts:
            yield from part.leaves()


def parse_condition(node: Node, sink: Sink) -> ConditionSpec | None:
    fields = mapping(node, sink, "condition")
    if fields is None:
        return None
    if "when" in fields or "require" in fields:
        return _parse_rule(node, fields, sink)
    if len(fields) != 1:
        sink.error(pos_of(node), "a condition is a mapping with exactly one key, e.g. {link: X}")
        return None
    ((kind, (knode, vnode)),) = fields.items()
    pos = pos_of(knode)
    if kind not in CONDITION_KINDS:
        sink.error(
            pos,
            f"unknown condition kind '{kind}' (expected one of: {', '.join(CONDITION_KINDS)})",
        )
        return None
    if kind in _COMBINATORS:
        parts = [parse_condition(n, sink) for n in sequence(vnode, sink, kind)]
        if not parts:
            sink.error(pos_of(vnode), f"{kind} needs at least one condition")
        if not parts or None in parts:
            return None
        return ConditionSpec(kind, (), pos, parts=tuple(p for p in parts if p is not None))
    if kind == "not":
        inner = parse_condition(vnode, sink)
        return None if inner is None else ConditionSpec(kind, (), pos, parts=(inner,))
    if kind in _VALUE_TESTS:
        return _parse_value_test(kind, pos, vnode, sink)
    values = tuple(v for v, _ in string_list(vnode, sink, kind))
    if kind in _KEYED:
        if len(values) != 1:
            sink.error(pos_of(vnode), f"{kind} names exactly one {kind.split('_')[0]}")
            return None
        return ConditionSpec(kind, values, pos, key=values[0])
    if not values:
        sink.error(pos_of(vnode), f"{kind} needs at least one value")
        return None
    return ConditionSpec(kind, values, pos)


def _parse_value_test(kind: str, pos: Pos, vnode: Node, sink: Sink) -> ConditionSpec | None:
    what = "field" if kind == "field_in" else "answer"
    tested = mapping(vnode, sink, kind, normalize=False)
    if tested is None:
        return None
    if len(tested) != 1:
        sink.error(pos_of(vnode), f"{kind} tests exactly one {what}: {{{kind}: {{KEY: [values]}}}}")
        return None
    ((key, (_, values_node)),) = tested.items()
    values = tuple(v for v, _ in string_list(values_node, sink, f"{kind} '{key}'"))
    if not values:
        sink.error(pos_of(values_node), f"{kind} '{key}' needs at least one value")
        return None
    return ConditionSpec(kind, values, pos, key=key)


def _parse_rule(
    node: Node, fields: dict[str, tuple[Node, Node]], sink: Sink
) -> ConditionSpec | None:
    check_keys(fields, RULE_KEYS, sink, "rule")
    if "when" not in fields or "require" not in fields:
        sink.error(pos_of(node), "a rule needs both 'when' and 'require' (and may say 'because')")
        return None
    when = parse_condition(fields["when"][1], sink)
    require = parse_condition(fields["require"][1], sink)
    because = ""
    if "because" in fields:
        because = string(fields["because"][1], sink, "because") or ""
    if when is None or require is None:
        return None
    return ConditionSpec(
        "when", (), pos_of(fields["when"][0]), parts=(when, require), because=because
    )


# --- compiling ---------------------------------------------------------------------------------


def name_of(spec: ConditionSpec) -> str:
    """The machine-readable name a refusal carries as `condition`."""
    if spec.kind in _KEYED or spec.kind in _VALUE_TESTS:
        return f"{spec.kind}:{spec.key}"
    if spec.kind == "not":
        return f"not:{name_of(spec.parts[0])}"
    if spec.kind == "when":  # a rule, by what it requires
        return f"when:{name_of(spec.parts[1])}"
    if spec.kind in ("any", "all"):
        return spec.kind
    return f"{spec.kind}:{','.join(spec.values)}"


def _listed(values: tuple[str, ...]) -> str:
    return ", ".join(values)


def describe(spec: ConditionSpec) -> str:
    """The condition as a phrase that holds when it does ("the answer 'x' is one of: a")."""
    kind, values = spec.kind, spec.values
    if kind == "field_set":
        return f"the field '{spec.key}' is set"
    if kind == "answer_set":
        return f"the answer '{spec.key}' is given"
    if kind == "field_in":
        return f"the field '{spec.key}' is one of: {_listed(values)}"
    if kind == "answer_in":
        return f"the answer '{spec.key}' is one of: {_listed(values)}"
    if kind == "link":
        return f"a '{_listed(values)}' link exists"
    if kind == "approval":
        return f"the '{_listed(values)}' approval is recorded"
    if kind == "type_in":
        return f"the ticket type is one of: {_listed(values)}"
    if kind == "type_not_in":
        return f"the ticket type is not one of: {_listed(values)}"
    parts = [describe(p) for p in spec.parts]
    if kind == "all":
        return " and ".join(parts) if len(parts) == 1 else "(" + " and ".join(parts) + ")"
    if kind == "any":
        return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"
    if kind == "not":
        return f"not {parts[0]}"
    return f"if {parts[0]}, then {parts[1]}"  # when


def _failure(spec: ConditionSpec) -> str:
    """What a failing leaf or combinator says is needed."""
    kind, values = spec.kind, spec.values
    if kind == "field_set":
        return f"the field '{spec.key}' must be set"
    if kind == "answer_set":
        return f"the answer '{spec.key}' is required"
    if kind == "field_in":
        return f"the field '{spec.key}' must be one of: {_listed(values)}"
    if kind == "answer_in":
        return f"the answer '{spec.key}' must be one of: {_listed(values)}"
    if kind == "link":
        return f"a '{_listed(values)}' link must exist"
    if kind == "approval":
        if len(values) == 1:
            return f"the '{values[0]}' approval is required"
        return "one of the approvals " + ", ".join(f"'{v}'" for v in values) + " is required"
    if kind == "type_in":
        return f"the ticket type must be one of: {_listed(values)}"
    if kind == "type_not_in":
        return f"the ticket type must not be one of: {_listed(values)}"
    if kind == "any":
        return "one of these must hold: " + "; or ".join(describe(p) for p in spec.parts)
    if kind == "not":
        return f"this must not hold: {describe(spec.parts[0])}"
    return describe(spec)  # all, when: shown (the API's catalog), never a refusal of their own


def compile_condition(spec: ConditionSpec, because: str = "") -> Condition:
    """The condition with its reasons built once; `because` (a rule's) ends each of them."""
    suffix = f": {because}" if because else ""
    kind = spec.kind
    if kind == "when":
        when, require = spec.parts
        parts: tuple[Condition, ...] = (
            compile_condition(when),
            compile_condition(require, spec.because or because),
        )
    else:
        parts = tuple(compile_condition(p, because) for p in spec.parts)
    values = spec.values if kind in _VALUE_TESTS else ()
    reason = Reason("condition", _failure(spec) + suffix, condition=name_of(spec), values=values)
    if kind == "any":
        reason = Reason(
            "condition",
            reason.detail,
            condition="any",
            values=tuple(name_of(p) for p in spec.parts),
        )
    tested = (
        frozenset(n for v in spec.values if (n := normal(v)) is not None)
        if kind in _VALUE_TESTS
        else frozenset(spec.values)
    )
    kinds = frozenset({kind}).union(*(p.kinds for p in parts))
    return Condition(kind, tested, reason, key=spec.key, parts=parts, kinds=kinds)


def approval_names(spec: ConditionSpec) -> Iterator[tuple[str, Pos]]:
    """Every approval the condition names, with where."""
    for leaf in spec.leaves():
        if leaf.kind == "approval":
            for value in leaf.values:
                yield value, leaf.pos
