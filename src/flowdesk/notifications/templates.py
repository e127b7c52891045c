"""Notification e-mail templates: the built-in ones, checking a tenant's own, and rendering.

A template is three Jinja sources over an event's placeholders: the subject, the HTML body and
the plain-text body of a multipart/alternative mail. Ticket events have the fifteen `PLACEHOLDERS`;
`webhook.disabled` (built-in only) has `WEBHOOK_PLACEHOLDERS`.

Templates run in Jinja's immutable sandbox, narrowed further: only `{% if %}` and `{% for %}`,
no globals but `range`, no attributes but `loop`'s and some string methods, no `safe` or
`format` filters, HTML autoescaped, and a per-render budget of loop iterations and of characters
made, with sizes checked before values are built. `validate` checks a tenant's template (syntax,
names, sizes, and trial renders of sample mails); `render` raises `TemplateRenderError` for any
failure.
"""

from __future__ import annotations

import functools
import re
import traceback
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, LoopContext, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range
from jinja2.tests import TESTS
from jinja2.utils import pass_environment, pass_eval_context
from jinja2.visitor import NodeTransformer

from flowdesk.errors import InvalidInput
from flowdesk.vocabulary import TICKET_EVENTS, WEBHOOK_DISABLED

__all__ = [
    "MAX_RENDERED",
    "MAX_SUBJECT",
    "PLACEHOLDERS",
    "TICKET_EVENTS",
    "WEBHOOK_DISABLED",
    "WEBHOOK_PLACEHOLDERS",
    "RenderedMail",
    "TemplateRenderError",
    "TemplateSource",
    "builtin",
    "render",
    "sample_context",
    "validate",
]

PLACEHOLDERS: Final[tuple[str, ...]] = (
    "ticket_number",
    "ticket_title",
    "ticket_status",
    "assignee_name",
    "reporter_name",
    "comment_body",
    "ticket_url",
    "tenant_name",
    "recipient_name",
    "actor_name",
    "sla_name",
    "sla_due_at",
    "sla_action",
    "approval_name",
    "approver_name",
)
"""The variables of a ticket event's template (`ticket_url` may be empty: no portal URL). The
last five belong to some events and are empty in the others: `sla_name` (the SLA policy's
label), `sla_due_at` (its due time, UTC), `sla_action` (what its breach does, e.g. "cancel"),
`approval_name` (the approval's label; several joined by "and") and `approver_name` (who gave
or held the approval)."""

WEBHOOK_PLACEHOLDERS: Final[tuple[str, ...]] = (
    "webhook_url",
    "webhook_description",
    "disabled_reason",
    "tenant_name",
    "recipient_name",
)

MAX_SUBJECT_SOURCE: Final = 500
MAX_BODY_SOURCE: Final = 100_000
MAX_RENDERED: Final = 1_000_000
"""Characters an HTML or text body may render to; also the largest value a template may build."""
MAX_SUBJECT: Final = 250
"""Characters of a rendered subject; a longer one is cut and ends with an ellipsis."""
MAX_LOOP_WORK: Final = 500_000
"""Loop iterations one render of one part may make, each weighed by the size (in syntax nodes)
of the loop's body: what bounds the time a render takes."""
MAX_WORK: Final = 2_000_000
"""Characters (or items) the filters, operators and method calls of one render may produce,
each operation counting OPERATION_COST more."""
OPERATION_COST: Final = 16
MAX_INT_BITS: Final = 10_000
MAX_NESTING: Final = 100
"""Levels of syntax a template may nest (its tree is walked recursively, by Jinja too)."""
MAX_NODES: Final = 10_000
"""Syntax nodes a template may have (compiling takes time in proportion)."""


@dataclass(frozen=True, slots=True)
class TemplateSource:
    subject: str
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    html: str
    text: str


class TemplateRenderError(Exception):
    """A template that failed to compile or render: `part` (subject, html or text) and why."""

    def __init__(self, part: str, reason: str) -> None:
        super().__init__(f"{part}: {reason}")
        self.part = part
        self.reason = reason


# --- The sandbox -------------------------------------------------------------------------------

T = TypeVar("T")


class _Budget:
    __slots__ = ("loop_work", "work")

    def __init__(self) -> None:
        self.loop_work = MAX_LOOP_WORK
        self.work = MAX_WORK


# Set by _render_part around each render; loops, filters and operators draw on it.
_budget: ContextVar[_Budget] = ContextVar("flowdesk_template_budget")


def _size(value: object) -> int:
    if isinstance(value, str | list | tuple | dict | set | frozenset):
        return len(value)
    return 0


def _expect(size: int) -> None:
    """Refuse, before making it, a value of `size` characters or items."""
    if size > MAX_RENDERED:
        raise SecurityError(
            f"the template would build a value of {size} characters or items "
            f"(at most {MAX_RENDERED})"
        )


def _produced(value: T, times: int = 1) -> T:
    """Count a value made (or read) by a filter, operator or call against the render's budget,
    `times` over for slow operations."""
    size = _size(value)
    _expect(size)
    budget = _budget.get()
    budget.work -= size * times + OPERATION_COST
    if budget.work < 0:
        raise SecurityError(
            f"the template does too much work (its operations make over {MAX_WORK} characters)"
        )
    return value


def _loop(work: int) -> None:
    budget = _budget.get()
    budget.loop_work -= work
    if budget.loop_work < 0:
        raise SecurityError(
            f"the template loops too much (iterations times loop size over {MAX_LOOP_WORK})"
        )


def _counted(items: Iterable[T], weight: int) -> Iterator[T]:
    for item in items:
        _loop(weight)
        yield item


def _loop_items(value: Any, weight: int) -> Any:
    """Every `{% for %}` iterates through this (see _Guard), charging each iteration the
    `weight` of the loop's body."""
    try:
        count = len(value)
    except TypeError:
        return _counted(value, weight)
    _loop(count * weight)
    return value


