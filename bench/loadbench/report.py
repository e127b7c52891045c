"""Medians of the runs, ratios, the targets of issue 6, and the report as Markdown and JSON."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadbench.config import SCENARIO_TEXT
from loadbench.load import Sample

TRAC_CREATES_PER_SECOND = 540  # Trac 1.6 in-process on PostgreSQL (issue 6)
MB = 1024 * 1024


@dataclass
class Point:
    """All runs of one system at one (scenario, connections, workers)."""

    samples: list[Sample] = field(default_factory=list)

    def median(self, attr: str) -> float | None:
        values = [getattr(s, attr) for s in self.samples]
        return float(statistics.median(values)) if values else None

    def errors(self) -> int:
        return sum(s.failed for s in self.samples)

    def runs(self) -> list[float]:
        return [round(s.rps, 1) for s in self.samples]


@dataclass
class Results:
    meta: dict[str, Any] = field(default_factory=dict)
    # (system, scenario, connections, workers) -> Point; pgbench uses workers 0
    points: dict[tuple[str, str, int, int], Point] = field(default_factory=dict)
    memory: dict[int, dict[str, float]] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, system: str, scenario: str, conns: int, workers: int, sample: Sample) -> None:
        self.points.setdefault((system, scenario, conns, workers), Point()).samples.append(sample)

    def point(self, system: str, scenario: str, conns: int, workers: int) -> Point | None:
        return self.points.get((system, scenario, conns, workers))


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def entries(results: Results) -> list[dict[str, Any]]:
    keys = sorted(
        {(sc, c, w) for (system, sc, c, w) in results.points if system == "flowdesk"},
        key=lambda k: (k[2], list(SCENARIO_TEXT).index(k[0]), k[1]),
    )
    out = []
    for scenario, conns, workers in keys:
        fd = results.point("flowdesk", scenario, conns, workers)
        ref = results.point("reference", scenario, conns, workers)
        pgb = results.point("pgbench", scenario, conns, 0)
        fd_rps = fd.median("rps") if fd else None
        ref_rps = ref.median("rps") if ref else None
        pg_tps = pgb.median("rps") if pgb else None
        out.append(
            {
                "id": f"{scenario} c{conns} w{workers}",
                "scenario": scenario,
                "what": SCENARIO_TEXT[scenario],
                "connections": conns,
                "workers": workers,
                "flowdesk_rps": _r(fd_rps),
                "reference_rps": _r(ref_rps),
                "ratio": _ratio(fd_rps, ref_rps),
                "pgbench_tps": _r(pg_tps),
                "ratio_pgbench": _ratio(fd_rps, pg_tps),
                "flowdesk_p50_ms": _r(fd.median("p50_ms"), 2) if fd else None,
                "flowdesk_p99_ms": _r(fd.median("p99_ms"), 2) if fd else None,
                "reference_p50_ms": _r(ref.median("p50_ms"), 2) if ref else None,
                "reference_p99_ms": _r(ref.median("p99_ms"), 2) if ref else None,
                "pgbench_p99_ms": _r(pgb.median("p99_ms"), 2) if pgb else None,
                "flowdesk_errors": fd.errors() if fd else None,
                "reference_errors": ref.errors() if ref else None,
                "flowdesk_runs_rps": fd.runs() if fd else [],
                "reference_runs_rps": ref.runs() if ref else [],
                "pgbench_runs_tps": pgb.runs() if pgb else [],
            }
        )
    return out


def _find(rows: list[dict[str, Any]], scenario: str, conns: int, workers: int) -> dict[str, Any]:
    for row in rows:
        if (row["scenario"], row["connections"], row["workers"]) == (scenario, conns, workers):
            return row
    return {}


def targets(results: Results, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(name: str, want: str, value: float | None, met: bool | None) -> None:
        out.append({"target": name, "wanted": want, "value": value, "met": met})

    spread = _find(rows, "create_spread", 32, 1)
    ratio = spread.get("ratio")
    add(
        "create, 1,000 tenants, 32 conns, 1 worker vs reference",
        ">= 0.80",
        ratio,
        None if ratio is None else ratio >= 0.8,
    )
    rps = spread.get("flowdesk_rps")
    floor = 3 * TRAC_CREATES_PER_SECOND
    add(
        f"create, 1,000 tenants, 32 conns, 1 worker vs 3x Trac ({floor}/s)",
        f">= {floor}/s",
        rps,
        None if rps is None else rps >= floor,
    )
    one = _find(rows, "create_one", 32, 1).get("ratio")
    add(
        "create, one hot tenant, 32 conns, 1 worker vs single-statement reference",
        ">= 0.80",
        one,
        None if one is None else one >= 0.8,
    )
    tr = _find(rows, "transition", 32, 1).get("ratio")
    add(
        "transition, 32 conns, 1 worker vs reference",
        ">= 0.80",
        tr,
        None if tr is None else tr >= 0.8,
    )
    for row in rows:
        if row["connections"] != 32:
            continue
        fd, ref = row["flowdesk_p99_ms"], row["reference_p99_ms"]
        value = None if fd is None or not ref else round(fd / ref, 2)
        add(
            f"p99 {row['scenario']} 32 conns {row['workers']} worker(s): flowdesk / reference",
            "<= 2.0",
            value,
            None if value is None else value <= 2.0,
        )
    mem = results.memory.get(1)
    peak = None if mem is None else mem["peak_worker_mb"]
    add(
        "RSS of the one worker, peak over the whole run",
        "< 150 MB",
        peak,
        None if peak is None else peak < 150,
    )
    return out


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}{suffix}" if value < 10 else f"{value:,.0f}{suffix}"
    return f"{value}{suffix}"


def markdown(results: Results, rows: list[dict[str, Any]], goals: list[dict[str, Any]]) -> str:
    meta = results.meta
    lines = [
        "# flowdesk load benchmark",
        "",
        f"{meta.get('started', '')} · {meta.get('machine', '')} · {meta.get('postgres', '')}",
        f"{meta.get('repetitions')} runs of {meta.get('duration_s')} s per point after "
        f"{meta.get('warmup_s')} s of warm-up; medians. rps = successful responses per second.",
        "",
        "| scenario | conns | workers | flowdesk rps | reference rps | ratio | pgbench tps | "
        "flowdesk/pgbench | flowdesk p50 / p99 ms | reference p50 / p99 ms | errors fd/ref |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['connections']} | {r['workers']} | "
            f"{_fmt(r['flowdesk_rps'])} | {_fmt(r['reference_rps'])} | {_fmt(r['ratio'])} | "
            f"{_fmt(r['pgbench_tps'])} | {_fmt(r['ratio_pgbench'])} | "
            f"{_fmt(r['flowdesk_p50_ms'])} / {_fmt(r['flowdesk_p99_ms'])} | "
            f"{_fmt(r['reference_p50_ms'])} / {_fmt(r['reference_p99_ms'])} | "
            f"{_fmt(r['flowdesk_errors'])}/{_fmt(r['reference_errors'])} |"
        )
    lines += ["", "| worker RSS peak | one worker | all workers | samples |", "|---|--:|--:|--:|"]
    for workers, mem in sorted(results.memory.items()):
        lines.append(
            f"| flowdesk, {workers} worker(s) | {mem['peak_worker_mb']:.0f} MB | "
            f"{mem['peak_total_mb']:.0f} MB | {mem['samples']:.0f} |"
        )
    lines += ["", "| target | wanted | measured | met |", "|---|---|--:|---|"]
    for g in goals:
        met = {True: "yes", False: "**no**", None: "not measured"}[g["met"]]
        lines.append(f"| {g['target']} | {g['wanted']} | {_fmt(g['value'])} | {met} |")
    for scenario, prof in results.profiles.items():
        if not prof:
            continue
        lines += [
            "",
            f"## Profile: {scenario}, one worker, 32 connections (py-spy, {prof['samples']} "
            f"samples, {prof['rps_while_profiling']:.0f} rps while sampled)",
            "",
            "By library (leaf frame): "
            + ", ".join(f"{k} {v:.0f}%" for k, v in prof["areas"].items()),
            "",
            "| function (by self time) | self % | total % |",
            "|---|--:|--:|",
        ]
        for row in prof.get("top", [])[:20]:
            lines.append(f"| `{row['frame']}` | {row['self_pct']:.1f} | {row['total_pct']:.1f} |")
        lines += ["", "| flowdesk function (by total time) | total % | self % |", "|---|--:|--:|"]
        for row in prof.get("flowdesk_total", [])[:20]:
            lines.append(f"| `{row['frame']}` | {row['total_pct']:.1f} | {row['self_pct']:.1f} |")
    return "\n".join(lines) + "\n"


def write(results: Results, out_dir: Path, stem: str = "latest") -> tuple[Path, Path, str]:
    rows = entries(results)
    goals = targets(results, rows)
    document = {
        "meta": results.meta,
        "scenarios": rows,
        "memory": {f"workers_{w}": m for w, m in sorted(results.memory.items())},
        "targets": goals,
        "profiles": results.profiles,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{stem}.json"
    md_path = out_dir / f"{stem}.md"
    text = markdown(results, rows, goals)
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    md_path.write_text(text)
    return json_path, md_path, text
