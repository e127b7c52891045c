"""Bodies of the ITSM controls, shared by the tenant's own view (GET /v1/tenant) and the
platform API.

Inputs are strict: a boolean or an integer is given as one (`"requests": true` or
`"max_agents": "5"` is a 422, never coerced into a limit)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from flowdesk.schema_types import INPUT_CONFIG
from flowdesk.vocabulary import Flag


class LicenceOut(BaseModel):
    active: bool
    activated_at: datetime | None
    deactivated_at: datetime | None


class RateLimitPolicy(BaseModel):
    model_config = INPUT_CONFIG
    requests: StrictInt = Field(
        ge=1, le=1_000_000, description="Requests admitted per key per window."
    )
    window_seconds: StrictInt = Field(ge=1, le=86_400)


class RateLimitOut(RateLimitPolicy):
    model_config = ConfigDict(extra="ignore")
    default: bool = Field(description="True when the tenant uses the service's default policy.")


class QuotaUse(BaseModel):
    limit: int | None = Field(description="None: unlimited.")
    current: int = Field(
        description="In use now: agents, or the mails counted this calendar month (UTC)."
    )


# A tenant with its ITSM controls (flowdesk.itsm.service.describe): what its admins see at
# GET /v1/tenant and the platform operator at /platform/v1/tenants. (A comment, not a
# docstring: a docstring would become the schema's description in the OpenAPI document.)
class TenantOut(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    ticket_prefix: str
    queue_email: str | None = Field(
        description="Where new tickets are announced to the agent queue; null: every agent."
    )
    mail_from_name: str | None = Field(
        description="The display name of the tenant's notification mails (null: the service's)."
    )
    allowed_origins: list[str] = Field(
        description="Browser origins whose SPAs may call flowdesk with this tenant's "
        "credentials (CORS), besides the deployment's."
    )
    licence: LicenceOut = Field(description="The ITSM add-on licence (set by the operator).")
    flags: dict[str, bool] = Field(description="Every ITSM feature flag with its value.")
    quotas: dict[str, int | None] = Field(description="Quota limits; null is unlimited.")
    quota_usage: dict[str, QuotaUse]
    rate_limit: RateLimitOut = Field(description="The rate limit per API key.")
    created_at: datetime
    updated_at: datetime


class QuotasPatch(BaseModel):
    model_config = INPUT_CONFIG
    max_agents: StrictInt | None = Field(default=None, ge=0, le=1_000_000)
    max_emails_month: StrictInt | None = Field(default=None, ge=0, le=1_000_000_000)


class LicencePatch(BaseModel):
    """Every field is optional; a quota or `rate_limit` given as null means unlimited / the
    service default, one left out stays as it is."""

    model_config = INPUT_CONFIG
    active: StrictBool | None = None
    flags: dict[Flag, StrictBool] | None = Field(default=None, max_length=20)
    quotas: QuotasPatch | None = None
    rate_limit: RateLimitPolicy | None = None


class QuotaAlertOut(BaseModel):
    id: int
    tenant_id: uuid.UUID
    tenant_slug: str
    quota: str
    kind: str = Field(description="refused (an overrun refused at the door) or over_quota.")
    limit: int
    current: int
    detail: dict[str, Any]
    open: bool
    created_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None


class LicenceEventOut(BaseModel):
    id: int
    actor: str
    changes: dict[str, Any]
    created_at: datetime


class QuotaCheckOut(BaseModel):
    ran: bool = Field(description="False when another process was running the check.")
    tenants_checked: int
    over_quota: list[dict[str, Any]]
