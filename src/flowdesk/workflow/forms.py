"""Intake forms: the questionnaire a catalog item asks when a ticket is filed against it.

A catalog declares named forms under `forms:` (docs/workflows.md, "Forms"); an item names
one (`form: platform_access`) or writes its own in place (`form: {questions: [...]}`). A form
may `extends` another: the base's questions first, then its own (one with a base question's
key replaces that question where it stood). This module turns the YAML nodes into `Form`s and
reports every mistake with its file, line and column; `form_schema` makes each form's JSON
Schema, the one truth of what an answer may be.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from yaml.nodes import MappingNode, Node, ScalarNode

from flowdesk.vocabulary import PRIORITIES

from .diagnostics import Pos, Sink
from .yamlnodes import boolean, check_keys, integer, mapping, pos_of, scalar, sequence, string

QuestionType = Literal["text", "choice", "multi_choice", "rich_text", "user"]
QUESTION_TYPES: Final[tuple[QuestionType, ...]] = (
    "text",
    "choice",
    "multi_choice",
    "rich_text",
    "user",
)
CHOICE_TYPES: Final = frozenset({"choice", "multi_choice"})
# The ticket fields a question may fill instead of being kept as an answer; `fields.<key>`
# fills a custom field.
TICKET_FIELDS: Final = ("title", "description", "priority")
FIELDS_PREFIX: Final = "fields."

FORM_KEYS = frozenset({"name", "extends", "title", "description", "questions"})
QUESTION_KEYS = frozenset(
    {
        "key",
        "label",
        "help",
        "type",
        "required",
        "maps_to",
        "max_words",
        "max_length",
        "options",
        "other_label",
    }
)
OPTION_KEYS = frozenset({"value", "label", "help", "other"})
GROUP_KEYS = frozenset({"group", "help", "options"})

# Question keys are answer keys, JSON members and query parameters (`?answer.<key>=`);
# custom field keys follow flowdesk.tickets.schemas.FieldKey.
KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
OPTION_VALUE_LENGTH: Final = 100
# The longest text each kind of answer may carry when the form says nothing (the ticket's
# own columns bound what maps onto them: flowdesk.schema_types Title and LongText, and a
# custom field's FieldText).
LONGEST: Final = {"text": 2000, "rich_text": 20_000}
TARGET_LONGEST: Final = {"title": 300, "description": 20_000, "fields": 2000}
OTHER_SUFFIX: Final = "_other"
OTHER_LENGTH: Final = 200
DEFAULT_OTHER_LABEL: Final = "Other (please specify)"


@dataclass(frozen=True, slots=True)
class Option:
    """One answer of a choice; `group` is the label of the group it is listed under (None:
    top level). An `other` option asks for free text too (the `<key>_other` answer)."""

    value: str
    label: str
    help: str = ""
    other: bool = False
    group: str | None = None
    group_help: str = ""


@dataclass(frozen=True, slots=True)
class Question:
    key: str
    label: str
    type: QuestionType
    help: str = ""
    required: bool = False
    # "title", "description", "priority" or "fields.<key>": where the answer goes instead of
    # the ticket's answers.
    maps_to: str | None = None
    max_words: int | None = None
    max_length: int | None = None
    options: tuple[Option, ...] = ()
    other_label: str = DEFAULT_OTHER_LABEL
    pos: Pos | None = field(default=None, compare=False)

    @property
    def other_key(self) -> str | None:
        """The answer that carries an "Other" option's free text, when the question has one."""
        return self.key + OTHER_SUFFIX if any(o.other for o in self.options) else None

    @property
    def longest(self) -> int | None:
        """The most characters a text answer may have (None: not a text question)."""
        if self.type not in LONGEST:
            return None
        if self.max_length is not None:
            return self.max_length
        target = (self.maps_to or "").split(".", 1)[0]
        return TARGET_LONGEST.get(target, LONGEST[self.type])


@dataclass(frozen=True, slots=True)
class FormSpec:
    """A form as written (before `extends` is resolved)."""

    name: str
    extends: tuple[str, Pos] | None
    title: str
    description: str
    questions: tuple[Question, ...]
    pos: Pos
    # False when writing it was wrong (reported): no form is built from it, nor from a form
    # extending it.
    ok: bool = True


@dataclass(frozen=True, slots=True, eq=False)
class Form:
    """A resolved, checked form; `schema`, `display` and the validator are made once at load
    (flowdesk.workflow.form_schema)."""

    name: str
    title: str
    description: str
    questions: tuple[Question, ...]
    pos: Pos | None = None
    schema: Mapping[str, Any] = field(default_factory=dict)
    display: Mapping[str, Any] = field(default_factory=dict)
    validator: Any = None

    def question(self, key: str) -> Question | None:
        return next((q for q in self.questions if q.key == key), None)

    def mapped(self, target: str) -> Question | None:
        """The question whose answer fills `target` ("title", "fields.x", ...), if any."""
        return next((q for q in self.questions if q.maps_to == target), None)


