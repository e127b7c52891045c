"""Notification templates: the built-ins, validation of a tenant's own, rendering, and the
sandbox holding against template injection and resource exhaustion."""

from __future__ import annotations

from typing import Any

import pytest

from flowdesk.errors import InvalidInput
from flowdesk.notifications import templates
from flowdesk.notifications.templates import (
    MAX_RENDERED,
    MAX_SUBJECT,
    PLACEHOLDERS,
    TICKET_EVENTS,
    WEBHOOK_DISABLED,
    TemplateRenderError,
    TemplateSource,
    builtin,
    render,
    sample_context,
    validate,
)

ALL_EVENTS = (*TICKET_EVENTS, WEBHOOK_DISABLED)


def custom(
    html: str = "<p>{{ ticket_title }}</p>",
    *,
    subject: str = "[{{ ticket_number }}] {{ ticket_title }}",
    text: str = "{{ ticket_title }}",
) -> TemplateSource:
    return TemplateSource(subject=subject, html=html, text=text)


def refusal(source: TemplateSource) -> list[dict[str, Any]]:
    with pytest.raises(InvalidInput) as caught:
        validate(source)
    errors: list[dict[str, Any]] = caught.value.extra["errors"]
    assert errors
    return errors


# --- Built-ins ---------------------------------------------------------------------------------


@pytest.mark.parametrize("event", ALL_EVENTS)
def test_each_builtin_renders_its_sample(event: str) -> None:
    context = sample_context(event)
    mail = render(builtin(event), context)
    key = context["webhook_url"] if event == WEBHOOK_DISABLED else context["ticket_number"]
    for part in (mail.subject, mail.html, mail.text):
        assert key in part
        assert "{{" not in part and "{%" not in part
    assert mail.html.startswith("<!DOCTYPE html>") and mail.html.rstrip().endswith("</html>")
    assert "\n" not in mail.subject and len(mail.subject) <= MAX_SUBJECT


@pytest.mark.parametrize("event", TICKET_EVENTS)
@pytest.mark.parametrize("sample", TICKET_EVENTS)
def test_each_ticket_builtin_renders_every_ticket_sample(event: str, sample: str) -> None:
    for url in ("https://desk.example.com/tickets/TKT-000042", ""):
        context = {**sample_context(sample), "ticket_url": url}
        mail = render(builtin(event), context)
        assert "[TKT-000042]" in mail.subject
        assert ">TKT-000042</div>" in mail.html  # the prominent headline
        assert mail.text.startswith("TKT-000042: ")


@pytest.mark.parametrize("event", TICKET_EVENTS)
def test_ticket_builtins_pass_validation(event: str) -> None:
    validate(builtin(event))


@pytest.mark.parametrize(
    "comment", ["word http://example.com/a " * 800, "\n" * 20_000, "<" * 20_000]
)
@pytest.mark.parametrize("event", TICKET_EVENTS)
def test_builtins_render_the_largest_values(event: str, comment: str) -> None:
    # The built-ins are the fallback: no legal ticket may make them fail (title <= 300,
    # comment <= 20,000 characters).
    context = {**sample_context(event), "ticket_title": "T" * 300, "comment_body": comment[:20_000]}
    context |= {"reporter_name": "R" * 200, "assignee_name": "A" * 200, "actor_name": "B" * 200}
    mail = render(builtin(event), context)
    assert "T" * 300 in mail.html and "T" * 300 in mail.text


def test_sample_contexts_give_every_placeholder() -> None:
    for event in TICKET_EVENTS:
        assert set(sample_context(event)) == set(PLACEHOLDERS)
    assert set(sample_context(WEBHOOK_DISABLED)) == set(templates.WEBHOOK_PLACEHOLDERS)
    sample_context("ticket.created")["ticket_title"] = "changed"
    assert sample_context("ticket.created")["ticket_title"] != "changed"


def test_unknown_events_are_key_errors() -> None:
    with pytest.raises(KeyError):
        builtin("ticket.deleted")
    with pytest.raises(KeyError):
        sample_context("ticket.deleted")


