"""Request and response bodies for tickets, transitions, comments and the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    Strict,
    StrictBool,
    StringConstraints,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

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

FIELD_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
FieldKey = Annotated[str, StringConstraints(pattern=FIELD_KEY_PATTERN)]
FieldText = Annotated[str, StringConstraints(max_length=2000), AfterValidator(no_nul)]
# Numbers stay within what every JSON client can represent exactly. Strict: a value is taken
# as the JSON type it was sent as, never converted (a long numeric string is not the number 0;
# found by the fuzzer).
SafeInt = Annotated[int, Strict(), Field(ge=-(2**53), le=2**53)]


def _no_integer(value: object) -> object:
    """An integer is SafeInt's to take: one beyond its range must be refused, not rounded into
    a float within it (-(2**53) - 1 became -(2**53); found by the fuzzer)."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f"integers must be within ±{2**53}")
    return value


SafeFloat = Annotated[
    float,
    Strict(),
    BeforeValidator(_no_integer),
    Field(ge=-(2**53), le=2**53, allow_inf_nan=False),
]
# Custom field values: scalars or short lists of strings, as a service desk's forms produce.
FieldValue = FieldText | StrictBool | SafeInt | SafeFloat | list[FieldText] | None
# The document says what the code checks: no key outside the pattern (issue 16, item 11).
_ONLY_FIELD_KEYS = {"additionalProperties": False, "propertyNames": {"pattern": FIELD_KEY_PATTERN}}
CustomFields = Annotated[
    dict[FieldKey, FieldValue], Field(max_length=50, json_schema_extra=_ONLY_FIELD_KEYS)
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(no_nul)]


class UserRef(BaseModel):
    id: uuid.UUID
    name: str


# The answers to a catalog item's intake form, keyed by question: checked against the form's
# JSON Schema (GET /v1/catalog/{item}), not here.
AnswerKey = Annotated[str, StringConstraints(max_length=100)]
Answers = Annotated[dict[AnswerKey, Any], Field(max_length=100)]


class TicketCreate(BaseModel):
    model_config = INPUT_CONFIG
    title: Title | None = Field(
        default=None,
        description="Required, unless the catalog item's form takes the title from an answer "
        "(a question with `maps_to: title`).",
    )
    description: LongText = ""
    catalog_item: Name
    priority: Priority | None = Field(default=None, description="Default: the catalog item's.")
    fields: CustomFields = Field(default_factory=dict)
    answers: Answers = Field(
        default_factory=dict,
        description="The answers to the catalog item's intake form, by question key, as its "
        "JSON Schema says (GET /v1/catalog/{item}: `form`); each invalid one is a 422 whose "
        "pointer is /answers/<key>. Immutable once the ticket exists.",
    )
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


class SlaClockOut(BaseModel):
    """One SLA clock of the ticket (a policy of the catalog: docs/workflows.md)."""

    name: str = Field(description="The SLA policy's name in the catalog.")
    state: Literal["running", "paused", "met", "breached"] = Field(
        description="A running clock past its due time is `breached` at once."
    )
    started_at: datetime
    due_at: datetime | None = Field(description="When it breaches; null while paused.")
    warn_at: datetime | None = Field(description="When it is at risk (the policy's warn_at).")
    at_risk: bool = Field(description="Running, past `warn_at`, not yet due.")
    remaining_seconds: int | None = Field(
        description="Running: seconds until `due_at`; paused: the clock's own time left "
        "(working seconds on a business calendar); otherwise null."
    )
    overdue_seconds: int | None = Field(
        description="Breached: seconds past `due_at` (until it stopped, or now)."
    )
    paused_at: datetime | None
    stopped_at: datetime | None
    breached_at: datetime | None


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
    answers: dict[str, Any] = Field(
        description="The intake form's answers that fill no ticket field, by question key, as "
        "given at creation (a multi-choice answer is a list; an 'Other' option's text is "
        "`<key>_other`). Immutable."
    )
    answers_html: dict[str, str] = Field(
        description="The rich-text answers, rendered from their Markdown to sanitised HTML"
    )
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
    sla: list[SlaClockOut] = Field(
        default_factory=list, description="The ticket's SLA clocks (none without a policy)."
    )