# --- parsing ---------------------------------------------------------------------------------


def _text(fields: dict[str, tuple[Node, Node]], key: str, sink: Sink, what: str) -> str:
    if key not in fields:
        return ""
    return string(fields[key][1], sink, f"{what}: {key}", allow_empty=True) or ""


def _options(node: Node, sink: Sink, what: str) -> list[Option]:
    """A choice's options: `{value, label, help?, other?}`, a bare string (value and label
    at once), or a group `{group: label, help?, options: [...]}` of those (one level)."""
    out: list[Option] = []
    for item in sequence(node, sink, f"{what}: options"):
        if isinstance(item, MappingNode) and any(scalar(k) == "group" for k, _ in item.value):
            fields = mapping(item, sink, f"{what}: option group") or {}
            check_keys(fields, GROUP_KEYS, sink, f"{what}: option group")
            label = string(fields["group"][1], sink, f"{what}: group") or "?"
            group_help = _text(fields, "help", sink, f"{what}: group")
            if "options" not in fields:
                sink.error(pos_of(item), f"{what}: group '{label}' needs 'options'")
                continue
            members = _options(fields["options"][1], sink, f"{what}: group '{label}'")
            if not members:
                sink.error(pos_of(fields["options"][0]), f"{what}: group '{label}' is empty")
            for member in members:
                if member.group is not None:
                    sink.error(pos_of(item), f"{what}: groups do not nest")
            out += [Option(o.value, o.label, o.help, o.other, label, group_help) for o in members]
            continue
        option = _option(item, sink, what)
        if option is not None:
            out.append(option)
    return out


def _option(node: Node, sink: Sink, what: str) -> Option | None:
    if isinstance(node, ScalarNode):
        value = scalar(node)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return Option(str(value), str(value))
        sink.error(pos_of(node), f"{what}: an option is a string or {{value, label}}")
        return None
    fields = mapping(node, sink, f"{what}: option")
    if fields is None:
        return None
    check_keys(fields, OPTION_KEYS, sink, f"{what}: option")
    if "value" not in fields:
        sink.error(pos_of(node), f"{what}: option: missing 'value'")
        return None
    raw = scalar(fields["value"][1])
    if not isinstance(raw, str | int) or isinstance(raw, bool) or not str(raw):
        sink.error(pos_of(fields["value"][1]), f"{what}: option value must be a non-empty string")
        return None
    value = str(raw)
    if len(value) > OPTION_VALUE_LENGTH or "\x00" in value:
        sink.error(
            pos_of(fields["value"][1]),
            f"{what}: option value longer than {OPTION_VALUE_LENGTH} characters",
        )
    label = value
    if "label" in fields:
        label = string(fields["label"][1], sink, f"{what}: option label") or value
    other = boolean(fields["other"][1], sink, f"{what}: other") if "other" in fields else False
    return Option(value, label, _text(fields, "help", sink, f"{what}: option"), other)


def _positive(node: Node, sink: Sink, what: str) -> int:
    number = integer(node, sink, what)
    if number < 1:
        sink.error(pos_of(node), f"{what} must be a positive integer")
        return 1
    return number


def parse_question(node: Node, sink: Sink, form: str) -> Question | None:
    fields = mapping(node, sink, f"form '{form}': question")
    if fields is None:
        return None
    what = f"form '{form}': question"
    check_keys(fields, QUESTION_KEYS, sink, what)
    missing = [k for k in ("key", "label", "type") if k not in fields]
    if missing:
        sink.error(pos_of(node), f"{what}: missing {', '.join(repr(k) for k in missing)}")
        return None
    key = string(fields["key"][1], sink, f"{what}: key")
    if key is None:
        return None
    what = f"form '{form}': question '{key}'"
    if not KEY.match(key):
        sink.error(
            pos_of(fields["key"][1]),
            f"{what}: a key is lower-case letters, digits and '_', starting with a letter "
            "(at most 64)",
        )
    label = string(fields["label"][1], sink, f"{what}: label") or key
    qtype = string(fields["type"][1], sink, f"{what}: type")
    if qtype not in QUESTION_TYPES:
        if qtype is not None:
            sink.error(
                pos_of(fields["type"][1]),
                f"{what}: unknown type '{qtype}' (expected one of: {', '.join(QUESTION_TYPES)})",
            )
        return None
    question = Question(
        key=key,
        label=label,
        type=qtype,
        help=_text(fields, "help", sink, what),
        required=boolean(fields["required"][1], sink, f"{what}: required")
        if "required" in fields
        else False,
        maps_to=string(fields["maps_to"][1], sink, f"{what}: maps_to")
        if "maps_to" in fields
        else None,
        max_words=_positive(fields["max_words"][1], sink, f"{what}: max_words")
        if "max_words" in fields
        else None,
        max_length=_positive(fields["max_length"][1], sink, f"{what}: max_length")
        if "max_length" in fields
        else None,
        options=tuple(_options(fields["options"][1], sink, what)) if "options" in fields else (),
        other_label=(
            string(fields["other_label"][1], sink, f"{what}: other_label") or DEFAULT_OTHER_LABEL
        )
        if "other_label" in fields
        else DEFAULT_OTHER_LABEL,
        pos=pos_of(node),
    )
    _check_question(question, fields, sink, what)
    return question


