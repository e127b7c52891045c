"""The people a ticket message names indirectly, read for a fan-out batch in one query per kind:
the members of a group (an SLA escalation, the givers of an approval), a user named by e-mail,
the requester's manager, and the approvals a ticket holds (to tell which it still waits on).

Only the messages that need them cause a query: SLA marks with a group or user target, and
status changes into a status whose way on is gated by an approval
(flowdesk.notifications.approvers).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypedDict

from sqlalchemy import Text, Uuid, and_, func, select

from flowdesk.db.query import Connection, Query, rows
from flowdesk.models import group_members, groups, ticket_approvals, users
from flowdesk.notifications.repository import Key, PersonRow, _pairs

# (tenant id, group name or e-mail address)
NameKey = tuple[uuid.UUID, str]


class _Member(PersonRow):
    group: str


class _Addressee(PersonRow):
    address: str


class _Managed(PersonRow):
    report_id: uuid.UUID


class _Held(TypedDict):
    tenant_id: uuid.UUID
    ticket_id: uuid.UUID
    name: str


def _members() -> Query:
    keys = _pairs("tenant_ids", "names", Text)
    return Query(
        select(users.c.tenant_id, users.c.id, users.c.name, users.c.email, keys.c.id.label("group"))
        .select_from(
            keys.join(
                groups, and_(groups.c.tenant_id == keys.c.tenant_id, groups.c.name == keys.c.id)
            )
            .join(
                group_members,
                and_(
                    group_members.c.tenant_id == groups.c.tenant_id,
                    group_members.c.group_id == groups.c.id,
                ),
            )
            .join(
                users,
                and_(
                    users.c.tenant_id == group_members.c.tenant_id,
                    users.c.id == group_members.c.user_id,
                ),
            )
        )
        .where(users.c.deleted_at.is_(None), users.c.kind == "person")
        .order_by(users.c.tenant_id, users.c.email)
    )


def _addressees() -> Query:
    keys = _pairs("tenant_ids", "names", Text)
    return Query(
        select(
            users.c.tenant_id, users.c.id, users.c.name, users.c.email, keys.c.id.label("address")
        )
        .select_from(
            keys.join(
                users,
                and_(
                    users.c.tenant_id == keys.c.tenant_id,
                    func.lower(users.c.email) == func.lower(keys.c.id),
                ),
            )
        )
        .where(users.c.deleted_at.is_(None))
    )


def _managers() -> Query:
    keys = _pairs("tenant_ids", "ids", Uuid)
    report, manager = users.alias("report"), users.alias("manager")
    return Query(
        select(
            manager.c.tenant_id,
            manager.c.id,
            manager.c.name,
            manager.c.email,
            report.c.id.label("report_id"),
        )
        .select_from(
            keys.join(
                report, and_(report.c.tenant_id == keys.c.tenant_id, report.c.id == keys.c.id)
            ).join(
                manager,
                and_(
                    manager.c.tenant_id == report.c.tenant_id, manager.c.id == report.c.manager_id
                ),
            )
        )
        .where(manager.c.deleted_at.is_(None))
    )


def _held() -> Query:
    keys = _pairs("tenant_ids", "ids", Uuid)
    a = ticket_approvals.c
    return Query(
        select(a.tenant_id, a.ticket_id, a.name).select_from(
            keys.join(
                ticket_approvals, and_(a.tenant_id == keys.c.tenant_id, a.ticket_id == keys.c.id)
            )
        )
    )


_MEMBERS, _ADDRESSEES, _MANAGERS, _HELD = _members(), _addressees(), _managers(), _held()


def _arrays(keys: Sequence[tuple[uuid.UUID, object]], name: str) -> dict[str, list[object]]:
    unique = list(set(keys))
    return {"tenant_ids": [t for t, _ in unique], name: [v for _, v in unique]}


@dataclass(slots=True)
class Audience:
    """What one fan-out batch read about the people its messages name indirectly."""

    members: dict[NameKey, list[PersonRow]] = field(default_factory=dict)
    by_email: dict[NameKey, PersonRow] = field(default_factory=dict)
    managers: dict[Key, PersonRow] = field(default_factory=dict)
    held: dict[Key, frozenset[str]] = field(default_factory=dict)

    @classmethod
    async def read(
        cls,
        conn: Connection,
        *,
        groups: Sequence[NameKey] = (),
        emails: Sequence[NameKey] = (),
        reports: Sequence[Key] = (),
        tickets: Sequence[Key] = (),
    ) -> Audience:
        found = cls()
        if groups:
            for m in await rows(conn, _Member, _MEMBERS, **_arrays(groups, "names")):
                person: PersonRow = {k: m[k] for k in ("tenant_id", "id", "name", "email")}  # type: ignore[assignment]
                found.members.setdefault((m["tenant_id"], m["group"]), []).append(person)
        if emails:
            for a in await rows(conn, _Addressee, _ADDRESSEES, **_arrays(emails, "names")):
                found.by_email[(a["tenant_id"], a["address"].casefold())] = a
        if reports:
            for boss in await rows(conn, _Managed, _MANAGERS, **_arrays(reports, "ids")):
                found.managers[(boss["tenant_id"], boss["report_id"])] = boss
        if tickets:
            held: dict[Key, set[str]] = {}
            for h in await rows(conn, _Held, _HELD, **_arrays(tickets, "ids")):
                held.setdefault((h["tenant_id"], h["ticket_id"]), set()).add(h["name"])
            found.held = {k: frozenset(v) for k, v in held.items()}
        return found

    def group(self, tenant_id: uuid.UUID, name: str) -> list[PersonRow]:
        return self.members.get((tenant_id, name), [])

    def user(self, tenant_id: uuid.UUID, email: str) -> PersonRow | None:
        return self.by_email.get((tenant_id, email.casefold()))

    def manager_of(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> PersonRow | None:
        return self.managers.get((tenant_id, user_id))

    def approvals_of(self, tenant_id: uuid.UUID, ticket_id: uuid.UUID) -> frozenset[str]:
        return self.held.get((tenant_id, ticket_id), frozenset())
