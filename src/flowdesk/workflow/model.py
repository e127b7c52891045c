"""The compiled, immutable workflow model and the engine's inputs and outputs.

Everything here is built once at load time (``compile.py``); a decision only reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import NamedTuple

from flowdesk.vocabulary import PERMISSIONS, Category, Milestone

from .approvals import ApprovalPolicy
from .calendars import Calendar
from .diagnostics import Diagnostic, Pos
from .forms import Form
from .sla_model import SlaPolicy

ROLES = ("assignee", "requester", "any")
OPERATIONS = (
    "set_owner",
    "set_owner_to_self",
    "may_set_owner",
    "del_owner",
    "set_resolution",
    "del_resolution",
    "leave_status",
    "reset_workflow",
)
CONDITION_KINDS = (
    "field_set",
    "field_in",
    "answer_set",
    "answer_in",
    "link",
    "type_in",
    "type_not_in",
    "approval",
    "any",
    "all",
    "not",
    "when",
)
UPDATE_TYPES = ("comment", "reply", "quick")
FLOWDESK_PERMISSIONS = PERMISSIONS

CREATE = ""  # the pseudo-status a ticket is in before it exists (RT's '', Trac's <none>)
STAY = "stay"  # `to: stay`: the status does not change (Trac's `-> *` with leave_status)
RETURN = "return"  # `to: return`: back to the status the ticket had before (a detour)
RESET = "_reset"

# Role bits: a decision ORs the actor's bits and tests them against the edge's mask.
ROLE_ASSIGNEE = 1
ROLE_REQUESTER = 2
ROLE_ADMIN = 4
ROLE_BITS = {"assignee": ROLE_ASSIGNEE, "requester": ROLE_REQUESTER, "any": 7}

EMPTY: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Status:
    name: str
    category: Category
    hidden: bool = False
    label: str = ""
    dead_end: bool = False  # "no inactive status reachable from here" is intended
    milestone: Milestone | None = None
    # RT's `deleted`: a ticket here never shows in search results (even when its status is
    # named) and only an admin reads it by reference.
    deleted: bool = False
    # Seed 004's closed: "no further changes allowed". Only an admin's reset moves a ticket
    # out of a final status; nothing else changes it.
    final: bool = False
    timeout: Timeout | None = None


@dataclass(frozen=True, slots=True)
class Timeout:
    """A ticket left in a status for `after` is moved by `action`, taken by the system."""

    after: timedelta
    action: str


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an action is refused: ``code`` for machines, ``detail`` for people."""

    code: str  # role | permission | condition | owner | input | reset
    detail: str
    required: tuple[str, ...] = ()
    condition: str | None = None
    values: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "detail": self.detail}
        if self.required:
            out["required"] = list(self.required)
        if self.condition is not None:
            out["condition"] = self.condition
        if self.values:
            out["values"] = list(self.values)
        return out


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What the caller knows about the ticket; ``status=None`` means "not yet created"."""

    status: str | None = None
    type: str | None = None
    requester: str | None = None
    owner: str | None = None
    resolution: str | None = None
    fields: Mapping[str, object] = field(default_factory=lambda: EMPTY)
    # The intake form's answers, by question key (a multi-choice answer is a list).
    answers: Mapping[str, object] = field(default_factory=lambda: EMPTY)
    links: frozenset[str] = frozenset()
    approvals: frozenset[str] = frozenset()
    # Needed only by `to: return` detours (platform_request's Waiting on Customer / Blocked):
    # the status the ticket was in before it entered the current one, from its audit trail.
    previous_status: str | None = None
    # Who each owner a workflow names (`set_owner: [ann, qa-team, TICKET_MODIFY]`) stands for
    # where the ticket lives: name -> the users it resolves to (a name may resolve to nobody).
    # None: owners are users already (the engine's own callers without a directory).
    owner_candidates: Mapping[str, tuple[str, ...]] | None = None


@dataclass(frozen=True, slots=True)
class Actor:
    user: str
    permissions: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Condition:
    """A test on the ticket's facts, compiled with the reasons it gives when it fails.

    Leaves test one fact (`values` are normalised: see ``normal``); `any`, `all` and `not`
    combine `parts`; `when` is a rule, ``parts = (when, require)``: where `when` holds,
    `require` must hold too (seed 003's manager-approval matrix, one rule per row).
    """

    kind: str
    values: frozenset[str]
    reason: Reason
    key: str = ""  # field_in, answer_in, answer_set: the field or answer it reads
    parts: tuple[Condition, ...] = ()
    # Every kind in the tree: whether the condition reads links or approvals (a query each).
    kinds: frozenset[str] = frozenset()

    def holds(self, facts: TicketFacts) -> bool:
        kind = self.kind
        if kind == "field_set":
            (name,) = self.values
            return is_set(facts.fields.get(name))
        if kind == "link":
            return not self.values.isdisjoint(facts.links)
        if kind == "approval":
            return not self.values.isdisjoint(facts.approvals)
        if kind == "type_in":
            return facts.type in self.values
        if kind == "type_not_in":
            return facts.type not in self.values
        if kind == "field_in":
            return _one_of(facts.fields.get(self.key), self.values)
        if kind == "answer_in":
            return _one_of(facts.answers.get(self.key), self.values)
        if kind == "answer_set":
            return is_set(facts.answers.get(self.key))
        # Loops, not all()/any() of a generator: a decision's hot path (twice as fast).
        if kind == "all":
            for part in self.parts:  # noqa: SIM110
                if not part.holds(facts):
                    return False
            return True
        if kind == "any":
            for part in self.parts:  # noqa: SIM110
                if part.holds(facts):
                    return True
            return False
        if kind == "not":
            return not self.parts[0].holds(facts)
        when, require = self.parts  # when
        return not when.holds(facts) or require.holds(facts)

    def missing(self, facts: TicketFacts) -> tuple[Reason, ...]:
        """Why the condition fails, exactly: each approval, answer or field that is missing
        (nothing when it holds). A rule whose `when` holds answers for its `require`."""
        kind = self.kind
        if kind == "all":
            return tuple(r for p in self.parts for r in p.missing(facts))
        if kind == "when":
            when, require = self.parts
            return require.missing(facts) if when.holds(facts) else ()
        return () if self.holds(facts) else (self.reason,)


def normal(value: object) -> str | None:
    """A value as conditions compare it: text without surrounding blanks, in any case
    ("Crypto" typed into a free-text answer is the `crypto` project). Only scalars have one."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value).strip().casefold()
    return None


def _one_of(value: object, wanted: frozenset[str]) -> bool:
    """A field's or answer's value is one of `wanted`: a list (a multi-choice answer) when any
    of its items is, a mapping (a choice's "Other" with its text) when any of its values is."""
    if isinstance(value, str):
        return value.strip().casefold() in wanted
    if isinstance(value, list | tuple):
        items: Iterable[object] = value
    elif isinstance(value, Mapping):
        items = value.values()
    else:
        items = (value,)
    for item in items:  # noqa: SIM110 (as Condition.holds)
        if normal(item) in wanted:
            return True
    return False


def is_set(value: object) -> bool:
    if value is None or value == "":
        return False
    return not (isinstance(value, list | tuple | dict | set | frozenset) and not value)


@dataclass(frozen=True, slots=True)
class Action:
    """One action as declared (``sources`` as written: '' = create, '*' = every status)."""

    name: str
    label: str
    sources: tuple[str, ...]
    to: str  # a status, STAY or RETURN
    roles: tuple[str, ...] = ()
    forbidden_roles: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()
    any_permission: tuple[str, ...] = ()
    conditions: tuple[Condition, ...] = ()
    operations: tuple[str, ...] = ()
    resolutions: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    weight: int = 0
    update_type: str | None = None
    comment_required: bool = False
    external: bool = False
    pos: Pos | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Edge:
    """A row of the compiled table: one action out of one status, with its checks precomputed.

    Permissions are stored as *grantor sets*: the held permissions that satisfy a requirement
    through ``permission_implies`` (admin is in every one), so a check is one ``isdisjoint``.
    """

    action: Action
    source: str
    target: str  # a status, STAY or RETURN
    role_mask: int  # 0: no role restriction
    role_reason: Reason | None
    forbidden_mask: int
    forbidden_reason: Reason | None
    all_of: tuple[tuple[frozenset[str], Reason], ...]
    any_of: tuple[tuple[frozenset[str], Reason], ...]
    conditions: tuple[Condition, ...]
    noop_for_owner: bool  # Trac: set_owner_to_self alone, status unchanged, actor owns it
    return_targets: frozenset[str]
    rights: tuple[str, ...]  # permissions that came from `rights` patterns (for rendering)


@dataclass(frozen=True, slots=True, eq=False)
class Workflow:
    name: str
    display_name: str
    statuses: Mapping[str, Status]
    default_create_status: str
    create_statuses: tuple[str, ...]
    actions: tuple[Action, ...]
    table: Mapping[str, tuple[Edge, ...]]  # status ('' = create) -> edges in display order
    index: Mapping[str, Mapping[str, Edge]]  # status -> action name -> edge
    reset_edges: tuple[Edge, ...]  # offered when the ticket's status is not in the workflow
    admin_grantors: frozenset[str]
    permission_implies: Mapping[str, tuple[str, ...]]
    rights: tuple[tuple[str, str, tuple[str, ...]], ...]
    pos: Pos | None = None
    # The owners its actions name that are permissions, each with the permissions that grant
    # it (Trac 1.1.3: an owner may name a permission, meaning everyone who holds it).
    owner_grantors: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # RT's AutoOpen: a reply from the requester on a ticket in one of these statuses moves it
    # to the status given (`on_reply: {new: open, resolved: open}`).
    on_reply: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Assigning an agent to a ticket in one of these statuses moves it to the status given
    # (`on_assign: {open: in_progress}`); unassigning moves nothing.
    on_assign: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # The catalog's SLA policies that name this workflow (flowdesk.workflow.sla_spec): what
    # entering a status does to the ticket's clocks is decided from here.
    sla_policies: tuple[SlaPolicy, ...] = ()

    def owner_names(self) -> tuple[str, ...]:
        """Every owner its actions name (users, groups or permissions), each once."""
        return tuple(dict.fromkeys(o for a in self.actions for o in a.owners))

    def status_category(self, status: str) -> Category | None:
        found = self.statuses.get(status)
        return found.category if found else None

    def is_final(self, status: str) -> bool:
        found = self.statuses.get(status)
        return found is not None and found.final

    def timeout(self, status: str) -> Timeout | None:
        found = self.statuses.get(status)
        return found.timeout if found else None

    def milestone(self, status: str) -> Milestone | None:
        """Whether entering `status` resolves or closes the ticket (None: neither)."""
        found = self.statuses.get(status)
        return found.milestone if found else None


# What a fresh Trac environment defines, and what a catalog that declares none offers.
DEFAULT_RESOLUTIONS: tuple[str, ...] = ("fixed", "invalid", "wontfix", "duplicate", "worksforme")


@dataclass(frozen=True, slots=True)
class CatalogItem:
    name: str
    display_name: str
    type: str
    workflow: str
    default_priority: str
    # The intake form a ticket filed against the item answers (None: no questionnaire).
    form: Form | None = None


class ActionOption(NamedTuple):
    """One action out of the current status for one actor (a tuple: built per decision)."""

    action: str
    label: str
    to: str | None  # leave_status: the current status; `return` with no known previous: None
    allowed: bool
    reasons: tuple[Reason, ...]
    update_type: str | None
    operations: tuple[str, ...]
    resolutions: tuple[str, ...]
    owners: tuple[str, ...]
    comment_required: bool
    external: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "action": self.action,
            "label": self.label,
            "to": self.to,
            "allowed": self.allowed,
            "reasons": [r.to_dict() for r in self.reasons],
        }


