"""Slow and huge clients against a real `flowdesk serve` (uvicorn, httptools), over raw sockets:
a silent connection is closed, trickled or oversized headers are refused, a stalled body gets
408 (flowdesk.api.protocol, flowdesk.api.middleware)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest

from tests.servers import free_port, start_serve, stop, wait_healthy

# Generous socket timeouts: a test fails by waiting this long for a close that never comes.
PATIENCE = 20.0


@pytest.fixture(scope="module")
def port(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    directory = tmp_path_factory.mktemp("limits")
    port, log = free_port(), directory / "serve.log"
    proc = start_serve(
        port,
        log,
        FLOWDESK_DATABASE_URL=database_url,
        FLOWDESK_DATA_DIR=str(directory / "data"),
        FLOWDESK_SEED_DEMO="false",
        FLOWDESK_RELAY_POLL_SECONDS="0",
        FLOWDESK_HEADER_TIMEOUT_SECONDS="1",
        FLOWDESK_BODY_TIMEOUT_SECONDS="1",
        FLOWDESK_MAX_HEADER_BYTES="8192",
        FLOWDESK_MAX_HEADER_FIELDS="50",
    )
    try:
        wait_healthy(proc, port, log)
        yield port
    finally:
        stop(proc)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
    sock.settimeout(PATIENCE)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; a reset counts as a close. A server that
    keeps the connection open makes this raise TimeoutError (the test fails)."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


def _send_ignoring_close(sock: socket.socket, data: bytes) -> None:
    """The server may refuse and close while the request is still being sent."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    with _connect(port) as sock:
        assert _read_until_closed(sock) == b""


def test_trickled_headers_are_refused_with_408(port: int) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: flowdesk.test\r\n" + b"X-Slow: 1\r\n" * 200
    with _connect(port) as sock:
        # One byte every 50 ms: the whole request would take over 100 s.
        for byte in request:
            try:
                sock.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the server took the whole trickled request")
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"application/problem+json" in answer


def test_a_header_over_the_byte_budget_is_431(port: int) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: flowdesk.test\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    with _connect(port) as sock:
        _send_ignoring_close(sock, request)
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"/problems/request-header-fields-too-large" in answer


def test_too_many_header_fields_are_431(port: int) -> None:
    fields = b"".join(b"X-F%d: v\r\n" % i for i in range(51))
    with _connect(port) as sock:
        _send_ignoring_close(sock, b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + fields + b"\r\n")
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_100_000_headers_are_refused(port: int) -> None:
    fields = b"".join(b"X-H%d: v\r\n" % i for i in range(100_000))  # about 1.2 MiB
    with _connect(port) as sock:
        _send_ignoring_close(sock, b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + fields + b"\r\n")
        answer = _read_until_closed(sock)
    # Refused: 431, or the connection reset before the answer could be read; never served.
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 ")


def test_a_body_that_stalls_gets_408_and_the_connection_is_closed(port: int) -> None:
    head = (
        b"POST /v1/users HTTP/1.1\r\nHost: flowdesk.test\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    with _connect(port) as sock:
        sock.sendall(head + b'{"email": ')
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in answer.lower()
    assert b'"type":"/problems/request-timeout"' in answer


def test_a_prompt_request_on_a_kept_alive_connection_is_served(port: int) -> None:
    """The limits leave ordinary clients alone: two requests on one connection, a body in
    time (401: no key, but read and answered)."""
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: flowdesk.test\r\n\r\n")
        first = b""
        while not first.endswith(b'{"status":"ok"}'):  # the head and the body may come apart
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        body = b'{"email": "a@b.example"}'
        sock.sendall(
            b"POST /v1/users HTTP/1.1\r\nHost: flowdesk.test\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        assert _read_until_closed(sock).startswith(b"HTTP/1.1 401 ")
