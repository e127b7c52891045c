"""Getting a server ready for the load over its own HTTP API: the tickets the transition and
get scenarios use, the hot tenant's first page, a check of every scenario's request, and
putting transition tickets back in_progress between runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

BODY = {
    "title": "Printer on fire",
    "description": "The printer on the third floor is on fire again.",
    "catalog_item": "itsm_incident",
}


class HarnessError(RuntimeError):
    pass


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _expect(response: httpx.Response, status: int, what: str) -> dict[str, Any]:
    if response.status_code != status:
        raise HarnessError(
            f"{what}: expected {status}, got {response.status_code}: {response.text[:500]}"
        )
    body: dict[str, Any] = response.json()
    return body


async def _gather_limited(jobs: list[Callable[[], Awaitable[None]]], limit: int = 8) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[None]]) -> None:
        async with semaphore:
            await job()

    await asyncio.gather(*(run(job) for job in jobs))


async def prepare(base_url: str, keys: list[str], tickets: int, hot: int) -> list[str]:
    """Create `tickets` tickets moved to in_progress, ticket k in tenant k % len(keys), and
    return their "KEY TICKET_ID" lines; give the hot tenant (keys[0]) `hot` more tickets."""
    lines = [""] * tickets
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def one(k: int) -> None:
            key = keys[k % len(keys)]
            made = _expect(
                await client.post("/v1/tickets", json=BODY, headers=_auth(key)), 201, "create"
            )
            path = f"/v1/tickets/{made['id']}/transitions"
            moved = _expect(
                await client.post(path, json={"action": "start"}, headers=_auth(key)),
                200,
                "transition start",
            )
            if moved.get("status") != "in_progress":
                raise HarnessError(f"start did not move the ticket to in_progress: {moved}")
            lines[k] = f"{key} {made['id']}"

        async def hot_one(_: int) -> None:
            _expect(
                await client.post("/v1/tickets", json=BODY, headers=_auth(keys[0])), 201, "create"
            )

        jobs: list[Callable[[], Awaitable[None]]] = [lambda k=k: one(k) for k in range(tickets)]
        jobs += [lambda i=i: hot_one(i) for i in range(hot)]
        await _gather_limited(jobs)
    return lines


async def warm(base_url: str, keys: list[str], passes: int) -> None:
    """One request per key through the ticket gate, `passes` times: the reference reads every
    token into a dictionary when it starts, flowdesk's key and licence caches fill on first
    use; this measures both in their steady state. (With several workers the kernel picks the
    worker per connection, so more passes than workers warm each worker's cache with high
    likelihood; a key still cold costs one lookup, once.)"""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def one(key: str) -> None:
            _expect(await client.get("/v1/catalog", headers=_auth(key)), 200, "warm")

        for _ in range(passes):
            await _gather_limited([lambda k=k: one(k) for k in keys], limit=16)


async def check(base_url: str, keys: list[str], tickets: list[str]) -> None:
    """One request of each kind the scenarios send, with the answers they must get."""
    key, ticket = tickets[0].split()
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        _expect(await client.post("/v1/tickets", json=BODY, headers=_auth(keys[-1])), 201, "create")
        path = f"/v1/tickets/{ticket}/transitions"
        for action in ("resolve", "reopen"):
            _expect(
                await client.post(path, json={"action": action}, headers=_auth(key)),
                200,
                f"transition {action}",
            )
        _expect(await client.get(f"/v1/tickets/{ticket}", headers=_auth(key)), 200, "get")
        page = _expect(
            await client.get("/v1/tickets", params={"limit": 50}, headers=_auth(keys[0])),
            200,
            "list",
        )
        if len(page.get("items", [])) != 50:
            raise HarnessError(f"the hot tenant's page has {len(page.get('items', []))} items")


async def reset(base_url: str, tickets: list[str]) -> int:
    """Move every transition ticket back to in_progress (a run may stop between resolve and
    reopen); returns how many needed it."""
    pairs = [line.split() for line in tickets]
    moved = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def one(key: str, ticket: str) -> None:
            nonlocal moved
            current = _expect(
                await client.get(f"/v1/tickets/{ticket}", headers=_auth(key)), 200, "get"
            )
            action = {"resolved": "reopen", "open": "start"}.get(current["status"])
            if action is None:
                return
            path = f"/v1/tickets/{ticket}/transitions"
            _expect(
                await client.post(path, json={"action": action}, headers=_auth(key)),
                200,
                f"reset {action}",
            )
            moved += 1

        await _gather_limited([lambda k=k, t=t: one(k, t) for k, t in pairs])
    return moved
