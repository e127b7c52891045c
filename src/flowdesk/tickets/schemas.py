"""Request and response bodies for tickets, transitions, comments and the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
    model_validator,
)

from flowdesk.pagination import DEFAULT_LIMIT
from flowdesk.schema_types import (
    INPUT_CONFIG,
    Limit,
    LongText,
    QueryText,
    ShortName,
    Timestamp,
    Title,
    no_nul,
)
from flowdesk.vocabulary import CATEGORIES, PRIORITIES, Category, Priority

Visibility = Literal["internal", "external"]

FieldKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
FieldText = Annotated[str, StringConstraints(max_length=2000), AfterValidator(no_nul)]
# Numbers stay within what every JSON client can represent exactly.
SafeInt = Annotated[int, Field(ge=-(2**53), le=2**53)]
SafeFloat = Annotated[float, Field(ge=-(2**53), le=2**53, allow_inf_nan=False)]
# Custom field values: scalars or short lists of strings, as a service desk's forms produce.
FieldValue = FieldText | bool | SafeInt | SafeFloat | list[FieldText] | None
CustomFields = Annotated[dict[FieldKey, FieldValue], Field(max_length=50)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(no_nul)]


class UserRef(BaseModel):
    id: uuid.UUID
    name: str


class TicketCreate(BaseModel):
    model_config = INPUT_CONFIG
    title: Title
    description: LongText = ""
    catalog_item: Name
    priority: Priority | None = Field(default=None, description="Default: the catalog item's.")
    fields: CustomFields = Field(default_factory=dict)
    requester_id: uuid.UUID | None = Field(
        default=None, description="File on behalf of this user (needs tickets:manage)."
    )
    status: Name | None = Field(
        default=None, description="A create status the workflow permits; default: its default."
    )
    asset_id: uuid.UUID | None = Field(
        default=None,
        description="The asset the ticket is about (stored only while `asset_integration` is on).",
    )
    movement_id: uuid.UUID | None = Field(
        default=None,
        description="The asset movement the ticket is about (stored only while `movement_link` "
        "is on); links its asset too when none is given.",
    )


class TicketPatch(BaseModel):
    """Only what a client may change. Status changes go through transitions; id, number,
    timestamps and version are the server's (sending them is a 422)."""

    model_config = INPUT_CONFIG
    title: Title | None = None
    description: LongText | None = None
    priority: Priority | None = None
    fields: CustomFields | None = Field(
        default=None, description="Merged into the ticket's fields; a null value removes a key."
    )
    assignee_id: uuid.UUID | None = Field(default=None, description="null unassigns.")
    catalog_item: Name | None = Field(
        default=None, description="Move the ticket; its status follows the workflows' status map."
    )


class AssetRef(BaseModel):
    """The asset a ticket is linked to, as it was when last seen (`deleted` once removed)."""

    id: uuid.UUID
    external_ref: str
    tag: str | None
    name: str
    type: str
    deleted: bool


class MovementRef(BaseModel):
    id: uuid.UUID
    from_location: str | None
    to_location: str | None
    moved_at: datetime


class TicketOut(BaseModel):
    id: uuid.UUID
    number: str
    title: str
    description: str
    type: str
    catalog_item: str
    workflow: str
    status: str
    status_category: str | None
    priority: Priority
    requester: UserRef
    assignee: UserRef | None
    resolution: str | None
    fields: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = Field(description="When it first left its initial status.")
    resolved_at: datetime | None = Field(description="When it was resolved (until reopened).")
    closed_at: datetime | None = Field(description="When it was closed (until reopened).")
    asset: AssetRef | None = Field(
        description="The linked asset; null also while `asset_integration` is off."
    )
    movement: MovementRef | None = Field(
        description="The linked asset movement; null also while `movement_link` is off."
    )
    version: int


class TicketReceipt(BaseModel):
    """What a write answers to a key without tickets:read: that it happened, not the ticket."""

    id: uuid.UUID
    number: str
    version: int


class TransitionIn(BaseModel):
    model_config = INPUT_CONFIG
    to: Name | None = None
    action: Name | None = None
    comment: LongText | None = None
    comment_visibility: Visibility | None = Field(
        default=None, description="Default: what the action's update type says (reply = external)."
    )
    resolution: Name | None = None
    assignee_id: uuid.UUID | None = Field(default=None, description="For set_owner actions.")

    @model_validator(mode="after")
    def _one_target(self) -> TransitionIn:
        if (self.to is None) == (self.action is None):
            raise ValueError("give exactly one of 'to' or 'action'")
        return self


