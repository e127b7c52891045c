"""The `flowdesk workflows` command-line contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowdesk.workflow import compile_catalog
from flowdesk.workflow.cli import workflows_cli

from .conftest import REPO, TRAC_DIR


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the shipped ./workflows.yaml
    monkeypatch.delenv("FLOWDESK_WORKFLOW_FILES", raising=False)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(workflows_cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_check_ok_and_env_files(monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("check") == (0, "ok: 8 workflows, 11 catalog items\n", "")
    monkeypatch.setenv("FLOWDESK_WORKFLOW_FILES", "examples/values-extends.yaml")
    assert run("check")[:2] == (0, "ok: 9 workflows, 12 catalog items\n")


def test_check_reports_file_line_col(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "workflows:\n  - name: x\n    extends: incident_response\n"
        "    transitions:\n      - {from: OPEN, to: NOWHERE}\n"
    )
    code, out, _ = run("check", str(bad))
    assert code == 1
    expected = "unknown status 'NOWHERE' in action 'nowhere' (statuses: OPEN, IN_PROGRESS, "
    assert out == f"{bad}:5:26: {expected}RESOLVED, CLOSED)\n"


def test_graph_formats() -> None:
    code, out, _ = run("graph", "incident_response", "--format", "mermaid")
    assert code == 0 and out.startswith("stateDiagram-v2\n")
    assert "    s_RESOLVED --> s_CLOSED: closed / role: requester\n" in out
    code, out, _ = run("graph", "itsm_default", "--format", "dot")
    assert code == 0 and out.startswith('digraph "itsm_default" {')
    assert '"resolved" -> "closed" [label="close\\nneeds: tickets:manage + tickets:close"];' in out
    assert run("graph", "nope")[0] == 2


@pytest.mark.parametrize("path", sorted(TRAC_DIR.glob("*.ini")), ids=lambda p: p.stem)
def test_import_trac_prints_a_loadable_catalog(path: Path) -> None:
    code, out, _ = run("import-trac", str(path), "--name", "imported")
    assert code == 0
    assert "imported" in compile_catalog([("out.yaml", out)]).workflows


def test_import_rt_matches_the_example() -> None:
    code, out, err = run("import-rt", "examples/rt-orders.json", "--name", "orders")
    assert code == 0
    assert out == (REPO / "examples" / "rt-orders.yaml").read_text()
    assert "warning: lifecycle 'orders': action 'pending -> delivered'" in err


def test_import_errors(tmp_path: Path) -> None:
    ini = tmp_path / "x.ini"
    ini.write_text(
        "[ticket-workflow]\ncreate = <none> -> new\nfix = new -> closed\nfix.operations = magic\n"
    )
    code, _, err = run("import-trac", str(ini))
    assert code == 1 and f"{ini}:3: action 'fix': operation 'magic'" in err
    js = tmp_path / "x.json"
    js.write_text("{nope")
    code, _, err = run("import-rt", str(js))
    assert code == 1 and f"error: {js}:1:2: invalid JSON" in err


def test_actions_json_contract() -> None:
    code, out, _ = run(
        "actions",
        "--workflow",
        "incident_response",
        "--status",
        "RESOLVED",
        "--user",
        "alex",
        "--owner",
        "alex",
        "--requester",
        "rita",
    )
    assert code == 0
    assert json.loads(out) == [
        {
            "action": "in_progress",
            "label": "in progress",
            "to": "IN_PROGRESS",
            "allowed": True,
            "reasons": [],
        },
        {
            "action": "closed",
            "label": "closed",
            "to": "CLOSED",
            "allowed": False,
            "reasons": [
                {
                    "code": "role",
                    "detail": "only the requester may do this",
                    "required": ["requester"],
                }
            ],
        },
    ]


def test_actions_for_creation_and_facts() -> None:
    code, out, _ = run("actions", "--workflow", "itsm_default", "--status", "")
    assert (code, [o["action"] for o in json.loads(out)]) == (0, ["create"])
    code, out, _ = run(
        "actions",
        "--workflow",
        "platform_request",
        "--status",
        "IN_PROGRESS",
        "--permissions",
        "tickets:manage",
        "--facts",
        '{"fields": {"fix_version": "2.0"}}',
    )
    allowed = {o["action"]: o["allowed"] for o in json.loads(out)}
    assert allowed["queue_deployment"] is True and allowed["block"] is False
    assert run("actions", "--workflow", "itsm_default", "--status", "x", "--facts", "[1]")[0] == 2


def test_apply_success_and_refusal() -> None:
    base = ["apply", "--workflow", "itsm_default", "--status", "in_progress"]
    code, out, _ = run(
        *base, "--action", "resolve", "--permissions", "tickets:manage,tickets:close"
    )
    assert (code, json.loads(out)) == (0, {"status": "resolved", "owner": None, "resolution": None})
    code, out, _ = run(*base, "--action", "resolve", "--permissions", "tickets:manage")
    assert code == 1
    assert json.loads(out) == {
        "action": "resolve",
        "allowed": False,
        "reasons": [
            {
                "code": "permission",
                "detail": "requires the permission 'tickets:close'",
                "required": ["tickets:close"],
            }
        ],
    }
    code, out, _ = run(*base, "--action", "fly")
    assert code == 1 and json.loads(out)["reasons"][0]["code"] == "unknown_action"


def test_apply_with_imported_workflow_and_inputs(tmp_path: Path) -> None:
    code, out, _ = run("import-trac", str(TRAC_DIR / "basic-workflow.ini"), "--name", "trac_basic")
    wf = tmp_path / "trac.yaml"
    wf.write_text(out)
    code, out, _ = run(
        "apply",
        "--workflows",
        str(wf),
        "--workflow",
        "trac_basic",
        "--status",
        "new",
        "--user",
        "dev",
        "--permissions",
        "TICKET_MODIFY",
        "--action",
        "reassign",
        "--set-owner",
        "ann",
    )
    assert (code, json.loads(out)) == (
        0,
        {"status": "assigned", "owner": "ann", "resolution": None},
    )
    code, out, _ = run(
        "apply",
        "--workflows",
        str(wf),
        "--workflow",
        "trac_basic",
        "--status",
        "accepted",
        "--permissions",
        "TICKET_MODIFY",
        "--action",
        "resolve",
        "--resolution",
        "fixed",
    )
    assert (code, json.loads(out)["resolution"]) == (0, "fixed")


def test_the_workflow_commands_load_no_web_or_database_stack() -> None:
    # Workflow administrators run `flowdesk workflows …` in loops and editors: the command
    # imports the engine and click, not the API, the settings or the database drivers (each
    # of which cost a tenth of a second or more to import; issue 15 measured 0.75 s).
    heavy = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "asyncpg", "pydantic", "jinja2")
    probe = f"import sys, flowdesk.cli; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""
