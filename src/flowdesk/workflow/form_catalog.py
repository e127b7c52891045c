"""The catalog's forms: the named ones (`forms:`) with `extends` resolved in any order, and
the one each catalog item asks (`form: NAME`, or a form of its own), each checked across its
questions and built with its JSON Schema (flowdesk.workflow.form_schema)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from yaml.nodes import Node, ScalarNode

from .diagnostics import Pos, Sink
from .form_schema import built
from .forms import Form, FormSpec, Question, parse_form
from .yamlnodes import pos_of, string

# --- resolving and checking ------------------------------------------------------------------


def _merged(base: tuple[Question, ...], own: tuple[Question, ...]) -> tuple[Question, ...]:
    """The base's questions, each replaced in place by an own question of its key; the own
    questions with new keys follow, in their order."""
    own_by_key = {q.key: q for q in own}
    merged = [own_by_key.pop(q.key, q) for q in base]
    return (*merged, *(q for q in own if q.key in own_by_key))


class _Resolver:
    def __init__(self, specs: Mapping[str, FormSpec], sink: Sink) -> None:
        self.specs = specs
        self.sink = sink
        self.done: dict[str, tuple[Question, ...] | None] = {}

    def questions(self, spec: FormSpec, trail: tuple[str, ...] = ()) -> tuple[Question, ...] | None:
        if not spec.ok:
            return None
        if spec.extends is None:
            return spec.questions
        base_name, pos = spec.extends
        if base_name in trail or self.specs.get(base_name) is spec:
            self.sink.error(pos, f"form '{spec.name}' extends itself (through '{base_name}')")
            return None
        base = self.specs.get(base_name)
        if base is None:
            known = ", ".join(self.specs) or "none"
            self.sink.error(
                pos, f"form '{spec.name}' extends unknown form '{base_name}' (forms: {known})"
            )
            return None
        if base_name not in self.done:
            self.done[base_name] = self.questions(base, (*trail, spec.name, base_name))
        inherited = self.done[base_name]
        return None if inherited is None else _merged(inherited, spec.questions)


def _check_form(spec: FormSpec, questions: tuple[Question, ...], sink: Sink) -> bool:
    """Across a form's questions: keys, the "Other" answers' keys, and mappings unique."""
    ok = True
    where = f"form '{spec.name}'"
    if not questions:
        sink.error(spec.pos, f"{where} has no questions")
        return False
    # Own questions with the same key: `extends` replaces a base question, a form's own
    # list says each key once.
    first: dict[str, Pos] = {}
    for q in spec.questions:
        pos = q.pos or spec.pos
        if q.key in first:
            sink.error(
                pos,
                f"{where}: duplicate question key '{q.key}' (first at line {first[q.key].line})",
            )
            ok = False
        first.setdefault(q.key, pos)
    keys = {q.key for q in questions}
    targets: dict[str, str] = {}
    for q in questions:
        pos = q.pos or spec.pos
        other = q.other_key
        if other is not None and other in keys:
            sink.error(
                pos,
                f"{where}: question '{q.key}' has an 'Other' option, whose text is the answer "
                f"'{other}': another question has that key",
            )
            ok = False
        if q.maps_to is not None:
            if q.maps_to in targets:
                sink.error(
                    pos,
                    f"{where}: questions '{targets[q.maps_to]}' and '{q.key}' both map onto "
                    f"'{q.maps_to}'",
                )
                ok = False
            targets[q.maps_to] = q.key
    return ok


def compile_forms(nodes: Iterable[Node], sink: Sink) -> dict[str, Form | None]:
    """The catalog's named forms, `extends` resolved (in any order), each checked; None for
    a form that is wrong (reported), so that items naming it say nothing more."""
    specs: dict[str, FormSpec] = {}
    for node in nodes:
        spec = parse_form(node, sink)
        if spec is not None:
            specs[spec.name] = spec
    resolver = _Resolver(specs, sink)
    forms: dict[str, Form | None] = {}
    for spec in specs.values():
        questions = resolver.questions(spec)
        ok = questions is not None and _check_form(spec, questions, sink)
        forms[spec.name] = built(spec, questions) if ok and questions is not None else None
    return forms


def item_form(
    node: Node, forms: Mapping[str, Form | None], sink: Sink, item: str
) -> tuple[Form | None, bool]:
    """The form of a catalog item's `form:` value: a form's name or a form of its own.
    Returns (form, ok); ok is False when the value was wrong (already reported)."""
    if isinstance(node, ScalarNode):
        name = string(node, sink, f"catalog item '{item}': form")
        if name is None:
            return None, False
        found = forms.get(name)
        if found is None:
            if name in forms:  # declared, and wrong: said already
                return None, False
            known = ", ".join(forms) or "none"
            sink.error(
                pos_of(node), f"catalog item '{item}': unknown form '{name}' (forms: {known})"
            )
            return None, False
        return found, True
    spec = parse_form(node, sink, name=item)
    if spec is None:
        return None, False
    named = {
        n: FormSpec(n, None, f.title, f.description, f.questions, f.pos or spec.pos)
        if f is not None
        else FormSpec(n, None, "", "", (), spec.pos, ok=False)
        for n, f in forms.items()
    }
    questions = _Resolver(named, sink).questions(spec)
    if questions is None or not _check_form(spec, questions, sink):
        return None, False
    return built(spec, questions), True