class ReasonOut(BaseModel):
    """Why an action is not allowed: `code` for machines (role, permission, condition, owner,
    input, reset), `detail` for people; the same shape as a 409's `reasons`."""

    code: str
    detail: str
    required: list[str] | None = None
    condition: str | None = None
    values: list[str] | None = None

    @model_serializer(mode="wrap")
    def _drop_empty(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class TransitionOption(BaseModel):
    action: str
    label: str
    to: str | None
    allowed: bool
    reasons: list[ReasonOut]
    update_type: str | None
    comment_required: bool
    resolutions: list[str]
    owners: list[str]


class TransitionsOut(BaseModel):
    status: str
    version: int
    items: list[TransitionOption]


class CommentIn(BaseModel):
    model_config = INPUT_CONFIG
    body: Annotated[str, StringConstraints(min_length=1, max_length=20_000), AfterValidator(no_nul)]
    visibility: Visibility = "external"


class CommentOut(BaseModel):
    id: uuid.UUID
    author: UserRef
    body: str
    visibility: Visibility
    created_at: datetime


class EventOut(BaseModel):
    id: int
    kind: str
    actor: UserRef | None
    data: dict[str, Any]
    created_at: datetime


class CatalogItemOut(BaseModel):
    name: str
    display_name: str
    type: str
    workflow: str
    default_priority: Priority


class LinkIn(BaseModel):
    model_config = INPUT_CONFIG
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    target: Name = Field(description="The linked ticket: its id or number.")


class LinkOut(BaseModel):
    id: uuid.UUID
    kind: str
    target_id: uuid.UUID
    target_number: str | None = Field(
        description="null when the caller may not see the linked ticket (a requester's view)"
    )
    created_at: datetime


class ApprovalIn(BaseModel):
    model_config = INPUT_CONFIG
    name: ShortName = Field(description="What is approved, e.g. 'infra' (a workflow condition).")


class ApprovalOut(BaseModel):
    id: uuid.UUID
    name: str
    approver: UserRef
    created_at: datetime


TicketSort = Literal["created", "-created", "updated", "-updated", "priority", "-priority"]
QueryValues = Annotated[list[QueryText] | None, Field(max_length=20)]


class TicketFilterQuery(BaseModel):
    """Which tickets: the filters GET /v1/tickets and GET /v1/tickets/counts share. Unknown
    parameters are ignored, as for every other endpoint."""

    status: QueryValues = None
    status_category: Annotated[list[Category] | None, Field(max_length=len(CATEGORIES))] = None
    assignee: Annotated[str | None, Field(max_length=36, description="me, none, or a user id")] = (
        None
    )
    requester: Annotated[str | None, Field(max_length=36, description="me or a user id")] = None
    priority: Annotated[list[Priority] | None, Field(max_length=len(PRIORITIES))] = None
    type: QueryValues = None
    catalog_item: QueryValues = None
    created_after: Timestamp | None = None
    created_before: Timestamp | None = None
    updated_after: Timestamp | None = None
    updated_before: Timestamp | None = None
    started_after: Timestamp | None = None
    started_before: Timestamp | None = None
    resolved_after: Timestamp | None = None
    resolved_before: Timestamp | None = None
    closed_after: Timestamp | None = None
    closed_before: Timestamp | None = None
    q: Annotated[
        QueryText | None, Field(description="Full-text search in title and description")
    ] = None
    stale: Annotated[
        bool, Field(description="Only tickets whose status their workflow no longer has")
    ] = False


class TicketListQuery(TicketFilterQuery):
    """The query of GET /v1/tickets: which tickets, in which order, which page."""

    sort: TicketSort = "-created"
    limit: Limit = DEFAULT_LIMIT
    cursor: Annotated[str | None, Field(max_length=512)] = None


CountGroup = Literal["status", "status_category", "assignee", "priority"]


class TicketCountQuery(TicketFilterQuery):
    """The query of GET /v1/tickets/counts: the list's filters, and what to count by. The
    list's `sort`, `limit` and `cursor` mean nothing here and are ignored, as any unknown
    parameter is."""

    group_by: CountGroup


class TicketCount(BaseModel):
    key: str | None = Field(
        description="The status, status category or priority as tickets show it, or the "
        "assignee's user id (null: unassigned)"
    )
    count: int


class TicketCountsOut(BaseModel):
    group_by: CountGroup
    counts: list[TicketCount] = Field(
        description="One entry per value some matching ticket has (none for a count of 0), "
        "most tickets first, then by key"
    )
    total: int = Field(description="How many tickets match the filters (the counts' sum)")


class AgentOut(BaseModel):
    """Someone a ticket can be assigned to. The e-mail is there because only agents read
    this list (a colleague's address is how an agent reaches them); requesters never get
    another user's address from flowdesk."""

    id: uuid.UUID
    name: str
    email: str
