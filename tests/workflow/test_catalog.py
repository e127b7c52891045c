"""Loading: the shipped file and its packaged copy, values files, extends, env, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowdesk.workflow import (
    Actor,
    Catalog,
    CatalogError,
    TicketFacts,
    available_actions,
    env_workflow_files,
    load_catalog,
    shipped_catalog_path,
)

from .conftest import REPO, compile_yaml

PACKAGED = REPO / "src" / "flowdesk" / "workflow" / "workflows.yaml"


def test_packaged_copy_is_identical_to_the_shipped_file() -> None:
    assert PACKAGED.read_bytes() == (REPO / "workflows.yaml").read_bytes()


def test_shipped_path_prefers_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(REPO)
    assert shipped_catalog_path() == Path("workflows.yaml")
    monkeypatch.chdir(tmp_path)
    assert shipped_catalog_path().resolve() == PACKAGED.resolve()
    assert set(load_catalog([]).workflows) >= {"incident_response", "itsm_default"}


def test_shipped_catalog_compiles_without_warnings(shipped: Catalog) -> None:
    assert list(shipped.workflows) == [
        "incident_response",
        "service_request",
        "change_request",
        "problem_investigation",
        "access_request",
        "itsm_default",
        "platform_request",
        "rt_default",
    ]
    assert shipped.warnings == ()
    debug = shipped.items["platform_debug"]
    assert (debug.type, debug.workflow, debug.default_priority) == (
        "debug",
        "platform_request",
        "HIGH",
    )
    assert {i.workflow for i in shipped.items.values()} == set(shipped.workflows)
    assert shipped.workflow("itsm_default").statuses["cancelled"].category == "inactive"
    assert len(shipped.workflow("platform_request").statuses) == 9


def test_values_file_extends_and_changes_one_role() -> None:
    catalog = load_catalog(
        [REPO / "examples" / "values-extends.yaml"], base=REPO / "workflows.yaml"
    )
    strict = catalog.workflow("incident_response_strict")
    assert strict.display_name == "Incident Response (requester re-opens)"
    facts = TicketFacts(status="RESOLVED", requester="rita", owner="alex")
    by = {
        u: {o.action: o.allowed for o in available_actions(strict, facts, Actor(u))}
        for u in ("rita", "alex")
    }
    assert by == {
        "rita": {"in_progress": True, "closed": True},
        "alex": {"in_progress": False, "closed": False},
    }
    base = catalog.workflow("incident_response")  # untouched
    alex = {o.action: o.allowed for o in available_actions(base, facts, Actor("alex"))}
    assert alex["in_progress"] is True
    assert catalog.items["security_incident"].default_priority == "CRITICAL"


def test_same_name_replaces_and_remove_drops(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        "workflows:\n"
        "  - name: service_request\n"
        "    extends: service_request\n"
        "    transitions:\n"
        "      - {from: RESOLVED, to: IN_PROGRESS, remove: true}\n"
        "  - name: change_request\n"
        "    statuses: [{name: NEW, category: initial}, {name: DONE, category: inactive}]\n"
        "    transitions:\n"
        "      - {from: NEW, to: DONE, role: any}\n"
    )
    catalog = load_catalog([values], base=REPO / "workflows.yaml")
    sr = catalog.workflow("service_request")
    assert [o.to for o in available_actions(sr, TicketFacts(status="RESOLVED"), Actor("a"))] == [
        "CLOSED"
    ]
    assert sr.display_name == "Service Request"  # inherited
    cr = catalog.workflow("change_request")
    assert cr.display_name == "change_request"  # replaced wholesale: nothing inherited
    assert list(cr.statuses) == ["NEW", "DONE"]
    assert [a.to for a in cr.actions if a.name != "create"] == ["DONE"]


def test_remove_of_a_missing_transition_is_an_error(tmp_path: Path) -> None:
    values = tmp_path / "v.yaml"
    values.write_text(
        "workflows:\n  - name: x\n    extends: access_request\n    transitions:\n"
        "      - {from: RESOLVED, to: IN_PROGRESS, remove: true}\n"
    )
    with pytest.raises(CatalogError) as err:
        load_catalog([values], base=REPO / "workflows.yaml")
    assert str(err.value) == (
        f"{values}:5:9: extends: no transition ('in_progress', ('RESOLVED',)) in the base to remove"
    )


def test_seed_000_list_form_is_accepted() -> None:
    catalog = compile_yaml(
        """
        - name: incident_response
          displayName: "Incident Response"
          transitions:
            - {from: OPEN,        to: IN_PROGRESS, role: assignee}
            - {from: IN_PROGRESS, to: RESOLVED,    role: assignee}
            - {from: RESOLVED,    to: CLOSED,      role: requester}
            - {from: RESOLVED,    to: IN_PROGRESS, role: any}
        """
    )
    assert catalog.workflow("incident_response").display_name == "Incident Response"


def test_env_files_and_unreadable_file(tmp_path: Path) -> None:
    assert env_workflow_files({"FLOWDESK_WORKFLOW_FILES": "a.yaml, b.yaml,"}) == [
        "a.yaml",
        "b.yaml",
    ]
    assert env_workflow_files({}) == []
    with pytest.raises(CatalogError, match=r"nope.yaml:0:0: cannot read: No such file"):
        load_catalog([tmp_path / "nope.yaml"], base=None)


def test_errors_name_the_values_file_not_the_base(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        "workflows:\n  - name: y\n    extends: incident_response\n    transitions:\n"
        "      - {from: RESOLVED, to: REOPENED}\n"
    )
    with pytest.raises(CatalogError) as err:
        load_catalog([values], base=REPO / "workflows.yaml")
    (diag,) = err.value.diagnostics
    assert (diag.file, diag.line, diag.column) == (str(values), 5, 30)
    assert diag.message.startswith("unknown status 'REOPENED' in action 'reopened'")
