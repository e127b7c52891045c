"""Attachments (issue 13), kept in PostgreSQL: the streamed upload, the list, the metadata and
the download byte for byte, the limits (413, nothing stored), who sees what, malformed and
abandoned uploads (4xx, nothing stored), the audit trail and the outbox."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message

from flowdesk.app import create_app
from flowdesk.attachments.names import safe_filename
from flowdesk.attachments.storage import CHUNK_BYTES
from flowdesk.config import Settings
from tests.sql import failing_writes, fetch, fetchval
from tests.support import TenantCtx, problem_type
from tests.tickets.conftest import Desk, force_status

MiB = 1024 * 1024


def _url(ticket: dict[str, Any], rest: str = "", prefix: str = "/v1") -> str:
    return f"{prefix}/tickets/{ticket['id']}/attachments{rest}"


async def upload(
    client: httpx.AsyncClient,
    ticket: dict[str, Any],
    headers: dict[str, str],
    data: bytes = b"hello, world\n",
    name: str = "log.txt",
    content_type: str = "text/plain",
    prefix: str = "/v1",
    **fields: str,
) -> httpx.Response:
    return await client.post(
        _url(ticket, prefix=prefix),
        files={"file": (name, data, content_type)},
        data=fields,
        headers=headers,
    )


async def stored(app: FastAPI, ticket: dict[str, Any]) -> tuple[int, int]:
    """How many attachment rows, and chunks of them, the ticket has."""
    ticket_id = uuid.UUID(ticket["id"])
    rows = await fetchval(app, "SELECT count(*) FROM attachments WHERE ticket_id = $1", ticket_id)
    chunks = await fetchval(
        app,
        "SELECT count(*) FROM attachment_chunks c JOIN attachments a "
        "ON a.tenant_id = c.tenant_id AND a.id = c.attachment_id WHERE a.ticket_id = $1",
        ticket_id,
    )
    assert isinstance(rows, int) and isinstance(chunks, int)
    return rows, chunks


async def orphan_chunks(app: FastAPI, tenant: TenantCtx) -> int:
    count = await fetchval(
        app, "SELECT count(*) FROM attachment_chunks WHERE tenant_id = $1", tenant.id
    )
    assert isinstance(count, int)
    return count


async def test_round_trip_with_download_headers(desk: Desk, app: FastAPI) -> None:
    c = desk.client
    ticket = await desk.open()
    body = "Grüße from the VPN log\n".encode() * 100
    r = await upload(c, ticket, desk.agent.headers, body, name="vpn log (1).txt")
    assert r.status_code == 201, r.text
    added = r.json()
    assert added["filename"] == "vpn log (1).txt"
    assert added["content_type"] == "text/plain"
    assert added["size"] == len(body)
    assert added["sha256"] == hashlib.sha256(body).hexdigest()
    assert added["visibility"] == "external"
    assert added["comment_id"] is None
    assert added["uploader"] == {"id": desk.agent.id, "name": "Otto Other"}
    assert r.headers["location"] == _url(ticket, f"/{added['id']}") == added["content_url"]

    listed = await c.get(_url(ticket), headers=desk.requester.headers)
    assert listed.status_code == 200
    assert [a["id"] for a in listed.json()["items"]] == [added["id"]]
    got = await c.get(added["content_url"], headers=desk.requester.headers)
    assert got.status_code == 200
    assert got.content == body
    assert got.headers["content-type"] == "text/plain"
    assert got.headers["content-length"] == str(len(body))
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-disposition"] == (
        "attachment; filename=\"vpn log (1).txt\"; filename*=UTF-8''vpn%20log%20%281%29.txt"
    )
    assert "sandbox" in got.headers["content-security-policy"]
    assert got.headers["etag"] == f'"{added["sha256"]}"'


async def test_a_multi_mib_file_is_stored_in_chunks_and_read_back_exactly(
    desk: Desk, app: FastAPI
) -> None:
    ticket = await desk.open()
    body = os.urandom(3 * MiB + 17)
    r = await upload(
        desk.client, ticket, desk.requester.headers, body, "dump.bin", "application/octet-stream"
    )
    assert r.status_code == 201, r.text
    assert await stored(app, ticket) == (1, -(-len(body) // CHUNK_BYTES))
    sizes = await fetch(
        app,
        "SELECT seq, length(data) AS n FROM attachment_chunks WHERE attachment_id = $1 "
        "ORDER BY seq",
        uuid.UUID(r.json()["id"]),
    )
    assert [s["n"] for s in sizes[:-1]] == [CHUNK_BYTES] * (len(sizes) - 1)
    got = await desk.client.get(r.json()["content_url"], headers=desk.agent.headers)
    assert got.status_code == 200
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(body).digest()
    assert got.content == body


async def test_an_empty_file_round_trips(desk: Desk) -> None:
    ticket = await desk.open()
    r = await upload(desk.client, ticket, desk.requester.headers, b"", name="empty.txt")
    assert r.status_code == 201, r.text
    assert r.json()["size"] == 0
    got = await desk.client.get(r.json()["content_url"], headers=desk.requester.headers)
    assert got.status_code == 200 and got.content == b""


async def test_names_are_sanitised_and_types_kept_but_never_rendered(desk: Desk) -> None:
    ticket = await desk.open()
    r = await upload(
        desk.client,
        ticket,
        desk.requester.headers,
        b"<script>alert(1)</script>",
        name="../../etc/evil.html",
        content_type="text/html; charset=utf-8",
    )
    assert r.status_code == 201, r.text
    assert r.json()["filename"] == "evil.html"
    got = await desk.client.get(r.json()["content_url"], headers=desk.requester.headers)
    assert got.headers["content-type"] == "text/html; charset=utf-8"
    assert got.headers["content-disposition"].startswith("attachment;")
    assert got.headers["x-content-type-options"] == "nosniff"
    bogus = await upload(
        desk.client, ticket, desk.requester.headers, b"x", name="", content_type="not a type"
    )
    assert bogus.status_code == 201, bogus.text
    assert bogus.json()["filename"] == "attachment"
    assert bogus.json()["content_type"] == "application/octet-stream"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("C:\\Users\\me\\log.txt", "log.txt"),
        ("a\x00b\r\nc\u202e.txt", "abc.txt"),
        ("..hidden. ", "hidden"),
        ("Re\u0301sume\u0301.pdf", "R\u00e9sum\u00e9.pdf"),
        ("   ", "attachment"),
        ("x" * 300 + ".tar.gz", "x" * 252 + ".gz"),
    ],
)
def test_filenames_lose_paths_and_control_characters(given: str, kept: str) -> None:
    assert safe_filename(given) == kept


# --- limits ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def small(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose attachments may have 1 MiB each, 2 MiB per ticket."""
    limited = settings.model_copy(
        update={"attachment_max_bytes": MiB, "attachment_ticket_max_bytes": 2 * MiB}
    )
    application = create_app(limited)
    transport = httpx.ASGITransport(app=application)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(transport=transport, base_url="http://flowdesk.test") as client,
    ):
        yield client


