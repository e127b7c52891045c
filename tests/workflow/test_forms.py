"""Intake forms in the catalog: what loads, what each mistake says (file:line:col), the seed
003 questionnaire as shipped, and answers checked against a form's JSON Schema."""

from __future__ import annotations

import textwrap

import pytest
from jsonschema import Draft202012Validator

from flowdesk.workflow import Catalog, CatalogError, compile_catalog
from flowdesk.workflow.form_schema import check, intake, render_markdown, stored_answers

BASE = """\
workflows:
  - name: simple
    statuses: [{name: open, category: initial}, {name: done, category: inactive}]
    transitions:
      - {from: open, to: done, role: any}
"""


def compiled(forms: str, items: str = "") -> Catalog:
    text = BASE + textwrap.dedent(forms) + "catalog:\n" + textwrap.dedent(items or DEFAULT_ITEM)
    return compile_catalog([("forms.yaml", text)])


DEFAULT_ITEM = """\
  - {name: req, type: service_request, workflow: simple, form: f}
"""


def errors_of(forms: str, items: str = "") -> list[str]:
    with pytest.raises(CatalogError) as caught:
        compiled(forms, items)
    return [str(d) for d in caught.value.diagnostics]


GOOD = """\
forms:
  - name: f
    questions:
      - {key: summary, label: Summary, type: text, required: true, maps_to: title,
         max_words: 3}
      - {key: size, label: Size, type: choice, options: [S, M, L]}
"""


def test_a_form_loads_and_an_item_refers_to_it() -> None:
    catalog = compiled(GOOD)
    form = catalog.items["req"].form
    assert form is not None and form is catalog.forms["f"]
    assert [q.key for q in form.questions] == ["summary", "size"]
    assert [o.value for o in form.questions[1].options] == ["S", "M", "L"]
    Draft202012Validator.check_schema(dict(form.schema))


# --- the load-time checks --------------------------------------------------------------------


def test_unknown_field_mapping() -> None:
    forms = GOOD.replace("maps_to: title", "maps_to: summary")
    assert errors_of(forms) == [
        "forms.yaml:9:68: form 'f': question 'summary': unknown field mapping 'summary' "
        "(expected one of: title, description, priority, or fields.<key>)"
    ]


def test_mappings_that_do_not_fit() -> None:
    forms = """\
    forms:
      - name: f
        questions:
          - {key: a, label: A, type: choice, options: [x], maps_to: title}
          - {key: b, label: B, type: choice, options: [LOW, soon], maps_to: priority}
          - {key: c, label: C, type: text, maps_to: fields.c, max_length: 5000}
          - {key: d, label: D, type: user, maps_to: description}
          - {key: e, label: E, type: text, maps_to: fields.c}
    """
    assert errors_of(forms) == [
        "forms.yaml:9:56: form 'f': question 'a': only a text question can give the title",
        "forms.yaml:10:64: form 'f': question 'b': only a choice among the priorities (LOW, "
        "MEDIUM, HIGH, CRITICAL) can give the priority; not priorities: soon",
        "forms.yaml:11:40: form 'f': question 'c': a custom field holds at most 2000 characters",
        "forms.yaml:12:40: form 'f': question 'd': only a text or rich_text question can give "
        "the description",
    ]


def test_two_questions_fill_one_field() -> None:
    forms = """\
    forms:
      - name: f
        questions:
          - {key: c, label: C, type: text, maps_to: fields.c}
          - {key: e, label: E, type: text, maps_to: fields.c}
    """
    assert errors_of(forms) == [
        "forms.yaml:10:9: form 'f': questions 'c' and 'e' both map onto 'fields.c'"
    ]


def test_duplicate_question_keys() -> None:
    forms = GOOD + "      - {key: size, label: Again, type: text}\n"
    assert errors_of(forms) == [
        "forms.yaml:12:9: form 'f': duplicate question key 'size' (first at line 11)"
    ]


def test_an_empty_choice_list_and_choices_without_options() -> None:
    forms = """\
    forms:
      - name: f
        questions:
          - {key: a, label: A, type: choice, options: []}
          - {key: b, label: B, type: multi_choice}
          - {key: c, label: C, type: choice, options: [{group: G, options: []}, x, x]}
          - {key: d, label: D, type: text, options: [x]}
    """
    found = errors_of(forms)
    assert "forms.yaml:9:42: form 'f': question 'a': the list of options is empty" in found
    assert "forms.yaml:10:9: form 'f': question 'b': a multi_choice question needs 'options'" in (
        found
    )
    assert any(e.startswith("forms.yaml:11:") and "group 'G' is empty" in e for e in found)
    assert any(e.startswith("forms.yaml:11:") and "duplicate option value 'x'" in e for e in found)
    assert (
        "forms.yaml:12:40: form 'f': question 'd': only choice and multi_choice questions "
        "have options" in found
    )


