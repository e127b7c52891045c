"""``flowdesk workflows ...``: a stable command-line contract (scripts depend on it).

Exit codes: 0 success; 1 a catalog error, an import problem, or a refused/unknown action (the
JSON on stdout says which); 2 a usage error (click).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .diagnostics import CatalogError
from .engine import apply as apply_action
from .engine import available_actions
from .importers import ImportProblem, dump_catalog, import_rt, import_trac
from .loader import DEFAULT, compile_catalog, env_workflow_files, load_catalog
from .model import (
    Actor,
    ApplyInputs,
    Catalog,
    TicketFacts,
    TransitionRefused,
    UnknownAction,
    UnknownWorkflow,
    Workflow,
)
from .render import render_dot, render_mermaid

F = TypeVar("F", bound=Callable[..., Any])


def _fail_catalog(exc: CatalogError) -> None:
    for d in exc.diagnostics:
        click.echo(str(d))
    sys.exit(1)


def _load(files: tuple[str, ...], no_base: bool) -> Catalog:
    try:
        catalog = load_catalog(list(files), base=None if no_base else DEFAULT)
    except CatalogError as exc:
        _fail_catalog(exc)
        raise  # unreachable: keeps mypy's flow analysis honest
    for w in catalog.warnings:
        click.echo(str(w), err=True)
    return catalog


def _workflow(catalog: Catalog, name: str) -> Workflow:
    try:
        return catalog.workflow(name)
    except UnknownWorkflow as exc:
        raise click.UsageError(f"{exc} (have: {', '.join(catalog.workflows)})") from None


@click.group(name="workflows")
def workflows_cli() -> None:
    """Check, draw, import and exercise the workflow catalog."""


@workflows_cli.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--no-base", is_flag=True, help="Do not merge over the shipped workflows.yaml.")
def check(files: tuple[str, ...], no_base: bool) -> None:
    """Compile the catalog: the shipped one plus FILEs (default: $FLOWDESK_WORKFLOW_FILES)."""
    paths = files or tuple(env_workflow_files())
    catalog = _load(paths, no_base)
    click.echo(f"ok: {len(catalog.workflows)} workflows, {len(catalog.items)} catalog items")


_workflows_option = click.option(
    "--workflows",
    "workflow_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Values file merged over the shipped catalog (repeatable).",
)
_no_base_option = click.option("--no-base", is_flag=True, help="Skip the shipped catalog.")


@workflows_cli.command()
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid")
@_workflows_option
@_no_base_option
def graph(name: str, fmt: str, workflow_files: tuple[str, ...], no_base: bool) -> None:
    """Draw workflow NAME as Mermaid (stateDiagram-v2) or Graphviz DOT."""
    workflow = _workflow(_load(workflow_files, no_base), name)
    click.echo(render_mermaid(workflow) if fmt == "mermaid" else render_dot(workflow), nl=False)


def _emit_import(doc: dict[str, Any], warnings: list[str], source: str, kind: str) -> None:
    text = dump_catalog(doc, [f"Imported from {Path(source).name} by `flowdesk workflows {kind}`."])
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    try:  # never print a catalog flowdesk would refuse to load
        compiled = compile_catalog([(f"{source} (imported)", text)])
    except CatalogError as exc:
        for d in exc.diagnostics:
            click.echo(str(d), err=True)
        sys.exit(1)
    for d in compiled.warnings:
        click.echo(str(d), err=True)
    click.echo(text, nl=False)


def _stem(path: str) -> str:
    return Path(path).stem.replace("-", "_").removesuffix("_workflow") or "imported"


@workflows_cli.command("import-trac")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", help="Workflow name (default: from the file name).")
def import_trac_cmd(file: str, name: str | None) -> None:
    """Convert a Trac [ticket-workflow] section to flowdesk YAML on stdout."""
    try:
        doc, warnings = import_trac(
            Path(file).read_text(encoding="utf-8"), file, name or _stem(file)
        )
    except ImportProblem as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    _emit_import(doc, warnings, file, "import-trac")


@workflows_cli.command("import-rt")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", help="Workflow name, or which lifecycle of a %Lifecycles file.")
def import_rt_cmd(file: str, name: str | None) -> None:
    """Convert an RT lifecycle (RT's structure as JSON) to flowdesk YAML on stdout."""
    try:
        raw = json.loads(Path(file).read_text(encoding="utf-8"))
        doc, warnings = import_rt(raw, name, file)
    except json.JSONDecodeError as exc:
        click.echo(f"error: {file}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}", err=True)
        sys.exit(1)
    except ImportProblem as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    _emit_import(doc, warnings, file, "import-rt")


def _ticket_options(f: F) -> F:
    options = [
        _workflows_option,
        _no_base_option,
        click.option("--workflow", "workflow_name", required=True, help="Workflow name."),
        click.option("--status", required=True, help="Current status; '' = not yet created."),
        click.option("--user", default="cli", show_default=True, help="The acting user."),
        click.option("--owner", help="The ticket's assignee."),
        click.option("--requester", help="The ticket's requester."),
        click.option("--permissions", default="", help="The actor's permissions, comma-separated."),
        click.option("--type", "ticket_type", help="The ticket type."),
        click.option(
            "--facts",
            help='More facts as JSON: {"fields": {}, "answers": {}, "links": [], '
            '"approvals": [], "resolution": null, "previous_status": null}.',
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


FACT_KEYS = {"fields", "answers", "links", "approvals", "resolution", "previous_status"}


def _facts(opts: dict[str, Any]) -> tuple[Catalog, Workflow, TicketFacts, Actor]:
    catalog = _load(opts["workflow_files"], opts["no_base"])
    workflow = _workflow(catalog, opts["workflow_name"])
    extra: dict[str, Any] = {}
    if opts["facts"]:
        try:
            extra = json.loads(opts["facts"])
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"invalid JSON: {exc.msg}", param_hint="--facts") from None
        if not isinstance(extra, dict) or set(extra) - FACT_KEYS:
            raise click.BadParameter(
                f"an object with keys among {sorted(FACT_KEYS)}", param_hint="--facts"
            )
    facts = TicketFacts(
        status=opts["status"] or None,
        type=opts["ticket_type"],
        requester=opts["requester"],
        owner=opts["owner"],
        resolution=extra.get("resolution"),
        fields=dict(extra.get("fields") or {}),
        answers=dict(extra.get("answers") or {}),
        links=frozenset(extra.get("links") or ()),
        approvals=frozenset(extra.get("approvals") or ()),
        previous_status=extra.get("previous_status"),
    )
    perms = frozenset(p.strip() for p in opts["permissions"].split(",") if p.strip())
    return catalog, workflow, facts, Actor(opts["user"], perms)


@workflows_cli.command()
@_ticket_options
def actions(**opts: Any) -> None:
    """Every action out of STATUS for the actor, in order, as JSON."""
    _, workflow, facts, actor = _facts(opts)
    options = available_actions(workflow, facts, actor)
    click.echo(json.dumps([o.to_dict() for o in options], indent=2))


@workflows_cli.command()
@_ticket_options
@click.option("--action", "action_name", required=True, help="The action to apply.")
@click.option("--set-owner", help="The owner, for set_owner / may_set_owner.")
@click.option("--resolution", help="The resolution, for set_resolution.")
@click.option("--comment", help="The comment, when the action's update type requires one.")
def apply(
    action_name: str,
    set_owner: str | None,
    resolution: str | None,
    comment: str | None,
    **opts: Any,
) -> None:
    """Apply ACTION: the new status, owner and resolution as JSON, or the refusal."""
    _, workflow, facts, actor = _facts(opts)
    try:
        outcome = apply_action(
            workflow,
            action_name,
            facts,
            actor,
            ApplyInputs(owner=set_owner, resolution=resolution, comment=comment),
        )
    except TransitionRefused as exc:
        click.echo(json.dumps(exc.to_dict(), indent=2))
        sys.exit(1)
    except UnknownAction as exc:
        reason = {"code": "unknown_action", "detail": str(exc)}
        click.echo(
            json.dumps({"action": action_name, "allowed": False, "reasons": [reason]}, indent=2)
        )
        sys.exit(1)
    click.echo(
        json.dumps(
            {"status": outcome.status, "owner": outcome.owner, "resolution": outcome.resolution},
            indent=2,
        )
    )
