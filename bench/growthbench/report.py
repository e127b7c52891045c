"""The growth report: bench/results/growth.md (tables, then every plan) from what a run
measured, which bench/results/growth.json keeps whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from growthbench.audit import Growth
from growthbench.plans import Plan
from growthbench.serve import ONE_TICKET, Point
from growthbench.shapes import LIST_TARGET_MS, SEARCH_TARGET_MS

WRITE_FLOOR = 0.9  # a write at size keeps 90% of its small-data throughput

SCENARIO_TEXT = {
    "create_one": "create, every ticket in the big tenant",
    "create_spread": "create, a random tenant's key per request",
    "transition": "transition (resolve/reopen)",
    "get": "get a ticket",
}


@dataclass
class Run:
    meta: dict[str, Any]
    seed_steps: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    points: list[Point] = field(default_factory=list)
    pooled: list[Point] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    audit: Growth | None = None
    pages: dict[str, dict[str, int]] = field(default_factory=dict)  # label -> shape -> page


def _find(points: list[Point], scenario: str, conns: int, label: str) -> Point | None:
    return next(
        (p for p in points if (p.scenario, p.connections, p.label) == (scenario, conns, label)),
        None,
    )


def _fig(p: Point | None) -> str:
    if p is None:
        return "—"
    m = p.median
    errors = f" ({m.failed} errors)" if m.failed else ""
    return f"{m.rps:,.0f} rps, {m.p50_ms:.1f} / {m.p99_ms:.1f}{errors}"


def _ratio(big: Point | None, small: Point | None) -> float | None:
    if big is None or small is None or not small.median.rps:
        return None
    return big.median.rps / small.median.rps


def render(run: Run) -> str:
    meta = run.meta
    out = [
        "# Growth benchmark",
        "",
        f"{meta['when']} at {meta['commit']}. Big database: {meta['big_size']}; its small "
        f"twin: {meta['small_size']}. {meta['cpus']} CPUs; {meta['server']}; load average at "
        f"the start {meta['load']}. Each point: {meta['knobs']}.",
        "",
        "Figures are throughput, then p50 / p99 latency in ms, through a real `flowdesk serve`"
        " (one worker, its defaults) loaded by wrk with `make bench`'s scripts. The small and "
        "the big server (and the reference on each) run side by side and take turns at every "
        "point, so that both see the same machine.",
        "",
    ]
    if run.seed_steps:
        out += ["## Seed", ""]
        for name, steps in run.seed_steps.items():
            total = sum(s for _, s in steps)
            out += [f"{name}: {total:,.0f} s in all.", "", "| step | seconds |", "|---|--:|"]
            out += [f"| `{text}` | {secs:,.1f} |" for text, secs in steps]
            out.append("")
    if run.points:
        out += _writes(run)
        out += _lists(run)
    if run.pooled:
        out += _pooler(run)
    if run.audit is not None:
        out += _audit(run.audit)
    if run.plans:
        out += _plans_table(run.plans)
        out += ["## Plans", ""]
        for p in run.plans:
            out += [f"### {p.name}", "", "```", *p.plan, "```", ""]
    return "\n".join(out)


def _writes(run: Run) -> list[str]:
    conns = sorted({p.connections for p in run.points})
    out = [
        "## Writes and reads of one ticket",
        "",
        f"Target: at size, every write keeps {WRITE_FLOOR:.0%} of its small-data throughput. "
        "The reference (`make bench`'s raw-asyncpg ceiling) writes into the same grown tables, "
        "from tenants of its own.",
        "",
        "| scenario | conns | flowdesk small | flowdesk big | big / small | met | "
        "reference small | reference big | big / small |",
        "|---|--:|---|---|--:|---|---|---|--:|",
    ]
    for scenario in ONE_TICKET:
        for c in conns:
            small = _find(run.points, scenario, c, "flowdesk small")
            big = _find(run.points, scenario, c, "flowdesk big")
            rs = _find(run.points, scenario, c, "reference small")
            rb = _find(run.points, scenario, c, "reference big")
            ratio = _ratio(big, small)
            ref_ratio = _ratio(rb, rs)
            write = scenario != "get"
            met = "—" if ratio is None else ("yes" if ratio >= WRITE_FLOOR else "**MISS**")
            out.append(
                f"| {SCENARIO_TEXT[scenario]} | {c} | {_fig(small)} | {_fig(big)} | "
                f"{'—' if ratio is None else f'{ratio:.2f}'} | {met if write else 'n/a'} | "
                f"{_fig(rs)} | {_fig(rb)} | {'—' if ref_ratio is None else f'{ref_ratio:.2f}'} |"
            )
    return [*out, ""]


def _lists(run: Run) -> list[str]:
    shapes = [p.scenario for p in run.points if p.scenario not in ONE_TICKET]
    names = list(dict.fromkeys(shapes))
    if not names:
        return []
    plans = {p.name: p for p in run.plans}
    conns = sorted({p.connections for p in run.points})
    low, high = conns[0], conns[-1]
    small_pages = run.pages.get("flowdesk small", {})
    out = [
        "## List shapes in the big tenant",
        "",
        f"Targets: p99 under {LIST_TARGET_MS:.0f} ms at one connection in the big tenant (a "
        f"search under {SEARCH_TARGET_MS:.0f} ms), and no plan that reads more than a tenth of "
        "the tenant's tickets to return one page (counts: than all of them). `rows read` is "
        "the most ticket rows one scan in the plan produced or filtered out (plans below).",
        "",
        f"| shape | c{low} small | c{low} big | target | met | c{high} small | c{high} big | "
        "rows read |",
        "|---|---|---|--:|---|---|---|--:|",
    ]
    for name in names:
        small1 = _find(run.points, name, low, "flowdesk small")
        big1 = _find(run.points, name, low, "flowdesk big")
        target = SEARCH_TARGET_MS if name.startswith("q ") else LIST_TARGET_MS
        plan = plans.get(name)
        wide = plan is not None and plan.reads_whole_tenant
        met = (
            "—"
            if big1 is None
            else ("yes" if big1.median.p99_ms < target and not wide else "**MISS**")
        )
        page = small_pages.get(name, 1)
        note = f" (page {page}: the last)" if name.startswith("page ") and page > 1 else ""
        rows = "—" if plan is None else f"{plan.rows_read:,}{' (too many)' if wide else ''}"
        out.append(
            f"| {name} | {_fig(small1)}{note} | {_fig(big1)} | < {target:.0f} | {met} | "
            f"{_fig(_find(run.points, name, high, 'flowdesk small'))} | "
            f"{_fig(_find(run.points, name, high, 'flowdesk big'))} | {rows} |"
        )
    return [*out, ""]


def _pooler(run: Run) -> list[str]:
    out = [
        "## Through PgBouncer",
        "",
        "The big database, once straight and once through PgBouncer in transaction-pooling mode"
        " (`FLOWDESK_DATABASE_POOLER=pgbouncer`: no prepared-statement cache; the listener "
        "straight to PostgreSQL), PgBouncer keeping as many server connections as the app's "
        "pool.",
        "",
        "| scenario | conns | direct | through PgBouncer | PgBouncer / direct |",
        "|---|--:|---|---|--:|",
    ]
    for p in run.pooled:
        if p.label != "flowdesk big":
            continue
        other = _find(run.pooled, p.scenario, p.connections, "flowdesk big via PgBouncer")
        ratio = _ratio(other, p)
        out.append(
            f"| {SCENARIO_TEXT.get(p.scenario, p.scenario)} | {p.connections} | {_fig(p)} | "
            f"{_fig(other)} | {'—' if ratio is None else f'{ratio:.2f}'} |"
        )
    return [*out, ""]


def _audit(g: Growth) -> list[str]:
    out = [
        "## The audit trail's growth per ticket change",
        "",
        f"Measured over {g.changes:,} ticket changes (creates and transitions through `flowdesk "
        "serve`, each writing one audit event) in the big database: what each table grew by, "
        "per change. `ticket_events` is kept for good; outbox rows are purged once delivered "
        f"({g.outbox_rows_per_change:.2f} outbox rows per change).",
        "",
        "| table | heap bytes per change | index bytes per change |",
        "|---|--:|--:|",
    ]
    for table, grew in g.per_change.items():
        out.append(f"| {table} | {grew['heap']:,.0f} | {grew['indexes']:,.0f} |")
    return [*out, ""]


def _plans_table(plans: list[Plan]) -> list[str]:
    out = [
        "## Plans, timed in process",
        "",
        "Each shape's request timed in this process over ASGI (no HTTP server), then its most "
        "expensive statement on tickets or events run under `EXPLAIN (ANALYZE, BUFFERS)`.",
        "",
        "| shape | page | p50 ms | p99 ms | rows read | reads > a tenth of the tenant |",
        "|---|--:|--:|--:|--:|---|",
    ]
    for p in plans:
        out.append(
            f"| {p.name} | {p.page} | {p.p50_ms} | {p.p99_ms} | {p.rows_read:,} | "
            f"{'**yes**' if p.reads_whole_tenant else 'no'} |"
        )
    return [*out, ""]