def test_unknown_types_and_keys() -> None:
    forms = """\
    forms:
      - name: f
        colour: blue
        questions:
          - {key: a, label: A, type: date}
          - {key: b, label: B, type: text, placeholder: x}
          - {key: c, label: C, type: choice, options: [{value: x, lable: X}]}
          - {key: Bad, label: D, type: text, max_words: 0}
          - {key: e, type: text}
    """
    assert [e.split(" (expected")[0] for e in errors_of(forms)] == [
        "forms.yaml:8:5: form: unknown key 'colour'",
        "forms.yaml:10:34: form 'f': question 'a': unknown type 'date'",
        "forms.yaml:11:40: form 'f': question: unknown key 'placeholder'",
        "forms.yaml:12:63: form 'f': question 'c': option: unknown key 'lable'",
        "forms.yaml:13:15: form 'f': question 'Bad': a key is lower-case letters, digits and "
        "'_', starting with a letter (at most 64)",
        "forms.yaml:13:53: form 'f': question 'Bad': max_words must be a positive integer",
        "forms.yaml:14:9: form 'f': question: missing 'label'",
    ]


def test_options_only_where_they_mean_something() -> None:
    forms = """\
    forms:
      - name: f
        questions:
          - {key: a, label: A, type: choice, options: [x], max_words: 2, max_length: 3}
          - {key: b, label: B, type: text, other_label: Which}
    """
    assert errors_of(forms) == [
        "forms.yaml:9:56: form 'f': question 'a': max_words is for text questions",
        "forms.yaml:9:70: form 'f': question 'a': max_length is for text and rich_text questions",
        "forms.yaml:10:40: form 'f': question 'b': other_label, but no option has 'other: true'",
    ]


def test_a_form_name_that_does_not_exist() -> None:
    item = "  - {name: req, type: service_request, workflow: simple, form: g}\n"
    assert errors_of(GOOD, item) == [
        "forms.yaml:13:62: catalog item 'req': unknown form 'g' (forms: f)"
    ]


def test_extends_unknown_or_itself() -> None:
    forms = """\
    forms:
      - {name: f, extends: nothing, questions: [{key: a, label: A, type: text}]}
      - {name: g, extends: h, questions: [{key: b, label: B, type: text}]}
      - {name: h, extends: g, questions: [{key: c, label: C, type: text}]}
    """
    assert errors_of(forms) == [
        "forms.yaml:7:24: form 'f' extends unknown form 'nothing' (forms: f, g, h)",
        "forms.yaml:8:24: form 'g' extends itself (through 'h')",
        "forms.yaml:9:24: form 'h' extends itself (through 'g')",
    ]


def test_an_other_options_text_needs_a_key_of_its_own() -> None:
    forms = """\
    forms:
      - name: f
        questions:
          - {key: os, label: OS, type: choice, options: [linux, {value: x, label: X, other: true}]}
          - {key: os_other, label: Other OS, type: text}
    """
    assert errors_of(forms) == [
        "forms.yaml:9:9: form 'f': question 'os' has an 'Other' option, whose text is the "
        "answer 'os_other': another question has that key"
    ]


def test_a_form_with_no_questions_and_a_nameless_form() -> None:
    found = errors_of("forms:\n  - {name: f}\n  - {questions: []}\n")
    assert found == [
        "forms.yaml:7:5: form 'f' has no questions",
        "forms.yaml:8:5: form: missing 'name'",
    ]


def test_every_error_is_reported_at_once_from_a_values_file() -> None:
    base = BASE + "forms:\n  - {name: f, questions: [{key: a, label: A, type: text}]}\n"
    values = (
        "forms:\n  - {name: f, questions: [{key: a, label: A, type: choice, options: []}]}\n"
        "catalog:\n  - {name: r, type: t, workflow: simple, form: nope}\n"
    )
    with pytest.raises(CatalogError) as caught:
        compile_catalog([("base.yaml", base), ("values.yaml", values)])
    assert [str(d) for d in caught.value.diagnostics] == [
        "values.yaml:2:60: form 'f': question 'a': the list of options is empty",
        "values.yaml:4:48: catalog item 'r': unknown form 'nope' (forms: f)",
    ]


# --- extends and inline forms ----------------------------------------------------------------


def test_extends_adds_questions_and_replaces_by_key() -> None:
    forms = (
        GOOD
        + """\
  - name: g
    extends: f
    questions:
      - {key: size, label: Size, type: choice, options: [XL]}
      - {key: why, label: Why, type: text, required: true}
"""
    )
    catalog = compiled(forms, "  - {name: req, type: t, workflow: simple, form: g}\n")
    form = catalog.items["req"].form
    assert form is not None
    assert [(q.key, q.label) for q in form.questions] == [
        ("summary", "Summary"),
        ("size", "Size"),
        ("why", "Why"),
    ]
    assert [o.value for o in form.questions[1].options] == ["XL"]


def test_an_item_may_write_its_own_form() -> None:
    items = """\
  - name: req
    type: t
    workflow: simple
    form:
      extends: f
      questions: [{key: extra, label: Extra, type: rich_text}]
"""
    form = compiled(GOOD, items).items["req"].form
    assert form is not None and form.name == "req"
    assert [q.key for q in form.questions] == ["summary", "size", "extra"]
    assert errors_of(GOOD, items.replace("rich_text", "colour"))[0].startswith(
        "forms.yaml:18:50: form 'req': question 'extra': unknown type 'colour'"
    )


