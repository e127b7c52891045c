"""Seed 003's clocks and approvals reach people: platform requests driven over HTTP, the SLA
tick run with `at` (time moves through it, never by sleeping), the relay of the app's lifespan
mailing a real SMTP server and calling a real webhook receiver.

- 48 hours of silence in Waiting on Customer: the submitter is reminded, told when the
  request will be cancelled;
- the review clock: its warning and its breach go to the `Platform on-call` group's members
  (the escalation the catalog declares), the breach to a webhook too;
- a request entering Authorize asks the INFRA approvers (never the assignee, nor the
  requester) and, where the manager-approval matrix requires it, the requester's manager;
  approvals given and revoked are told to the assignee and the requester;
- a tenant's own template of a new event is used.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook

from flowdesk.tickets.sla_tick import run_due
from tests.notifications.conftest import settled
from tests.notifications.receiver import Receiver, answer
from tests.notifications.smtp import SmtpServer
from tests.support import Member, runtime
from tests.tickets.conftest import AGENT, Desk, platform_answers

INFRA = "INFRA approvers"
ON_CALL = "Platform on-call"


def text_of(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("plain",))
    assert part is not None
    return " ".join(str(part.get_content()).split())


def about(mailer: SmtpServer, member: Member, ticket: dict[str, Any], words: str) -> list[str]:
    """The plain text of the mails `member` got about `ticket` whose subject has `words`."""
    return [
        text_of(m)
        for m in mailer.handler.to(member.email)
        if ticket["number"] in str(m["Subject"]) and words in str(m["Subject"])
    ]


def _at(value: str, **delta: float) -> datetime:
    return datetime.fromisoformat(value) + timedelta(**delta)


async def _request(desk: Desk, item: str = "platform_change", **answers: Any) -> dict[str, Any]:
    body = {"catalog_item": item, "answers": platform_answers(item, **answers)}
    r = await desk.client.post("/v1/tickets", json=body, headers=desk.requester.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _move(desk: Desk, ticket: dict[str, Any], action: str, **body: Any) -> dict[str, Any]:
    r = await desk.move(ticket, desk.assignee, action=action, **body)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _tick(app: FastAPI, at: datetime) -> None:
    await run_due(runtime(app).db, runtime(app).catalog, at)


async def test_the_submitter_is_reminded_after_48_hours_of_silence(
    desk: Desk, mailer: SmtpServer, app: FastAPI
) -> None:
    ticket = await _request(desk)
    await _move(desk, ticket, "start_review")
    waiting = await _move(desk, ticket, "wait_on_customer", comment="Which environment?")
    (clock,) = [c for c in waiting["sla"] if c["name"] == "customer_reply"]
    await _tick(app, _at(clock["started_at"], hours=47))
    await settled(app, desk.tenant.id)
    assert about(mailer, desk.requester, ticket, "waiting for your reply") == []

    await _tick(app, _at(clock["started_at"], hours=48, seconds=1))
    await settled(app, desk.tenant.id)
    (reminder,) = about(mailer, desk.requester, ticket, "waiting for your reply")
    due = _at(clock["due_at"]).strftime("%Y-%m-%d %H:%M UTC")
    assert "still waiting for your reply" in reminder
    assert f"If we do not hear from you by {due}, we will cancel the request." in reminder
    # Nobody else is reminded: the policy names the requester.
    for other in (desk.assignee, desk.agent, desk.admin):
        assert about(mailer, other, ticket, "waiting for your reply") == []
    # A second tick in the same window mails nothing more.
    await _tick(app, _at(clock["started_at"], hours=50))
    await settled(app, desk.tenant.id)
    assert len(about(mailer, desk.requester, ticket, "waiting for your reply")) == 1


async def test_the_review_warning_and_breach_escalate_to_platform_on_call(
    desk: Desk, mailer: SmtpServer, app: FastAPI, client: httpx.AsyncClient
) -> None:
    on_call = await desk.tenant.user(*AGENT, name="Lee On-call")
    await desk.join(ON_CALL, on_call, desk.agent)
    async with Receiver(answer(204)) as receiver:
        r = await client.post(
            "/v1/webhooks",
            json={"url": receiver.url(), "events": ["ticket.sla_breached"]},
            headers=desk.admin.headers,
        )
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        ticket = await _request(desk)
        await desk.assign(ticket, desk.assignee)
        created = ticket["created_at"]

        await _tick(app, _at(created, hours=36, seconds=1))
        await settled(app, desk.tenant.id)
        # The warning: the group that will have the breach, and the assignee, in time.
        for member in (on_call, desk.agent, desk.assignee):
            (warning,) = about(mailer, member, ticket, "At risk: Reviewed within 48 hours")
            assert "is at risk: it is due" in warning
        assert about(mailer, desk.requester, ticket, "At risk") == []
        assert receiver.requests == []  # subscribed to breaches only

        await _tick(app, _at(created, hours=48, seconds=1))
        await settled(app, desk.tenant.id)
        due = _at(created, hours=48).strftime("%Y-%m-%d %H:%M UTC")
        for member in (on_call, desk.agent):
            (breach,) = about(mailer, member, ticket, "SLA breached: Reviewed within 48 hours")
            assert f"was missed: it was due {due}" in breach and "escalated to you" in breach
        # The declared escalation only: not the assignee, nor the requester.
        assert about(mailer, desk.assignee, ticket, "SLA breached") == []
        assert about(mailer, desk.requester, ticket, "SLA breached") == []

    (seen,) = receiver.requests
    event = Webhook(secret).verify(seen.body, seen.headers)
    assert event == json.loads(seen.body)
    assert event["type"] == "ticket.sla_breached"
    data = event["data"]
    assert data["ticket"]["id"] == ticket["id"] and data["name"] == "review"
    assert data["escalated_to"] == {"kind": "group", "name": ON_CALL}
    (review,) = [c for c in data["ticket"]["sla"] if c["name"] == "review"]
    assert review["state"] == "breached"


async def _set_manager(desk: Desk, user: Member, manager: Member) -> None:
    r = await desk.client.patch(
        f"/v1/users/{user.id}", json={"manager_id": manager.id}, headers=desk.admin.headers
    )
    assert r.status_code == 200, r.text


async def test_entering_authorize_asks_the_infra_approvers_and_the_manager_when_required(
    desk: Desk, mailer: SmtpServer, app: FastAPI
) -> None:
    approver = await desk.tenant.user(*AGENT, name="Ivy Infra")
    manager = await desk.tenant.user("tickets:create", name="Mona Manager")
    await _set_manager(desk, desk.requester, manager)
    # The assignee is an INFRA approver too, but never approves what they work on.
    await desk.join(INFRA, approver, desk.agent, desk.assignee)

    # Read access to production: the matrix requires the manager.
    access = await _request(desk, "platform_access", environments=["prd"], access_level="read")
    await desk.assign(access, desk.assignee)
    await _move(desk, access, "start_review")
    await settled(app, desk.tenant.id)
    assert about(mailer, approver, access, "Your approval is needed") == []
    await _move(desk, access, "request_authorization")
    await settled(app, desk.tenant.id)
    for member in (approver, desk.agent):
        (asked,) = about(mailer, member, access, "Your approval is needed")
        assert 'approval "Platform approval (INFRA approvers)", which you may give' in asked
        assert "is in Authorize" in asked
    (asked,) = about(mailer, manager, access, "Your approval is needed")
    assert 'approval "Requester\'s manager", which you may give' in asked
    for member in (desk.assignee, desk.requester, desk.admin):
        assert about(mailer, member, access, "Your approval is needed") == []

    # The infra approval given: the assignee and the requester hear of it, not the approver.
    r = await desk.client.post(
        f"/v1/tickets/{access['id']}/approvals", json={"name": "infra"}, headers=approver.headers
    )
    assert r.status_code == 201, r.text
    approval_id = r.json()["id"]
    await settled(app, desk.tenant.id)
    for member in (desk.assignee, desk.requester):
        (given,) = about(mailer, member, access, "Approved: Platform approval")
        assert 'Ivy Infra gave the approval "Platform approval (INFRA approvers)"' in given
    assert about(mailer, approver, access, "Approved") == []
    # Revoked: the same two hear of it.
    r = await desk.client.delete(
        f"/v1/tickets/{access['id']}/approvals/{approval_id}", headers=approver.headers
    )
    assert r.status_code == 204, r.text
    await settled(app, desk.tenant.id)
    for member in (desk.assignee, desk.requester):
        (revoked,) = about(mailer, member, access, "Approval revoked")
        assert "given by Ivy Infra was revoked by Ivy Infra" in revoked

    # A change needs no manager: only the INFRA approvers are asked.
    change = await _request(desk)
    await desk.assign(change, desk.assignee)
    await _move(desk, change, "start_review")
    await _move(desk, change, "request_authorization")
    await settled(app, desk.tenant.id)
    for member in (approver, desk.agent):
        assert len(about(mailer, member, change, "Your approval is needed")) == 1
    assert about(mailer, manager, change, "Your approval is needed") == []


async def test_an_approval_given_before_the_relay_asks_nobody_for_it(
    desk: Desk, mailer: SmtpServer, app: FastAPI
) -> None:
    """Who is asked is worked out from the ticket when the relay fans the change out: a
    request that filed-by-its-manager already holds the manager approval asks only for infra."""
    approver = await desk.tenant.user(*AGENT, name="Ivy Infra")
    manager = await desk.tenant.user(*AGENT, name="Mona Manager")
    await _set_manager(desk, desk.requester, manager)
    await desk.join(INFRA, approver)
    body = {
        "catalog_item": "platform_access",
        "requester_id": desk.requester.id,
        "answers": platform_answers("platform_access", environments=["prd"]),
    }
    r = await desk.client.post("/v1/tickets", json=body, headers=manager.headers)
    assert r.status_code == 201, r.text
    ticket = r.json()
    await desk.assign(ticket, desk.assignee)
    await _move(desk, ticket, "start_review")
    await _move(desk, ticket, "request_authorization")
    await settled(app, desk.tenant.id)
    (asked,) = about(mailer, approver, ticket, "Your approval is needed")
    assert "Platform approval (INFRA approvers)" in asked
    assert about(mailer, manager, ticket, "Your approval is needed") == []


async def test_a_tenant_template_of_a_new_event_is_used(
    desk: Desk, mailer: SmtpServer, app: FastAPI
) -> None:
    admin = desk.admin.headers
    r = await desk.client.get("/v1/notification-templates/ticket.sla_reminder", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["custom"] is False and "sla_due_at" in r.json()["text"]
    template = {
        "subject": "Still there, {{ reporter_name }}? ({{ sla_name }})",
        "html": "<p>Reply by {{ sla_due_at }} or we {{ sla_action }} {{ ticket_number }}.</p>",
        "text": "Reply by {{ sla_due_at }} or we {{ sla_action }} {{ ticket_number }}.",
    }
    r = await desk.client.put(
        "/v1/notification-templates/ticket.sla_reminder", json=template, headers=admin
    )
    assert r.status_code in (200, 201), r.text
    r = await desk.client.put(
        "/v1/notification-templates/ticket.approval_requested",
        json={**template, "text": "{{ sla_deadline }}"},
        headers=admin,
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["pointer"] == "/text"

    ticket = await _request(desk)
    await _move(desk, ticket, "start_review")
    waiting = await _move(desk, ticket, "wait_on_customer", comment="Which environment?")
    (clock,) = [c for c in waiting["sla"] if c["name"] == "customer_reply"]
    await _tick(app, _at(clock["started_at"], hours=48, seconds=1))
    await settled(app, desk.tenant.id)
    (mail,) = [m for m in mailer.handler.to(desk.requester.email) if "Still there" in m["Subject"]]
    assert " ".join(str(mail["Subject"]).split()) == (
        f"[{ticket['number']}] Still there, Rita Requester? (Submitter replies within 72 hours)"
    )
    due = _at(clock["due_at"]).strftime("%Y-%m-%d %H:%M UTC")
    assert text_of(mail) == f"Reply by {due} or we cancel {ticket['number']}."