async def test_a_file_over_the_limit_is_413_and_nothing_is_stored(
    desk: Desk, app: FastAPI, small: httpx.AsyncClient
) -> None:
    ticket = await desk.open()
    r = await upload(small, ticket, desk.requester.headers, os.urandom(MiB + 1))
    assert r.status_code == 413, r.text
    assert problem_type(r) == "payload-too-large"
    assert r.json()["limit"] == MiB
    assert await stored(app, ticket) == (0, 0)
    assert await orphan_chunks(app, desk.tenant) == 0

    # Streamed without a Content-Length: refused while it streams.
    async def chunked() -> AsyncIterator[bytes]:
        boundary = b"b0undary"
        yield b"--" + boundary + b"\r\n"
        yield b'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
        for _ in range(20):
            yield b"\0" * (128 * 1024)
        yield b"\r\n--" + boundary + b"--\r\n"

    r = await small.post(
        _url(ticket),
        content=chunked(),
        headers={
            **desk.requester.headers,
            "content-type": "multipart/form-data; boundary=b0undary",
        },
    )
    assert r.status_code == 413, r.text
    assert await stored(app, ticket) == (0, 0)
    # Exactly at the limit is fine.
    assert (await upload(small, ticket, desk.requester.headers, b"\1" * MiB)).status_code == 201


async def test_the_tickets_files_together_have_a_limit(
    desk: Desk, app: FastAPI, small: httpx.AsyncClient
) -> None:
    ticket = await desk.open()
    part = b"\2" * (800 * 1024)
    for _ in range(2):
        assert (await upload(small, ticket, desk.requester.headers, part)).status_code == 201
    r = await upload(small, ticket, desk.requester.headers, part)
    assert r.status_code == 413, r.text
    assert "together" in r.json()["detail"]
    assert await stored(app, ticket) == (2, 8)
    # What is left still fits.
    rest = b"\3" * (2 * MiB - 2 * len(part))
    assert (await upload(small, ticket, desk.requester.headers, rest)).status_code == 201
    # A full ticket refuses before reading the file.
    r = await upload(small, ticket, desk.requester.headers, b"x")
    assert r.status_code == 413, r.text


