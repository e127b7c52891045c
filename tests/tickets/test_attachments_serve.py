"""Uploads through a real `flowdesk serve` (uvicorn, httptools, the middleware stack): the body
of an upload passes the 64 KiB JSON limit and its 1 s deadline, yet stays bounded: a
Content-Length over the file limit is refused before the body is sent, and a stalled upload
gets 408 at the upload deadline and its connection closed, with nothing stored."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from tests.servers import free_port, start_serve, stop, wait_healthy
from tests.tickets.conftest import Desk
from tests.tickets.test_attachments import stored

MiB = 1024 * 1024
# Generous: a test fails by waiting this long for an answer that never comes.
PATIENCE = 20.0


@pytest.fixture(scope="module")
def base_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("uploads")
    port, log = free_port(), directory / "serve.log"
    proc = start_serve(
        port,
        log,
        FLOWDESK_DATABASE_URL=database_url,
        FLOWDESK_DATA_DIR=str(directory / "data"),
        FLOWDESK_SEED_DEMO="false",
        FLOWDESK_RELAY_POLL_SECONDS="0",
        FLOWDESK_BODY_TIMEOUT_SECONDS="1",
        FLOWDESK_ATTACHMENT_MAX_BYTES=str(MiB),
        FLOWDESK_ATTACHMENT_TIMEOUT_SECONDS="2",
    )
    try:
        wait_healthy(proc, port, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


async def test_an_upload_is_not_held_to_the_json_body_limit(desk: Desk, base_url: str) -> None:
    ticket = await desk.open()
    body = os.urandom(768 * 1024)  # twelve times the JSON limit
    async with httpx.AsyncClient(base_url=base_url, timeout=PATIENCE) as client:
        r = await client.post(
            f"/v1/tickets/{ticket['id']}/attachments",
            files={"file": ("trace.bin", body, "application/octet-stream")},
            headers=desk.requester.headers,
        )
        assert r.status_code == 201, r.text
        got = await client.get(r.json()["content_url"], headers=desk.requester.headers)
    assert got.status_code == 200
    assert got.content == body


async def test_a_declared_length_over_the_limit_is_refused_before_the_body(
    desk: Desk, base_url: str, app: FastAPI
) -> None:
    ticket = await desk.open()
    status, _ = await _exchange(
        base_url,
        f"/v1/tickets/{ticket['id']}/attachments",
        desk.requester.headers["Authorization"],
        content_length=2 * MiB,
        body=b"",
    )
    assert status == 413
    assert await stored(app, ticket) == (0, 0)


async def test_a_stalled_upload_gets_408_and_leaves_nothing(
    desk: Desk, base_url: str, app: FastAPI
) -> None:
    ticket = await desk.open()
    part = (
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n'
        + b"\0" * 4096
    )
    status, closed = await _exchange(
        base_url,
        f"/v1/tickets/{ticket['id']}/attachments",
        desk.requester.headers["Authorization"],
        content_length=MiB // 2,
        body=part,
    )
    assert status == 408
    assert closed
    assert await stored(app, ticket) == (0, 0)


async def _exchange(
    base_url: str, path: str, authorization: str, *, content_length: int, body: bytes
) -> tuple[int, bool]:
    """Send an upload's headers (declaring `content_length`) and `body`, then nothing more;
    the answer's status, and whether the server closed the connection after it."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: flowdesk.test\r\nAuthorization: {authorization}\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\n"
            f"Content-Length: {content_length}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), PATIENCE)
        status = int(answer.split(b" ", 2)[1])
        rest = await asyncio.wait_for(reader.read(), PATIENCE)  # b"" once it is closed
        return status, reader.at_eof() and b"HTTP/1.1" not in rest
    finally:
        writer.close()