# --- the shipped questionnaire ---------------------------------------------------------------


def test_seed_003_questionnaire_is_shipped_for_the_platform_items(shipped: Catalog) -> None:
    request = shipped.forms["platform_request"]
    access = shipped.forms["platform_access"]
    assert shipped.items["platform_change"].form is request
    assert shipped.items["platform_debug"].form is request
    assert shipped.items["platform_access"].form is access
    assert [q.key for q in request.questions] == ["summary", "service", "environments", "details"]
    assert [q.key for q in access.questions] == [
        "summary",
        "service",
        "environments",
        "details",
        "justification",
        "access_level",
        "project",
    ]
    summary = request.questions[0]
    assert (summary.maps_to, summary.max_words, summary.required) == ("title", 10, True)
    service = request.questions[1]
    assert len(service.options) == 22
    assert [o.value for o in service.options if o.other] == [
        "azure_devops.other",
        "networking.other",
        "vm.other",
        "other",
    ]
    assert service.options[-1].help == "note - database and crm are not managed by us!"
    assert {o.group for o in service.options} == {
        None,
        "Azure DevOps",
        "Networking",
        "Virtual Machines",
    }
    environments = request.questions[2]
    assert environments.type == "multi_choice"
    assert [o.value for o in environments.options] == [
        "prd",
        "xat",
        "qar",
        "iat",
        "dev",
        "npd",
        "other",
    ]
    details = request.questions[3]
    assert details.type == "rich_text"
    assert details.help.splitlines()[1] == (
        "If you're experiencing an issue, please attach logs, screenshots, and links to "
        "relevant resources"
    )
    justification, level, project = access.questions[4:]
    assert justification.required and justification.type == "text"
    assert "explanation of why the user needs this access" in justification.help
    assert [o.value for o in level.options] == ["read", "write", "contributor"]
    assert level.required
    assert project.type == "text" and not project.required


# --- answers against the schema --------------------------------------------------------------


def test_check_and_intake(shipped: Catalog) -> None:
    form = shipped.forms["platform_access"]
    answers = {
        "summary": " Read access please ",
        "service": "networking.other",
        "service_other": "Fortinet",
        "environments": ["prd"],
        "details": "**why**",
        "justification": "Audit",
        "access_level": "read",
    }
    assert check(form, answers) == []
    sorted_out = intake(form, answers)
    assert sorted_out.ticket == {"title": "Read access please"}
    stored = sorted_out.answers
    assert stored_answers(stored) == (
        {k: v for k, v in answers.items() if k != "summary"},
        {"details": "<p><strong>why</strong></p>\n"},
    )
    assert check(form, {**answers, "summary": "w " * 11}) == [
        ("/answers/summary", "at most 10 words")
    ]
    assert check(form, {**answers, "a/b~c": 1}) == [
        ("/answers/a~1b~0c", "not a question of this form")
    ]


def test_rich_text_is_sanitised() -> None:
    html = render_markdown(
        "# Title\n\n<script>steal()</script><b onclick='x()'>bold</b> "
        "<img src=x onerror=alert(1)> [a](javascript:alert(1)) <a href='javascript:x'>b</a>"
    )
    assert "<h1>Title</h1>" in html
    assert "<script" not in html and "steal" not in html
    assert "onclick" not in html and "onerror" not in html
    assert "<b>bold</b>" in html
    assert 'href="javascript' not in html


def test_a_multi_choice_other_and_a_user_answer() -> None:
    forms = """\
    forms:
      - name: f
        questions:
          - {key: tools, label: Tools, type: multi_choice,
             options: [git, {value: else, label: Something else, other: true}]}
          - {key: buddy, label: Buddy, type: user}
    """
    form = compiled(forms).forms["f"]
    assert check(form, {"tools": ["git"]}) == []
    assert check(form, {"tools": ["git", "else"]}) == [
        ("/answers/tools_other", "required when an 'Other' option is chosen")
    ]
    assert check(form, {"tools": ["else"], "tools_other": "hg"}) == []
    assert check(form, {"tools": ["git"], "tools_other": "hg"}) == [
        ("/answers/tools_other", "only when an 'Other' option is chosen")
    ]
    assert check(form, {"tools": ["git", "git", "x", "y", "z"]}) == [
        (
            "/answers/tools",
            "'x' is not one of the options; 'y' is not one of the options; "
            "'z' is not one of the options",
        )
    ]
    assert check(form, {"buddy": "0b7c2a44-0d55-4f7e-9d47-3f0e8a3c1d2e"}) == []
    assert check(form, {"buddy": "me"}) == [("/answers/buddy", "must be a user id")]
    hints = form.display["questions"]
    assert hints["tools_other"]["when"] == ["else"]
    assert hints["buddy"]["widget"] == "user"