def test_subjects_name_the_ticket_and_the_event() -> None:
    context = sample_context("ticket.created")
    subject = render(builtin("ticket.created"), context).subject
    assert subject == f"[TKT-000042] Ticket received: {context['ticket_title']}"
    subject = render(builtin("ticket.assigned"), sample_context("ticket.assigned")).subject
    assert subject.startswith("[TKT-000042] Assigned to Priya Raman: ")


def test_the_ticket_link_appears_only_with_a_url() -> None:
    context = sample_context("ticket.created")
    mail = render(builtin("ticket.created"), context)
    assert f'href="{context["ticket_url"]}"' in mail.html
    assert f"View the ticket: {context['ticket_url']}" in mail.text

    mail = render(builtin("ticket.created"), {**context, "ticket_url": ""})
    assert "href=" not in mail.html
    assert "View the ticket" not in mail.text


def test_unassigned_and_anonymous_values_read_well() -> None:
    context = {**sample_context("ticket.status_changed"), "assignee_name": "", "actor_name": ""}
    mail = render(builtin("ticket.status_changed"), context)
    assert "Assignee:  Unassigned" in mail.text and ">Unassigned</td>" in mail.html
    assert "The service desk changed the status of this ticket to Waiting for customer." in (
        mail.text
    )


def test_a_comment_is_quoted() -> None:
    mail = render(builtin("ticket.comment_added"), sample_context("ticket.comment_added"))
    assert "Priya Raman added a comment:" in mail.text
    assert "> Hi Tom,\n>\n> could you install the VPN client update" in mail.text
    assert "> If it still drops, please send us the log from Help > Diagnostics.\n" in mail.text
    assert "Hi Tom,<br><br>could you install" in mail.html
    assert "Help &gt; Diagnostics." in mail.html


def test_resolved_asks_the_reporter_to_confirm() -> None:
    mail = render(builtin("ticket.resolved"), sample_context("ticket.resolved"))
    for part in (mail.html, mail.text):
        assert "confirm the resolution" in part
        assert "If the problem persists, reply to this e-mail" in part
    assert ">Confirm the resolution</a>" in mail.html


def test_webhook_disabled_names_the_endpoint_and_the_reason() -> None:
    context = {**sample_context(WEBHOOK_DISABLED), "webhook_description": ""}
    mail = render(builtin(WEBHOOK_DISABLED), context)
    assert (
        mail.subject == "[Acme Corp] Webhook disabled: https://hooks.example.com/flowdesk/tickets"
    )
    for part in (mail.html, mail.text):
        assert context["disabled_reason"] in part
        assert "(none)" in part


# --- Escaping and the subject ------------------------------------------------------------------


def test_html_escapes_values_and_text_keeps_them() -> None:
    title = "<script>alert('x')</script> & more"
    mail = render(
        builtin("ticket.created"), {**sample_context("ticket.created"), "ticket_title": title}
    )
    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in mail.html
    assert title in mail.text
    assert mail.subject.endswith(title)


def test_a_comment_cannot_bring_html() -> None:
    context = {
        **sample_context("ticket.comment_added"),
        "comment_body": '<a href="https://x">y</a>',
    }
    mail = render(builtin("ticket.comment_added"), context)
    assert '<a href="https://x">' not in mail.html
    assert "&lt;a href=&#34;https://x&#34;&gt;y&lt;/a&gt;" in mail.html


def test_the_subject_is_one_line() -> None:
    title = "Printer\r\nBcc: victim@example.com\n\tX-Injected:\x00 1\u2028end"
    mail = render(
        builtin("ticket.created"), {**sample_context("ticket.created"), "ticket_title": title}
    )
    assert mail.subject == (
        "[TKT-000042] Ticket received: Printer Bcc: victim@example.com X-Injected: 1 end"
    )
    written = custom(subject="  Line one\nLine two {{ ticket_number }}\r\n")
    assert (
        render(written, sample_context("ticket.closed")).subject == "Line one Line two TKT-000042"
    )