async def test_concurrent_uploads_cannot_overshoot_the_tickets_limit(
    desk: Desk, app: FastAPI, small: httpx.AsyncClient
) -> None:
    """Each upload's row is written after the ticket is locked, so the second of two racing
    uploads counts the first."""
    ticket = await desk.open()
    part = b"\4" * (800 * 1024)
    assert (await upload(small, ticket, desk.requester.headers, part)).status_code == 201
    racing = await asyncio.gather(
        *(upload(small, ticket, desk.requester.headers, part) for _ in range(3))
    )
    assert sorted(r.status_code for r in racing) == [201, 413, 413]
    assert await stored(app, ticket) == (2, 8)


# --- who sees and does what ------------------------------------------------------------------


async def test_requesters_see_external_files_and_add_only_external_ones(
    desk: Desk, app: FastAPI
) -> None:
    c = desk.client
    ticket = await desk.open()
    internal = await upload(c, ticket, desk.agent.headers, b"secret", visibility="internal")
    assert internal.status_code == 201 and internal.json()["visibility"] == "internal"
    external = await upload(c, ticket, desk.agent.headers, b"public")
    note = await c.post(
        f"/v1/tickets/{ticket['id']}/comments",
        json={"body": "see the trace", "visibility": "internal"},
        headers=desk.agent.headers,
    )
    on_note = await upload(c, ticket, desk.agent.headers, b"trace", comment_id=note.json()["id"])
    assert on_note.status_code == 201, on_note.text
    assert on_note.json()["visibility"] == "internal"
    assert on_note.json()["comment_id"] == note.json()["id"]

    agent_view = await c.get(_url(ticket), headers=desk.agent.headers)
    assert len(agent_view.json()["items"]) == 3
    mine = await c.get(_url(ticket), headers=desk.requester.headers)
    assert [a["id"] for a in mine.json()["items"]] == [external.json()["id"]]
    for hidden in (internal, on_note):
        r = await c.get(_url(ticket, f"/{hidden.json()['id']}"), headers=desk.requester.headers)
        assert r.status_code == 404, r.text
    events = await c.get(f"/v1/tickets/{ticket['id']}/events", headers=desk.requester.headers)
    shown = [
        e["data"]["attachment_id"]
        for e in events.json()["items"]
        if e["kind"] == "attachment_added"
    ]
    assert shown == [external.json()["id"]]

    r = await upload(c, ticket, desk.requester.headers, b"x", visibility="internal")
    assert r.status_code == 403, r.text
    r = await upload(c, ticket, desk.requester.headers, b"x", comment_id=note.json()["id"])
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/comment_id"
    r = await upload(
        c, ticket, desk.agent.headers, b"x", comment_id=note.json()["id"], visibility="external"
    )
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/visibility"
    r = await upload(c, ticket, desk.agent.headers, b"x", comment_id=str(uuid.uuid4()))
    assert r.status_code == 422
    r = await upload(c, ticket, desk.agent.headers, b"x", visibility="secret")
    assert r.status_code == 422
    assert await stored(app, ticket) == (3, 3)
    own = await upload(c, ticket, desk.requester.headers, b"my screenshot", name="shot.png")
    assert own.status_code == 201 and own.json()["visibility"] == "external"


async def test_another_requester_or_tenant_finds_nothing(
    desk: Desk, other_tenant: TenantCtx, app: FastAPI
) -> None:
    c = desk.client
    ticket = await desk.open()
    added = (await upload(c, ticket, desk.requester.headers)).json()
    stranger = await desk.tenant.user("tickets:create")
    for who in (stranger.headers, other_tenant.headers):
        for path in (_url(ticket), added["content_url"]):
            assert (await c.get(path, headers=who)).status_code == 404
        r = await upload(c, ticket, who, b"intrusion")
        assert r.status_code == 404, r.text
        r = await c.delete(_url(ticket, f"/{added['id']}"), headers=who)
        assert r.status_code == 404
    # An attachment of another ticket is not found under this one.
    other = await desk.open()
    r = await c.get(_url(other, f"/{added['id']}"), headers=desk.requester.headers)
    assert r.status_code == 404
    assert await stored(app, ticket) == (1, 1)