@dataclass(frozen=True, slots=True)
class ApplyInputs:
    owner: str | None = None
    resolution: str | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    action: str
    from_status: str | None
    status: str
    owner: str | None
    resolution: str | None
    changes: Mapping[str, tuple[object, object]]


class WorkflowError(Exception):
    """Base of the engine's domain errors (the HTTP layer maps them to status codes)."""


class UnknownAction(WorkflowError):
    def __init__(self, action: str, status: str | None, message: str | None = None) -> None:
        self.action = action
        self.status = status
        where = "creation" if status is None else f"status '{status}'"
        super().__init__(message or f"no action '{action}' out of {where}")


class TransitionRefused(WorkflowError):
    def __init__(self, action: str, reasons: tuple[Reason, ...]) -> None:
        self.action = action
        self.reasons = reasons
        super().__init__(f"'{action}' refused: " + "; ".join(r.detail for r in reasons))

    def to_dict(self) -> dict[str, object]:
        return {
            "action": self.action,
            "allowed": False,
            "reasons": [r.to_dict() for r in self.reasons],
        }


class StatusMapMissing(WorkflowError):
    def __init__(self, from_workflow: str, to_workflow: str, status: str) -> None:
        self.from_workflow = from_workflow
        self.to_workflow = to_workflow
        self.status = status
        super().__init__(
            f"no status map from '{from_workflow}' to '{to_workflow}' for status '{status}'"
        )


