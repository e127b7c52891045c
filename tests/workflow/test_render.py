"""Renderers and the benchmark's smoke test."""

from __future__ import annotations

import importlib.util

from flowdesk.workflow import Catalog, render_dot, render_mermaid

from .conftest import REPO


def test_mermaid_has_every_edge_with_roles(shipped: Catalog) -> None:
    out = render_mermaid(shipped.workflow("access_request"))
    edges = [line.strip() for line in out.splitlines() if "-->" in line]
    assert edges == [
        "[*] --> s_OPEN: create",
        "s_OPEN --> s_IN_PROGRESS: in progress / role: assignee",
        "s_IN_PROGRESS --> s_RESOLVED: resolved / role: assignee",
        "s_IN_PROGRESS --> s_OPEN: open / role: any",
        "s_RESOLVED --> s_CLOSED: closed / role: requester",
        "s_CLOSED --> [*]",
    ]


def test_dot_shows_conditions_and_returns(shipped: Catalog) -> None:
    out = render_dot(shipped.workflow("platform_request"))
    label = "Queue for deployment\\nneeds: tickets:manage\\nif: field_set:fix_version"
    assert f'"IN_PROGRESS" -> "DEPLOYMENT_QUEUE" [label="{label}"];' in out
    assert '"BLOCKED" -> "PENDING" [label="Resume\\nneeds: tickets:manage"];' in out
    assert out.rstrip().endswith("}")


def test_bench_main_runs() -> None:
    spec = importlib.util.spec_from_file_location(
        "engine_bench", REPO / "bench" / "engine_bench.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--samples", "3", "--batch", "2"]) == 0
