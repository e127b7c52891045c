"""Asset registry use cases: who may read and write it, and the rules of seed 004 (an asset
with open tickets cannot be deleted).

The registry is fed by the asset system (a service user whose groups grant tickets:manage)
and read by agents. A desk user reaches an asset only through a ticket of theirs that links
it, never the registry or other people's tickets.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson

from flowdesk.assets import repository as repo
from flowdesk.assets.schemas import (
    AssetByRefIn,
    AssetIn,
    AssetOut,
    AssetPatch,
    MovementIn,
    MovementOut,
)
from flowdesk.auth.principal import Principal
from flowdesk.db.query import Connection
from flowdesk.errors import Conflict, Forbidden, InvalidInput, NotFound
from flowdesk.pagination import Page, next_cursor
from flowdesk.vocabulary import TICKETS_MANAGE

# An asset's attributes, merged, stay within these (as a ticket's custom fields do).
ATTRIBUTES_MAX_KEYS = 100
ATTRIBUTES_MAX_BYTES = 32 * 1024
ATTEMPTS = 5


class AssetHasOpenTickets(Conflict):
    slug, title = "asset-has-open-tickets", "Asset has open tickets"


def _agents_only(principal: Principal) -> None:
    if not principal.is_agent:
        raise Forbidden(
            f"The asset registry is for agents (the '{TICKETS_MANAGE}' permission).",
            extra={"required_permission": TICKETS_MANAGE},
        )


def _writer(principal: Principal) -> None:
    if not principal.can(TICKETS_MANAGE):
        raise Forbidden(
            f"Changing the asset registry needs the '{TICKETS_MANAGE}' permission.",
            extra={"required_permission": TICKETS_MANAGE},
        )


def _out(a: repo.AssetRow) -> AssetOut:
    return AssetOut.model_validate(dict(a))


def _movement_out(m: repo.MovementRow) -> MovementOut:
    return MovementOut.model_validate(dict(m))


def _check_attributes(attributes: dict[str, Any]) -> None:
    size = len(orjson.dumps(attributes))
    if len(attributes) > ATTRIBUTES_MAX_KEYS or size > ATTRIBUTES_MAX_BYTES:
        raise InvalidInput(
            f"An asset's attributes hold at most {ATTRIBUTES_MAX_KEYS} keys and "
            f"{ATTRIBUTES_MAX_BYTES} bytes of JSON; these would hold {len(attributes)} keys "
            f"and {size} bytes.",
            [("/attributes", "too large once merged")],
        )


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}


async def create_asset(conn: Connection, principal: Principal, body: AssetIn) -> AssetOut:
    _writer(principal)
    values = body.model_dump()
    values["attributes"] = _clean(values["attributes"])
    return _out(await repo.insert_asset(conn, principal.tenant_id, values))


async def put_asset(
    conn: Connection, principal: Principal, external_ref: str, body: AssetByRefIn
) -> tuple[AssetOut, bool]:
    """The asset system's sync by its own id: (the asset, whether it was created)."""
    _writer(principal)
    values = body.model_dump() | {"external_ref": external_ref}
    values["attributes"] = _clean(values["attributes"])
    upserted = await repo.upsert_asset(conn, principal.tenant_id, values)
    return _out(upserted), upserted["created"]


async def get_asset(conn: Connection, principal: Principal, asset_id: uuid.UUID) -> AssetOut:
    """An agent reads any live asset; a desk user only one a ticket of theirs links."""
    if not principal.is_agent and not await repo.linked_for(
        conn, principal.tenant_id, asset_id, principal.user_id
    ):
        raise NotFound(f"No asset {asset_id}.")
    found = await repo.get_asset(conn, principal.tenant_id, asset_id)
    if found is None:
        raise NotFound(f"No asset {asset_id}.")
    return _out(found)


async def ensure_visible(conn: Connection, principal: Principal, asset_id: uuid.UUID) -> None:
    """404 unless the caller may see the asset (its ticket list, its movements)."""
    await get_asset(conn, principal, asset_id)


async def list_assets(
    conn: Connection,
    principal: Principal,
    *,
    q: str | None,
    asset_type: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Page[AssetOut]:
    _agents_only(principal)
    found = await repo.assets_page(
        conn, principal.tenant_id, limit, after, q=q, asset_type=asset_type
    )
    cursor = next_cursor(found, limit, lambda a: [a["created_at"], a["id"]])
    return Page[AssetOut](items=[_out(a) for a in found[:limit]], next_cursor=cursor)


async def patch_asset(
    conn: Connection, principal: Principal, asset_id: uuid.UUID, body: AssetPatch
) -> AssetOut:
    _writer(principal)
    sent = body.model_fields_set
    for _ in range(ATTEMPTS):
        current = await repo.get_asset(conn, principal.tenant_id, asset_id)
        if current is None:
            raise NotFound(f"No asset {asset_id}.")
        values: dict[str, Any] = {
            "external_ref": current["external_ref"],
            "name": current["name"],
            "type": current["type"],
            "tag": current["tag"],
            "attributes": current["attributes"],
        }
        for name in ("external_ref", "name", "type"):
            given = getattr(body, name)
            if name in sent and given is not None:
                values[name] = given
        if "tag" in sent:
            values["tag"] = body.tag
        if "attributes" in sent and body.attributes is not None:
            values["attributes"] = _clean({**current["attributes"], **body.attributes})
            _check_attributes(values["attributes"])
        written = await repo.update_asset(conn, principal.tenant_id, current, values)
        if written is not None:
            return _out(written)
    raise Conflict("The asset kept changing while this update was decided; retry it.")


async def delete_asset(conn: Connection, principal: Principal, asset_id: uuid.UUID) -> None:
    """Seed 004: "deleting an asset is blocked while open tickets reference it". Runs in the
    caller's transaction: the asset is locked, its open tickets counted, then it is removed
    (its tickets keep showing what it was)."""
    _writer(principal)
    if not await repo.lock_asset(conn, principal.tenant_id, asset_id):
        raise NotFound(f"No asset {asset_id}.")
    count = await repo.open_tickets(conn, principal.tenant_id, asset_id)
    if count:
        raise AssetHasOpenTickets(
            f"{count} open ticket{'s' if count != 1 else ''} still refer to this asset; "
            "resolve or close them first.",
            extra={"open_tickets": count},
        )
    await repo.soft_delete(conn, principal.tenant_id, asset_id)


async def add_movement(
    conn: Connection, principal: Principal, asset_id: uuid.UUID, body: MovementIn
) -> MovementOut:
    _writer(principal)
    added = await repo.add_movement(conn, principal.tenant_id, asset_id, body.model_dump())
    if added is None:
        raise NotFound(f"No asset {asset_id}.")
    return _movement_out(added)


async def list_movements(
    conn: Connection,
    principal: Principal,
    asset_id: uuid.UUID,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Page[MovementOut]:
    _agents_only(principal)
    if await repo.get_asset(conn, principal.tenant_id, asset_id) is None:
        raise NotFound(f"No asset {asset_id}.")
    found = await repo.movements_page(conn, principal.tenant_id, asset_id, limit, after)
    cursor = next_cursor(found, limit, lambda m: [m["moved_at"], m["id"]])
    return Page[MovementOut](items=[_movement_out(m) for m in found[:limit]], next_cursor=cursor)
