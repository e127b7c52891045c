"""The attachments' JSON."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from flowdesk.tickets.schemas import UserRef


class AttachmentOut(BaseModel):
    id: uuid.UUID
    ticket_id: uuid.UUID
    comment_id: uuid.UUID | None = Field(description="The comment the file came with, if any.")
    filename: str
    content_type: str = Field(description="As the uploader gave it; served as a download.")
    size: int = Field(description="Bytes.")
    sha256: str = Field(description="The content's SHA-256, hex.")
    visibility: Literal["internal", "external"]
    uploader: UserRef
    created_at: datetime
    content_url: str = Field(description="Where the bytes are: GET it for the file itself.")
