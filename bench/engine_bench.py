"""Benchmark one ``available_actions`` decision (not part of the test suite).

    .venv/bin/python bench/engine_bench.py [--samples N] [--batch B]

Each sample times a batch of B decisions and divides, so the timer's own cost stays out of the
figure; median and p99 are over the samples, in microseconds per decision.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from flowdesk.workflow import Actor, TicketFacts, available_actions, load_catalog

ROOT = Path(__file__).resolve().parents[1]

CASES = [
    # (label, workflow, facts, actor): "typical" = a handful of actions with role/permission checks
    (
        "incident_response RESOLVED (seed 000, roles)",
        "incident_response",
        TicketFacts(status="RESOLVED", requester="rita", owner="alex"),
        Actor("rita", frozenset({"tickets:create"})),
    ),
    (
        "itsm_default resolved (permissions)",
        "itsm_default",
        TicketFacts(status="resolved", requester="rita", owner="alex"),
        Actor("alex", frozenset({"tickets:manage", "tickets:close"})),
    ),
    (
        "platform_request IN_PROGRESS (5 actions, conditions)",
        "platform_request",
        TicketFacts(
            status="IN_PROGRESS",
            type="change",
            requester="rita",
            owner="alex",
            fields={"fix_version": "1.2"},
            links=frozenset({"blocked_by"}),
        ),
        Actor("alex", frozenset({"tickets:manage"})),
    ),
]


def measure(samples: int, batch: int) -> list[tuple[str, float, float]]:
    catalog = load_catalog([], base=ROOT / "workflows.yaml")
    results = []
    for label, name, facts, actor in CASES:
        workflow = catalog.workflow(name)
        for _ in range(min(batch, 1000)):  # warm-up
            available_actions(workflow, facts, actor)
        timings = []
        for _ in range(samples):
            start = time.perf_counter_ns()
            for _ in range(batch):
                available_actions(workflow, facts, actor)
            timings.append((time.perf_counter_ns() - start) / batch / 1000)
        timings.sort()
        p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
        results.append((label, statistics.median(timings), p99))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args(argv)
    print(f"available_actions: {args.samples} samples x {args.batch} decisions")
    for label, median, p99 in measure(args.samples, args.batch):
        print(f"  {label:<55} median {median:6.2f} us   p99 {p99:6.2f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
