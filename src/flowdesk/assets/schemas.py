"""Request and response bodies of the asset registry."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from flowdesk.schema_types import INPUT_CONFIG, LongText, Timestamp, no_nul
from flowdesk.tickets.schemas import CustomFields

ExternalRef = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(no_nul)
]
AssetName = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(no_nul)]
AssetType = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(no_nul)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(no_nul)]
Place = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(no_nul)]


class AssetIn(BaseModel):
    """An asset as the asset system describes it (POST, and PUT by its reference)."""

    model_config = INPUT_CONFIG
    external_ref: ExternalRef = Field(description="The asset system's id, unique per tenant.")
    name: AssetName
    type: AssetType = Field(description="e.g. laptop, printer, vehicle")
    tag: Tag | None = Field(default=None, description="The label on the asset")
    attributes: CustomFields = Field(default_factory=dict)


class AssetByRefIn(BaseModel):
    """PUT /v1/assets/by-ref/{external_ref}: the asset whole, its reference in the path."""

    model_config = INPUT_CONFIG
    name: AssetName
    type: AssetType
    tag: Tag | None = None
    attributes: CustomFields = Field(default_factory=dict)


class AssetPatch(BaseModel):
    model_config = INPUT_CONFIG
    external_ref: ExternalRef | None = None
    name: AssetName | None = None
    type: AssetType | None = None
    tag: Tag | None = Field(default=None, description="null removes it")
    attributes: CustomFields | None = Field(
        default=None, description="Merged into the asset's attributes; a null value removes a key."
    )


class AssetOut(BaseModel):
    id: uuid.UUID
    external_ref: str
    name: str
    type: str
    tag: str | None
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class MovementIn(BaseModel):
    model_config = INPUT_CONFIG
    from_location: Place | None = None
    to_location: Place | None = None
    moved_at: Timestamp = Field(description="When it moved (RFC 3339, with a time zone).")
    note: LongText = ""
    external_ref: ExternalRef | None = Field(
        default=None, description="The asset system's id of the movement, unique per tenant."
    )


class MovementOut(BaseModel):
    id: uuid.UUID
    asset_id: uuid.UUID
    from_location: str | None
    to_location: str | None
    moved_at: datetime
    note: str
    external_ref: str | None
    created_at: datetime