def _check_question(
    q: Question, fields: dict[str, tuple[Node, Node]], sink: Sink, what: str
) -> None:
    """What only makes sense for some types, and where an answer may go."""

    def at(key: str) -> Pos:
        return pos_of(fields[key][0])

    if q.type in CHOICE_TYPES:
        if "options" not in fields:
            sink.error(q.pos or at("type"), f"{what}: a {q.type} question needs 'options'")
        elif not q.options:
            sink.error(at("options"), f"{what}: the list of options is empty")
        seen: set[str] = set()
        for option in q.options:
            if option.value in seen:
                sink.error(at("options"), f"{what}: duplicate option value '{option.value}'")
            seen.add(option.value)
    elif "options" in fields:
        sink.error(at("options"), f"{what}: only choice and multi_choice questions have options")
    if "max_words" in fields and q.type != "text":
        sink.error(at("max_words"), f"{what}: max_words is for text questions")
    if "max_length" in fields and q.type not in LONGEST:
        sink.error(at("max_length"), f"{what}: max_length is for text and rich_text questions")
    if "other_label" in fields and q.other_key is None:
        sink.error(at("other_label"), f"{what}: other_label, but no option has 'other: true'")
    if q.maps_to is not None:
        _check_mapping(q, at("maps_to"), sink, what)


def _check_mapping(q: Question, pos: Pos, sink: Sink, what: str) -> None:
    target = q.maps_to or ""
    name, _, rest = target.partition(".")
    if name == "fields" and KEY.match(rest):
        if (q.longest or 0) > TARGET_LONGEST["fields"]:
            sink.error(
                pos,
                f"{what}: a custom field holds at most {TARGET_LONGEST['fields']} characters",
            )
        return
    if target not in TICKET_FIELDS:
        sink.error(
            pos,
            f"{what}: unknown field mapping '{target}' (expected one of: "
            f"{', '.join(TICKET_FIELDS)}, or fields.<key>)",
        )
        return
    if target == "title" and q.type != "text":
        sink.error(pos, f"{what}: only a text question can give the title")
    elif target == "description" and q.type not in LONGEST:
        sink.error(pos, f"{what}: only a text or rich_text question can give the description")
    elif target == "priority":
        values = [o.value for o in q.options]
        wrong = [v for v in values if v not in PRIORITIES]
        if q.type != "choice" or wrong:
            sink.error(
                pos,
                f"{what}: only a choice among the priorities ({', '.join(PRIORITIES)}) can "
                f"give the priority" + (f"; not priorities: {', '.join(wrong)}" if wrong else ""),
            )
    limit = TARGET_LONGEST.get(target)
    if limit is not None and q.max_length is not None and q.max_length > limit:
        sink.error(pos, f"{what}: the {target} holds at most {limit} characters")


def parse_form(node: Node, sink: Sink, *, name: str | None = None) -> FormSpec | None:
    """A form as written: a named entry of `forms:`, or an item's own (`name` given)."""
    what = f"form '{name}'" if name else "form"
    errors_before = len(sink.errors)
    fields = mapping(node, sink, what)
    if fields is None:
        return None
    check_keys(fields, FORM_KEYS - ({"name"} if name else set()), sink, what)
    if name is None:
        if "name" not in fields:
            sink.error(pos_of(node), "form: missing 'name'")
            return None
        name = string(fields["name"][1], sink, "form: name")
        if name is None:
            return None
        what = f"form '{name}'"
    extends = None
    if "extends" in fields:
        base = string(fields["extends"][1], sink, f"{what}: extends")
        extends = (base, pos_of(fields["extends"][1])) if base else None
    questions: list[Question] = []
    if "questions" in fields:
        nodes = sequence(fields["questions"][1], sink, f"{what}: questions")
        questions = [q for n in nodes if (q := parse_question(n, sink, name)) is not None]
    return FormSpec(
        name,
        extends,
        _text(fields, "title", sink, what),
        _text(fields, "description", sink, what),
        tuple(questions),
        pos_of(node),
        ok=len(sink.errors) == errors_before,
    )
