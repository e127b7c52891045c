"""The growth benchmark over real HTTP: `flowdesk serve` processes (and the reference app of
`make bench`) on the big database and on its small twin, loaded by wrk with `make bench`'s own
scripts. Every point runs each system in turn, alternating which goes first, so that the big
and the small figures see the same machine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import asyncpg
import httpx
from loadbench import prepare, servers
from loadbench.load import Sample, run_wrk
from loadbench.seed import seed_plain

from growthbench.seed import asyncpg_url
from growthbench.shapes import Resolved, big_tenant_subjects, list_shapes, resolve

TICKETS_PER_CONNECTION = 4


@dataclass
class Knobs:
    connections: list[int]
    duration: int  # seconds per measured run
    warmup: int  # seconds of load before a point's runs
    repetitions: int  # runs per point and system; the median is reported


@dataclass
class Target:
    """One server under test and what its scripts read."""

    label: str  # e.g. "flowdesk big"
    server: servers.ServerProcess
    keys_file: Path  # admin keys, the big (hot) tenant's first
    tickets_file: Path  # "KEY TICKET_ID" lines of in_progress tickets
    tickets: list[str]
    urls: dict[str, Resolved] = field(default_factory=dict)  # list shape name -> its page


@dataclass
class Point:
    scenario: str
    connections: int
    label: str
    median: Sample
    runs: list[Sample]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# The scenarios on one ticket at a time: the writes, and a get.
ONE_TICKET = ["create_one", "create_spread", "transition", "get"]


async def start_flowdesk(
    label: str,
    url: str,
    keys: list[str],
    work: Path,
    tickets: int,
    deep: bool,
    settings: dict[str, str] | None = None,
) -> Target:
    """`flowdesk serve` (one worker, as `make bench`'s main points) on `url`; `deep`: the big
    tenant has the 1,000 pages the deepest list shape walks to."""
    server = await asyncio.to_thread(
        servers.start_flowdesk, asyncpg_url(url), 1, work / "logs", settings
    )
    return await _ready(label, server, keys, work, tickets, deep)


async def start_reference(label: str, url: str, work: Path, tickets: int) -> Target:
    """The reference app of `make bench` on the same database: its own small tenants (made on
    first use), writing into the same, grown, tables."""
    tokens = await _reference_tokens(url) or await seed_plain(url, 1000, tokens=True)
    # Its pool as large as flowdesk's (20): four servers at once stay inside PostgreSQL's
    # default max_connections of 100.
    server = await asyncio.to_thread(servers.start_reference, url, 1, 20, work / "logs")
    return await _ready(label, server, tokens, work, tickets, deep=None)


async def _reference_tokens(url: str) -> list[str]:
    """The reference's tokens if an earlier run made them (`--reuse`), else none."""
    conn = await asyncpg.connect(url)
    try:
        if await conn.fetchval("SELECT to_regclass('ref_tokens')") is None:
            return []
        rows = await conn.fetch("SELECT token FROM ref_tokens ORDER BY tenant_id")
    finally:
        await conn.close()
    return [r["token"] for r in rows]


async def _ready(
    label: str,
    server: servers.ServerProcess,
    keys: list[str],
    work: Path,
    tickets: int,
    deep: bool | None,
) -> Target:
    """Warm the server's key caches, prepare its transition tickets and, unless `deep` is None
    (the reference serves no list shapes), resolve every list shape to its URL."""
    slug = label.replace(" ", "-")
    keys_file = work / f"{slug}.keys"
    keys_file.write_text("\n".join(keys) + "\n")
    try:
        if deep is not None:  # the reference reads every token when it starts
            await prepare.warm(server.base_url, keys, passes=1)  # one worker: one pass
        lines = await prepare.prepare(server.base_url, keys, tickets, hot=0)
        tickets_file = work / f"{slug}.tickets"
        tickets_file.write_text("\n".join(lines) + "\n")
        target = Target(label, server, keys_file, tickets_file, lines)
        if deep is not None:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
                requester, event_ticket = await big_tenant_subjects(client, keys[0])
                for shape in list_shapes(requester, event_ticket, deep):
                    target.urls[shape.name] = await resolve(client, keys[0], shape)
    except BaseException:
        server.stop()
        raise
    return target


def _wrk_args(target: Target, scenario: str) -> tuple[str, list[str]]:
    if scenario == "create_one":
        return "create.lua", [str(target.keys_file), "one"]
    if scenario == "create_spread":
        return "create.lua", [str(target.keys_file), "spread"]
    if scenario == "transition":
        return "transition.lua", [str(target.tickets_file), str(TICKETS_PER_CONNECTION)]
    if scenario == "get":
        return "get.lua", [str(target.tickets_file)]
    return "path.lua", [str(target.keys_file), target.urls[scenario].url]


async def measure(
    scenarios: list[str],
    targets: list[Target],
    knobs: Knobs,
    log: Callable[[str], None] = print,
) -> list[Point]:
    """Every scenario at every connection count on every target, alternating targets."""
    points: list[Point] = []
    for scenario in scenarios:
        for conns in knobs.connections:
            runs: dict[str, list[Sample]] = {t.label: [] for t in targets}
            if knobs.warmup:
                for target in targets:
                    await _once(target, scenario, conns, knobs.warmup)
            for rep in range(knobs.repetitions):
                order = targets if rep % 2 == 0 else list(reversed(targets))
                for target in order:
                    runs[target.label].append(await _once(target, scenario, conns, knobs.duration))
            for target in targets:
                samples = runs[target.label]
                point = Point(scenario, conns, target.label, _median(samples), samples)
                points.append(point)
                m = point.median
                failed = f"  ERRORS {m.errors}" if m.failed else ""
                log(
                    f"  {scenario:42.42} c{conns:<3} {target.label:26} {m.rps:8.1f} rps  "
                    f"p50 {m.p50_ms:7.1f}  p99 {m.p99_ms:7.1f} ms{failed}"
                )
    return points


async def _once(target: Target, scenario: str, conns: int, seconds: int) -> Sample:
    if scenario == "transition":
        await prepare.reset(target.server.base_url, target.tickets)
        await asyncio.sleep(0.5)  # requests wrk left in flight land first
    script, args = _wrk_args(target, scenario)
    return await asyncio.to_thread(run_wrk, target.server.base_url, script, args, conns, seconds)


def _median(samples: list[Sample]) -> Sample:
    """The run of median throughput, with its latencies (of two runs, the slower)."""
    return sorted(samples, key=lambda s: s.rps)[(len(samples) - 1) // 2]


def stop(targets: list[Target]) -> None:
    for target in targets:
        target.server.stop()