class UnknownWorkflow(WorkflowError, KeyError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown workflow '{name}'")

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True, slots=True, eq=False)
class Catalog:
    workflows: Mapping[str, Workflow]
    items: Mapping[str, CatalogItem]
    maps: Mapping[tuple[str, str], Mapping[str, str]]
    warnings: tuple[Diagnostic, ...] = ()
    sources: tuple[str, ...] = ()
    # The resolutions a ticket may be given ("must be defined in the database", as Trac says).
    resolutions: tuple[str, ...] = ()
    # Per workflow, the statuses a default ticket list leaves out (hidden or deleted) and those
    # no list ever shows (deleted): made once at load, read by every list request.
    unlisted: tuple[tuple[str, tuple[str, ...]], ...] = ()
    deleted: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # The named forms (`forms:`); an item's own form is only on the item.
    forms: Mapping[str, Form] = field(default_factory=lambda: MappingProxyType({}))
    # Who may give each approval the conditions name (flowdesk.workflow.approvals).
    approvals: Mapping[str, ApprovalPolicy] = field(default_factory=lambda: MappingProxyType({}))
    # Business calendars by name, and every SLA policy (flowdesk.workflow.sla_spec).
    calendars: Mapping[str, Calendar] = field(default_factory=lambda: MappingProxyType({}))
    sla_policies: tuple[SlaPolicy, ...] = ()

    def workflow(self, name: str) -> Workflow:
        try:
            return self.workflows[name]
        except KeyError:
            raise UnknownWorkflow(name) from None

    def rights(self) -> frozenset[str]:
        """The workflow rights a tenant's groups may hold: every permission a workflow asks
        for (its actions' and its RT-style rights') that is not one of flowdesk's own."""
        named: set[str] = set()
        for workflow in self.workflows.values():
            for action in workflow.actions:
                named.update(action.permissions, action.any_permission)
            for _, _, permissions in workflow.rights:
                named.update(permissions)
        return frozenset(p for p in named if "*" not in p) - frozenset(FLOWDESK_PERMISSIONS)

    def map_status(self, from_workflow: str, to_workflow: str, status: str) -> str:
        """Where a ticket in ``status`` lands when it moves to another workflow.

        An explicit map wins; otherwise a status of the same name in the target is kept; any
        other move is an error (RT refuses a queue move without a map; we never guess).
        """
        target = self.workflow(to_workflow)
        self.workflow(from_workflow)
        if from_workflow == to_workflow:
            return status
        explicit = self.maps.get((from_workflow, to_workflow))
        if explicit is not None and status in explicit:
            return explicit[status]
        if status in target.statuses:
            return status
        raise StatusMapMissing(from_workflow, to_workflow, status)
