"""How much memory a `flowdesk serve` worker takes to receive and send a large attachment:
the upload is parsed as it streams and stored 256 KiB at a time (flowdesk.api.uploads,
flowdesk.attachments.storage), so its RSS should not grow by anything like the file's size.

    .venv/bin/python bench/attachment_memory.py [--mib 50] [--database-url URL]

On a fresh database (`flowdesk_bench_attachments` on the server of --database-url, by default
BENCH_DATABASE_URL or the local PostgreSQL at 127.0.0.1:5432), with one licensed tenant, one
worker serving with the attachment limits raised above the file: the worker's RSS after a
warm-up request, the peak RSS (VmHWM) after uploading the file (sent from a generator: this
process does not hold it either) and after downloading it back (checked by SHA-256). A
figure to read, not a pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
FLOWDESK = str(Path(sys.executable).with_name("flowdesk"))
DB_NAME = "flowdesk_bench_attachments"
BOUNDARY = "benchboundary0123456789"
PIECE = 1024 * 1024


def _status(pid: int, field: str) -> float:
    """A /proc/PID/status field in MiB (VmRSS now, VmHWM the peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


async def _fresh_database(server: str) -> str:
    plain = server.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(plain)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {DB_NAME}")
    finally:
        await conn.close()
    return server.rsplit("/", 1)[0] + "/" + DB_NAME


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [FLOWDESK, *args], env=env, capture_output=True, text=True, check=True, cwd=ROOT
    )
    return done.stdout


async def _body(mib: int) -> AsyncIterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    piece = bytes(range(256)) * (PIECE // 256)
    for _ in range(mib):
        yield piece
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def start_server(server_url: str, mib: int, port: int) -> tuple[subprocess.Popen[bytes], str]:
    """A worker serving a fresh database with one licensed tenant; its admin key."""
    url = asyncio.run(_fresh_database(server_url))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDESK_")}
    env |= {
        "FLOWDESK_DATABASE_URL": url,
        "FLOWDESK_PORT": str(port),
        "FLOWDESK_LOG_LEVEL": "warning",
        "FLOWDESK_ATTACHMENT_MAX_BYTES": str((mib + 1) * PIECE),
        "FLOWDESK_ATTACHMENT_TICKET_MAX_BYTES": str((mib + 1) * PIECE),
        "FLOWDESK_RELAY_POLL_SECONDS": "0",
    }
    _cli(env, "migrate")
    created = _cli(env, "tenants", "create", "bench", "--name", "Bench", "--prefix", "BEN")
    key = next(
        line.split("=", 1)[1] for line in created.splitlines() if line.startswith("FLOWDESK_")
    )
    _cli(env, "tenants", "license", "bench", "--activate")
    return subprocess.Popen([FLOWDESK, "serve"], env=env, cwd=ROOT), key


async def measure(pid: int, key: str, mib: int, port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as client:
        for _ in range(300):
            try:
                if (await client.get("/healthz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        r = await client.post(
            "/v1/tickets", json={"title": "Big logs", "catalog_item": "itsm_incident"}
        )
        r.raise_for_status()
        ticket = r.json()["id"]
        await client.get(f"/v1/tickets/{ticket}/attachments")
        before = _status(pid, "VmRSS")
        started = time.monotonic()
        r = await client.post(
            f"/v1/tickets/{ticket}/attachments",
            content=_body(mib),
            headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
        r.raise_for_status()
        uploaded = time.monotonic() - started
        peak_upload = _status(pid, "VmHWM")
        digest = hashlib.sha256()
        started = time.monotonic()
        async with client.stream("GET", r.json()["content_url"]) as got:
            async for chunk in got.aiter_bytes():
                digest.update(chunk)
        downloaded = time.monotonic() - started
        assert digest.hexdigest() == r.json()["sha256"], "the download differs"
        peak = _status(pid, "VmHWM")
    print(f"file: {mib} MiB, stored in PostgreSQL in 256 KiB chunks")
    print(f"worker RSS before: {before:.1f} MiB")
    print(f"worker peak RSS after the upload: {peak_upload:.1f} MiB ({uploaded:.1f} s)")
    print(f"worker peak RSS after the download: {peak:.1f} MiB ({downloaded:.1f} s)")
    print(f"growth over the file's {mib} MiB: {peak - before:.1f} MiB")


async def _drop_database(server_url: str) -> None:
    conn = await asyncpg.connect(server_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=50)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    proc, key = start_server(args.database_url, args.mib, args.port)
    try:
        asyncio.run(measure(proc.pid, key, args.mib, args.port))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        asyncio.run(_drop_database(args.database_url))


if __name__ == "__main__":
    main()
