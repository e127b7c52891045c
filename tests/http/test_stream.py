"""GET /v1/events/stream: live ticket changes over Server-Sent Events, across processes.

Two real `flowdesk serve` processes on the test database: changes are made through process 1
(or the test's ASGI app) and streams are read on process 2, so every event travels through
PostgreSQL's NOTIFY and process 2's one listening connection. The processes send a heartbeat
every 0.3 s and allow 2 streams per key.

No test waits for an absence: NOTIFYs arrive in commit order, and a stream's events keep it,
so a test that must show an event did *not* arrive makes a later change the stream does see,
and checks what came before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from flowdesk.tickets.live import REPLAY_MAX_AGE
from tests.servers import free_port, start_serve, stop, wait_healthy
from tests.sql import fetchval
from tests.support import Member, TenantCtx, bearer, new_tenant, problem_type
from tests.tickets.conftest import AGENT

PATIENCE = 20.0  # seconds an expected event may take on a shared machine
HEARTBEAT = "0.3"
MAX_PER_KEY = 2


@dataclass
class Serve:
    base: str
    proc: subprocess.Popen[bytes]
    log: Path


def _start(database_url: str, tmp: Path, name: str) -> Serve:
    port = free_port()
    log = tmp / f"{name}.log"
    proc = start_serve(
        port,
        log,
        FLOWDESK_DATABASE_URL=database_url,
        FLOWDESK_DATA_DIR=str(tmp / name),
        FLOWDESK_SEED_DEMO="false",
        FLOWDESK_RELAY_POLL_SECONDS="0",
        FLOWDESK_STREAM_HEARTBEAT_SECONDS=HEARTBEAT,
        FLOWDESK_STREAM_MAX_PER_KEY=str(MAX_PER_KEY),
    )
    wait_healthy(proc, port, log)
    return Serve(f"http://127.0.0.1:{port}", proc, log)


@pytest.fixture(scope="module")
def processes(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Serve, Serve]]:
    tmp = tmp_path_factory.mktemp("stream")
    one = _start(database_url, tmp, "one")
    try:
        two = _start(database_url, tmp, "two")
    except BaseException:
        stop(one.proc)
        raise
    yield one, two
    for serve in (one, two):
        assert stop(serve.proc) == 0, serve.log.read_text()


@pytest.fixture
async def p1(processes: tuple[Serve, Serve]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=processes[0].base, timeout=PATIENCE) as c:
        yield c


@pytest.fixture
async def p2(processes: tuple[Serve, Serve]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=processes[1].base, timeout=PATIENCE) as c:
        yield c


@dataclass
class Desk:
    tenant: TenantCtx
    agent: Member
    alice: Member  # a requester
    bob: Member  # another requester


@pytest.fixture
async def desk(app: FastAPI, client: httpx.AsyncClient) -> Desk:
    tenant = await new_tenant(app, client)
    return Desk(
        tenant,
        await tenant.user(*AGENT),
        await tenant.user("tickets:create"),
        await tenant.user("tickets:create"),
    )


# --- reading a stream ------------------------------------------------------------------------


@dataclass
class Event:
    id: str | None
    event: str
    data: dict[str, Any]


@dataclass
class Reader:
    """A stream being read in the background: its events and comments, as they come."""

    response: httpx.Response
    events: list[Event] = field(default_factory=list)
    comments: int = 0
    ended: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        fields: dict[str, str] = {}
        try:
            async for line in self.response.aiter_lines():
                if line.startswith(":"):
                    self.comments += 1
                elif line == "":
                    if "event" in fields or "data" in fields:
                        self.events.append(
                            Event(
                                fields.get("id"),
                                fields.get("event", "message"),
                                orjson.loads(fields.get("data", "{}")),
                            )
                        )
                    fields = {}
                else:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                self._changed.set()
        finally:
            self.ended = True
            self._changed.set()

    async def until(self, what: str, check: Any) -> Any:
        """Waits until check(self) is truthy; returns it."""
        async with _timeout(f"{what}; the stream had {self.events}"):
            while True:
                result = check(self)
                if result:
                    return result
                if self.ended:
                    raise AssertionError(f"the stream ended before {what}: {self.events}")
                self._changed.clear()
                await self._changed.wait()

    async def event_for(self, ticket_id: str, kind: str) -> Event:
        def find(r: Reader) -> Event | None:
            return next(
                (e for e in r.events if e.data.get("ticket_id") == ticket_id and e.event == kind),
                None,
            )

        event: Event = await self.until(f"{kind} of {ticket_id}", find)
        return event

    def tickets_seen(self) -> set[str]:
        return {str(e.data["ticket_id"]) for e in self.events if "ticket_id" in e.data}


@contextlib.asynccontextmanager
async def _timeout(what: str) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(PATIENCE):
            yield
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@contextlib.asynccontextmanager
async def reading(
    client: httpx.AsyncClient, member: Member, last_event_id: str | None = None
) -> AsyncIterator[Reader]:
    headers = {**member.headers, "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with client.stream("GET", "/v1/events/stream", headers=headers) as r:
        assert r.status_code == 200, (await r.aread()).decode()
        assert r.headers["content-type"].startswith("text/event-stream")
        reader = Reader(r)
        task = asyncio.create_task(reader.run())
        try:
            # The opening frame (retry:) has come: the stream is subscribed.
            await reader.until("the stream opens", lambda r: r.comments or r.events or r.ended)
            await asyncio.sleep(0)
            yield reader
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await task


async def _open(client: httpx.AsyncClient, by: Member, title: str = "Broken") -> dict[str, Any]:
    r = await client.post(
        "/v1/tickets", json={"title": title, "catalog_item": "itsm_incident"}, headers=by.headers
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _comment(
    client: httpx.AsyncClient, ticket: dict[str, Any], by: Member, visibility: str
) -> None:
    r = await client.post(
        f"/v1/tickets/{ticket['id']}/comments",
        json={"body": f"an {visibility} note", "visibility": visibility},
        headers=by.headers,
    )
    assert r.status_code == 201, r.text


# --- the tests -------------------------------------------------------------------------------


async def test_a_change_through_one_process_reaches_a_stream_on_the_other(
    p1: httpx.AsyncClient, p2: httpx.AsyncClient, desk: Desk
) -> None:
    async with reading(p2, desk.agent) as stream:
        ticket = await _open(p1, desk.alice)
        created = await stream.event_for(ticket["id"], "created")
        assert created.data == {
            "event_id": int(created.id or 0),
            "ticket_id": ticket["id"],
            "number": ticket["number"],
            "kind": "created",
            "version": ticket["version"],
            "at": created.data["at"],
        }
        r = await p1.patch(
            f"/v1/tickets/{ticket['id']}",
            json={"title": "Renamed by an agent"},
            headers={**desk.agent.headers, "If-Match": f'"{ticket["version"]}"'},
        )
        assert r.status_code == 200, r.text
        version = r.json()["version"]
        assert version == ticket["version"] + 1
        changed: Event = await stream.until(
            "the change",
            lambda s: next((e for e in s.events if e.data.get("version") == version), None),
        )
        assert changed.data["ticket_id"] == ticket["id"]
        assert changed.event == changed.data["kind"] != "created"
        assert int(changed.id or 0) > int(created.id or 0)
        # The agent sees internal notes too.
        await _comment(p1, ticket, desk.agent, "internal")
        await stream.event_for(ticket["id"], "commented")


async def test_a_requester_sees_only_their_tickets_and_no_internal_events(
    p1: httpx.AsyncClient, p2: httpx.AsyncClient, desk: Desk
) -> None:
    async with reading(p2, desk.alice) as alice, reading(p2, desk.bob) as bob:
        theirs = await _open(p1, desk.alice, "Alice's")
        await alice.event_for(theirs["id"], "created")
        await _comment(p1, theirs, desk.agent, "internal")
        await _comment(p1, theirs, desk.agent, "external")
        # The external note comes after the internal one: by then the internal one would have.
        await alice.until(
            "the external note", lambda r: [e for e in r.events if e.event == "commented"]
        )
        assert [e.event for e in alice.events if e.event != "reset"] == ["created", "commented"]
        # Bob's own ticket, made after all of Alice's changes, is the first thing he sees.
        his = await _open(p1, desk.bob, "Bob's")
        await bob.event_for(his["id"], "created")
        assert bob.tickets_seen() == {his["id"]}
        assert his["id"] not in alice.tickets_seen()


async def test_a_stream_resumes_from_last_event_id(
    p1: httpx.AsyncClient, p2: httpx.AsyncClient, desk: Desk
) -> None:
    async with reading(p2, desk.agent) as stream:
        first = await _open(p1, desk.alice, "first")
        seen = await stream.event_for(first["id"], "created")
    # Missed while away: one ticket of Alice, an internal note; neither is lost.
    missed = await _open(p1, desk.alice, "missed")
    await _comment(p1, missed, desk.agent, "internal")
    async with reading(p2, desk.agent, last_event_id=seen.id) as stream:
        await stream.event_for(missed["id"], "commented")
        assert [(e.data["ticket_id"], e.event) for e in stream.events[:2]] == [
            (missed["id"], "created"),
            (missed["id"], "commented"),
        ]
        # Then live, with nothing twice.
        later = await _open(p1, desk.alice, "later")
        await stream.event_for(later["id"], "created")
        ids = [e.id for e in stream.events]
        assert len(ids) == len(set(ids)) == 3
    # A requester resumes with their own view of the same trail.
    async with reading(p2, desk.alice, last_event_id=seen.id) as stream:
        await stream.event_for(later["id"], "created")
        assert [e.event for e in stream.events] == ["created", "created"]  # no internal note


async def test_an_unknown_or_bad_last_event_id(p2: httpx.AsyncClient, desk: Desk) -> None:
    # Not an event of this tenant (or gone): the client is told to reload.
    async with reading(p2, desk.agent, last_event_id="999999999999") as stream:
        await stream.until("a reset", lambda r: [e for e in r.events if e.event == "reset"])
    r = await p2.get(
        "/v1/events/stream", headers={**desk.agent.headers, "Last-Event-ID": "yesterday"}
    )
    assert r.status_code == 422
    assert problem_type(r) == "validation-error"


async def test_another_tenants_event_id_is_not_a_resume_point(
    p1: httpx.AsyncClient,
    p2: httpx.AsyncClient,
    desk: Desk,
    app: FastAPI,
    client: httpx.AsyncClient,
) -> None:
    other = await new_tenant(app, client)
    async with reading(p2, other.admin) as theirs:
        ticket = await _open(p1, other.admin)
        foreign = await theirs.event_for(ticket["id"], "created")
    async with reading(p2, desk.agent, last_event_id=foreign.id) as stream:
        await stream.until("a reset", lambda r: [e for e in r.events if e.event == "reset"])
        assert stream.tickets_seen() == set()
    assert REPLAY_MAX_AGE.total_seconds() == 3600  # the documented window


async def test_streams_per_key_are_capped(
    p1: httpx.AsyncClient, p2: httpx.AsyncClient, desk: Desk
) -> None:
    async with reading(p2, desk.bob), reading(p2, desk.bob):
        r = await p2.get("/v1/events/stream", headers=desk.bob.headers)
        assert r.status_code == 429
        assert problem_type(r) == "rate-limited"
        assert "retry-after" in r.headers
        # Another key of the same user has a count of its own; so has another server.
        async with reading(p1, desk.bob):
            pass
    # Closed streams give their places back (as soon as the server hears the client left).
    async with asyncio.timeout(PATIENCE):
        while True:
            async with p2.stream("GET", "/v1/events/stream", headers=desk.bob.headers) as r:
                if r.status_code == 200:
                    break
            await asyncio.sleep(0.1)


async def test_nothing_is_lost_while_the_listening_connection_is_down(
    p1: httpx.AsyncClient, p2: httpx.AsyncClient, desk: Desk, app: FastAPI
) -> None:
    """The listener's connection is killed; what commits before it is back is read from the
    audit trail once it is (the stream catches up after the last event it sent)."""
    async with reading(p2, desk.agent) as stream:
        first = await _open(p1, desk.alice, "before")
        await stream.event_for(first["id"], "created")
        killed = await fetchval(
            app,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'flowdesk-listener' AND datname = current_database()",
        )
        assert killed
        during = await _open(p1, desk.alice, "while deaf")
        await stream.event_for(during["id"], "created")
        after = await _open(p1, desk.alice, "after")
        await stream.event_for(after["id"], "created")
        created = [e.data["ticket_id"] for e in stream.events if e.event == "created"]
        assert created == [first["id"], during["id"], after["id"]]


async def test_heartbeats_keep_an_idle_stream_open(p2: httpx.AsyncClient, desk: Desk) -> None:
    async with reading(p2, desk.alice) as stream:
        await stream.until("three heartbeats", lambda r: r.comments >= 3)
        assert stream.events == []


async def test_a_stream_needs_a_key_with_tickets_read(p2: httpx.AsyncClient, desk: Desk) -> None:
    r = await p2.get("/v1/events/stream")
    assert r.status_code == 401
    writer = await desk.tenant.key(desk.alice.id, ["tickets:write"])
    r = await p2.get("/v1/events/stream", headers=bearer(writer))
    assert r.status_code == 403


async def test_streams_end_when_the_server_stops(
    database_url: str, tmp_path: Path, desk: Desk
) -> None:
    serve = _start(database_url, tmp_path, "stopping")
    try:
        async with (
            httpx.AsyncClient(base_url=serve.base, timeout=PATIENCE) as c,
            reading(c, desk.agent) as one,
            reading(c, desk.alice) as two,
        ):
            serve.proc.send_signal(signal.SIGTERM)
            await one.until("the stream ends", lambda r: r.ended)
            await two.until("the stream ends", lambda r: r.ended)
        code = await asyncio.to_thread(serve.proc.wait, PATIENCE)
    finally:
        if serve.proc.poll() is None:
            stop(serve.proc)
    assert code == 0
    log = serve.log.read_text()
    assert "graceful shutdown exceeded" not in log, log


def test_the_payload_of_a_notification_is_what_a_stream_needs() -> None:
    """The trigger's payload parses into the frame a stream sends (flowdesk.tickets.live)."""
    from flowdesk.tickets.live import parse_payload

    ticket, tenant, requester = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    payload = orjson.dumps(
        {
            "id": 42,
            "tenant_id": str(tenant),
            "ticket_id": str(ticket),
            "kind": "transitioned",
            "visibility": "external",
            "requester_id": str(requester),
            "prefix": "TKT",
            "number": 1234567,
            "version": 3,
            "at": "2026-12-02T10:00:00.5+01:00",
        }
    ).decode()
    change = parse_payload(payload)
    head, _, data = change.frame.decode().rstrip("\n").rpartition("\n")
    assert head == "id: 42\nevent: transitioned"
    assert orjson.loads(data.removeprefix("data: ")) == {
        "event_id": 42,
        "ticket_id": str(ticket),
        "number": "TKT-1234567",
        "kind": "transitioned",
        "version": 3,
        "at": "2026-12-02T09:00:00.500000+00:00",
    }
    assert len(payload) < 8000
