"""Each load-time check: a broken catalog is refused with file:line:col and a precise message."""

from __future__ import annotations

import pytest

from flowdesk.workflow import Catalog, CatalogError

from .conftest import compile_yaml


def errors(text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        compile_yaml(text, "bad.yaml")
    assert all(d.severity == "error" for d in caught.value.diagnostics)
    assert str(caught.value) == "\n".join(str(d) for d in caught.value.diagnostics)
    return [str(d) for d in caught.value.diagnostics]


def test_yaml_syntax_error_has_position() -> None:
    assert errors("workflows:\n  - name: x\n   bad: [\n") == [
        "bad.yaml:3:5: invalid YAML: expected <block end>, but found '<block mapping start>'"
    ] or errors("workflows:\n  - name: x\n   bad: [\n")[0].startswith("bad.yaml:3:")


def test_unknown_status_in_transition() -> None:
    assert errors(
        """
        strict: true
        workflows:
          - name: w
            transitions:
              - {from: OPEN, to: DONE}
        """
    ) == [
        # the transition is dropped, so OPEN reaches nothing: the graph checks speak too
        "bad.yaml:4:5: workflow 'w': status 'IN_PROGRESS' is unreachable from creation",
        "bad.yaml:4:5: workflow 'w': status 'RESOLVED' is unreachable from creation",
        "bad.yaml:4:5: workflow 'w': status 'CLOSED' is unreachable from creation",
        "bad.yaml:4:5: workflow 'w': no inactive status can be reached from 'OPEN' "
        "(mark the status 'dead_end: true' if that is intended)",
        "bad.yaml:4:5: workflow 'w': no inactive status can be reached from 'IN_PROGRESS' "
        "(mark the status 'dead_end: true' if that is intended)",
        "bad.yaml:4:5: workflow 'w': no inactive status can be reached from 'RESOLVED' "
        "(mark the status 'dead_end: true' if that is intended)",
        "bad.yaml:6:26: unknown status 'DONE' in action 'done' "
        "(statuses: OPEN, IN_PROGRESS, RESOLVED, CLOSED)",
    ]


GOOD = """
        workflows:
          - name: w
            transitions:
              - {from: OPEN, to: CLOSED}
              - {from: OPEN, to: IN_PROGRESS}
              - {from: IN_PROGRESS, to: RESOLVED}
              - {from: RESOLVED, to: CLOSED}
"""


def test_good_base_compiles() -> None:
    assert compile_yaml(GOOD).workflow("w").default_create_status == "OPEN"


def test_unknown_status_in_from() -> None:
    assert errors(GOOD + "              - {from: [RESOLVED, NOPE], to: OPEN}\n") == [
        "bad.yaml:9:27: unknown status 'NOPE' in action 'open' "
        "(statuses: OPEN, IN_PROGRESS, RESOLVED, CLOSED)"
    ]


def test_unknown_status_in_rights() -> None:
    text = GOOD + "            rights: {'* -> GONE': tickets:manage}\n"
    assert errors(text) == [
        "bad.yaml:9:14: unknown status 'GONE' in rights "
        "(statuses: OPEN, IN_PROGRESS, RESOLVED, CLOSED)"
    ]


def test_unknown_status_in_map() -> None:
    text = GOOD + (
        "          - {name: w2, extends: w}\n"
        "        maps:\n"
        "          - {from: w, to: w2, statuses: {OPEN: NEW}}\n"
        "          - {from: w2, to: w, statuses: {NEW: OPEN}}\n"
    )
    assert errors(text) == [
        "bad.yaml:11:40: unknown status 'NEW' in map 'w -> w2' (workflow 'w2')",
        "bad.yaml:12:34: unknown status 'NEW' in map 'w2 -> w' (workflow 'w2')",
    ]


def test_duplicate_action() -> None:
    assert errors(GOOD + "              - {from: OPEN, to: CLOSED, role: requester}\n") == [
        "bad.yaml:9:9: duplicate action 'closed' out of status 'OPEN' (first defined at line 5)"
    ]


def test_duplicate_action_through_star() -> None:
    text = GOOD + "              - {action: closed, from: '*', to: CLOSED}\n"
    assert errors(text) == [
        "bad.yaml:9:9: duplicate action 'closed' out of status 'OPEN' (first defined at line 5)",
        "bad.yaml:9:9: duplicate action 'closed' out of status 'RESOLVED' "
        "(first defined at line 8)",
    ]


def test_unknown_role() -> None:
    assert errors(GOOD.replace("to: CLOSED}", "to: CLOSED, role: boss}", 1)) == [
        "bad.yaml:5:40: unknown role 'boss' (expected one of: assignee, requester, any)"
    ]


def test_unknown_operation() -> None:
    text = GOOD.replace("to: CLOSED}", "to: CLOSED, operations: [close_all]}", 1)
    assert errors(text) == [
        "bad.yaml:5:47: unknown operation 'close_all' (expected one of: set_owner, "
        "set_owner_to_self, may_set_owner, del_owner, set_resolution, del_resolution, "
        "leave_status, reset_workflow)"
    ]


def test_unknown_condition_kind() -> None:
    text = GOOD.replace("to: CLOSED}", "to: CLOSED, conditions: [{moon: full}]}", 1)
    assert errors(text) == [
        "bad.yaml:5:48: unknown condition kind 'moon' (expected one of: field_set, field_in, "
        "answer_set, answer_in, link, type_in, type_not_in, approval, any, all, not, when)"
    ]


def test_no_way_to_create() -> None:
    assert errors(
        """
        workflows:
          - name: w
            statuses:
              - {name: A, category: active}
              - {name: Z, category: inactive}
            transitions:
              - {from: A, to: Z}
        """
    ) == [
        "bad.yaml:3:5: workflow 'w' has no way to create a ticket: no transition from '' "
        "and no status of category 'initial'"
    ]


def test_unreachable_status_is_a_warning_unless_strict() -> None:
    text = GOOD.replace("              - {from: OPEN, to: IN_PROGRESS}\n", "")
    text = text.replace("{from: IN_PROGRESS, to: RESOLVED}", "{from: IN_PROGRESS, to: CLOSED}")
    # Trac and RT accept a status nothing leads to (kept for old tickets): so does flowdesk,
    # saying where it is.
    warnings = compile_yaml(text, "ok.yaml").warnings
    assert [str(w).split(" (only")[0] for w in warnings] == [
        "ok.yaml:3:5: warning: workflow 'w': status 'IN_PROGRESS' is unreachable from creation",
        "ok.yaml:3:5: warning: workflow 'w': status 'RESOLVED' is unreachable from creation",
    ]
    strict = text.replace("workflows:", "strict: true\n        workflows:", 1)
    assert errors(strict) == [
        "bad.yaml:4:5: workflow 'w': status 'IN_PROGRESS' is unreachable from creation",
        "bad.yaml:4:5: workflow 'w': status 'RESOLVED' is unreachable from creation",
    ]
    assert errors("strict: maybe\nworkflows: []\n") == [
        "bad.yaml:1:9: strict must be true or false"
    ]


def test_no_inactive_reachable_and_dead_end_marker() -> None:
    text = """
        workflows:
          - name: w
            statuses:
              - {name: NEW, category: initial}
              - {name: LIMBO, category: active}
              - {name: DONE, category: inactive}
            transitions:
              - {from: NEW, to: DONE}
              - {from: NEW, to: LIMBO}
    """
    assert errors(text) == [
        "bad.yaml:6:9: workflow 'w': no inactive status can be reached from 'LIMBO' "
        "(mark the status 'dead_end: true' if that is intended)"
    ]
    fixed = text.replace(
        "{name: LIMBO, category: active}", "{name: LIMBO, category: active, dead_end: true}"
    )
    assert "LIMBO" in compile_yaml(fixed).workflow("w").statuses


def test_set_resolution_without_values() -> None:
    text = GOOD.replace("to: CLOSED}", "to: CLOSED, operations: [set_resolution]}", 1)
    assert errors(text) == [
        "bad.yaml:5:9: action 'closed': set_resolution needs its allowed values "
        "(set_resolution: [fixed, ...])"
    ]


def test_unknown_key_and_duplicate_key() -> None:
    text = GOOD.replace("to: CLOSED}", "to: CLOSED, rol: any, to: OPEN}", 1)
    assert errors(text) == [
        "bad.yaml:5:34: transition: unknown key 'rol' (expected one of: action, any_permission, "
        "comment_required, conditions, forbidden_roles, from, label, operations, permissions, "
        "remove, role, set_owner, set_resolution, to, update, weight)",
        "bad.yaml:5:44: transition: duplicate key 'to' (first at line 5)",
    ]


def test_catalog_item_unknown_workflow_and_priority() -> None:
    item = "          - {name: i, type: t, workflow: nope, defaultPriority: URGENT}\n"
    text = GOOD + "        catalog:\n" + item
    assert errors(text) == [
        "bad.yaml:10:34: catalog item 'i': unknown workflow 'nope'",
        "bad.yaml:10:57: unknown priority 'URGENT' (expected one of: LOW, MEDIUM, HIGH, CRITICAL)",
    ]


def test_extends_unknown_workflow() -> None:
    assert errors("workflows:\n  - {name: a, extends: b}\n") == [
        "bad.yaml:2:5: workflow 'a' extends unknown workflow 'b'"
    ]


def test_default_status_must_be_creatable() -> None:
    text = GOOD.replace("  - name: w\n", "  - name: w\n            default_status: CLOSED\n")
    assert errors(text) == [
        "bad.yaml:4:21: default_status 'CLOSED' is not a status a ticket can be created in "
        "(create actions lead to: OPEN)"
    ]


def test_every_error_is_reported_at_once() -> None:
    text = GOOD.replace("to: CLOSED}", "to: CLOSED, role: boss, operations: [fly]}", 1)
    assert len(errors(text)) == 2


def test_warnings_are_not_fatal() -> None:
    text = GOOD.replace(
        "to: CLOSED}", "to: CLOSED, label: close, permissions: [TICKET_MODIFY]}", 1
    ).replace("{from: OPEN, to: IN_PROGRESS}", "{from: OPEN, to: IN_PROGRESS, label: Close}")
    catalog = compile_yaml(text, "warn.yaml")
    assert [str(w) for w in catalog.warnings] == [
        "warn.yaml:5:9: warning: permission 'TICKET_MODIFY' (action 'closed') is not a flowdesk "
        "permission and no permission_implies entry grants it: only admins can use it "
        "(e.g. permission_implies: {tickets:manage: [TICKET_MODIFY]})",
        "warn.yaml:5:9: warning: actions 'in_progress' and 'closed' out of status 'OPEN' share the "
        "label 'close'",
    ]


RESOLVING = """
        {declared}workflows:
          - name: w
            transitions:
              - {{from: OPEN, to: IN_PROGRESS}}
              - {{from: IN_PROGRESS, to: RESOLVED}}
              - {{from: RESOLVED, to: CLOSED, set_resolution: [fixed, shipped]}}
"""


def test_resolutions_must_be_declared_in_the_catalog() -> None:
    # Trac's resolutions "must be defined in the database": here, in the catalog. With none
    # declared, Trac's five are.
    assert errors(RESOLVING.format(declared="")) == [
        "bad.yaml:7:9: action 'closed': resolution 'shipped' is not one of the catalog's "
        "resolutions (fixed, invalid, wontfix, duplicate, worksforme); declare it under "
        "`resolutions`"
    ]
    catalog = compile_yaml(RESOLVING.format(declared="resolutions: [fixed, shipped]\n        "))
    assert catalog.resolutions == ("fixed", "shipped")


def test_the_shipped_catalog_declares_its_resolutions(shipped: Catalog) -> None:
    assert shipped.resolutions[:5] == ("fixed", "invalid", "wontfix", "duplicate", "worksforme")
    assert {"completed", "canceled"} <= set(shipped.resolutions)
