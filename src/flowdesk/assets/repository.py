"""The asset registry's statements: assets and their movements, scoped to one tenant."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypedDict

from sqlalchemy import (
    DateTime,
    Integer,
    String,
    Uuid,
    bindparam,
    func,
    literal_column,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert

from flowdesk.db import like
from flowdesk.db.constraints import unique
from flowdesk.db.query import Connection, Query, row, rows, value
from flowdesk.models import asset_movements, assets, tickets

_tenant = bindparam("tenant_id", type_=Uuid)
_asset = bindparam("asset_id", type_=Uuid)
_live = (assets.c.tenant_id == _tenant, assets.c.id == _asset, assets.c.deleted_at.is_(None))
_ASSET = (
    assets.c.id,
    assets.c.external_ref,
    assets.c.name,
    assets.c.type,
    assets.c.tag,
    assets.c.attributes,
    assets.c.created_at,
    assets.c.updated_at,
)
_MOVEMENT = (
    asset_movements.c.id,
    asset_movements.c.asset_id,
    asset_movements.c.from_location,
    asset_movements.c.to_location,
    asset_movements.c.moved_at,
    asset_movements.c.note,
    asset_movements.c.external_ref,
    asset_movements.c.created_at,
)
_REF_TAKEN = "uq_assets_tenant_id_external_ref"
_MOVEMENT_REF_TAKEN = "uq_asset_movements_tenant_id_external_ref"


class AssetRow(TypedDict):
    id: uuid.UUID
    external_ref: str
    name: str
    type: str
    tag: str | None
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class UpsertedRow(AssetRow):
    created: bool


class MovementRow(TypedDict):
    id: uuid.UUID
    asset_id: uuid.UUID
    from_location: str | None
    to_location: str | None
    moved_at: datetime
    note: str
    external_ref: str | None
    created_at: datetime


def _ref_taken(ref: str) -> Any:
    return unique(_REF_TAKEN, f"An asset with external_ref '{ref}' already exists.")


# What an asset's description is written from (a create, a sync, a change).
_DESCRIBED = {
    "external_ref": bindparam("external_ref", type_=String),
    "name": bindparam("name", type_=String),
    "type": bindparam("type", type_=String),
    "tag": bindparam("tag", type_=String),
    "attributes": bindparam("attributes", type_=JSONB),
}
_INSERT = Query(insert(assets).values(tenant_id=_tenant, **_DESCRIBED).returning(*_ASSET))


async def insert_asset(conn: Connection, tenant_id: uuid.UUID, values: dict[str, Any]) -> AssetRow:
    with _ref_taken(values["external_ref"]):
        added = await row(conn, AssetRow, _INSERT, tenant_id=tenant_id, **values)
    assert added is not None  # an insert returns its row
    return added


# The asset system's sync: one statement creates the asset or replaces what it says of it.
_UPSERT = Query(
    insert(assets)
    .values(tenant_id=_tenant, **_DESCRIBED)
    .on_conflict_do_update(
        index_elements=[assets.c.tenant_id, assets.c.external_ref],
        index_where=text("deleted_at IS NULL"),
        set_={
            "name": literal_column("excluded.name"),
            "type": literal_column("excluded.type"),
            "tag": literal_column("excluded.tag"),
            "attributes": literal_column("excluded.attributes"),
            "updated_at": func.now(),
        },
    )
    # xmax is 0 on a row this statement inserted, set on one it updated.
    .returning(*_ASSET, (literal_column("xmax") == text("'0'::xid")).label("created"))
)


async def upsert_asset(
    conn: Connection, tenant_id: uuid.UUID, values: dict[str, Any]
) -> UpsertedRow:
    upserted = await row(conn, UpsertedRow, _UPSERT, tenant_id=tenant_id, **values)
    assert upserted is not None  # an upsert returns its row
    return upserted


_GET = Query(select(*_ASSET).where(*_live))


async def get_asset(conn: Connection, tenant_id: uuid.UUID, asset_id: uuid.UUID) -> AssetRow | None:
    return await row(conn, AssetRow, _GET, tenant_id=tenant_id, asset_id=asset_id)


async def assets_page(
    conn: Connection,
    tenant_id: uuid.UUID,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
    *,
    q: str | None = None,
    asset_type: str | None = None,
) -> list[AssetRow]:
    """Live assets by creation, `limit + 1` of them; `q` matches a substring of the name,
    tag or reference (any case), `asset_type` the type exactly."""
    stmt = select(*_ASSET).where(assets.c.tenant_id == _tenant, assets.c.deleted_at.is_(None))
    values: dict[str, Any] = {"tenant_id": tenant_id}
    if q:
        pattern = bindparam("pattern", type_=String)
        values["pattern"] = like.contains(q)
        stmt = stmt.where(
            assets.c.name.ilike(pattern, escape=like.ESCAPE)
            | assets.c.tag.ilike(pattern, escape=like.ESCAPE)
            | assets.c.external_ref.ilike(pattern, escape=like.ESCAPE)
        )
    if asset_type:
        stmt = stmt.where(assets.c.type == bindparam("asset_type", type_=String))
        values["asset_type"] = asset_type
    if after is not None:
        stmt = stmt.where(
            tuple_(assets.c.created_at, assets.c.id)
            > tuple_(
                bindparam("after_time", type_=DateTime(timezone=True)),
                bindparam("after_id", type_=Uuid),
            )
        )
        values["after_time"], values["after_id"] = after
    stmt = stmt.order_by(assets.c.created_at, assets.c.id).limit(limit + 1)
    return await rows(conn, AssetRow, stmt, **values)


# An asset changes only while it is as the change was decided on (its updated_at): the
# attributes are merged in Python, and a concurrent change makes the caller decide again.
_UPDATE = Query(
    update(assets)
    .where(*_live, assets.c.updated_at == bindparam("seen", type_=DateTime(timezone=True)))
    .values(**_DESCRIBED, updated_at=func.now())
    .returning(*_ASSET)
)


async def update_asset(
    conn: Connection, tenant_id: uuid.UUID, seen: AssetRow, values: dict[str, Any]
) -> AssetRow | None:
    """The asset with `values`, or None when it changed (or went) since `seen` was read."""
    with _ref_taken(values["external_ref"]):
        return await row(
            conn,
            AssetRow,
            _UPDATE,
            tenant_id=tenant_id,
            asset_id=seen["id"],
            seen=seen["updated_at"],
            **values,
        )


# Deleting: the asset's row locked first, so that a ticket filed meanwhile (which holds the
# row FOR SHARE, flowdesk.tickets.statements) is either counted or finds no live asset.
_LOCK = Query(select(assets.c.id).where(*_live).with_for_update())
_OPEN_TICKETS = Query(
    select(func.count())
    .select_from(tickets)
    .where(
        tickets.c.tenant_id == _tenant,
        tickets.c.asset_id == _asset,
        tickets.c.status_category != "inactive",  # initial or active
    )
)
_SOFT_DELETE = Query(update(assets).where(*_live).values(deleted_at=func.now()))


async def lock_asset(conn: Connection, tenant_id: uuid.UUID, asset_id: uuid.UUID) -> bool:
    return await value(conn, _LOCK, tenant_id=tenant_id, asset_id=asset_id) is not None


async def open_tickets(conn: Connection, tenant_id: uuid.UUID, asset_id: uuid.UUID) -> int:
    count = await value(conn, _OPEN_TICKETS, tenant_id=tenant_id, asset_id=asset_id)
    assert isinstance(count, int)
    return count


async def soft_delete(conn: Connection, tenant_id: uuid.UUID, asset_id: uuid.UUID) -> None:
    await value(conn, _SOFT_DELETE, tenant_id=tenant_id, asset_id=asset_id)


# A requester reaches an asset only through a ticket of theirs that links it.
_LINKED_FOR = Query(
    select(tickets.c.id)
    .where(
        tickets.c.tenant_id == _tenant,
        tickets.c.asset_id == _asset,
        tickets.c.requester_id == bindparam("requester_id", type_=Uuid),
    )
    .limit(1)
)


async def linked_for(
    conn: Connection, tenant_id: uuid.UUID, asset_id: uuid.UUID, requester_id: uuid.UUID
) -> bool:
    found = await value(
        conn, _LINKED_FOR, tenant_id=tenant_id, asset_id=asset_id, requester_id=requester_id
    )
    return found is not None


# --- movements ---------------------------------------------------------------------------

# Recorded only on a live asset (held FOR SHARE against a concurrent delete).
_live_asset = (
    select(assets.c.tenant_id, assets.c.id).where(*_live).with_for_update(read=True).cte("asset")
)
_ADD_MOVEMENT = Query(
    insert(asset_movements)
    .from_select(
        [
            "tenant_id",
            "asset_id",
            "from_location",
            "to_location",
            "moved_at",
            "note",
            "external_ref",
        ],
        select(
            _live_asset.c.tenant_id,
            _live_asset.c.id,
            bindparam("from_location", type_=String),
            bindparam("to_location", type_=String),
            bindparam("moved_at", type_=DateTime(timezone=True)),
            bindparam("note", type_=String),
            bindparam("external_ref", type_=String),
        ),
    )
    .returning(*_MOVEMENT)
)


async def add_movement(
    conn: Connection, tenant_id: uuid.UUID, asset_id: uuid.UUID, values: dict[str, Any]
) -> MovementRow | None:
    """The recorded movement, or None when the asset is not (or no longer) live."""
    with unique(
        _MOVEMENT_REF_TAKEN,
        f"A movement with external_ref '{values['external_ref']}' already exists.",
    ):
        return await row(
            conn, MovementRow, _ADD_MOVEMENT, tenant_id=tenant_id, asset_id=asset_id, **values
        )


_MOVEMENTS = Query(
    select(*_MOVEMENT)
    .where(
        asset_movements.c.tenant_id == _tenant,
        asset_movements.c.asset_id == _asset,
        bindparam("after_time", type_=DateTime(timezone=True)).is_(None)
        | (
            tuple_(asset_movements.c.moved_at, asset_movements.c.id)
            < tuple_(
                bindparam("after_time", type_=DateTime(timezone=True)),
                bindparam("after_id", type_=Uuid),
            )
        ),
    )
    .order_by(asset_movements.c.moved_at.desc(), asset_movements.c.id.desc())
    .limit(bindparam("limit", type_=Integer))
)


async def movements_page(
    conn: Connection,
    tenant_id: uuid.UUID,
    asset_id: uuid.UUID,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[MovementRow]:
    """The asset's movements, newest first, `limit + 1` of them."""
    after_time, after_id = after or (None, None)
    return await rows(
        conn,
        MovementRow,
        _MOVEMENTS,
        tenant_id=tenant_id,
        asset_id=asset_id,
        after_time=after_time,
        after_id=after_id,
        limit=limit + 1,
    )
