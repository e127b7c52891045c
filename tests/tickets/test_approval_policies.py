"""Approval policies over HTTP: seed 003's manager-approval matrix row by row (which access
requests need the requester's manager, that only the manager can give it, the reasons while it
is missing), the `infra` approval by "INFRA approvers" only and never by the requester or the
assignee, one approval per approver, revocation, clearing on back to Review, a manager's
filing for a report, and users' managers (`manager_id`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI

from tests.sql import fetch
from tests.support import Member, problem_type
from tests.tickets.conftest import AGENT, Desk

INFRA_GROUP = "INFRA approvers"


@dataclass
class Platform:
    """Seed 003's people: the requester, their manager (a desk user, not an agent), two INFRA
    approvers (the assignee and another agent), and an agent who approves nothing."""

    desk: Desk
    manager: Member
    outsider: Member

    async def file(self, answers: dict[str, Any], by: Member | None = None, **body: Any) -> Any:
        r = await self.desk.client.post(
            "/v1/tickets",
            json={"catalog_item": "platform_access", "answers": access(**answers), **body},
            headers=(by or self.desk.requester).headers,
        )
        assert r.status_code == 201, r.text
        return r.json()

    async def to_authorize(self, ticket: dict[str, Any]) -> None:
        for action in ("start_review", "request_authorization"):
            r = await self.desk.move(ticket, self.desk.agent, action=action)
            assert r.status_code == 200, r.text

    async def approve(self, ticket: dict[str, Any], name: str, by: Member) -> Any:
        return await self.desk.client.post(
            f"/v1/tickets/{ticket['id']}/approvals", json={"name": name}, headers=by.headers
        )

    async def authorize_reasons(self, ticket: dict[str, Any]) -> list[dict[str, Any]]:
        r = await self.desk.client.get(
            f"/v1/tickets/{ticket['id']}/transitions", headers=self.desk.agent.headers
        )
        options = {o["action"]: o for o in r.json()["items"]}
        return list(options["authorize"]["reasons"])

    async def approvals(self, ticket: dict[str, Any]) -> list[tuple[str, str]]:
        r = await self.desk.client.get(
            f"/v1/tickets/{ticket['id']}/approvals", headers=self.desk.agent.headers
        )
        assert r.status_code == 200, r.text
        return [(a["name"], a["approver"]["id"]) for a in r.json()]

    async def events(self, ticket: dict[str, Any]) -> list[dict[str, Any]]:
        r = await self.desk.client.get(
            f"/v1/tickets/{ticket['id']}/events?limit=100", headers=self.desk.agent.headers
        )
        return list(r.json()["items"])


def access(**answers: Any) -> dict[str, Any]:
    """An access request's answers to seed 003's questionnaire."""
    return {
        "summary": "Access for the on-call rotation",
        "service": "kubernetes",
        "details": "I join the on-call rotation next week.",
        "justification": "On call for the cluster",
        **answers,
    }


async def set_manager(desk: Desk, user: Member, manager: Member | None) -> Any:
    return await desk.client.patch(
        f"/v1/users/{user.id}",
        json={"manager_id": manager.id if manager else None},
        headers=desk.admin.headers,
    )


@pytest.fixture
async def platform(desk: Desk) -> Platform:
    manager = await desk.tenant.user("tickets:create", name="Mona Manager")
    outsider = await desk.tenant.user(*AGENT, name="Nils Notapprover")
    assert (await set_manager(desk, desk.requester, manager)).status_code == 200
    await desk.join(INFRA_GROUP, desk.agent, desk.assignee)
    return Platform(desk, manager, outsider)


# --- seed 003's manager-approval matrix, row by row --------------------------------------------

PRD_READ = "read access to production (including XAT)"
PRD_WRITE = "write access to production (including XAT)"
NONPRD_WRITE = "write access to non-production"
CRYPTO = "source code access to the Crypto project"


def _row(level: str, environments: list[str], project: str | None = None) -> dict[str, Any]:
    answers: dict[str, Any] = {"access_level": level, "environments": environments}
    return answers if project is None else {**answers, "project": project}


# (row of the seed, answers, why the manager is required: None when not)
MATRIX = [
    ("read, production", _row("read", ["prd"]), PRD_READ),
    ("read, production (XAT)", _row("read", ["xat", "dev"]), PRD_READ),
    ("write, production", _row("write", ["prd", "qar"]), PRD_WRITE),
    ("read, non-production", _row("read", ["qar", "iat", "dev", "npd"]), None),
    ("write, non-production", _row("write", ["dev"]), NONPRD_WRITE),
    ("contributor, not Crypto", _row("contributor", ["other"], "Payments"), None),
    ("contributor, Crypto", _row("contributor", ["other"], "Crypto"), CRYPTO),
    ("read, Crypto", _row("read", ["dev"], " crypto "), CRYPTO),
]


@pytest.mark.parametrize(("row", "answers", "because"), MATRIX, ids=[m[0] for m in MATRIX])
async def test_the_manager_approval_matrix(
    platform: Platform, row: str, answers: dict[str, Any], because: str | None
) -> None:
    desk = platform.desk
    ticket = await platform.file(answers)
    await platform.to_authorize(ticket)
    # The platform approval first: then only what the matrix asks is missing.
    assert (await platform.approve(ticket, "infra", desk.agent)).status_code == 201
    reasons = await platform.authorize_reasons(ticket)
    if because is None:
        assert reasons == [], row
        r = await desk.move(ticket, desk.agent, action="authorize")
        assert r.status_code == 200 and r.json()["status"] == "PENDING", r.text
        return
    assert [(x["code"], x["condition"]) for x in reasons] == [("condition", "approval:manager")]
    assert reasons[0]["detail"] == f"the 'manager' approval is required: {because}"
    # The same reasons refuse the move.
    refused = await desk.move(ticket, desk.agent, action="authorize")
    assert refused.status_code == 409 and refused.json()["reasons"] == reasons
    # Only the requester's manager may give it: not an INFRA approver, not an admin, never
    # the requester.
    for other in (desk.agent, desk.admin):
        r = await platform.approve(ticket, "manager", other)
        assert r.status_code == 403 and problem_type(r) == "forbidden", r.text
        assert (r.json()["approval"], r.json()["reason"]) == ("manager", "not_eligible")
    r = await platform.approve(ticket, "manager", desk.requester)
    assert r.status_code == 403 and r.json()["reason"] == "requester"
    r = await platform.approve(ticket, "manager", platform.manager)
    assert r.status_code == 201, r.text
    assert r.json()["approver"]["id"] == platform.manager.id
    assert await platform.authorize_reasons(ticket) == []
    r = await desk.move(ticket, desk.agent, action="authorize")
    assert r.status_code == 200 and r.json()["status"] == "PENDING", r.text


async def test_write_to_production_on_crypto_gives_both_reasons(platform: Platform) -> None:
    ticket = await platform.file(
        {"access_level": "write", "environments": ["prd"], "project": "Crypto"}
    )
    await platform.to_authorize(ticket)
    reasons = await platform.authorize_reasons(ticket)
    assert [x["detail"] for x in reasons] == [
        "the 'infra' approval is required",
        "the 'manager' approval is required: write access to production (including XAT)",
        "the 'manager' approval is required: source code access to the Crypto project",
    ]


async def test_change_requests_need_only_the_platform(platform: Platform) -> None:
    desk = platform.desk
    r = await desk.client.post(
        "/v1/tickets",
        json={
            "catalog_item": "platform_change",
            "answers": {
                "summary": "Raise the ingress timeout",
                "service": "kubernetes",
                "environments": ["prd"],
                "details": "To 60 seconds.",
            },
        },
        headers=desk.requester.headers,
    )
    assert r.status_code == 201, r.text
    change = r.json()
    await platform.to_authorize(change)
    assert [x["condition"] for x in await platform.authorize_reasons(change)] == ["approval:infra"]
    assert (await platform.approve(change, "infra", desk.agent)).status_code == 201
    assert (await desk.move(change, desk.agent, action="authorize")).status_code == 200


# --- the infra approval --------------------------------------------------------------------


async def test_infra_is_given_by_infra_approvers_only(platform: Platform, app: FastAPI) -> None:
    desk = platform.desk
    ticket = await platform.file({"access_level": "read", "environments": ["dev"]})
    await desk.assign(ticket, desk.assignee)
    await platform.to_authorize(ticket)
    r = await platform.approve(ticket, "infra", platform.outsider)
    assert r.status_code == 403, r.text
    assert r.json()["reason"] == "not_eligible"
    assert r.json()["detail"] == (
        "Only members of the group 'INFRA approvers' may give the 'infra' approval."
    )
    # Not the assignee, although an INFRA approver.
    r = await platform.approve(ticket, "infra", desk.assignee)
    assert (r.status_code, r.json()["reason"]) == (403, "assignee")
    # Never the requester, not even one in the group.
    await desk.join(INFRA_GROUP, desk.requester)
    r = await platform.approve(ticket, "infra", desk.requester)
    assert (r.status_code, r.json()["reason"]) == (403, "requester")
    r = await platform.approve(ticket, "cab", desk.agent)
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/name"
    assert await platform.approvals(ticket) == []
    # A member: once.
    assert (await platform.approve(ticket, "infra", desk.agent)).status_code == 201
    r = await platform.approve(ticket, "infra", desk.agent)
    assert r.status_code == 409 and problem_type(r) == "conflict", r.text
    assert await platform.approvals(ticket) == [("infra", desk.agent.id)]
    messages = await fetch(
        app,
        "SELECT topic, payload->>'name' AS name FROM outbox "
        "WHERE tenant_id = $1 AND payload->>'ticket_id' = $2 AND topic LIKE 'ticket.approval%'",
        desk.tenant.id,
        ticket["id"],
    )
    assert [(m["topic"], m["name"]) for m in messages] == [("ticket.approval_added", "infra")]
    # Leaving the group takes the right with it.
    group_id = await _group_id(desk, INFRA_GROUP)
    r = await desk.client.delete(
        f"/v1/groups/{group_id}/members/{desk.agent.id}", headers=desk.admin.headers
    )
    assert r.status_code == 204
    other = await platform.file({"access_level": "read", "environments": ["dev"]})
    assert (await platform.approve(other, "infra", desk.agent)).status_code == 403


async def _group_id(desk: Desk, name: str) -> str:
    r = await desk.client.get("/v1/groups?limit=100", headers=desk.admin.headers)
    return str(next(g["id"] for g in r.json()["items"] if g["name"] == name))


# --- revoking and clearing -----------------------------------------------------------------


async def test_revoking_an_approval(platform: Platform, app: FastAPI) -> None:
    desk = platform.desk
    ticket = await platform.file({"access_level": "write", "environments": ["prd"]})
    await platform.to_authorize(ticket)
    infra = (await platform.approve(ticket, "infra", desk.agent)).json()
    manager = (await platform.approve(ticket, "manager", platform.manager)).json()
    base = f"/v1/tickets/{ticket['id']}/approvals"
    # Neither another approver nor the requester may take someone's approval back.
    for other in (desk.assignee, desk.requester):
        r = await desk.client.delete(f"{base}/{infra['id']}", headers=other.headers)
        assert r.status_code == 403, r.text
    # The approver may (the manager reaches the request's approvals without being an agent).
    r = await desk.client.delete(f"{base}/{manager['id']}", headers=platform.manager.headers)
    assert r.status_code == 204, r.text
    assert await platform.approvals(ticket) == [("infra", desk.agent.id)]
    assert [x["condition"] for x in await platform.authorize_reasons(ticket)] == [
        "approval:manager"
    ]
    # An admin may remove anyone's.
    assert (
        await desk.client.delete(f"{base}/{infra['id']}", headers=desk.admin.headers)
    ).status_code == 204
    assert (
        await desk.client.delete(f"{base}/{infra['id']}", headers=desk.admin.headers)
    ).status_code == 404
    assert await platform.approvals(ticket) == []
    revoked = [e for e in await platform.events(ticket) if e["kind"] == "approval_revoked"]
    assert [(e["data"]["name"], e["actor"]["id"]) for e in revoked] == [
        ("manager", platform.manager.id),
        ("infra", desk.admin.id),
    ]
    messages = await fetch(
        app,
        "SELECT payload->>'name' AS name FROM outbox WHERE tenant_id = $1 "
        "AND payload->>'ticket_id' = $2 AND topic = 'ticket.approval_revoked' ORDER BY id",
        desk.tenant.id,
        ticket["id"],
    )
    assert [m["name"] for m in messages] == ["manager", "infra"]
    # Given again after a revocation: a fresh approval.
    assert (await platform.approve(ticket, "infra", desk.agent)).status_code == 201


async def test_back_to_review_clears_the_approvals(platform: Platform) -> None:
    desk = platform.desk
    ticket = await platform.file({"access_level": "write", "environments": ["prd"]})
    await platform.to_authorize(ticket)
    assert (await platform.approve(ticket, "infra", desk.agent)).status_code == 201
    assert (await platform.approve(ticket, "manager", platform.manager)).status_code == 201
    # A detour to the customer and back keeps them.
    r = await desk.move(ticket, desk.agent, action="wait_on_customer", comment="Which cluster?")
    assert r.status_code == 200, r.text
    assert (await desk.move(ticket, desk.agent, action="resume")).json()["status"] == "AUTHORIZE"
    assert len(await platform.approvals(ticket)) == 2
    # Back to Review clears both, in the transition's write.
    r = await desk.move(ticket, desk.agent, action="back_to_review")
    assert r.status_code == 200 and r.json()["status"] == "REVIEW"
    assert await platform.approvals(ticket) == []
    events = await platform.events(ticket)
    assert [e["kind"] for e in events[-2:]] == ["transitioned", "approvals_cleared"]
    assert events[-1]["data"] == {"names": ["infra", "manager"], "action": "back_to_review"}
    r = await desk.move(ticket, desk.agent, action="request_authorization")
    assert [x["condition"] for x in await platform.authorize_reasons(ticket)] == [
        "approval:infra",
        "approval:manager",
    ]


# --- the manager's side ----------------------------------------------------------------------


async def test_a_manager_filing_for_a_report_approves(platform: Platform) -> None:
    desk = platform.desk
    boss = await desk.tenant.user(*AGENT, name="Bea Boss")
    assert (await set_manager(desk, desk.requester, boss)).status_code == 200
    answers = {"access_level": "write", "environments": ["prd"]}
    ticket = await platform.file(answers, by=boss, requester_id=desk.requester.id)
    assert ticket["requester"]["id"] == desk.requester.id
    assert await platform.approvals(ticket) == [("manager", boss.id)]
    approved = [e for e in await platform.events(ticket) if e["kind"] == "approved"]
    assert [(e["data"], e["actor"]["id"]) for e in approved] == [
        ({"name": "manager", "filed_for_report": True}, boss.id)
    ]
    await platform.to_authorize(ticket)
    assert [x["condition"] for x in await platform.authorize_reasons(ticket)] == ["approval:infra"]
    # An agent who is not the requester's manager files without approving.
    other = await platform.file(answers, by=desk.agent, requester_id=desk.requester.id)
    assert await platform.approvals(other) == []
    # A manager's own request is not their team's: it needs their own manager.
    own = await platform.file(answers, by=boss)
    assert await platform.approvals(own) == []


async def test_a_desk_manager_reaches_only_the_approvals(platform: Platform) -> None:
    desk, manager = platform.desk, platform.manager
    ticket = await platform.file({"access_level": "read", "environments": ["prd"]})
    base = f"/v1/tickets/{ticket['id']}"
    assert (await desk.client.get(base, headers=manager.headers)).status_code == 404
    assert (await desk.client.get(f"{base}/comments", headers=manager.headers)).status_code == 404
    assert (await desk.client.get(f"{base}/approvals", headers=manager.headers)).json() == []
    r = await platform.approve(ticket, "infra", manager)
    assert (r.status_code, r.json()["reason"]) == (403, "not_eligible")
    assert (await platform.approve(ticket, "manager", manager)).status_code == 201
    # Another desk user (no manager of the requester) finds nothing.
    stranger = await desk.tenant.user("tickets:create")
    assert (await desk.client.get(f"{base}/approvals", headers=stranger.headers)).status_code == 404
    r = await platform.approve(ticket, "manager", stranger)
    assert r.status_code == 404
    # Once someone else manages the requester, the former manager's reach ends.
    assert (await set_manager(desk, desk.requester, stranger)).status_code == 200
    assert (await desk.client.get(f"{base}/approvals", headers=manager.headers)).status_code == 404


async def test_users_managers(desk: Desk) -> None:
    c, admin = desk.client, desk.admin.headers
    boss = await desk.tenant.user("tickets:create", name="Bea Boss")
    r = await c.post(
        "/v1/users",
        json={"email": "new@example.com", "name": "New Hire", "manager_id": boss.id},
        headers=admin,
    )
    assert r.status_code == 201 and r.json()["manager_id"] == boss.id, r.text
    hire = r.json()["id"]
    assert (await c.get(f"/v1/users/{hire}", headers=admin)).json()["manager_id"] == boss.id
    # Not oneself, not a cycle, not a stranger.
    r = await c.patch(f"/v1/users/{hire}", json={"manager_id": hire}, headers=admin)
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/manager_id"
    r = await c.patch(f"/v1/users/{boss.id}", json={"manager_id": hire}, headers=admin)
    assert r.status_code == 422 and "cycle" in r.json()["detail"]
    other = await desk.tenant.user()
    assert (await set_manager(desk, boss, other)).status_code == 200
    r = await c.patch(f"/v1/users/{other.id}", json={"manager_id": hire}, headers=admin)
    assert r.status_code == 422, r.text  # hire -> boss -> other -> hire
    for unknown in ("00000000-0000-0000-0000-000000000000",):
        r = await c.patch(f"/v1/users/{hire}", json={"manager_id": unknown}, headers=admin)
        assert r.status_code == 422
    r = await c.post(
        "/v1/users",
        json={
            "email": "x@example.com",
            "name": "X",
            "manager_id": "00000000-0000-0000-0000-000000000000",
        },
        headers=admin,
    )
    assert r.status_code == 422
    # Only admins set it; other changes keep it; null removes it.
    r = await c.patch(f"/v1/users/{hire}", json={"manager_id": None}, headers=desk.agent.headers)
    assert r.status_code == 403
    r = await c.patch(f"/v1/users/{hire}", json={"name": "Renamed"}, headers=admin)
    assert r.json()["manager_id"] == boss.id
    r = await c.patch(f"/v1/users/{hire}", json={"manager_id": None}, headers=admin)
    assert r.status_code == 200 and r.json()["manager_id"] is None
    # A deleted manager manages nobody.
    assert (await set_manager(desk, boss, other)).status_code == 200
    assert (await c.delete(f"/v1/users/{other.id}", headers=admin)).status_code == 204
    assert (await c.get(f"/v1/users/{boss.id}", headers=admin)).json()["manager_id"] is None