def test_a_long_subject_is_cut() -> None:
    context = {**sample_context("ticket.created"), "ticket_title": "word " * 200}
    subject = render(builtin("ticket.created"), context).subject
    assert len(subject) == MAX_SUBJECT and subject.endswith("…")


# --- Validation --------------------------------------------------------------------------------


def test_an_unknown_placeholder_is_refused_with_its_line() -> None:
    errors = refusal(custom("<p>\n{{ ticket_number }}\n{{ foo }}</p>"))
    assert errors == [
        {
            "pointer": "/html",
            "detail": "line 3: unknown placeholder 'foo' (known: " + ", ".join(PLACEHOLDERS) + ")",
        }
    ]


def test_each_unknown_placeholder_is_one_error() -> None:
    errors = refusal(custom(text="{{ a }}\n{{ b|upper }}\n{{ a }}"))
    assert [(e["pointer"], e["detail"].split(" (known")[0]) for e in errors] == [
        ("/text", "line 1: unknown placeholder 'a'"),
        ("/text", "line 2: unknown placeholder 'b'"),
    ]


@pytest.mark.parametrize(
    ("html", "detail"),
    [
        ("<p>\n{% if ticket_title %}\n</p>", "line 3: Unexpected end of template."),
        ("<p>\n{{ ticket_title }\n</p>", "line 2: unexpected '}'"),
        ("<p>\n\n{{ ticket_title|nosuchfilter }}</p>", "line 3: No filter named 'nosuchfilter'"),
    ],
)
def test_a_syntax_error_is_refused_with_its_line(html: str, detail: str) -> None:
    [error] = refusal(custom(html))
    assert error["pointer"] == "/html"
    assert error["detail"].startswith(detail)


def test_a_runtime_error_is_refused_with_its_line_and_the_sample_it_failed() -> None:
    # Fails only when the deployment has no portal URL: the trial renders try that too.
    [error] = refusal(custom(text="Ticket\n{{ 100 // ticket_url|length }}"))
    assert error["pointer"] == "/text"
    assert error["detail"].startswith("line 2: integer division or modulo by zero (rendering a")
    assert error["detail"].endswith("without a ticket URL)")


def test_each_part_reports_its_own_problems() -> None:
    errors = refusal(TemplateSource(subject=" ", html="{{ nope }}", text="{% for %}"))
    assert [e["pointer"] for e in errors] == ["/subject", "/html", "/text"]
    assert errors[0]["detail"] == "must not be empty"


def test_sizes_are_limited() -> None:
    errors = refusal(custom("x" * 100_001, subject="s" * 501, text="y" * 100_001))
    assert errors == [
        {"pointer": "/subject", "detail": "is 501 characters long (at most 500)"},
        {"pointer": "/html", "detail": "is 100001 characters long (at most 100000)"},
        {"pointer": "/text", "detail": "is 100001 characters long (at most 100000)"},
    ]
    validate(custom("x" * 100_000, subject="s" * 500, text="y" * 100_000))


def test_a_subject_that_renders_empty_is_refused() -> None:
    # Only ticket.comment_added has a comment: the other samples render this empty.
    [error] = refusal(custom(subject="{{ comment_body }}"))
    assert error["pointer"] == "/subject"
    assert error["detail"].startswith("renders to an empty subject")


def test_if_for_loop_filters_and_string_methods_are_allowed() -> None:
    source = custom(
        "{% for word in ticket_title.split() if word|length > 3 %}"
        "{{ loop.index }}:{{ word|upper }}{% if not loop.last %}, {% endif %}"
        "{% else %}none{% endfor %}"
        "{% for i in range(2) %}[{{ i }}]{% endfor %}"
        "{{ ticket_status|default('?')|lower }}"
    )
    validate(source)
    html = render(source, sample_context("ticket.created")).html
    assert html == "1:DISCONNECTS, 2:EVERY, 3:MINUTES, 4:OFFICE, 5:WI-FI[0][1]new"