async def test_a_closed_ticket_takes_no_files(desk: Desk, app: FastAPI) -> None:
    ticket = await desk.open()
    added = (await upload(desk.client, ticket, desk.agent.headers)).json()
    await force_status(app, ticket["id"], "closed")
    r = await upload(desk.client, ticket, desk.agent.headers)
    assert r.status_code == 409 and problem_type(r) == "ticket-closed"
    r = await desk.client.delete(_url(ticket, f"/{added['id']}"), headers=desk.agent.headers)
    assert r.status_code == 409
    # Still readable.
    got = await desk.client.get(added["content_url"], headers=desk.requester.headers)
    assert got.status_code == 200


async def test_agents_remove_attachments_with_an_audit_event(desk: Desk, app: FastAPI) -> None:
    c = desk.client
    ticket = await desk.open()
    added = (await upload(c, ticket, desk.requester.headers, os.urandom(300 * 1024))).json()
    path = _url(ticket, f"/{added['id']}")
    r = await c.delete(path, headers=desk.requester.headers)
    assert r.status_code == 403
    r = await c.delete(path, headers=desk.agent.headers)
    assert r.status_code == 204
    assert await stored(app, ticket) == (0, 0)
    assert await orphan_chunks(app, desk.tenant) == 0
    assert (await c.get(path, headers=desk.agent.headers)).status_code == 404
    assert (await c.delete(path, headers=desk.agent.headers)).status_code == 404
    events = await c.get(f"/v1/tickets/{ticket['id']}/events", headers=desk.agent.headers)
    removed = [e for e in events.json()["items"] if e["kind"] == "attachment_removed"]
    assert removed[0]["data"] == {"attachment_id": added["id"], "filename": added["filename"]}
    assert removed[0]["actor"]["id"] == desk.agent.id


async def test_audit_event_and_outbox_message(desk: Desk, app: FastAPI) -> None:
    ticket = await desk.open()
    added = (await upload(desk.client, ticket, desk.requester.headers, b"12345")).json()
    events = await desk.client.get(f"/v1/tickets/{ticket['id']}/events", headers=desk.agent.headers)
    event = next(e for e in events.json()["items"] if e["kind"] == "attachment_added")
    assert event["actor"]["id"] == desk.requester.id
    assert event["data"] == {
        "attachment_id": added["id"],
        "filename": "log.txt",
        "content_type": "text/plain",
        "size": 5,
        "comment_id": None,
        "visibility": "external",
    }
    messages = await fetch(
        app,
        "SELECT payload FROM outbox WHERE tenant_id = $1 AND topic = 'ticket.attachment_added'",
        desk.tenant.id,
    )
    assert len(messages) == 1
    payload = messages[0]["payload"]
    assert payload["attachment_id"] == added["id"]
    assert payload["ticket_id"] == ticket["id"]
    assert payload["actor_id"] == desk.requester.id


async def test_paging(desk: Desk) -> None:
    ticket = await desk.open()
    ids = [
        (await upload(desk.client, ticket, desk.agent.headers, bytes([i]))).json()["id"]
        for i in range(3)
    ]
    first = await desk.client.get(_url(ticket), params={"limit": 2}, headers=desk.agent.headers)
    assert [a["id"] for a in first.json()["items"]] == ids[:2]
    rest = await desk.client.get(
        _url(ticket),
        params={"limit": 2, "cursor": first.json()["next_cursor"]},
        headers=desk.agent.headers,
    )
    assert [a["id"] for a in rest.json()["items"]] == ids[2:]
    assert rest.json()["next_cursor"] is None


async def test_the_public_api_has_the_same_routes_behind_its_scopes(
    desk: Desk, tenant: TenantCtx
) -> None:
    ticket = await desk.open()
    writer = await tenant.key(
        desk.requester.id, ["tickets:read", "tickets:write"], channel="public"
    )
    headers = {"Authorization": f"Bearer {writer}"}
    r = await upload(desk.client, ticket, headers, b"via public", prefix="/public/v1")
    assert r.status_code == 201, r.text
    assert r.json()["content_url"].startswith("/public/v1/tickets/")
    got = await desk.client.get(r.json()["content_url"], headers=headers)
    assert got.content == b"via public"
    reader = await tenant.key(desk.requester.id, ["tickets:read"], channel="public")
    r = await upload(
        desk.client, ticket, {"Authorization": f"Bearer {reader}"}, b"x", prefix="/public/v1"
    )
    assert r.status_code == 403


