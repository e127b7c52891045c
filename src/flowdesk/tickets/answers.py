"""A new ticket's answers to its catalog item's intake form: checked against the form's JSON
Schema (flowdesk.workflow.form_schema) and, for user answers, against the tenant's users; then
sorted into the ticket fields they fill and the answers the ticket keeps.

Answers are given once, at creation, and never changed (docs/adr/0014-intake-forms.md): the
approval rules read them, and an answer edited after an approval would slip past it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, TypedDict

from sqlalchemy import Uuid, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY

from flowdesk.db.query import Connection, Query, rows
from flowdesk.errors import InvalidInput
from flowdesk.models import users
from flowdesk.tickets.schemas import TicketCreate
from flowdesk.workflow import CatalogItem
from flowdesk.workflow.form_schema import HTML_KEY, check, intake

# Which of these ids are live users of the tenant.
LIVE_USERS = Query(
    select(users.c.id).where(
        users.c.tenant_id == bindparam("tenant_id", type_=Uuid),
        users.c.id == func.any(bindparam("ids", type_=ARRAY(Uuid))),
        users.c.deleted_at.is_(None),
    )
)


class _Id(TypedDict):
    id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Filing:
    """What a create stores: the body's ticket fields with the answers' on top."""

    title: str
    description: str
    priority: str | None  # None: the catalog item's default
    fields: dict[str, Any]
    # As the ticket's `answers` column keeps them (the rendered rich text under HTML_KEY).
    stored: dict[str, Any]

    @property
    def answers(self) -> dict[str, Any]:
        return {k: v for k, v in self.stored.items() if k != HTML_KEY}


_BODY_POINTERS = {"title": "/title", "description": "/description", "priority": "/priority"}


async def filing(
    conn: Connection, tenant_id: uuid.UUID, item: CatalogItem, body: TicketCreate
) -> Filing:
    """The ticket fields and answers of a create, or a 422 listing every answer that does not
    fit the item's form (and any field given twice, by the body and by an answer)."""
    form = item.form
    if form is None:
        if body.answers:
            raise InvalidInput(
                f"The catalog item '{item.name}' has no form: it takes no answers.",
                [("/answers", "this catalog item asks no questions")],
            )
        return Filing(_title(body.title), body.description, body.priority, body.fields, {})
    errors = check(form, body.answers)
    sorted_out = intake(form, body.answers)
    sent = body.model_fields_set
    for target in sorted_out.ticket:
        if target in sent and getattr(body, target) is not None:
            source = form.mapped(target)
            errors.append(
                (
                    _BODY_POINTERS[target],
                    f"the answer '{source.key if source else '?'}' gives the {target}: send "
                    "one or the other",
                )
            )
    for key in sorted_out.fields:
        if key in body.fields:
            errors.append((f"/fields/{key}", "an answer of the form gives this field"))
    title = sorted_out.ticket.get("title") or body.title
    source = form.mapped("title")
    answered_wrong = source is not None and any(p == f"/answers/{source.key}" for p, _ in errors)
    if not title and not answered_wrong:
        errors.append(
            (
                "/title",
                f"required: give a title or answer '{source.key}'" if source else "required",
            )
        )
    if not errors and sorted_out.users:
        errors += await _unknown_users(conn, tenant_id, sorted_out.users)
    if errors:
        raise InvalidInput(f"The answers do not fit the form of '{item.name}'.", errors)
    return Filing(
        title=_title(title),
        description=sorted_out.ticket.get("description", body.description),
        priority=sorted_out.ticket.get("priority", body.priority),
        fields={**body.fields, **sorted_out.fields},
        stored=sorted_out.answers,
    )


def _title(title: str | None) -> str:
    if not title:
        raise InvalidInput("A ticket needs a title.", [("/title", "required")])
    return title


async def _unknown_users(
    conn: Connection, tenant_id: uuid.UUID, answered: dict[str, str]
) -> list[tuple[str, str]]:
    """The user answers that name no live user of the tenant (another tenant's user is no
    user here)."""
    ids = {key: uuid.UUID(value) for key, value in answered.items()}
    found = await rows(conn, _Id, LIVE_USERS, tenant_id=tenant_id, ids=list(set(ids.values())))
    live = {r["id"] for r in found}
    return [
        (f"/answers/{key}", "not a user of this tenant")
        for key, user_id in ids.items()
        if user_id not in live
    ]
