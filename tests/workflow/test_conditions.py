"""Value tests (`field_in`, `answer_in`, `answer_set`), combinators (`any`, `all`, `not`), rules
(`when`/`require`/`because`), approval policies at load time, and seed 003's manager-approval
matrix as the shipped catalog declares it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flowdesk.workflow import (
    Actor,
    Catalog,
    CatalogError,
    TicketFacts,
    available_actions,
    compile_catalog,
    load_catalog,
)

from .conftest import REPO

AGENT = Actor("olga", frozenset({"tickets:manage"}))

POLICIES = """
approvals:
  - {name: infra, given_by: {group: INFRA approvers}, forbidden_roles: [assignee]}
  - {name: manager, given_by: manager, filing_approves: true}
"""


def catalog(conditions: str, extra: str = POLICIES) -> Catalog:
    workflow = textwrap.dedent(
        f"""
        workflows:
          - name: w
            statuses:
              - {{name: A, category: initial}}
              - {{name: Z, category: inactive}}
            transitions:
              - action: go
                from: A
                to: Z
                conditions: {conditions}
        """
    )
    return compile_catalog([("test.yaml", workflow + extra.strip() + "\n")])


def reasons(cat: Catalog, **facts: object) -> list[dict[str, object]]:
    wf = cat.workflow("w")
    (option,) = available_actions(wf, TicketFacts(status="A", requester="r", **facts), AGENT)  # type: ignore[arg-type]
    return [r.to_dict() for r in option.reasons]


def conditions_of(reasons_: list[dict[str, object]]) -> list[object]:
    return [r["condition"] for r in reasons_]


def test_field_in_tests_the_value_in_any_case() -> None:
    cat = catalog("[{field_in: {environment: [prd, xat]}}]")
    assert reasons(cat, fields={"environment": " PRD "}) == []
    assert reasons(cat, fields={"environment": ["dev", "xat"]}) == []
    missing = reasons(cat, fields={"environment": "dev"})
    assert missing == [
        {
            "code": "condition",
            "detail": "the field 'environment' must be one of: prd, xat",
            "condition": "field_in:environment",
            "values": ["prd", "xat"],
        }
    ]
    assert reasons(cat) == missing  # unset is not one of them
    # Numbers compare as their text.
    assert reasons(catalog("[{field_in: {tier: [1, 2]}}]"), fields={"tier": 2}) == []


def test_answer_in_reads_multi_choice_and_other_text() -> None:
    cat = catalog("[{answer_in: {environments: [prd, xat]}}]")
    assert reasons(cat, answers={"environments": ["dev", "xat"]}) == []
    assert conditions_of(reasons(cat, answers={"environments": ["dev", "qar"]})) == [
        "answer_in:environments"
    ]
    assert conditions_of(reasons(cat, answers={"environments": []})) == ["answer_in:environments"]
    project = catalog("[{answer_in: {project: [crypto]}}]")
    assert reasons(project, answers={"project": "Crypto"}) == []
    # A choice's "Other" with its text (however the form keeps it) matches on the text.
    assert reasons(project, answers={"project": {"choice": "other", "other": " crypto"}}) == []
    assert reasons(project, answers={"project": "Cryptography"}) != []
    # Fields and answers are apart: a field of the same name is not an answer.
    assert reasons(project, fields={"project": "crypto"}) != []


def test_answer_set_names_the_missing_answer() -> None:
    cat = catalog("[{answer_set: justification}]")
    assert reasons(cat, answers={"justification": "on call"}) == []
    unanswered: list[dict[str, object]] = [{}, {"justification": ""}, {"justification": []}]
    for empty in unanswered:
        assert reasons(cat, answers=empty) == [
            {
                "code": "condition",
                "detail": "the answer 'justification' is required",
                "condition": "answer_set:justification",
            }
        ]


def test_any_all_not() -> None:
    any_ = catalog("[{any: [{type_in: [debug]}, {approval: infra}]}]")
    assert reasons(any_, type="debug") == []
    assert reasons(any_, type="change", approvals=frozenset({"infra"})) == []
    (refused,) = reasons(any_, type="change")
    assert refused["condition"] == "any"
    assert refused["values"] == ["type_in:debug", "approval:infra"]
    assert refused["detail"] == (
        "one of these must hold: the ticket type is one of: debug; "
        "or the 'infra' approval is recorded"
    )
    # `all` answers with each of its parts that fails, not with itself.
    all_ = catalog("[{all: [{approval: infra}, {answer_set: access_level}, {link: blocked_by}]}]")
    assert conditions_of(reasons(all_, links=frozenset({"blocked_by"}))) == [
        "approval:infra",
        "answer_set:access_level",
    ]
    not_ = catalog("[{not: {answer_in: {environments: [prd]}}}]")
    assert reasons(not_, answers={"environments": ["dev"]}) == []
    assert reasons(not_, answers={"environments": ["dev", "prd"]}) == [
        {
            "code": "condition",
            "detail": "this must not hold: the answer 'environments' is one of: prd",
            "condition": "not:answer_in:environments",
        }
    ]


def test_a_rule_requires_only_where_it_applies_and_says_why() -> None:
    cat = catalog(
        """
                  - when: {all: [{answer_in: {access_level: [write]}},
                                 {answer_in: {environments: [prd, xat]}}]}
                    require: {all: [{approval: manager}, {answer_set: justification}]}
                    because: write access to production"""
    )
    assert reasons(cat, answers={"access_level": "read", "environments": ["prd"]}) == []
    write_prd = {"access_level": "write", "environments": ["xat"]}
    assert reasons(cat, answers=write_prd) == [
        {
            "code": "condition",
            "detail": "the 'manager' approval is required: write access to production",
            "condition": "approval:manager",
        },
        {
            "code": "condition",
            "detail": "the answer 'justification' is required: write access to production",
            "condition": "answer_set:justification",
        },
    ]
    done = reasons(
        cat, answers={**write_prd, "justification": "deploys"}, approvals=frozenset({"manager"})
    )
    assert done == []
    rule = cat.workflow("w").actions[0].conditions[0]
    assert rule.kinds >= {"when", "all", "answer_in", "approval", "answer_set"}
    assert rule.reason.detail.startswith("if (the answer 'access_level' is one of: write and")


@pytest.mark.parametrize(
    ("conditions", "extra", "message"),
    [
        (
            "[{approval: cab}]",
            POLICIES,
            "test.yaml:11:23: unknown approval 'cab': declare who may give it under `approvals` "
            "(declared: infra, manager)",
        ),
        (
            "[{any: [{approval: infra}, {not: {approval: boss}}]}]",
            POLICIES,
            "test.yaml:11:55: unknown approval 'boss': declare who may give it under "
            "`approvals` (declared: infra, manager)",
        ),
        (
            "[]",
            "approvals:\n  - {name: infra, given_by: {team: INFRA}}",
            "test.yaml:13:30: unknown approver kind 'team' (expected one of: group, manager, user)",
        ),
        (
            "[]",
            "approvals:\n  - {name: infra, given_by: boss}",
            "test.yaml:13:29: unknown approver kind 'boss' (expected one of: group, manager, user)",
        ),
        (
            "[]",
            "approvals:\n  - {name: infra, given_by: manager, cleared_by: [go_back]}",
            "test.yaml:13:5: approval 'infra': cleared_by names no action of any workflow: "
            "'go_back'",
        ),
        (
            "[]",
            "approvals:\n  - {name: infra, given_by: {group: G}, filing_approves: true}",
            "test.yaml:13:41: approval 'infra': filing_approves needs the requester's manager "
            "in given_by",
        ),
        (
            "[]",
            "approvals:\n  - {name: infra, given_by: manager, forbidden_roles: [owner]}",
            "test.yaml:13:56: unknown forbidden role 'owner' (expected assignee or requester)",
        ),
        (
            "[{answer_in: {a: [x], b: [y]}}]",
            POLICIES,
            "test.yaml:11:34: answer_in tests exactly one answer: {answer_in: {KEY: [values]}}",
        ),
        ("[{any: []}]", POLICIES, "test.yaml:11:28: any needs at least one condition"),
        (
            "[{when: {type_in: [access]}}]",
            POLICIES,
            "test.yaml:11:22: a rule needs both 'when' and 'require' (and may say 'because')",
        ),
        (
            "[{when: {type_in: [a]}, require: {approval: infra}, unless: x}]",
            POLICIES,
            "test.yaml:11:73: rule: unknown key 'unless' (expected one of: because, require, when)",
        ),
    ],
)
def test_load_time_checks(conditions: str, extra: str, message: str) -> None:
    with pytest.raises(CatalogError) as failed:
        catalog(conditions, extra)
    assert [str(d) for d in failed.value.diagnostics] == [message]


def test_policies_as_loaded() -> None:
    cat = catalog(
        "[{approval: cab}]",
        "approvals:\n  - name: cab\n    given_by: [{user: CTO@example.com}, {group: CAB}]\n"
        "    forbidden_roles: [assignee]",
    )
    cab = cat.approvals["cab"]
    assert cab.forbidden_roles == ("requester", "assignee")
    assert cab.users() == ("CTO@example.com",) and cab.groups() == ("CAB",)
    assert cab.eligible() == "CTO@example.com or members of the group 'CAB'"
    assert not cab.filing_approves and not cab.by_manager


# --- seed 003's matrix, as shipped ----------------------------------------------------------

MANAGER = "approval:manager"
INFRA = "approval:infra"


@pytest.mark.parametrize(
    ("row", "answers", "manager_because"),
    [
        ("read, production", {"access_level": "read", "environments": ["prd"]}, ["read"]),
        ("read, XAT", {"access_level": "read", "environments": ["xat", "dev"]}, ["read"]),
        ("write, production", {"access_level": "write", "environments": ["prd"]}, ["write"]),
        ("read, non-production", {"access_level": "read", "environments": ["dev", "qar"]}, []),
        ("read, other", {"access_level": "read", "environments": ["other"]}, []),
        (
            "write, non-production",
            {"access_level": "write", "environments": ["npd"]},
            ["write access to non-production"],
        ),
        (
            "contributor, not Crypto",
            {"access_level": "contributor", "environments": ["prd"], "project": "Payments"},
            [],
        ),
        (
            "contributor, Crypto",
            {"access_level": "contributor", "environments": ["dev"], "project": "crypto"},
            ["Crypto"],
        ),
        (
            "read, Crypto, non-production",
            {"access_level": "read", "environments": ["dev"], "project": "CRYPTO"},
            ["Crypto"],
        ),
        (
            "write, Crypto, production",
            {"access_level": "write", "environments": ["prd"], "project": "Crypto"},
            ["write access to production", "Crypto"],
        ),
    ],
)
def test_the_manager_approval_matrix(
    shipped: Catalog, row: str, answers: dict[str, object], manager_because: list[str]
) -> None:
    wf = shipped.workflow("platform_request")

    def refusal(approvals: frozenset[str]) -> list[dict[str, object]]:
        facts = TicketFacts(
            status="AUTHORIZE", type="access", requester="r", answers=answers, approvals=approvals
        )
        options = {o.action: o for o in available_actions(wf, facts, AGENT)}
        return [r.to_dict() for r in options["authorize"].reasons]

    missing = refusal(frozenset())
    assert conditions_of(missing) == [INFRA] + [MANAGER] * len(manager_because), row
    for reason, why in zip(missing[1:], manager_because, strict=True):
        assert str(reason["detail"]).startswith("the 'manager' approval is required: ")
        assert why in str(reason["detail"]), row
    assert conditions_of(refusal(frozenset({"infra"}))) == [MANAGER] * len(manager_because)
    assert refusal(frozenset({"infra", "manager"})) == []


def test_the_matrix_reads_the_answers_it_needs(shipped: Catalog) -> None:
    wf = shipped.workflow("platform_request")
    facts = TicketFacts(status="AUTHORIZE", type="access", approvals=frozenset({"infra"}))
    options = {o.action: o for o in available_actions(wf, facts, AGENT)}
    assert [r.to_dict() for r in options["authorize"].reasons] == [
        {
            "code": "condition",
            "detail": "the answer 'access_level' is required: the manager-approval matrix reads it",
            "condition": "answer_set:access_level",
        },
        {
            "code": "condition",
            "detail": "the answer 'environments' is required: the manager-approval matrix reads it",
            "condition": "answer_set:environments",
        },
    ]
    # Change requests: the matrix is about access; the platform approval alone.
    change = TicketFacts(status="AUTHORIZE", type="change", approvals=frozenset({"infra"}))
    assert {o.action: o.allowed for o in available_actions(wf, change, AGENT)}["authorize"]


def test_shipped_policies(shipped: Catalog) -> None:
    infra, manager = shipped.approvals["infra"], shipped.approvals["manager"]
    assert infra.groups() == ("INFRA approvers",)
    assert infra.forbidden_roles == ("requester", "assignee")
    assert infra.cleared_by == manager.cleared_by == ("back_to_review",)
    assert manager.by_manager and manager.filing_approves and not infra.filing_approves


def test_values_files_replace_policies_by_name(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("approvals:\n  - {name: infra, given_by: {user: cto@example.com}}\n")
    merged = load_catalog([values], base=REPO / "workflows.yaml")
    assert merged.approvals["infra"].users() == ("cto@example.com",)
    assert merged.approvals["infra"].forbidden_roles == ("requester",)
    assert merged.approvals["manager"].filing_approves  # untouched
    values.write_text(
        "approvals:\n  - {name: cab, given_by: manager}\n  - {name: cab, given_by: manager}\n"
    )
    with pytest.raises(CatalogError) as failed:
        load_catalog([values], base=REPO / "workflows.yaml")
    assert [d.message for d in failed.value.diagnostics] == [
        "duplicate approval 'cab' (first at line 2)"
    ]
