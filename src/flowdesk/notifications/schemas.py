"""Bodies of the notification endpoints: deliveries, e-mail templates, webhook endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from flowdesk.schema_types import INPUT_CONFIG, QueryText, no_nul
from flowdesk.vocabulary import TICKET_TOPICS, Channel, DeliveryState, TicketEvent, TicketTopic

TemplateText = Annotated[str, StringConstraints(max_length=100_000), AfterValidator(no_nul)]


class DeliveryOut(BaseModel):
    id: uuid.UUID
    event: str
    channel: Channel
    recipient: str = Field(description="The e-mail address, or the webhook endpoint's id.")
    webhook_id: uuid.UUID | None
    ticket_id: uuid.UUID | None
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None = Field(description="When a pending delivery is next tried.")
    give_up_at: datetime = Field(description="Retries stop here; the delivery is then failed.")
    last_error: str | None
    message_id: str = Field(description="The mail's Message-ID, or the webhook-id header.")
    subject: str | None = Field(description="The mail's subject (e-mail only).")
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


class DeliveryQuery(BaseModel):
    model_config = INPUT_CONFIG
    status: DeliveryState | None = None
    channel: Channel | None = None
    ticket: QueryText | None = Field(
        default=None, description="A ticket's number (TKT-000001) or id."
    )


class TemplateIn(BaseModel):
    model_config = INPUT_CONFIG
    subject: Annotated[str, StringConstraints(min_length=1, max_length=500), AfterValidator(no_nul)]
    html: TemplateText
    text: TemplateText


class TemplateOut(BaseModel):
    event: TicketEvent
    subject: str
    html: str
    text: str
    custom: bool = Field(description="True when the tenant stored it; false: the built-in one.")
    in_use: bool = Field(
        description="Whether mails use it now: a stored template is used only while the "
        "email_templates flag is on."
    )
    updated_at: datetime | None


class PreviewIn(BaseModel):
    model_config = INPUT_CONFIG
    template: TemplateIn | None = Field(
        default=None, description="The template to render; default: the one in use."
    )
    ticket: QueryText | None = Field(
        default=None, description="Render against this ticket (number or id); default: a sample."
    )


class PreviewOut(BaseModel):
    subject: str
    html: str
    text: str


WebhookUrl = Annotated[
    str, StringConstraints(min_length=1, max_length=2000), AfterValidator(no_nul)
]
WebhookEvents = Annotated[list[TicketTopic], Field(min_length=1, max_length=len(TICKET_TOPICS))]
Description = Annotated[str, StringConstraints(max_length=500), AfterValidator(no_nul)]


class WebhookIn(BaseModel):
    model_config = INPUT_CONFIG
    url: WebhookUrl
    events: WebhookEvents
    description: Description = ""


class WebhookPatch(BaseModel):
    model_config = INPUT_CONFIG
    url: WebhookUrl | None = None
    events: WebhookEvents | None = None
    description: Description | None = None
    enabled: bool | None = None


class WebhookOut(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="The signing secret (whsec_…), shown only once.")


class WebhookTestOut(BaseModel):
    ok: bool
    status: int | None
    error: str | None
    duration_ms: int
    delivery: DeliveryOut
