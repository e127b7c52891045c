"""Request and response bodies for tenant administration. Responses validate from a
repository row (`Model.model_validate(dict(row))`). The tenant itself is shown with its ITSM
controls (flowdesk.itsm.schemas.TenantOut)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from flowdesk.origins import MAX_TENANT_ORIGINS, Origin
from flowdesk.schema_types import (
    INPUT_CONFIG,
    SHORT_NAME_LENGTH,
    Email,
    Name,
    ShortName,
    TicketPrefix,
    no_nul,
)
from flowdesk.vocabulary import KeyChannel, Scope

UserKind = Literal["person", "service"]


class TenantPatch(BaseModel):
    model_config = INPUT_CONFIG
    name: Name | None = None
    ticket_prefix: TicketPrefix | None = None
    queue_email: Email | None = Field(
        default=None,
        description="The agent queue's address for new-ticket mails; null: mail every agent.",
    )
    mail_from_name: Name | None = Field(
        default=None,
        description="The display name of the tenant's mails' From; null: the service's.",
    )
    allowed_origins: list[Origin] | None = Field(
        default=None,
        max_length=MAX_TENANT_ORIGINS,
        description="The browser origins (scheme://host[:port]; https unless loopback) whose "
        "SPAs may call flowdesk with this tenant's credentials (CORS); [] for none.",
    )


_MANAGER = (
    "The user's manager (another user of the tenant), who gives approvals that the catalog "
    "says the requester's manager gives (seed 003's manager approval)."
)


class UserIn(BaseModel):
    model_config = INPUT_CONFIG
    email: Email
    name: Name
    kind: UserKind = "person"
    manager_id: uuid.UUID | None = Field(default=None, description=_MANAGER)


class UserPatch(BaseModel):
    model_config = INPUT_CONFIG
    email: Email | None = None
    name: Name | None = None
    kind: UserKind | None = None
    manager_id: uuid.UUID | None = Field(default=None, description=_MANAGER + " null: none.")


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    kind: str
    manager_id: uuid.UUID | None = None
    created_at: datetime
    updated_at: datetime


# flowdesk's permissions (tickets:create, tickets:manage, tickets:close, admin), or a workflow
# right the catalog declares (RT's `ApproveOrder`), maybe for one catalog item
# (`ApproveOrder@orders`, RT's rights per queue).
Grant = Annotated[
    str,
    StringConstraints(min_length=1, max_length=SHORT_NAME_LENGTH, pattern=r"^[^\s@]+(@[^\s@]+)?$"),
    AfterValidator(no_nul),
]


class GroupIn(BaseModel):
    model_config = INPUT_CONFIG
    name: ShortName
    permissions: list[Grant] = Field(
        default_factory=list,
        max_length=50,
        description="flowdesk's permissions and the workflow rights the catalog declares, "
        "each everywhere or for one catalog item (`ApproveOrder@orders`).",
    )


class GroupPatch(BaseModel):
    model_config = INPUT_CONFIG
    name: ShortName | None = None
    permissions: list[Grant] | None = Field(default=None, max_length=50)


class GroupOut(BaseModel):
    id: uuid.UUID
    name: str
    permissions: list[str]
    system: bool
    member_ids: list[uuid.UUID] = Field(
        description="The first 100 members, in the order they joined: all of them, page by "
        "page, at GET /v1/groups/{id}/members"
    )
    member_count: int = Field(description="How many members the group has")
    created_at: datetime
    updated_at: datetime


class GroupMemberOut(BaseModel):
    user_id: uuid.UUID
    joined_at: datetime


class ApiKeyIn(BaseModel):
    model_config = INPUT_CONFIG
    user_id: uuid.UUID
    name: ShortName
    scopes: list[Scope] = Field(min_length=1, max_length=3)
    expires_at: datetime | None = None
    channel: KeyChannel = Field(
        default="first_party",
        description="The API the key is for: first_party (/v1) or public (/public/v1); it is "
        "refused (403) on the other.",
    )


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    created_by_key_id: uuid.UUID | None = Field(
        default=None, description="The key that created this one (none: the CLI, a sign-in)"
    )
    channel: str = Field(
        default="first_party", description="first_party (/v1) or public (/public/v1)"
    )


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret. Shown only in this response; store it now.")


class MeTenant(BaseModel):
    id: uuid.UUID
    slug: str
    name: str


class MeOut(BaseModel):
    tenant: MeTenant
    user: UserOut
    key_id: uuid.UUID
    scopes: list[str]
    permissions: list[str]
