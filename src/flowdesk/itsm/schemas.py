"""Bodies of the ITSM controls, shared by the tenant's own view (GET /v1/tenant) and the
platform API.

Inputs are strict: a boolean or an integer is given as one (`"requests": true` or
`"max_agents": "5"` is a 422, never coerced into a limit)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from flowdesk.api.types import INPUT_CONFIG
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
    current: int | None = Field(description="None: not counted here (e-mails: per month).")


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