async def test_an_idempotency_key_replays_the_first_upload(desk: Desk, app: FastAPI) -> None:
    ticket = await desk.open()
    headers = {**desk.requester.headers, "Idempotency-Key": uuid.uuid4().hex}
    first = await upload(desk.client, ticket, headers, b"once")
    again = await upload(desk.client, ticket, headers, b"once")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = await upload(desk.client, ticket, headers, b"another file")
    assert other.status_code == 422
    assert await stored(app, ticket) == (1, 1)


# --- broken uploads --------------------------------------------------------------------------


MALFORMED: list[tuple[str, str, bytes, int]] = [
    ("json", "application/json", b'{"file": "x"}', 415),
    ("no boundary", "multipart/form-data", b"--x\r\n", 415),
    ("garbage", "multipart/form-data; boundary=xyz", os.urandom(2048), 422),
    (
        "no closing boundary",
        "multipart/form-data; boundary=xyz",
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc',
        422,
    ),
    (
        "header soup",
        "multipart/form-data; boundary=xyz",
        b"--xyz\r\n\x00\x01\x02: \xff\r\n\r\nabc\r\n--xyz--\r\n",
        422,
    ),
    (
        "no name",
        "multipart/form-data; boundary=xyz",
        b"--xyz\r\nContent-Disposition: form-data\r\n\r\nabc\r\n--xyz--\r\n",
        422,
    ),
    (
        "no file",
        "multipart/form-data; boundary=xyz",
        b'--xyz\r\nContent-Disposition: form-data; name="visibility"\r\n\r\n'
        b"external\r\n--xyz--\r\n",
        422,
    ),
    (
        "unknown field",
        "multipart/form-data; boundary=xyz",
        b'--xyz\r\nContent-Disposition: form-data; name="color"\r\n\r\nred\r\n--xyz--\r\n',
        422,
    ),
    (
        "two files",
        "multipart/form-data; boundary=xyz",
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\na\r\n'
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="b"\r\n\r\nb\r\n'
        b"--xyz--\r\n",
        422,
    ),
    (
        "long field",
        "multipart/form-data; boundary=xyz",
        b'--xyz\r\nContent-Disposition: form-data; name="visibility"\r\n\r\n'
        + b"v" * 5000
        + b"\r\n--xyz--\r\n",
        422,
    ),
    (
        "bad comment id",
        "multipart/form-data; boundary=xyz",
        b'--xyz\r\nContent-Disposition: form-data; name="comment_id"\r\n\r\nnope\r\n'
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\na\r\n'
        b"--xyz--\r\n",
        422,
    ),
]


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
async def test_a_malformed_upload_is_a_4xx_problem_and_stores_nothing(
    desk: Desk, app: FastAPI, content_type: str, body: bytes, status: int
) -> None:
    ticket = await desk.open()
    r = await desk.client.post(
        _url(ticket), content=body, headers={**desk.requester.headers, "content-type": content_type}
    )
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert await stored(app, ticket) == (0, 0)


async def test_a_client_that_stops_mid_upload_leaves_nothing(desk: Desk, app: FastAPI) -> None:
    """The ASGI app itself, fed half a body and then the client's disconnect."""
    ticket = await desk.open()
    boundary = b"st0p"
    messages: list[Message] = [
        {
            "type": "http.request",
            "body": b"--" + boundary + b"\r\n"
            b'Content-Disposition: form-data; name="file"; filename="half.bin"\r\n\r\n',
            "more_body": True,
        },
        *({"type": "http.request", "body": b"\7" * 65536, "more_body": True} for _ in range(8)),
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [
        (b"host", b"flowdesk.test"),
        (b"authorization", desk.requester.headers["Authorization"].encode()),
        (b"content-type", b"multipart/form-data; boundary=" + boundary),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": _url(ticket),
        "raw_path": _url(ticket).encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("flowdesk.test", 80),
        "state": {},
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 400
    assert await stored(app, ticket) == (0, 0)
    assert await orphan_chunks(app, desk.tenant) == 0


async def test_a_failure_after_the_chunks_leaves_no_half_attachment(
    desk: Desk, app: FastAPI
) -> None:
    """The chunks are written first and the row last, in one transaction: a row that fails to
    be written takes its chunks with it."""
    ticket = await desk.open()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://flowdesk.test") as c:
        async with failing_writes(app, "attachments"):
            r = await upload(c, ticket, desk.requester.headers, os.urandom(MiB))
        assert r.status_code == 500
    assert await stored(app, ticket) == (0, 0)
    assert await orphan_chunks(app, desk.tenant) == 0
    events = await desk.client.get(f"/v1/tickets/{ticket['id']}/events", headers=desk.agent.headers)
    assert not [e for e in events.json()["items"] if e["kind"] == "attachment_added"]
