"""flowdesk's workflow engine: a YAML catalog compiled into transition tables (pure: no
database, no HTTP). See docs/workflows.md for the catalog format."""

from flowdesk.vocabulary import PRIORITIES

from .diagnostics import CatalogError, Diagnostic, Pos
from .engine import action_for_target, apply, available_actions
from .loader import DEFAULT, compile_catalog, env_workflow_files, load_catalog, shipped_catalog_path
from .model import (
    CREATE,
    RESET,
    ActionOption,
    Actor,
    ApplyInputs,
    Catalog,
    CatalogItem,
    Outcome,
    Reason,
    Status,
    StatusMapMissing,
    TicketFacts,
    TransitionRefused,
    UnknownAction,
    UnknownWorkflow,
    Workflow,
    WorkflowError,
)
from .render import render_dot, render_mermaid

__all__ = [
    "CREATE",
    "DEFAULT",
    "PRIORITIES",
    "RESET",
    "ActionOption",
    "Actor",
    "ApplyInputs",
    "Catalog",
    "CatalogError",
    "CatalogItem",
    "Diagnostic",
    "Outcome",
    "Pos",
    "Reason",
    "Status",
    "StatusMapMissing",
    "TicketFacts",
    "TransitionRefused",
    "UnknownAction",
    "UnknownWorkflow",
    "Workflow",
    "WorkflowError",
    "action_for_target",
    "apply",
    "available_actions",
    "compile_catalog",
    "env_workflow_files",
    "load_catalog",
    "render_dot",
    "render_mermaid",
    "shipped_catalog_path",
]
