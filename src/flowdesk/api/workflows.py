"""The compiled workflow catalog over HTTP: what SPAs need to draw forms, buttons and graphs."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from flowdesk.api.gates import TicketReader
from flowdesk.errors import found
from flowdesk.runtime import runtime_of
from flowdesk.workflow import Catalog, Workflow, render_dot, render_mermaid

router = APIRouter(prefix="/v1/workflows", tags=["workflows"])


class TimeoutOut(BaseModel):
    after_seconds: int
    action: str


class StatusOut(BaseModel):
    name: str
    label: str
    category: str
    hidden: bool
    milestone: str | None = Field(description="resolved or closed: entering it does that")
    final: bool = Field(description="Nothing changes a ticket here but an admin's reset")
    timeout: TimeoutOut | None = Field(description="The system takes `action` after this long")


class ConditionOut(BaseModel):
    kind: str
    values: list[str]
    detail: str


class ActionOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    name: str
    label: str
    from_: list[str] = Field(alias="from")
    to: str
    roles: list[str]
    permissions: list[str]
    conditions: list[ConditionOut]
    operations: list[str]
    resolutions: list[str]
    update_type: str | None
    weight: int


class WorkflowSummary(BaseModel):
    name: str
    display_name: str


class WorkflowOut(WorkflowSummary):
    statuses: list[StatusOut]
    create_statuses: list[str]
    default_create_status: str
    actions: list[ActionOut]
    on_reply: dict[str, str] = Field(description="A requester's reply moves status → status")
    on_assign: dict[str, str] = Field(description="An assignment moves status → status")


def _catalog(request: Request) -> Catalog:
    return runtime_of(request).catalog


def _workflow(request: Request, name: str) -> Workflow:
    return found(_catalog(request).workflows.get(name), f"No workflow '{name}'.")


@router.get("", response_model=list[WorkflowSummary], summary="The workflows of the catalog")
async def list_workflows(request: Request, principal: TicketReader) -> list[WorkflowSummary]:
    return [
        WorkflowSummary(name=w.name, display_name=w.display_name)
        for w in _catalog(request).workflows.values()
    ]


@router.get("/{name}", response_model=WorkflowOut, summary="One compiled workflow")
async def get_workflow(name: str, request: Request, principal: TicketReader) -> WorkflowOut:
    w = _workflow(request, name)
    return WorkflowOut(
        name=w.name,
        display_name=w.display_name,
        statuses=[
            StatusOut(
                name=s.name,
                label=s.label or s.name,
                category=s.category,
                hidden=s.hidden,
                milestone=s.milestone,
                final=s.final,
                timeout=TimeoutOut(
                    after_seconds=int(s.timeout.after.total_seconds()), action=s.timeout.action
                )
                if s.timeout
                else None,
            )
            for s in w.statuses.values()
        ],
        on_reply=dict(w.on_reply),
        on_assign=dict(w.on_assign),
        create_statuses=list(w.create_statuses),
        default_create_status=w.default_create_status,
        actions=[
            ActionOut(
                name=a.name,
                label=a.label,
                from_=list(a.sources),
                to=a.to,
                roles=list(a.roles),
                permissions=list(a.permissions),
                conditions=[
                    ConditionOut(kind=c.kind, values=sorted(c.values), detail=c.reason.detail)
                    for c in a.conditions
                ],
                operations=list(a.operations),
                resolutions=list(a.resolutions),
                update_type=a.update_type,
                weight=a.weight,
            )
            for a in w.actions
        ],
    )


@router.get(
    "/{name}/graph",
    summary="The workflow as a Mermaid or Graphviz DOT diagram",
    response_class=Response,
)
async def get_graph(
    name: str,
    request: Request,
    principal: TicketReader,
    format: Literal["mermaid", "dot"] = "mermaid",
) -> Response:
    w = _workflow(request, name)
    if format == "dot":
        return Response(render_dot(w), media_type="text/vnd.graphviz")
    return Response(render_mermaid(w), media_type="text/vnd.mermaid")