class TicketReceipt(BaseModel):
    """What a write answers to a key without tickets:read: that it happened, not the ticket."""

    id: uuid.UUID
    number: str
    version: int


class TransitionIn(BaseModel):
    to: Name | None = None
    action: Name | None = None
    comment: LongText | None = None
    comment_visibility: Visibility | None = Field(
        default=None, description="Default: what the action's update type says (reply = external)."
    )
    resolution: Name | None = None
    assignee_id: uuid.UUID | None = Field(default=None, description="For set_owner actions.")

    # Documented as the validator below checks it (a null `to` or `action` is no target).
    model_config = ConfigDict(
        **INPUT_CONFIG,
        json_schema_extra={
            "oneOf": [
                {"required": ["to"], "properties": {"to": {"type": "string"}}},
                {"required": ["action"], "properties": {"action": {"type": "string"}}},
            ]
        },
    )

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
    has_form: bool = Field(
        default=False, description="Whether filing asks a questionnaire (GET /v1/catalog/{item})"
    )


class OptionHint(BaseModel):
    value: str
    label: str
    help: str | None = None
    other: bool | None = Field(default=None, description="Choosing it asks for `<key>_other`")


class OptionGroupHint(BaseModel):
    group: str = Field(description="The group's label")
    help: str | None = None
    options: list[OptionHint]


class QuestionHint(BaseModel):
    label: str
    help: str
    widget: Literal["text", "textarea", "markdown", "select", "checkboxes", "user"]
    required: bool = Field(description="For an 'Other' text: while `when` holds")
    maps_to: str | None = Field(
        default=None,
        description="title, description, priority or fields.<key>: the answer "
        "fills that ticket field instead of being kept as an answer",
    )
    max_words: int | None = None
    max_length: int | None = None
    options: list[OptionHint | OptionGroupHint] | None = Field(
        default=None, description="A choice's options in order, grouped where the form groups them"
    )
    other_for: str | None = Field(
        default=None, description="This is the free text of that question's 'Other' options"
    )
    when: list[str] | None = Field(
        default=None, description="Shown and required while one of these options is chosen"
    )


class FormHints(BaseModel):
    order: list[str] = Field(description="The answers' keys in the order to ask them")
    questions: dict[str, QuestionHint]


class CatalogItemDetail(CatalogItemOut):
    form: dict[str, Any] | None = Field(
        description="The JSON Schema (2020-12) of the `answers` POST /v1/tickets takes for "
        "this item, exactly as they are validated (null: the item asks no questions). Labels "
        "and help are its `title` and `description` annotations."
    )
    form_hints: FormHints | None = Field(
        description="How to show the form: order, labels, help, widgets, option groups and "
        "where an 'Other' option's text goes"
    )


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


TicketSort = Literal[
    "created", "-created", "updated", "-updated", "priority", "-priority", "sla_due"
]
QueryValues = Annotated[list[QueryText] | None, Field(max_length=20)]


_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_ME_OR_ID = f"^(me|{_UUID})$"
_ME_NONE_OR_ID = f"^(me|none|{_UUID})$"


class TicketFilterQuery(BaseModel):
    """Which tickets: the filters GET /v1/tickets and GET /v1/tickets/counts share. Unknown
    parameters are ignored, as for every other endpoint."""

    status: QueryValues = None
    status_category: Annotated[list[Category] | None, Field(max_length=len(CATEGORIES))] = None
    assignee: Annotated[
        str | None, Field(pattern=_ME_NONE_OR_ID, description="me, none, or a user id")
    ] = None
    requester: Annotated[str | None, Field(pattern=_ME_OR_ID, description="me or a user id")] = None
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
        QueryText | None,
        Field(description="Full-text search in the title, the description and the answers"),
    ] = None
    stale: Annotated[
        bool, Field(description="Only tickets whose status their workflow no longer has")
    ] = False
    sla_state: Annotated[
        Literal["breached", "at_risk"] | None,
        Field(
            description="Only tickets with an SLA clock breached (past due, running or "
            "stopped late), or at risk (running, past its warning, not yet due)"
        ),
    ] = None
    # `?answer.<key>=<value>` (flowdesk.api.tickets.answer_filters reads them: their names are
    # not known in advance); not a parameter of its own.
    answer: SkipJsonSchema[dict[str, list[str]]] = Field(default_factory=dict, exclude=True)


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
