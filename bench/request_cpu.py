"""CPU time per request, in process: flowdesk's ASGI app against the reference's, no HTTP server.

    .venv/bin/python bench/request_cpu.py [--requests 3000] [--concurrency 16]
                                          [--database-url postgresql+asyncpg://…]

Each app is driven by direct ASGI calls (a scope, a body, a `send` that keeps the status) from
`--concurrency` tasks on uvloop, against its own database with flowdesk's schema on the
embedded PostgreSQL (bench/.data) or the given server. What is measured is the process's CPU
time (time.process_time) per request: the Python work of the app and of asyncpg, but neither
the database server's work nor the HTTP server's (uvicorn + httptools cost both apps the
same). Unlike throughput on a shared two-core machine, this figure barely moves with the
machine's load, so it is the one to watch while making the hot paths leaner; `make bench`
remains the judge of throughput.

Scenarios: create (spread over the tenants), transition (resolve and reopen, one ticket per
task), get, list (the first page of 50 of a tenant with 60 tickets or more). The tenants' keys
are used once before measuring (flowdesk's caches fill on first use; the reference reads its
tokens at start).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).parent))

from loadbench import database, seed

ROOT = Path(__file__).resolve().parent.parent
BODY = orjson.dumps(
    {
        "title": "Printer on fire",
        "description": "The printer on the third floor is on fire again.",
        "catalog_item": "itsm_incident",
    }
)
DATABASES = {"flowdesk": "cpu_flowdesk", "reference": "cpu_reference"}

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def call(app: App, method: str, path: str, key: str, body: bytes = b"") -> tuple[int, bytes]:
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {key}".encode())]
    if body:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path.partition("?")[0],
        "raw_path": path.partition("?")[0].encode(),
        "query_string": path.partition("?")[2].encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect while the app runs
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def expect(app: App, status: int, method: str, path: str, key: str, body: bytes = b"") -> Any:
    got, answer = await call(app, method, path, key, body)
    if got != status:
        raise RuntimeError(f"{method} {path}: {got} {answer[:300]!r}")
    return orjson.loads(answer)


class Lifespan:
    """Runs an ASGI app's lifespan around the measurement."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def __aenter__(self) -> App:
        self.task = asyncio.create_task(
            self.app(
                {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                self.inbox.get,
                self.outbox.put,
            )
        )
        await self.inbox.put({"type": "lifespan.startup"})
        message = await self.outbox.get()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"startup failed: {message}")
        return self.app

    async def __aexit__(self, *exc: object) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.outbox.get()
        await self.task


async def measure(
    name: str, concurrency: int, requests: int, one: Callable[[int, int], Awaitable[None]]
) -> float:
    """CPU µs per request over `requests` requests made by `concurrency` tasks."""
    per_task = requests // concurrency

    async def worker(task: int) -> None:
        for i in range(per_task):
            await one(task, i)

    cpu = time.process_time()
    await asyncio.gather(*(worker(t) for t in range(concurrency)))
    return (time.process_time() - cpu) / (per_task * concurrency) * 1e6


Scenario = Callable[[int, int], Awaitable[None]]


async def prepare(app: App, keys: list[str], concurrency: int) -> dict[str, Scenario]:
    """Warm the app's caches, make one in-progress ticket per task; the scenarios' requests."""
    for key in keys:  # fill the caches
        await expect(app, 201, "POST", "/v1/tickets", key, BODY)
    for _ in range(60):  # a full first page for the list scenario
        await expect(app, 201, "POST", "/v1/tickets", keys[0], BODY)
    tickets: list[tuple[str, str]] = []
    for task in range(concurrency):
        key = keys[task % len(keys)]
        made = await expect(app, 201, "POST", "/v1/tickets", key, BODY)
        path = f"/v1/tickets/{made['id']}/transitions"
        await expect(app, 200, "POST", path, key, orjson.dumps({"action": "start"}))
        tickets.append((key, made["id"]))

    async def create(task: int, i: int) -> None:
        key = keys[(task * 7919 + i) % len(keys)]
        await expect(app, 201, "POST", "/v1/tickets", key, BODY)

    async def transition(task: int, i: int) -> None:
        key, ticket = tickets[task]
        action = b'{"action": "resolve"}' if i % 2 == 0 else b'{"action": "reopen"}'
        await expect(app, 200, "POST", f"/v1/tickets/{ticket}/transitions", key, action)

    async def get(task: int, _i: int) -> None:
        key, ticket = tickets[task]
        await expect(app, 200, "GET", f"/v1/tickets/{ticket}", key)

    async def list_page(_task: int, _i: int) -> None:
        page = await expect(app, 200, "GET", "/v1/tickets?limit=50", keys[0])
        assert len(page["items"]) == 50

    return {"create": create, "transition": transition, "get": get, "list": list_page}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--systems", default="flowdesk,reference", help="comma-separated")
    parser.add_argument(
        "--scenarios", default="create,transition,get,list", help="comma-separated (for profiling)"
    )
    args = parser.parse_args()
    systems = args.systems.split(",")

    server = database.start(args.database_url, ROOT / "bench" / ".data")
    await database.recreate(server, list(DATABASES.values()))
    from flowdesk.db import migrate

    for name in DATABASES.values():
        await asyncio.to_thread(migrate.upgrade, server.sqlalchemy_url(name))
    fd_keys = await seed.seed_flowdesk(server.sqlalchemy_url(DATABASES["flowdesk"]), args.tenants)
    ref_keys = await seed.seed_plain(server.dsn(DATABASES["reference"]), args.tenants, tokens=True)

    from flowdesk.app import create_app
    from flowdesk.config import Settings

    fd_app = create_app(
        Settings(database_url=server.sqlalchemy_url(DATABASES["flowdesk"]), seed_demo=False)
    )
    os.environ["REFERENCE_DSN"] = server.dsn(DATABASES["reference"])
    import reference_app

    ref_app = reference_app.create_app()

    # Both apps run at once and take turns, repetition by repetition, so that both see the
    # same state of a shared machine; the best run of each is kept (interference only ever
    # adds CPU time).
    apps = {"flowdesk": (fd_app, fd_keys), "reference": (ref_app, ref_keys)}
    figures: dict[str, dict[str, float]] = {system: {} for system in systems}
    async with contextlib.AsyncExitStack() as stack:
        work = {}
        for system in systems:
            app, keys = apps[system]
            running = await stack.enter_async_context(Lifespan(app))  # type: ignore[arg-type]
            work[system] = await prepare(running, keys, args.concurrency)
        # Even counts keep the transition tickets in_progress between repetitions.
        count = args.requests - args.requests % (2 * args.concurrency)
        for label in args.scenarios.split(","):
            for repetition in range(args.repetitions):
                order = systems if repetition % 2 == 0 else systems[::-1]
                for system in order:
                    cpu = await measure(label, args.concurrency, count, work[system][label])
                    figures[system][label] = min(cpu, figures[system].get(label, cpu))
    await database.drop(server, list(DATABASES.values()))

    print(
        f"\nCPU time per request (µs), {args.concurrency} concurrent, best of "
        f"{args.repetitions} x {args.requests}"
    )
    print(f"{'scenario':<12} {'flowdesk':>9} {'reference':>10} {'ratio':>6}")
    first = figures[systems[0]]
    for label in first:
        fd = figures.get("flowdesk", {}).get(label, float("nan"))
        ref = figures.get("reference", {}).get(label, float("nan"))
        print(f"{label:<12} {fd:>9.0f} {ref:>10.0f} {fd / ref:>6.2f}")


if __name__ == "__main__":
    uvloop.run(main())