@pass_eval_context
def _concat(eval_ctx: EvalContext, items: list[Any]) -> str:
    """The `~` operator (see _Guard), with the size of its result checked before it is made."""
    escaping = 6 if eval_ctx.autoescape else 1  # escaping makes a character at most 6
    _expect(
        sum(len(item) if isinstance(item, str) else len(str(item)) for item in items) * escaping
    )
    return _produced(markup_join(items) if eval_ctx.autoescape else str_join(items))


def _filter(name: str) -> Callable[..., Any]:
    return FILTERS[name]  # type: ignore[no-any-return]


def _text_len(value: Any) -> int:
    return len(value) if isinstance(value, str) else len(str(value))


# Filters whose result can be many times their input: their result's size is checked before
# it is made. The others make at most a few times their input, checked after.


def _center(value: Any, width: int = 80) -> str:
    _expect(max(_text_len(value), width))
    return _filter("center")(value, width)  # type: ignore[no-any-return]


def _indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    per_line = len(width) if isinstance(width, str) else max(width, 0)
    text = str(s)
    _expect(len(text) + (text.count("\n") + 1) * per_line)
    return _filter("indent")(s, width, first, blank)  # type: ignore[no-any-return]


@pass_environment
def _wordwrap(
    environment: Any,
    s: Any,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    breaks = len(wrapstring) if wrapstring is not None else len(environment.newline_sequence)
    _expect(_text_len(s) * (1 + breaks))
    return _filter("wordwrap")(  # type: ignore[no-any-return]
        environment, s, width, break_long_words, wrapstring, break_on_hyphens
    )


@pass_eval_context
def _replace(eval_ctx: EvalContext, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    text, old_text, new_text = str(s), str(old), str(new)
    hits = text.count(old_text) if old_text else len(text) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    escaping = 6 if eval_ctx.autoescape else 1
    _expect((len(text) + hits * max(0, len(new_text) - len(old_text))) * escaping)
    return _filter("replace")(eval_ctx, s, old, new, count)  # type: ignore[no-any-return]


@pass_eval_context
def _join(eval_ctx: EvalContext, value: Any, d: Any = "", attribute: Any = None) -> str:
    items = list(value)
    escaping = 6 if eval_ctx.autoescape else 1
    joined = max(len(items) - 1, 0) * _text_len(d)
    if attribute is None:
        joined += sum(_text_len(item) for item in items)
    _expect(joined * escaping)
    return _filter("join")(eval_ctx, items, d, attribute)  # type: ignore[no-any-return]


@pass_eval_context
def _urlize(
    eval_ctx: EvalContext,
    value: Any,
    trim_url_limit: int | None = None,
    nofollow: bool = False,
    target: str | None = None,
    rel: str | None = None,
    extra_schemes: Iterable[str] | None = None,
) -> str:
    text = _text_len(value)
    per_link = len(str(target or "")) + len(str(rel or ""))
    _expect(12 * text + (text // 4 + 1) * per_link)
    return _filter("urlize")(  # type: ignore[no-any-return]
        eval_ctx, value, trim_url_limit, nofollow, target, rel, extra_schemes
    )


def _batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    if fill_with is not None:
        _loop(max(linecount, 0))
    return _filter("batch")(value, linecount, fill_with)


def _slice(value: Any, slices: int, fill_with: Any = None) -> Any:
    _loop(max(slices, 0))
    return _filter("slice")(value, slices, fill_with)


def _charged(function: Callable[..., Any], slowness: int = 1) -> Callable[..., Any]:
    """The filter or test, charging the budget for the value it reads (`slowness` times: its
    time) and the one it makes."""
    # The value filtered follows the context, environment or eval context Jinja passes first.
    position = 1 if hasattr(function, "jinja_pass_arg") else 0

    # functools.wraps copies the jinja_pass_arg marker, so Jinja passes the same first argument.
    @functools.wraps(function)
    def charged(*args: Any, **kwargs: Any) -> Any:
        if len(args) > position:
            _produced(args[position], slowness)
        return _produced(function(*args, **kwargs))

    return charged


def _read(value: T) -> T:
    """Every operand of a comparison passes through this (see _Guard): `in` reads it all."""
    return _produced(value)


_LOOP_ITEMS = "_flowdesk_loop_items"
_CONCAT = "_flowdesk_concat"
_READ = "_flowdesk_read"

# `format` is printf (its widths make strings of any size); `safe` would let a comment's HTML
# through, and every value in a notification is someone's text.
_REMOVED_FILTERS = frozenset({"format", "safe"})
_BOUNDED_FILTERS: dict[str, Callable[..., Any]] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "replace": _replace,
    "join": _join,
    "urlize": _urlize,
    "batch": _batch,
    "slice": _slice,
}


# Filters that take much longer per character than the others (measured: per line or word).
_SLOW_FILTERS = {"wordwrap": 10, "urlize": 8}


def _filters() -> dict[str, Callable[..., Any]]:
    table = {
        name: _charged(_BOUNDED_FILTERS.get(name, function), _SLOW_FILTERS.get(name, 1))
        for name, function in FILTERS.items()
        if name not in _REMOVED_FILTERS
    }
    table[_LOOP_ITEMS] = _loop_items
    table[_CONCAT] = _concat
    table[_READ] = _read
    return table


# The string methods a template may call: none makes a string longer than the one it is
# called on (str.format, center, ljust, zfill, expandtabs, replace and join all can).
_STRING_METHODS = frozenset(
    {
        "capitalize",
        "casefold",
        "count",
        "endswith",
        "find",
        "isalnum",
        "isalpha",
        "isdigit",
        "islower",
        "isspace",
        "istitle",
        "isupper",
        "lower",
        "lstrip",
        "partition",
        "removeprefix",
        "removesuffix",
        "rfind",
        "rpartition",
        "rsplit",
        "rstrip",
        "split",
        "splitlines",
        "startswith",
        "strip",
        "swapcase",
        "title",
        "upper",
    }
)


class _Range:
    """The templates' `range`: the sandbox's, capped at 100,000 items, without a function's
    repr (which would print an address) when printed."""

    def __call__(self, *args: int) -> range:
        return safe_range(*args)

    def __repr__(self) -> str:
        return "range"


class _Sandbox(ImmutableSandboxedEnvironment):
    # Intercepted operators are also never folded at compile time, where `9**9**9` would hang.
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if isinstance(obj, LoopContext):
            return True
        return isinstance(obj, str) and attr in _STRING_METHODS

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # str.format is not one of _STRING_METHODS: refused by is_safe_attribute instead.
        return None

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and left.bit_length() * right > MAX_INT_BITS
            ):
                raise SecurityError("the power is too large")
        elif operator == "*":
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    raise SecurityError("the product is too large")
            elif isinstance(right, int) and isinstance(left, str | list | tuple):
                _expect(len(left) * right)
            elif isinstance(left, int) and isinstance(right, str | list | tuple):
                _expect(len(right) * left)
        elif operator == "%" and isinstance(left, str):
            raise SecurityError("printf-style formatting (%) is not allowed")
        return _produced(super().call_binop(context, operator, left, right))

    def getitem(self, obj: Any, argument: Any) -> Any:
        return _produced(super().getitem(obj, argument))  # a slice copies

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        # A string method reads its string and arguments: charged like what it makes.
        _produced(getattr(obj, "__self__", None))
        for argument in (*args, *kwargs.values()):
            _produced(argument)
        return _produced(super().call(context, obj, *args, **kwargs))


def _environment(autoescape: bool) -> _Sandbox:
    env = _Sandbox(
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # No constant folding: compiling would run filters and operators outside the budget.
        optimized=False,
        cache_size=0,
    )
    env.globals = {"range": _Range()}
    env.filters = _filters()
    env.tests = {name: _charged(cast(Callable[..., Any], test)) for name, test in TESTS.items()}
    return env


_HTML_ENV: Final = _environment(autoescape=True)
_PLAIN_ENV: Final = _environment(autoescape=False)

# The statements a template may use; the tags of the others, for the refusal.
_ALLOWED_STATEMENTS = (nodes.Output, nodes.If, nodes.For)
_TAGS: dict[type[nodes.Node], str] = {
    nodes.Macro: "macro",
    nodes.CallBlock: "call",
    nodes.FilterBlock: "filter",
    nodes.With: "with",
    nodes.Block: "block",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from",
    nodes.Extends: "extends",
    nodes.Assign: "set",
    nodes.AssignBlock: "set",
    nodes.ExprStmt: "do",
    nodes.ScopedEvalContextModifier: "autoescape",
    nodes.EvalContextModifier: "autoescape",
}


class _Unusable(Exception):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def _at(line: int | None, reason: str) -> str:
    return f"line {line}: {reason}" if line else reason


def _unknown(name: str, line: int | None) -> str:
    return _at(line, f"unknown placeholder {name!r} (known: {', '.join(PLACEHOLDERS)})")


def _shape_problem(tree: nodes.Node) -> str | None:
    """Whether the tree is too deep or too large, found without recursion."""
    stack, count = [(tree, 0)], 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            return f"is too complex (over {MAX_NODES} expressions and blocks)"
        if depth > MAX_NESTING:
            return _at(node.lineno, f"is nested too deeply (over {MAX_NESTING} levels)")
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return None


def _parse(source: str, html: bool) -> nodes.Template:
    """The template's tree, or _Unusable for a syntax error, a statement besides if and for,
    or `self`."""
    env = _HTML_ENV if html else _PLAIN_ENV
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as error:
        raise _Unusable([_at(error.lineno, error.message or str(error))]) from None
    except RecursionError:
        raise _Unusable(["is nested too deeply to compile"]) from None
    except Exception as error:  # e.g. ValueError for an integer literal of 5,000 digits
        raise _Unusable([f"cannot be compiled: {error}"]) from None
    shape_problem = _shape_problem(tree)
    if shape_problem:
        raise _Unusable([shape_problem])
    reasons = []
    for statement in tree.find_all(nodes.Stmt):
        if isinstance(statement, nodes.Scope):  # wraps an autoescape block, refused below
            continue
        if isinstance(statement, nodes.For) and statement.recursive:
            reasons.append(_at(statement.lineno, "recursive loops are not allowed"))
        elif not isinstance(statement, _ALLOWED_STATEMENTS):
            tag = _TAGS.get(type(statement), type(statement).__name__.lower())
            reasons.append(_at(statement.lineno, f"{{% {tag} %}} is not allowed (only if and for)"))
    # Jinja binds `self` to the template itself, even when rendering.
    reasons.extend(
        _unknown("self", name.lineno)
        for name in tree.find_all(nodes.Name)
        if name.name == "self" and name.ctx == "load"
    )
    if reasons:
        raise _Unusable(reasons)
    return tree


class _Guard(NodeTransformer):
    """Sends every loop's iterable, every `~` and every comparison's operands through the
    budget-keeping filters."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        # Weighed before the body is rewritten: what the template says, not how it is guarded.
        body = [*node.body, *([node.test] if node.test else [])]
        weight = sum(1 + sum(1 for _ in part.find_all(nodes.Node)) for part in body)
        self.generic_visit(node)
        node.iter = nodes.Filter(
            node.iter,
            _LOOP_ITEMS,
            [nodes.Const(max(weight, 1), lineno=node.lineno)],
            [],
            None,
            None,
            lineno=node.lineno,
        )
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        items = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(items, _CONCAT, [], [], None, None, lineno=node.lineno)

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        node.expr = self._read(node.expr)
        for operand in node.ops:
            operand.expr = self._read(operand.expr)
        return node

    @staticmethod
    def _read(node: nodes.Expr) -> nodes.Expr:
        return nodes.Filter(node, _READ, [], [], None, None, lineno=node.lineno)


@functools.lru_cache(maxsize=512)
def _compile(source: str, html: bool) -> Template:
    env = _HTML_ENV if html else _PLAIN_ENV
    tree = _Guard().visit(_parse(source, html))
    tree.set_environment(env)
    try:
        return env.from_string(tree)
    except TemplateSyntaxError as error:  # an unknown filter or test
        raise _Unusable([_at(error.lineno, error.message or str(error))]) from None
    except RecursionError:
        raise _Unusable(["is nested too deeply to compile"]) from None
    except Exception as error:
        raise _Unusable([f"cannot be compiled: {error}"]) from None


class _TooLarge(Exception):
    pass


def _template_line(error: BaseException) -> int | None:
    """The template line an error was raised on (Jinja rewrites tracebacks to name it)."""
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.filename == "<template>"
    ]
    return lines[-1] if lines else None


def _render_part(
    template: Template, context: Mapping[str, str], budget: _Budget | None = None
) -> str:
    token = _budget.set(budget or _Budget())
    chunks = template.generate(dict(context))
    try:
        parts, size = [], 0
        for chunk in chunks:
            size += len(chunk)
            if size > MAX_RENDERED:
                raise _TooLarge
            parts.append(chunk)
        return "".join(parts)
    finally:
        if isinstance(chunks, Generator):
            chunks.close()
        _budget.reset(token)


def _failure(error: Exception) -> str:
    if isinstance(error, _Unusable):
        return "; ".join(error.reasons)
    if isinstance(error, _TooLarge):
        return f"renders to more than {MAX_RENDERED} characters"
    if isinstance(error, RecursionError):
        return "is nested too deeply"
    return _at(_template_line(error), str(error) or type(error).__name__)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _one_line(subject: str) -> str:
    """A header-safe subject: control characters and runs of whitespace (line breaks
    included) become one space, and it is cut at MAX_SUBJECT characters."""
    flat = " ".join(_CONTROL.sub(" ", subject).split())
    if len(flat) <= MAX_SUBJECT:
        return flat
    return flat[: MAX_SUBJECT - 1].rstrip() + "…"


def _render(source: str, part: str, context: Mapping[str, str]) -> str:
    try:
        return _render_part(_compile(source, part == "html"), context)
    except Exception as error:
        raise TemplateRenderError(part, _failure(error)) from error


def render(source: TemplateSource, context: Mapping[str, str]) -> RenderedMail:
    """The mail of `source` for `context` (every placeholder must be given; TemplateRenderError
    if a part fails to compile, refers to an unknown name, exceeds its budget or the size cap)."""
    return RenderedMail(
        subject=_one_line(_render(source.subject, "subject", context)),
        html=_render(source.html, "html", context),
        text=_render(source.text, "text", context),
    )


# --- Validation --------------------------------------------------------------------------------


def _unknown_names(tree: nodes.Template) -> list[str]:
    try:
        names = meta.find_undeclared_variables(tree)
    except TemplateSyntaxError as error:  # an unknown filter or test
        return [_at(error.lineno, error.message or str(error))]
    first_line: dict[str, int] = {}
    for name in tree.find_all(nodes.Name):
        if name.ctx == "load":
            first_line[name.name] = min(first_line.get(name.name, name.lineno), name.lineno)
    return [
        _unknown(name, first_line.get(name))
        for name in sorted(names - set(PLACEHOLDERS), key=lambda n: (first_line.get(n, 0), n))
    ]


def _trial_contexts() -> list[tuple[str, dict[str, str]]]:
    trials = []
    for event in TICKET_EVENTS:
        context = sample_context(event)
        trials.append((f"a sample {event} mail", context))
        trials.append(
            (f"a sample {event} mail without a ticket URL", {**context, "ticket_url": ""})
        )
    return trials


def _trial_problem(source: str, part: str) -> str | None:
    """Why rendering `source` fails for one of the sample contexts, if it does."""
    template = _compile(source, part == "html")
    # One budget for all the trials: with the samples' short values, a template that needs
    # more than that would need far more for real ones (and saving it takes bounded time).
    budget = _Budget()
    for description, context in _trial_contexts():
        try:
            out = _render_part(template, context, budget)
        except Exception as error:
            return f"{_failure(error)} (rendering {description})"
        if part == "subject" and not _one_line(out):
            return f"renders to an empty subject (rendering {description})"
    return None


def validate(source: TemplateSource) -> None:
    """Refuse (InvalidInput, one error per problem, pointing at /subject, /html or /text) a
    ticket event's template that is too long, does not compile, uses a statement besides if
    and for, names anything but PLACEHOLDERS, or fails to render the sample mails."""
    errors: list[tuple[str, str]] = []
    for part, text, limit in (
        ("subject", source.subject, MAX_SUBJECT_SOURCE),
        ("html", source.html, MAX_BODY_SOURCE),
        ("text", source.text, MAX_BODY_SOURCE),
    ):
        pointer = "/" + part
        if part == "subject" and not text.strip():
            errors.append((pointer, "must not be empty"))
            continue
        if len(text) > limit:
            errors.append((pointer, f"is {len(text)} characters long (at most {limit})"))
            continue
        try:
            problems = _unknown_names(_parse(text, part == "html"))
            if not problems:
                problem = _trial_problem(text, part)
                problems = [problem] if problem else []
        except _Unusable as unusable:
            problems = unusable.reasons
        errors.extend((pointer, problem) for problem in problems)
    if errors:
        raise InvalidInput("The notification template cannot be used.", errors)


# --- Sample values -----------------------------------------------------------------------------

_TICKET_SAMPLE: Final = {
    "ticket_number": "TKT-000042",
    "ticket_title": "VPN disconnects every few minutes on the office Wi-Fi",
    "ticket_status": "Open",
    "assignee_name": "Priya Raman",
    "reporter_name": "Tom Becker",
    "comment_body": "",
    "ticket_url": "https://desk.example.com/tickets/TKT-000042",
    "tenant_name": "Acme Corp",
    "recipient_name": "Tom Becker",
    "actor_name": "Priya Raman",
    "sla_name": "",
    "sla_due_at": "",
    "sla_action": "",
    "approval_name": "",
    "approver_name": "",
}

_SLA_SAMPLE: Final = {
    **_TICKET_SAMPLE,
    "actor_name": "",
    "sla_name": "Reviewed within 48 hours",
    "sla_due_at": "2026-12-04 09:30 UTC",
    "ticket_status": "Submitted",
    "assignee_name": "",
    "recipient_name": "Lee On-call",
}

_APPROVAL_SAMPLE: Final = {
    **_TICKET_SAMPLE,
    "ticket_status": "Authorize",
    "approval_name": "Platform approval (INFRA approvers)",
    "approver_name": "Sam Ortiz",
    "actor_name": "Sam Ortiz",
}

_SAMPLES: Final[dict[str, dict[str, str]]] = {
    "ticket.created": {
        **_TICKET_SAMPLE,
        "ticket_status": "New",
        "assignee_name": "",
        "actor_name": "Tom Becker",
    },
    "ticket.assigned": {
        **_TICKET_SAMPLE,
        "recipient_name": "Priya Raman",
        "actor_name": "Sam Ortiz",
    },
    "ticket.comment_added": {
        **_TICKET_SAMPLE,
        "ticket_status": "In progress",
        "comment_body": (
            "Hi Tom,\n\n"
            "could you install the VPN client update (version 5.2) and reconnect?\n"
            "If it still drops, please send us the log from Help > Diagnostics."
        ),
    },
    "ticket.status_changed": {**_TICKET_SAMPLE, "ticket_status": "Waiting for customer"},
    "ticket.resolved": {**_TICKET_SAMPLE, "ticket_status": "Resolved"},
    "ticket.closed": {**_TICKET_SAMPLE, "ticket_status": "Closed"},
    "ticket.sla_reminder": {
        **_SLA_SAMPLE,
        "sla_name": "Submitter replies within 72 hours",
        "sla_due_at": "2026-12-05 09:30 UTC",
        "sla_action": "cancel",
        "ticket_status": "Waiting on Customer",
        "recipient_name": "Tom Becker",
    },
    "ticket.sla_warning": {**_SLA_SAMPLE, "recipient_name": "Priya Raman"},
    "ticket.sla_breached": dict(_SLA_SAMPLE),
    "ticket.approval_added": dict(_APPROVAL_SAMPLE),
    "ticket.approval_revoked": {**_APPROVAL_SAMPLE, "actor_name": "Alex Kim"},
    "ticket.approval_requested": {
        **_APPROVAL_SAMPLE,
        "approver_name": "",
        "actor_name": "Priya Raman",
        "recipient_name": "Sam Ortiz",
    },
    WEBHOOK_DISABLED: {
        "webhook_url": "https://hooks.example.com/flowdesk/tickets",
        "webhook_description": "Ticket sync to the CRM",
        "disabled_reason": "every delivery failed for 3 days (last error: HTTP 503)",
        "tenant_name": "Acme Corp",
        "recipient_name": "Alex Kim",
    },
}


def sample_context(event: str) -> dict[str, str]:
    """Realistic values of the event's placeholders, for previews (KeyError if unknown)."""
    return dict(_SAMPLES[event])


# --- Built-in templates ------------------------------------------------------------------------

_FONT = "font-family:-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;"
_MONO = "font-family:SFMono-Regular,Menlo,Consolas,'Liberation Mono',monospace;"
_BUTTON_COLOR = "#1d4ed8"

_LAYOUT = (
    "<!DOCTYPE html>\n"
    '<html lang="en">\n'
    "<head>\n"
    '<meta charset="utf-8">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    '<meta name="color-scheme" content="light">\n'
    "<title>[[title]]</title>\n"
    "</head>\n"
    '<body style="margin:0;padding:0;background-color:#f3f4f6;">\n'
    '<div style="display:none;max-height:0;overflow:hidden;mso-hide:all;">[[preheader]]</div>\n'
    '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"'
    ' style="background-color:#f3f4f6;">\n'
    '<tr><td align="center" style="padding:24px 12px;">\n'
    '<table role="presentation" width="600" cellpadding="0" cellspacing="0" border="0"'
    ' style="width:100%;max-width:600px;background-color:#ffffff;border:1px solid #e5e7eb;'
    f'border-radius:8px;border-top:4px solid [[accent]];{_FONT}color:#111827;">\n'
    '<tr><td style="padding:20px 32px 0 32px;font-size:13px;color:#6b7280;">'
    "{{ tenant_name }} service desk</td></tr>\n"
    '<tr><td style="padding:20px 32px 4px 32px;">\n'
    '<div style="font-size:12px;font-weight:700;letter-spacing:0.06em;text-transform:uppercase;'
    'color:[[accent]];">[[eyebrow]]</div>\n'
    f'<div style="margin-top:6px;font-size:28px;line-height:34px;font-weight:700;{_MONO}'
    'color:#111827;">[[headline]]</div>\n'
    '<div style="margin-top:6px;font-size:18px;line-height:26px;font-weight:600;color:#1f2937;">'
    "[[subheadline]]</div>\n"
    "</td></tr>\n"
    '<tr><td style="padding:16px 32px 8px 32px;font-size:15px;line-height:24px;color:#374151;">\n'
    '<p style="margin:0 0 12px 0;">Hello{% if recipient_name %} {{ recipient_name }}{% endif %},'
    "</p>\n"
    "[[message]]"
    "</td></tr>\n"
    "[[details]]"
    "[[button]]"
    '<tr><td style="padding:16px 32px 24px 32px;border-top:1px solid #e5e7eb;font-size:12px;'
    'line-height:18px;color:#6b7280;">[[footer]]</td></tr>\n'
    "</table>\n"
    "</td></tr>\n"
    "</table>\n"
    "</body>\n"
    "</html>\n"
)


def _html(**parts: str) -> str:
    html = _LAYOUT
    for name, value in parts.items():
        html = html.replace(f"[[{name}]]", value)
    return html


def _paragraph(content: str) -> str:
    return f'<p style="margin:0 0 12px 0;">{content}</p>\n'


def _details(rows: list[tuple[str, str]]) -> str:
    cells = "".join(
        "<tr>"
        '<td style="padding:6px 16px 6px 0;font-size:13px;color:#6b7280;white-space:nowrap;'
        f'vertical-align:top;width:110px;">{label}</td>'
        f'<td style="padding:6px 0;font-size:14px;color:#111827;vertical-align:top;">{value}</td>'
        "</tr>\n"
        for label, value in rows
    )
    return (
        '<tr><td style="padding:8px 32px 16px 32px;">\n'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"'
        ' style="border-top:1px solid #e5e7eb;border-bottom:1px solid #e5e7eb;">\n'
        f"{cells}"
        "</table>\n"
        "</td></tr>\n"
    )


def _button(label: str, url: str = "ticket_url") -> str:
    return (
        f"{{% if {url} %}}\n"
        '<tr><td style="padding:8px 32px 28px 32px;">\n'
        '<table role="presentation" cellpadding="0" cellspacing="0" border="0"><tr>\n'
        f'<td bgcolor="{_BUTTON_COLOR}"'
        f' style="border-radius:6px;background-color:{_BUTTON_COLOR};">'
        f'<a href="{{{{ {url} }}}}" target="_blank" style="display:inline-block;padding:12px 24px;'
        f"{_FONT}font-size:15px;font-weight:600;line-height:20px;color:#ffffff;"
        f'text-decoration:none;border-radius:6px;">{label}</a></td>\n'
        "</tr></table>\n"
        "</td></tr>\n"
        "{% endif %}\n"
    )


_QUOTE_HTML = (
    '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"'
    ' style="margin:4px 0 12px 0;"><tr>\n'
    '<td style="border-left:4px solid #d1d5db;background-color:#f9fafb;padding:12px 16px;'
    'font-size:15px;line-height:24px;color:#374151;">'
    "{% for line in comment_body.splitlines() %}{{ line }}{% if not loop.last %}<br>{% endif %}"
    "{% endfor %}</td>\n"
    "</tr></table>\n"
)

_TICKET_ROWS = [
    ("Ticket", f'<span style="{_MONO}">{{{{ ticket_number }}}}</span>'),
    ("Status", "{{ ticket_status }}"),
    ("Reporter", "{{ reporter_name }}"),
    ("Assignee", "{{ assignee_name or 'Unassigned' }}"),
]

_TICKET_FOOTER = (
    "You receive this e-mail because you take part in ticket {{ ticket_number }} "
    "at the {{ tenant_name }} service desk."
)

_QUOTE_TEXT = (
    "{% for line in comment_body.splitlines() %}{{ '> ' ~ line if line else '>' }}\n{% endfor %}"
)


def _text(message: str, *, link_label: str = "View the ticket") -> str:
    return "\n".join(
        [
            "{{ ticket_number }}: {{ ticket_title }}",
            "",
            "Hello{% if recipient_name %} {{ recipient_name }}{% endif %},",
            "",
            message,
            "",
            "  Ticket:    {{ ticket_number }}",
            "  Status:    {{ ticket_status }}",
            "  Reporter:  {{ reporter_name }}",
            "  Assignee:  {{ assignee_name or 'Unassigned' }}",
            "",
            "{% if ticket_url %}",
            f"{link_label}: {{{{ ticket_url }}}}",
            "",
            "{% endif %}",
            "-- ",
            "{{ tenant_name }} service desk",
            "",
        ]
    )


def _ticket(
    *,
    subject: str,
    eyebrow: str,
    accent: str,
    preheader: str,
    message_html: str,
    message_text: str,
    button: str = "View ticket",
    link_label: str = "View the ticket",
) -> TemplateSource:
    return TemplateSource(
        subject=subject,
        html=_html(
            title="{{ ticket_number }}: {{ ticket_title }}",
            preheader=preheader,
            accent=accent,
            eyebrow=eyebrow,
            headline="{{ ticket_number }}",
            subheadline="{{ ticket_title }}",
            message=message_html,
            details=_details(_TICKET_ROWS),
            button=_button(button),
            footer=_TICKET_FOOTER,
        ),
        text=_text(message_text, link_label=link_label),
    )


_BUILTINS: Final[dict[str, TemplateSource]] = {
    "ticket.created": _ticket(
        subject="[{{ ticket_number }}] Ticket received: {{ ticket_title }}",
        eyebrow="Ticket received",
        accent="#2563eb",
        preheader="{{ reporter_name }} opened ticket {{ ticket_number }}.",
        message_html=_paragraph(
            "Ticket <strong>{{ ticket_number }}</strong> was opened by {{ reporter_name }} "
            "and has been received by the service desk. Updates will be sent to you by e-mail."
        ),
        message_text=(
            "Ticket {{ ticket_number }} was opened by {{ reporter_name }} and has been received\n"
            "by the service desk. Updates will be sent to you by e-mail."
        ),
    ),
    "ticket.assigned": _ticket(
        subject="[{{ ticket_number }}] Assigned to {{ assignee_name }}: {{ ticket_title }}",
        eyebrow="Ticket assigned",
        accent="#7c3aed",
        preheader="Ticket {{ ticket_number }} is now assigned to {{ assignee_name }}.",
        message_html=_paragraph(
            "{% if actor_name %}{{ actor_name }} assigned{% else %}The service desk assigned"
            "{% endif %} this ticket to <strong>{{ assignee_name }}</strong>."
        ),
        message_text=(
            "{% if actor_name %}{{ actor_name }} assigned{% else %}The service desk assigned"
            "{% endif %} this ticket to {{ assignee_name }}."
        ),
    ),
    "ticket.comment_added": _ticket(
        subject="[{{ ticket_number }}] New comment: {{ ticket_title }}",
        eyebrow="New comment",
        accent="#0d9488",
        preheader="{{ actor_name }} commented on ticket {{ ticket_number }}.",
        message_html=_paragraph(
            "{% if actor_name %}{{ actor_name }}{% else %}Someone{% endif %} added a comment:"
        )
        + _QUOTE_HTML,
        message_text=(
            "{% if actor_name %}{{ actor_name }}{% else %}Someone{% endif %} added a comment:\n\n"
            + _QUOTE_TEXT
        ),
        button="Reply on the ticket",
    ),
    "ticket.status_changed": _ticket(
        subject="[{{ ticket_number }}] Status changed to {{ ticket_status }}: {{ ticket_title }}",
        eyebrow="Status changed",
        accent="#d97706",
        preheader="Ticket {{ ticket_number }} is now {{ ticket_status }}.",
        message_html=_paragraph(
            "{% if actor_name %}{{ actor_name }} changed{% else %}The service desk changed"
            "{% endif %} the status of this ticket to <strong>{{ ticket_status }}</strong>."
        ),
        message_text=(
            "{% if actor_name %}{{ actor_name }} changed{% else %}The service desk changed"
            "{% endif %} the status of this ticket to {{ ticket_status }}."
        ),
    ),
    "ticket.resolved": _ticket(
        subject="[{{ ticket_number }}] Resolved: {{ ticket_title }} (please confirm)",
        eyebrow="Ticket resolved",
        accent="#16a34a",
        preheader="Please confirm that ticket {{ ticket_number }} is resolved.",
        message_html=_paragraph(
            "{% if actor_name %}{{ actor_name }} marked{% else %}The service desk marked"
            "{% endif %} this ticket as <strong>resolved</strong>."
        )
        + _paragraph(
            "Please check that the problem is solved and confirm the resolution. "
            "If the problem persists, reply to this e-mail and we will look into it again."
        ),
        message_text=(
            "{% if actor_name %}{{ actor_name }} marked{% else %}The service desk marked"
            "{% endif %} this ticket as resolved.\n\n"
            "Please check that the problem is solved and confirm the resolution.\n"
            "If the problem persists, reply to this e-mail and we will look into it again."
        ),
        button="Confirm the resolution",
        link_label="Confirm the resolution",
    ),
    "ticket.closed": _ticket(
        subject="[{{ ticket_number }}] Closed: {{ ticket_title }}",
        eyebrow="Ticket closed",
        accent="#4b5563",
        preheader="Ticket {{ ticket_number }} is closed.",
        message_html=_paragraph(
            "{% if actor_name %}{{ actor_name }} closed{% else %}The service desk closed"
            "{% endif %} this ticket. No further action is needed."
        )
        + _paragraph("If you need more help, please open a new ticket."),
        message_text=(
            "{% if actor_name %}{{ actor_name }} closed{% else %}The service desk closed"
            "{% endif %} this ticket. No further action is needed.\n"
            "If you need more help, please open a new ticket."
        ),
    ),
    "ticket.sla_reminder": _ticket(
        subject="[{{ ticket_number }}] We are waiting for your reply: {{ ticket_title }}",
        eyebrow="Waiting for your reply",
        accent="#d97706",
        preheader="Ticket {{ ticket_number }} is waiting for your reply.",
        message_html=_paragraph(
            "We asked for more information on this ticket and are still waiting for your "
            "reply. Please answer on the ticket, or reply to this e-mail."
        )
        + _paragraph(
            "{% if sla_action and sla_due_at %}If we do not hear from you by "
            "<strong>{{ sla_due_at }}</strong>, we will {{ sla_action }} the request."
            "{% elif sla_due_at %}Please reply by <strong>{{ sla_due_at }}</strong>."
            "{% endif %}"
        ),
        message_text=(
            "We asked for more information on this ticket and are still waiting for your\n"
            "reply. Please answer on the ticket, or reply to this e-mail.\n"
            "{% if sla_action and sla_due_at %}\n\n"
            "If we do not hear from you by {{ sla_due_at }}, "
            "we will {{ sla_action }} the request.\n"
            "{% elif sla_due_at %}\n\n"
            "Please reply by {{ sla_due_at }}.\n"
            "{% endif %}"
        ),
        button="Reply on the ticket",
    ),
    "ticket.sla_warning": _ticket(
        subject="[{{ ticket_number }}] At risk: {{ sla_name }}: {{ ticket_title }}",
        eyebrow="SLA at risk",
        accent="#ea580c",
        preheader="The target {{ sla_name }} of ticket {{ ticket_number }} is at risk.",
        message_html=_paragraph(
            "The target <strong>{{ sla_name }}</strong> of this ticket is at risk"
            "{% if sla_due_at %}: it is due <strong>{{ sla_due_at }}</strong>{% endif %}. "
            "Please act on the ticket before then."
        ),
        message_text=(
            'The target "{{ sla_name }}" of this ticket is at risk'
            "{% if sla_due_at %}: it is due {{ sla_due_at }}{% endif %}.\n"
            "Please act on the ticket before then."
        ),
    ),
    "ticket.sla_breached": _ticket(
        subject="[{{ ticket_number }}] SLA breached: {{ sla_name }}: {{ ticket_title }}",
        eyebrow="SLA breached",
        accent="#dc2626",
        preheader="The target {{ sla_name }} of ticket {{ ticket_number }} was missed.",
        message_html=_paragraph(
            "The target <strong>{{ sla_name }}</strong> of this ticket was missed"
            "{% if sla_due_at %}: it was due <strong>{{ sla_due_at }}</strong>{% endif %}. "
            "The ticket is escalated to you: please take it in hand."
        ),
        message_text=(
            'The target "{{ sla_name }}" of this ticket was missed'
            "{% if sla_due_at %}: it was due {{ sla_due_at }}{% endif %}.\n"
            "The ticket is escalated to you: please take it in hand."
        ),
    ),
    "ticket.approval_added": _ticket(
        subject="[{{ ticket_number }}] Approved: {{ approval_name }}: {{ ticket_title }}",
        eyebrow="Approval given",
        accent="#16a34a",
        preheader="{{ approver_name or 'An approver' }} gave the approval {{ approval_name }}.",
        message_html=_paragraph(
            "{{ approver_name or 'An approver' }} gave the approval "
            "<strong>{{ approval_name }}</strong> for this request."
        ),
        message_text=(
            "{{ approver_name or 'An approver' }} gave the approval \"{{ approval_name }}\"\n"
            "for this request."
        ),
    ),
    "ticket.approval_revoked": _ticket(
        subject="[{{ ticket_number }}] Approval revoked: {{ approval_name }}: {{ ticket_title }}",
        eyebrow="Approval revoked",
        accent="#b45309",
        preheader="The approval {{ approval_name }} of ticket {{ ticket_number }} was revoked.",
        message_html=_paragraph(
            "The approval <strong>{{ approval_name }}</strong>"
            "{% if approver_name %} given by {{ approver_name }}{% endif %} was revoked"
            "{% if actor_name %} by {{ actor_name }}{% endif %}. The request needs it again "
            "before it can go on."
        ),
        message_text=(
            'The approval "{{ approval_name }}"'
            "{% if approver_name %} given by {{ approver_name }}{% endif %} was revoked"
            "{% if actor_name %} by {{ actor_name }}{% endif %}.\n"
            "The request needs it again before it can go on."
        ),
    ),
    "ticket.approval_requested": _ticket(
        subject="[{{ ticket_number }}] Your approval is needed: {{ ticket_title }}",
        eyebrow="Approval needed",
        accent="#7c3aed",
        preheader="Ticket {{ ticket_number }} waits for the approval {{ approval_name }}.",
        message_html=_paragraph(
            "This request, filed by {{ reporter_name }}, is in <strong>{{ ticket_status }}</strong>"
            " and cannot go on without the approval <strong>{{ approval_name }}</strong>, "
            "which you may give."
        )
        + _paragraph("Please review the request, and approve it on the ticket if you agree."),
        message_text=(
            "This request, filed by {{ reporter_name }}, is in {{ ticket_status }} and cannot\n"
            'go on without the approval "{{ approval_name }}", which you may give.\n\n'
            "Please review the request, and approve it on the ticket if you agree."
        ),
        button="Review the request",
        link_label="Review the request",
    ),
    WEBHOOK_DISABLED: TemplateSource(
        subject="[{{ tenant_name }}] Webhook disabled: {{ webhook_url }}",
        html=_html(
            title="Webhook disabled",
            preheader="Deliveries to {{ webhook_url }} have stopped.",
            accent="#dc2626",
            eyebrow="Webhook disabled",
            headline="Webhook disabled",
            subheadline=f'<span style="{_MONO}font-size:15px;word-break:break-all;">'
            "{{ webhook_url }}</span>",
            message=_paragraph(
                "A webhook endpoint of {{ tenant_name }} kept failing and has been "
                "<strong>disabled</strong>: {{ disabled_reason }}."
            )
            + _paragraph(
                "No more events are delivered to it. Fix the endpoint, then enable the webhook "
                "again in the administration settings; events sent while it was disabled are "
                "not replayed."
            ),
            details=_details(
                [
                    ("Endpoint", f'<span style="{_MONO}">{{{{ webhook_url }}}}</span>'),
                    ("Description", "{{ webhook_description or '(none)' }}"),
                    ("Reason", "{{ disabled_reason }}"),
                ]
            ),
            button="",
            footer="You receive this e-mail because you administer {{ tenant_name }} "
            "on the service desk.",
        ),
        text="\n".join(
            [
                "Webhook disabled: {{ webhook_url }}",
                "",
                "Hello{% if recipient_name %} {{ recipient_name }}{% endif %},",
                "",
                "A webhook endpoint of {{ tenant_name }} kept failing and has been disabled:",
                "{{ disabled_reason }}.",
                "",
                "  Endpoint:     {{ webhook_url }}",
                "  Description:  {{ webhook_description or '(none)' }}",
                "",
                "No more events are delivered to it. Fix the endpoint, then enable the webhook",
                "again in the administration settings; events sent while it was disabled are",
                "not replayed.",
                "",
                "-- ",
                "{{ tenant_name }} service desk",
                "",
            ]
        ),
    ),
}


def builtin(event: str) -> TemplateSource:
    """The built-in template of `event` (a ticket event or webhook.disabled; KeyError if
    unknown)."""
    return _BUILTINS[event]