@pytest.mark.parametrize(
    ("html", "tag"),
    [
        ("{% set x = ticket_title %}{{ x }}", "set"),
        ("{% include 'other.html' %}", "include"),
        ("{% extends 'base.html' %}", "extends"),
        ("{% import 'm.html' as m %}", "import"),
        ("{% macro m() %}x{% endmacro %}", "macro"),
        ("{% with x = 1 %}{{ x }}{% endwith %}", "with"),
        ("{% filter upper %}x{% endfilter %}", "filter"),
        ("{% block b %}x{% endblock %}", "block"),
        ("{% autoescape false %}{{ comment_body }}{% endautoescape %}", "autoescape"),
    ],
)
def test_only_if_and_for_statements_are_allowed(html: str, tag: str) -> None:
    [error] = refusal(custom("<p>\n" + html))
    assert error == {
        "pointer": "/html",
        "detail": f"line 2: {{% {tag} %}} is not allowed (only if and for)",
    }


def test_deep_or_huge_templates_are_refused() -> None:
    [error] = refusal(
        custom("<p>\n{{ ticket_title" + " ~ ticket_title" * 10 + "~ 1" + " + 1" * 200 + " }}")
    )
    assert error == {"pointer": "/html", "detail": "line 2: is nested too deeply (over 100 levels)"}
    [error] = refusal(custom("{{ticket_url}}," * 6000))
    assert error == {
        "pointer": "/html",
        "detail": "is too complex (over 10000 expressions and blocks)",
    }


def test_recursive_loops_are_refused() -> None:
    [error] = refusal(custom("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}"))
    assert error["detail"] == "line 1: recursive loops are not allowed"


@pytest.mark.parametrize("name", ["lipsum", "dict", "cycler", "joiner", "namespace", "self"])
def test_jinja_globals_are_not_placeholders(name: str) -> None:
    [error] = refusal(custom(f"{{{{ {name}() }}}}"))
    assert error["detail"].startswith(f"line 1: unknown placeholder {name!r}")


def test_safe_and_format_filters_are_not_available() -> None:
    errors = refusal(custom("{{ comment_body|safe }}", text="{{ '%s'|format(ticket_title) }}"))
    assert [e["detail"] for e in errors] == [
        "line 1: No filter named 'safe'.",
        "line 1: No filter named 'format'.",
    ]


# --- Rendering ---------------------------------------------------------------------------------


def test_a_custom_template_substitutes_every_placeholder() -> None:
    context = {name: f"v-{name}" for name in PLACEHOLDERS}
    source = TemplateSource(
        subject=" ".join(f"{{{{ {name} }}}}" for name in PLACEHOLDERS),
        html="\n".join(f"<p>{name}={{{{ {name} }}}}</p>" for name in PLACEHOLDERS),
        text="\n".join(f"{name}={{{{ {name} }}}}" for name in PLACEHOLDERS),
    )
    validate(source)
    mail = render(source, context)
    assert mail.subject == " ".join(context.values())
    for name, value in context.items():
        assert f"<p>{name}={value}</p>" in mail.html
        assert f"{name}={value}\n" in mail.text + "\n"


def test_a_missing_value_is_a_render_error() -> None:
    context = sample_context("ticket.created")
    del context["ticket_title"]
    with pytest.raises(TemplateRenderError) as caught:
        render(builtin("ticket.created"), context)
    assert caught.value.part == "subject"
    assert caught.value.reason == "line 1: 'ticket_title' is undefined"


def test_an_invalid_template_is_a_render_error() -> None:
    with pytest.raises(TemplateRenderError) as caught:
        render(custom(text="{% if ticket_title %}"), sample_context("ticket.created"))
    assert caught.value.part == "text"
    assert str(caught.value).startswith("text: line 1: Unexpected end of template.")


def test_rendered_bodies_are_capped() -> None:
    flood = custom("{% for i in range(100000) %}{{ ticket_title }}{% endfor %}")
    [error] = refusal(flood)
    assert error["pointer"] == "/html"
    assert error["detail"].startswith(f"renders to more than {MAX_RENDERED} characters")
    with pytest.raises(TemplateRenderError) as caught:
        render(flood, sample_context("ticket.created"))
    assert caught.value.part == "html"

    validate(custom("{% for i in range(1000) %}{{ ticket_title }}{% endfor %}"))


