"""Request and response bodies of identity providers (PUT/GET /v1/tenant/identity-providers
and the platform's same endpoints)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from flowdesk.auth.identity import ProviderRow, ProviderSettings
from flowdesk.schema_types import INPUT_CONFIG, SHORT_NAME_LENGTH, no_nul

ProviderName = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=SHORT_NAME_LENGTH, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
    ),
]
Url = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=8, max_length=2000),
    AfterValidator(no_nul),
]
Audience = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=1000),
    AfterValidator(no_nul),
]
ClaimName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(no_nul),
]
ClaimValue = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(no_nul)]


class IdentityProviderIn(BaseModel):
    model_config = INPUT_CONFIG
    issuer: Url = Field(
        description="The provider's issuer (`iss`): https, or http on a loopback address."
    )
    audience: Audience = Field(
        description="The `aud` its tokens carry for this tenant (the SPA's client id). "
        "No other tenant may trust the same issuer with the same audience."
    )
    jwks_uri: Url | None = Field(
        default=None,
        description="Where its signing keys are; default: the `jwks_uri` of the issuer's "
        "discovery document (`<issuer>/.well-known/openid-configuration`).",
    )
    email_claim: ClaimName = "email"
    name_claim: ClaimName = "name"
    groups_claim: ClaimName | None = Field(
        default=None, description="The claim listing the person's groups at the provider."
    )
    group_map: dict[ClaimValue, uuid.UUID] | None = Field(
        default=None,
        max_length=200,
        description="A groups-claim value -> the flowdesk group it makes the person a member "
        "of. At each sign-in the memberships of the mapped groups are set as the claim says.",
    )
    default_group_id: uuid.UUID | None = Field(
        default=None, description="The group a person joins on first sign-in."
    )

    def settings(self) -> ProviderSettings:
        return ProviderSettings(
            issuer=self.issuer,
            audience=self.audience,
            jwks_uri=self.jwks_uri,
            email_claim=self.email_claim,
            name_claim=self.name_claim,
            groups_claim=self.groups_claim,
            group_map=self.group_map,
            default_group_id=self.default_group_id,
        )


class IdentityProviderOut(BaseModel):
    name: str
    issuer: str
    audience: str
    jwks_uri: str | None
    email_claim: str
    name_claim: str
    groups_claim: str | None
    group_map: dict[str, uuid.UUID]
    default_group_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, provider: ProviderRow) -> IdentityProviderOut:
        return cls.model_validate({k: v for k, v in provider.items() if k != "tenant_id"})


class IdentityProviderList(BaseModel):
    items: list[IdentityProviderOut]
