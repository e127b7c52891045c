"""Seed 003 end to end over HTTP: an access request from the questionnaire to Done, with the
review SLA met, the approvals the manager matrix and the platform team ask for given by the
people allowed to give them, a detour to the customer and back, and the trail it leaves.

The rules one by one are in test_forms.py, test_approval_policies.py and test_sla.py; this is
the walk a platform team's request takes through all of them together."""

from __future__ import annotations

from typing import Any

from tests.tickets.conftest import Desk, platform_answers


def _clock(ticket: dict[str, Any], name: str) -> dict[str, Any]:
    (clock,) = [c for c in ticket["sla"] if c["name"] == name]
    return dict(clock)


async def test_an_access_request_from_the_questionnaire_to_done(desk: Desk) -> None:
    c, agent = desk.client, desk.agent
    manager = await desk.tenant.user("tickets:create", name="Mona Manager")
    r = await c.patch(
        f"/v1/users/{desk.requester.id}",
        json={"manager_id": manager.id},
        headers=desk.admin.headers,
    )
    assert r.status_code == 200, r.text
    await desk.join("INFRA approvers", agent)

    # The questionnaire, as an SPA reads it: an access request must say why.
    form = (await c.get("/v1/catalog/platform_access", headers=desk.requester.headers)).json()
    assert "justification" in form["form"]["required"]
    answers = platform_answers(
        "platform_access",
        summary="Write access to the production gateway",
        environments=["prd", "dev"],
        access_level="write",
    )
    without_why = {k: v for k, v in answers.items() if k != "justification"}
    r = await c.post(
        "/v1/tickets",
        json={"catalog_item": "platform_access", "answers": without_why},
        headers=desk.requester.headers,
    )
    assert r.status_code == 422
    assert [e["pointer"] for e in r.json()["errors"]] == ["/answers/justification"]

    ticket = await desk.open(catalog_item="platform_access", answers=answers)
    assert (ticket["title"], ticket["status"]) == (
        "Write access to the production gateway",
        "SUBMITTED",
    )
    assert ticket["answers"]["access_level"] == "write"
    assert _clock(ticket, "review")["state"] == "running"

    # Review within 48 hours: starting it meets the clock.
    r = await desk.move(ticket, agent, action="start_review")
    assert _clock(r.json(), "review")["state"] == "met"
    r = await desk.move(ticket, agent, action="request_authorization")
    assert r.json()["status"] == "AUTHORIZE"

    # Write access to production: the platform's and the manager's approvals, each named.
    r = await desk.move(ticket, agent, action="authorize")
    assert r.status_code == 409
    assert sorted(x["condition"] for x in r.json()["reasons"]) == [
        "approval:infra",
        "approval:manager",
    ]
    url = f"/v1/tickets/{ticket['id']}/approvals"
    refused = await c.post(url, json={"name": "manager"}, headers=agent.headers)
    assert refused.status_code == 403
    for name, by in (("infra", agent), ("manager", manager)):
        r = await c.post(url, json={"name": name}, headers=by.headers)
        assert r.status_code == 201, r.text
    r = await desk.move(ticket, agent, action="authorize")
    assert r.status_code == 200 and r.json()["status"] == "PENDING", r.text

    # The work, with a question to the customer on the way: their reply brings it back.
    assert (await desk.move(ticket, agent, action="start_work")).json()["status"] == "IN_PROGRESS"
    r = await desk.move(ticket, agent, action="wait_on_customer", comment="Which listener?")
    assert _clock(r.json(), "customer_reply")["state"] == "running"
    r = await c.post(
        f"/v1/tickets/{ticket['id']}/comments",
        json={"body": "The public one.", "visibility": "external"},
        headers=desk.requester.headers,
    )
    assert r.status_code == 201, r.text
    back = (await c.get(f"/v1/tickets/{ticket['id']}", headers=agent.headers)).json()
    assert back["status"] == "IN_PROGRESS"
    assert _clock(back, "customer_reply")["state"] == "met"

    done = (await desk.move(back, agent, action="complete")).json()
    assert (done["status"], done["resolution"]) == ("DONE", "completed")

    # The requester reads the whole journey in their own trail.
    r = await c.get(f"/v1/tickets/{ticket['id']}/events?limit=100", headers=desk.requester.headers)
    kinds = [e["kind"] for e in r.json()["items"]]
    assert kinds[0] == "created" and kinds.count("approved") == 2
    moves = [e["data"]["to"] for e in r.json()["items"] if e["kind"] == "transitioned"]
    assert moves == [
        "REVIEW",
        "AUTHORIZE",
        "PENDING",
        "IN_PROGRESS",
        "WAITING_ON_CUSTOMER",
        "IN_PROGRESS",
        "DONE",
    ]