def test_compiled_templates_are_cached() -> None:
    source = custom("<p>cached {{ ticket_number }}</p>")
    render(source, sample_context("ticket.created"))
    hits = templates._compile.cache_info().hits
    render(source, sample_context("ticket.closed"))
    assert templates._compile.cache_info().hits >= hits + 3


# --- Injection and exhaustion ------------------------------------------------------------------

INJECTIONS = [
    "{{ ticket_title.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ ticket_title|attr('__class__') }}",
    "{{ ticket_title['__class__'] }}",
    "{{ range.__call__.__globals__ }}",
    "{{ range }}{{ self }}",
    "{{ loop.__class__ }}{% for x in [1] %}{{ loop.__init__.__globals__ }}{% endfor %}",
    "{{ ticket_title.format.__globals__ }}",
    "{{ '{0.__class__}'.format(ticket_title) }}",
    "{{ [1].pop() }}{{ {'a': 1}.clear() }}",
    "{{ (1).to_bytes(8, 'big') }}",
]
LEAKS = ("class", "function", "module", "built-in", "globals", "0x", "TemplateReference")


@pytest.mark.parametrize("attack", INJECTIONS)
def test_template_injection_is_refused_and_harmless(attack: str) -> None:
    errors = refusal(custom(attack, text=attack))
    assert {e["pointer"] for e in errors} == {"/html", "/text"}
    # Rendered anyway (the relay renders what was stored): an error, or nothing of Python.
    try:
        mail = render(custom(attack, text=attack), sample_context("ticket.created"))
    except TemplateRenderError:
        return
    for part in (mail.html, mail.text):
        assert not any(leak in part for leak in LEAKS), part


EXHAUSTION = [
    "{{ 'x' * 10**9 }}",
    "{{ [ticket_title] * 10**9 }}",
    "{{ 9 ** (9 ** 9) }}",
    "{{ 10**5000 * 10**5000 }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ ticket_title|center(10**9) }}",
    "{{ ticket_title|indent(10**9) }}",
    "{{ ticket_title.ljust(10**9) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ range(10**9)|list }}",
    "{{ range(100000)|join(comment_body) }}",
    "{{ ticket_title|replace('', ticket_title)|replace('', ticket_title)|replace('', 'xxxx') }}",
    "{{ ticket_title" + "|list|string" * 12 + " }}",
    "{{ ticket_title" + "|tojson" * 40 + " }}",
    "{{ [ticket_title]|batch(10**9, 'x')|list }}",
    "{{ ticket_title|slice(10**9)|list }}",
    "{{ range(3)|map('center', 10**9)|list }}",
    "{{ " + " ~ ".join(["comment_body"] * 7000) + " }}",
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "{% for a in comment_body %}{% for b in comment_body %}{% for c in comment_body %}"
    "{% endfor %}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{{ comment_body|list|sort|join }}{% endfor %}",
    "{% for i in range(100000) %}{% if 'zz' in comment_body %}{% endif %}{% endfor %}",
    "{% for i in range(100000) %}{% if comment_body.count('o') %}{% endif %}{% endfor %}",
    "{% for i in range(100000) %}{% if comment_body[::-1] %}{% endif %}{% endfor %}",
    "{% for i in range(100000) %}{% if comment_body is lower %}{% endif %}{% endfor %}",
    "{% for i in range(100000) %}{% if ticket_title %}{% if ticket_title %}{% if ticket_title %}"
    "{% endif %}{% endif %}{% endif %}{% endfor %}",
    "{{ " + "9" * 5000 + " }}",
    "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
]


@pytest.mark.parametrize("attack", EXHAUSTION, ids=lambda attack: attack[:60])
def test_resource_exhaustion_is_refused_and_stopped(attack: str) -> None:
    [error] = refusal(custom(attack))
    assert error["pointer"] == "/html"
    with pytest.raises(TemplateRenderError):
        render(custom(attack), sample_context("ticket.comment_added"))
