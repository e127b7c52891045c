"""A form as JSON Schema (2020-12) and display hints, and its answers checked against it.

The schema served by `GET /v1/catalog/{item}` is the one `check` validates with (jsonschema's
Draft202012Validator): every rule an answer must keep is written in it, in keywords every
2020-12 validator asserts (`pattern` rather than `format` for a user id, a pattern for "at
most 10 words"), so that an SPA's validator and flowdesk's agree. The display hints say what
a schema cannot: labels of groups, the order, which widget, where an "Other" text belongs.
Only whether a user answer names a user of the tenant is checked elsewhere (at create,
against the database).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

import nh3
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from markdown_it import MarkdownIt

from .forms import CHOICE_TYPES, OTHER_LENGTH, Form, FormSpec, Option, Question

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
NO_NUL: Final = "^[^\\u0000]*$"  # PostgreSQL's jsonb cannot store a NUL character
NOT_BLANK: Final = "\\S"
UUID: Final = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# The answers' member that keeps the rendered HTML of the rich-text answers (question keys
# start with a letter, so it never names a question).
HTML_KEY: Final = "_html"


def words_pattern(most: int) -> str:
    """At most `most` words: runs of non-blanks separated by blanks, blanks around allowed."""
    return f"^\\s*(?:\\S+(?:\\s+\\S+){{0,{most - 1}}})?\\s*$"


# --- the schema ------------------------------------------------------------------------------


def _choices(options: tuple[Option, ...]) -> list[dict[str, Any]]:
    out = []
    for o in options:
        # A renderer that knows nothing of groups still tells the "Other"s apart.
        title = f"{o.group}: {o.label}" if o.group else o.label
        entry: dict[str, Any] = {"const": o.value, "title": title}
        if o.help:
            entry["description"] = o.help
        out.append(entry)
    return out


def _text_schema(longest: int, *, required: bool, max_words: int | None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "maxLength": longest, "pattern": NO_NUL}
    parts = []
    if required:
        parts.append({"pattern": NOT_BLANK})
    if max_words is not None:
        parts.append({"pattern": words_pattern(max_words)})
    if parts:
        schema["allOf"] = parts
    return schema


def question_schema(q: Question) -> dict[str, Any]:
    annotations: dict[str, Any] = {"title": q.label}
    if q.help:
        annotations["description"] = q.help
    if q.type in ("text", "rich_text"):
        schema = _text_schema(q.longest or 0, required=q.required, max_words=q.max_words)
        if q.type == "rich_text":
            schema["contentMediaType"] = "text/markdown"
    elif q.type == "choice":
        schema = {"type": "string", "oneOf": _choices(q.options)}
    elif q.type == "multi_choice":
        schema = {
            "type": "array",
            "items": {"oneOf": _choices(q.options)},
            "uniqueItems": True,
            "maxItems": len(q.options),
        }
        if q.required:
            schema["minItems"] = 1
    else:  # user: the id of a user of the tenant (`format` is only an annotation in 2020-12)
        schema = {"type": "string", "format": "uuid", "pattern": UUID}
    return annotations | schema


def _other_rule(q: Question, other_key: str) -> dict[str, Any]:
    """The "Other" text is required when an `other` option is chosen, and refused otherwise."""
    others = [o.value for o in q.options if o.other]
    chosen: dict[str, Any] = {"enum": others}
    if q.type == "multi_choice":
        chosen = {"type": "array", "contains": chosen}
    return {
        "if": {"properties": {q.key: chosen}, "required": [q.key]},
        "then": {"required": [other_key]},
        "else": {"not": {"required": [other_key]}},
    }


def form_schema(title: str, description: str, questions: tuple[Question, ...]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    rules: list[dict[str, Any]] = []
    for q in questions:
        properties[q.key] = question_schema(q)
        other = q.other_key
        if other is not None:
            properties[other] = {"title": q.other_label} | _text_schema(
                OTHER_LENGTH, required=True, max_words=None
            )
            rules.append(_other_rule(q, other))
    schema: dict[str, Any] = {"$schema": DIALECT}
    if title:
        schema["title"] = title
    if description:
        schema["description"] = description
    schema |= {
        "type": "object",
        "properties": properties,
        "required": [q.key for q in questions if q.required],
        "additionalProperties": False,
    }
    if rules:
        schema["allOf"] = rules
    return schema


# --- display hints ---------------------------------------------------------------------------

WIDGETS: Final = {
    "choice": "select",
    "multi_choice": "checkboxes",
    "rich_text": "markdown",
    "user": "user",
}


def _options_display(options: tuple[Option, ...]) -> list[dict[str, Any]]:
    """Options in order, those of a group gathered under it."""
    out: list[dict[str, Any]] = []
    for o in options:
        entry: dict[str, Any] = {"value": o.value, "label": o.label}
        if o.help:
            entry["help"] = o.help
        if o.other:
            entry["other"] = True
        if o.group is None:
            out.append(entry)
            continue
        if not out or out[-1].get("group") != o.group:
            group: dict[str, Any] = {"group": o.group, "options": []}
            if o.group_help:
                group["help"] = o.group_help
            out.append(group)
        out[-1]["options"].append(entry)
    return out


def form_display(questions: tuple[Question, ...]) -> dict[str, Any]:
    order: list[str] = []
    shown: dict[str, Any] = {}
    for q in questions:
        longest = q.longest
        widget = WIDGETS.get(q.type) or ("textarea" if (longest or 0) > 300 else "text")
        hint: dict[str, Any] = {
            "label": q.label,
            "help": q.help,
            "widget": widget,
            "required": q.required,
        }
        if q.maps_to:
            hint["maps_to"] = q.maps_to
        if q.max_words is not None:
            hint["max_words"] = q.max_words
        if longest is not None:
            hint["max_length"] = longest
        if q.type in CHOICE_TYPES:
            hint["options"] = _options_display(q.options)
        order.append(q.key)
        shown[q.key] = hint
        other = q.other_key
        if other is not None:
            order.append(other)
            shown[other] = {
                "label": q.other_label,
                "help": "",
                "widget": "text",
                "required": True,
                "max_length": OTHER_LENGTH,
                # Shown (and required) while one of these options of `for` is chosen.
                "other_for": q.key,
                "when": [o.value for o in q.options if o.other],
            }
    return {"order": order, "questions": shown}


def built(spec: FormSpec, questions: tuple[Question, ...]) -> Form:
    schema = form_schema(spec.title, spec.description, questions)
    Draft202012Validator.check_schema(schema)  # a bug here, not the catalog's: fail loudly
    return Form(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        questions=questions,
        pos=spec.pos,
        schema=schema,
        display=form_display(questions),
        validator=Draft202012Validator(schema),
    )


# --- checking answers ------------------------------------------------------------------------


def _pointer(key: str) -> str:
    return "/answers/" + key.replace("~", "~0").replace("/", "~1")


def _reason(error: ValidationError, form: Form, key: str) -> str:
    kind = error.validator
    q = form.question(key)
    if kind == "type":
        if error.validator_value == "array":
            return "must be a list of options"
        if q is not None and q.type == "choice":
            return "must be one of the options (a string)"
        return "must be a string"
    if kind in ("oneOf", "const", "enum"):
        return f"{error.instance!r} is not one of the options"
    if kind == "maxLength":
        return f"at most {error.validator_value} characters"
    if kind == "maxItems":
        return f"at most {error.validator_value} options"
    if kind == "minItems":
        return "required: choose at least one option"
    if kind == "uniqueItems":
        return "each option at most once"
    if kind == "pattern":
        pattern = error.validator_value
        if pattern == NO_NUL:
            return "must not contain NUL characters"
        if pattern == NOT_BLANK:
            return "required: must not be blank"
        if pattern == UUID:
            return "must be a user id"
        if q is not None and q.max_words is not None:
            return f"at most {q.max_words} words"
    return str(error.message)


def _root_errors(error: ValidationError, form: Form) -> list[tuple[str, str]]:
    """Errors about the answers object itself: what is missing, unknown or out of place."""
    instance = error.instance if isinstance(error.instance, Mapping) else {}
    path = list(error.relative_schema_path)
    if error.validator == "required":
        in_then = "then" in path
        reason = "required when an 'Other' option is chosen" if in_then else "required"
        required = error.validator_value if isinstance(error.validator_value, list) else []
        return [(k, reason) for k in required if k not in instance]
    if error.validator == "additionalProperties":
        known = form.schema["properties"]
        return [(k, "not a question of this form") for k in instance if k not in known]
    if error.validator == "not" and "else" in path:
        # allOf/<i>/else/not: the i-th "Other" rule's text, given without an Other option.
        rule = form.schema["allOf"][path[1]]
        (other,) = rule["then"]["required"]
        return [(other, "only when an 'Other' option is chosen")]
    return [("", str(error.message))]


MAX_REASONS: Final = 3


def check(form: Form, answers: Mapping[str, object]) -> list[tuple[str, str]]:
    """Every invalid answer as (JSON pointer into the request, reason), in the form's order;
    one reason per answer (its type, when that is what is wrong)."""
    found: dict[str, list[tuple[bool, str]]] = {}
    for error in form.validator.iter_errors(answers):
        if error.path:
            key = str(error.path[0])
            pairs = [(key, _reason(error, form, key))]
            is_type = error.validator == "type" and len(error.path) == 1
        else:
            pairs = _root_errors(error, form)
            is_type = False
        for key, reason in pairs:
            found.setdefault(key, []).append((is_type, reason))
    order = {k: i for i, k in enumerate(form.display["order"])}
    out = []
    for key in sorted(found, key=lambda k: (order.get(k, len(order)), k)):
        reasons = found[key]
        typed = [r for t, r in reasons if t]
        # A long list of wrong items says the first few.
        chosen = typed[:1] or list(dict.fromkeys(r for _, r in reasons))[:MAX_REASONS]
        out.append((_pointer(key) if key else "/answers", "; ".join(chosen)))
    return out


# --- what the answers fill -------------------------------------------------------------------


@dataclass(slots=True)
class Intake:
    """Valid answers, sorted: the ticket fields they fill, the custom fields, and the answers
    kept as such (with the rendered HTML of the rich-text ones under HTML_KEY)."""

    ticket: dict[str, str] = field(default_factory=dict)  # title, description, priority
    fields: dict[str, object] = field(default_factory=dict)
    answers: dict[str, object] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)  # question key -> user id


def intake(form: Form, answers: Mapping[str, object]) -> Intake:
    """Where each (checked) answer goes."""
    out = Intake()
    html: dict[str, str] = {}
    for key, value in answers.items():
        q = form.question(key)
        if q is not None and q.type == "user" and isinstance(value, str):
            out.users[key] = value
        target = q.maps_to if q is not None else None
        if target is None:
            out.answers[key] = value
            if q is not None and q.type == "rich_text" and isinstance(value, str):
                html[key] = render_markdown(value)
        elif target.startswith("fields."):
            out.fields[target.removeprefix("fields.")] = value
        else:
            text = str(value)
            out.ticket[target] = text.strip() if target == "title" else text
    if html:
        out.answers[HTML_KEY] = html
    return out


# CommonMark with tables and strikethrough; raw HTML is let through to the sanitiser, which
# keeps ammonia's safe tags and attributes (no script, style, event handlers or javascript:
# URLs) and marks links rel="noopener noreferrer".
_MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])


@lru_cache(maxsize=256)
def render_markdown(text: str) -> str:
    """Markdown as sanitised HTML."""
    return nh3.clean(_MARKDOWN.render(text))


def stored_answers(stored: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A ticket's `answers` column as (the answers as given, the rendered rich-text ones)."""
    if HTML_KEY not in stored:
        return stored, {}
    answers = {k: v for k, v in stored.items() if k != HTML_KEY}
    return answers, stored[HTML_KEY]
