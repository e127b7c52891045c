"""Deleting the objects of a bucket that no attachment names: what a crash between an object's
put and its row's commit left behind, or what a ticket or tenant deleted by cascade took the
rows of (`flowdesk attachments sweep`, ADR 0017).

Only objects under `attachments/` older than a grace period are looked at (an upload in flight
has put its object and not yet committed its row); their `(tenant, attachment)` is read from
the key and looked up, a page of keys at a time.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypedDict

from sqlalchemy import Uuid, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY

from flowdesk.attachments.storage import S3Store
from flowdesk.db.pool import Database
from flowdesk.db.query import Query, rows
from flowdesk.models import attachments

PREFIX = "attachments/"

# The attachments, of these tenants, among these ids (pinned by tenant: Citus-ready).
_EXISTING = Query(
    select(attachments.c.tenant_id, attachments.c.id).where(
        attachments.c.tenant_id == bindparam("tenant_ids", type_=ARRAY(Uuid)).any_(),
        attachments.c.id == bindparam("ids", type_=ARRAY(Uuid)).any_(),
    )
)


class _Existing(TypedDict):
    tenant_id: uuid.UUID
    id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Swept:
    examined: int
    orphans: list[str]


def _named(key: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The (tenant, attachment) of an object key, or None for a key that is not one of ours."""
    parts = key.removeprefix(PREFIX).split("/")
    if not key.startswith(PREFIX) or len(parts) != 2:
        return None
    try:
        return uuid.UUID(parts[0]), uuid.UUID(parts[1])
    except ValueError:
        return None


async def sweep_orphans(
    db: Database, store: S3Store, older_than: timedelta, *, dry_run: bool = False
) -> Swept:
    """Delete (or, dry, only list) the objects under `attachments/` older than `older_than`
    whose attachment row does not exist."""
    cutoff = datetime.now(UTC) - older_than
    paginator = store.client.get_paginator("list_objects_v2")
    pages = iter(paginator.paginate(Bucket=store.bucket, Prefix=PREFIX))
    examined = 0
    orphans: list[str] = []
    while (page := await asyncio.to_thread(next, pages, None)) is not None:
        named: dict[tuple[uuid.UUID, uuid.UUID], str] = {}
        for listed in page.get("Contents", []):
            key = listed.get("Key", "")
            ids = _named(key)
            if ids is not None and listed.get("LastModified", cutoff) < cutoff:
                named[ids] = key
        examined += len(named)
        if not named:
            continue
        async with db.connection() as conn:
            found = await rows(
                conn,
                _Existing,
                _EXISTING,
                tenant_ids=list({tenant for tenant, _ in named}),
                ids=[attachment for _, attachment in named],
            )
        for existing in found:
            named.pop((existing["tenant_id"], existing["id"]), None)
        page_orphans = sorted(named.values())
        if page_orphans and not dry_run:
            await asyncio.to_thread(
                store.client.delete_objects,
                Bucket=store.bucket,
                Delete={"Objects": [{"Key": key} for key in page_orphans], "Quiet": True},
            )
        orphans.extend(page_orphans)
    return Swept(examined, orphans)
