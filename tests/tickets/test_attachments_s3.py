"""Attachments kept in an S3-compatible bucket: a real local S3 server (moto's server mode,
started here) behind FLOWDESK_ATTACHMENT_S3_*; the round trip (a multipart upload), 413 and
a failed row leaving no object behind, removal."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from fastapi import FastAPI
from moto.server import ThreadedMotoServer

from flowdesk.app import create_app
from flowdesk.attachments.storage import S3Store
from flowdesk.attachments.sweep import sweep_orphans
from flowdesk.config import Settings
from tests.servers import free_port
from tests.sql import failing_writes, fetchval
from tests.support import runtime
from tests.tickets.conftest import Desk
from tests.tickets.test_attachments import upload

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024
FLOWDESK = str(Path(sys.executable).with_name("flowdesk"))
BUCKET = "flowdesk-attachments"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A local S3-compatible server with an empty bucket; its credentials in the environment,
    where boto3 reads them."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.delenv("AWS_PROFILE", raising=False)
        bucket_client(endpoint).create_bucket(Bucket=BUCKET)
        try:
            yield endpoint
        finally:
            server.stop()


@functools.cache
def bucket_client(endpoint: str) -> S3Client:
    # One client per server: making one (its service model loaded) takes most of a second.
    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1")


def objects(endpoint: str) -> dict[str, int]:
    listed = bucket_client(endpoint).list_objects_v2(Bucket=BUCKET)
    return {o["Key"]: o["Size"] for o in listed.get("Contents", [])}


@pytest.fixture(scope="module")
async def s3_client(settings: Settings, s3_endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    configured = settings.model_copy(
        update={
            "attachment_s3_bucket": BUCKET,
            "attachment_s3_endpoint_url": s3_endpoint,
            "attachment_s3_region": "us-east-1",
            "attachment_max_bytes": 10 * MiB,
        }
    )
    application = create_app(configured)
    transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(transport=transport, base_url="http://flowdesk.test") as client,
    ):
        client.app = application  # type: ignore[attr-defined]
        yield client


async def _row(app: FastAPI, attachment_id: str) -> Any:
    return await fetchval(
        app,
        "SELECT row_to_json(a)::text FROM attachments a WHERE id = $1",
        uuid.UUID(attachment_id),
    )


async def test_round_trip_through_the_bucket(
    desk: Desk, app: FastAPI, s3_client: httpx.AsyncClient, s3_endpoint: str
) -> None:
    ticket = await desk.open()
    # Over the 8 MiB threshold: a multipart upload of 5 MiB parts.
    body = os.urandom(9 * MiB + 3)
    r = await upload(s3_client, ticket, desk.requester.headers, body, "big.bin", "image/png")
    assert r.status_code == 201, r.text
    added = r.json()
    key = f"attachments/{desk.tenant.id}/{added['id']}"
    assert objects(s3_endpoint)[key] == len(body)
    row = await _row(app, added["id"])
    assert '"storage":"s3"' in row and f'"storage_key":"{key}"' in row
    chunks = await fetchval(
        app,
        "SELECT count(*) FROM attachment_chunks WHERE attachment_id = $1",
        uuid.UUID(added["id"]),
    )
    assert chunks == 0
    stored = bucket_client(s3_endpoint).get_object(Bucket=BUCKET, Key=key)
    assert stored["ContentType"] == "image/png"
    assert hashlib.sha256(stored["Body"].read()).hexdigest() == added["sha256"]

    got = await s3_client.get(added["content_url"], headers=desk.requester.headers)
    assert got.status_code == 200
    assert got.content == body
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"

    r = await s3_client.delete(
        f"/v1/tickets/{ticket['id']}/attachments/{added['id']}", headers=desk.agent.headers
    )
    assert r.status_code == 204
    assert key not in objects(s3_endpoint)


async def test_refused_or_failed_uploads_leave_no_object(
    desk: Desk, app: FastAPI, s3_client: httpx.AsyncClient, s3_endpoint: str
) -> None:
    ticket = await desk.open()
    before = objects(s3_endpoint)
    r = await upload(s3_client, ticket, desk.requester.headers, b"\0" * (10 * MiB + 1))
    assert r.status_code == 413, r.text
    assert objects(s3_endpoint) == before
    # The object is put, then its row fails: the object is deleted again.
    async with failing_writes(app, "attachments"):
        r = await upload(s3_client, ticket, desk.requester.headers, os.urandom(MiB))
    assert r.status_code == 500
    assert objects(s3_endpoint) == before
    count = await fetchval(
        app, "SELECT count(*) FROM attachments WHERE ticket_id = $1", uuid.UUID(ticket["id"])
    )
    assert count == 0


async def test_files_kept_in_postgresql_stay_readable_with_a_bucket(
    desk: Desk, s3_client: httpx.AsyncClient
) -> None:
    """Configuring a bucket later: the files already in PostgreSQL are read from there."""
    ticket = await desk.open()
    r = await upload(desk.client, ticket, desk.requester.headers, b"from before the bucket")
    assert r.status_code == 201
    got = await s3_client.get(r.json()["content_url"], headers=desk.requester.headers)
    assert got.content == b"from before the bucket"


async def test_the_sweep_deletes_the_objects_no_attachment_names(
    desk: Desk,
    app: FastAPI,
    s3_client: httpx.AsyncClient,
    s3_endpoint: str,
    database_url: str,
) -> None:
    ticket = await desk.open()
    kept = await upload(s3_client, ticket, desk.requester.headers, b"a real file")
    assert kept.status_code == 201
    kept_key = f"attachments/{desk.tenant.id}/{kept.json()['id']}"
    orphan_key = f"attachments/{desk.tenant.id}/{uuid.uuid4()}"
    stranger_key = "attachments/not-ours.txt"
    for key in (orphan_key, stranger_key):
        bucket_client(s3_endpoint).put_object(Bucket=BUCKET, Key=key, Body=b"left behind")
    store = S3Store(bucket_client(s3_endpoint), BUCKET, TransferConfig())
    db = runtime(app).db
    # Within the grace period, nothing is touched.
    young = await sweep_orphans(db, store, timedelta(hours=1))
    assert young.orphans == [] and orphan_key in objects(s3_endpoint)
    dry = await sweep_orphans(db, store, timedelta(0), dry_run=True)
    assert orphan_key in dry.orphans and kept_key not in dry.orphans
    assert orphan_key in objects(s3_endpoint)
    # The command (in a process of its own, as an operator's job runs it).
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDESK_")}
    environment |= {
        "FLOWDESK_DATABASE_URL": database_url,
        "FLOWDESK_ATTACHMENT_S3_BUCKET": BUCKET,
        "FLOWDESK_ATTACHMENT_S3_ENDPOINT_URL": s3_endpoint,
        "FLOWDESK_ATTACHMENT_S3_REGION": "us-east-1",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [FLOWDESK, "attachments", "sweep", "--older-than-hours", "0"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert orphan_key in printed["orphans"] and not printed["dry_run"]
    left = objects(s3_endpoint)
    assert orphan_key not in left
    assert kept_key in left and stranger_key in left


async def test_an_object_gone_from_the_bucket_is_a_503_problem_not_a_broken_200(
    desk: Desk, s3_client: httpx.AsyncClient, s3_endpoint: str
) -> None:
    ticket = await desk.open()
    added = (await upload(s3_client, ticket, desk.requester.headers, b"soon gone")).json()
    bucket_client(s3_endpoint).delete_object(
        Bucket=BUCKET, Key=f"attachments/{desk.tenant.id}/{added['id']}"
    )
    got = await s3_client.get(added["content_url"], headers=desk.requester.headers)
    assert got.status_code == 503
    assert got.headers["content-type"] == "application/problem+json"
