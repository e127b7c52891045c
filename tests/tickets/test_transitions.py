"""Transitions beyond seed 000: permissions (ITSM), conditions and detours (platform request),
inputs, resets of tickets whose status left the workflow, preconditions and races."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from tests.tickets.conftest import Desk, force_status, platform_answers


async def test_itsm_only_agents_move_and_closing_needs_close(desk: Desk) -> None:
    ticket = await desk.open()
    url = f"/v1/tickets/{ticket['id']}/transitions"
    r = await desk.move(ticket, desk.requester, action="start")
    assert r.status_code == 409
    assert {x["code"] for x in r.json()["reasons"]} == {"permission"}
    assert r.json()["reasons"][0]["required"] == ["tickets:manage"]
    # An agent without tickets:close may start but not resolve.
    starter = await desk.tenant.user("tickets:manage")
    assert (await desk.move(ticket, starter, action="start")).status_code == 200
    options = {
        o["action"]: o
        for o in (await desk.client.get(url, headers=starter.headers)).json()["items"]
    }
    assert not options["resolve"]["allowed"]
    assert options["resolve"]["reasons"][0]["required"] == ["tickets:close"]
    assert options["cancel"]["allowed"]
    r = await desk.move(ticket, starter, to="resolved")
    assert r.status_code == 409 and r.json()["reasons"][0]["required"] == ["tickets:close"]
    r = await desk.move(ticket, desk.agent, to="resolved")
    assert r.status_code == 200 and r.json()["status"] == "resolved"
    r = await desk.move(ticket, desk.agent, to="closed")
    assert r.json()["status"] == "closed" and r.json()["status_category"] == "inactive"
    # Closed is final: only an admin's reset leads out.
    listed = (await desk.client.get(url, headers=desk.agent.headers)).json()
    assert (listed["status"], listed["version"]) == ("closed", 4)
    assert [(o["action"], o["allowed"]) for o in listed["items"]] == [("_reset", False)]


async def test_platform_request_conditions_and_detours(desk: Desk) -> None:
    c, agent = desk.client, desk.agent
    change = await desk.open(
        catalog_item="platform_change",
        answers=platform_answers(summary="Bump the ingress chart"),
    )
    assert change["status"] == "SUBMITTED" and change["priority"] == "MEDIUM"
    assert (await desk.move(change, agent, action="start_review")).status_code == 200
    # A change needs authorization; 'ready' (the debug shortcut) is refused with the condition.
    r = await desk.move(change, agent, action="ready")
    assert r.status_code == 409
    assert r.json()["reasons"][0]["code"] == "condition"
    assert (await desk.move(change, agent, action="request_authorization")).status_code == 200
    r = await desk.move(change, agent, action="authorize")
    assert r.status_code == 409 and r.json()["reasons"][0]["condition"].startswith("approval")
    # The `infra` approval: by a member of "INFRA approvers" (test_approval_policies.py).
    await desk.join("INFRA approvers", agent)
    approval = await c.post(
        f"/v1/tickets/{change['id']}/approvals", json={"name": "infra"}, headers=agent.headers
    )
    assert approval.status_code == 201
    assert (await desk.move(change, agent, action="authorize")).json()["status"] == "PENDING"
    assert (await desk.move(change, agent, action="start_work")).json()["status"] == "IN_PROGRESS"
    # Deployment Queue needs a fix version.
    r = await desk.move(change, agent, to="DEPLOYMENT_QUEUE")
    assert r.status_code == 409 and r.json()["reasons"][0]["condition"].startswith("field_set")
    await c.patch(
        f"/v1/tickets/{change['id']}",
        json={"fields": {"fix_version": "2.4.1"}},
        headers=agent.headers,
    )
    assert (await desk.move(change, agent, to="DEPLOYMENT_QUEUE")).status_code == 200
    # Blocked needs a 'blocked_by' link; resume returns where the ticket came from.
    r = await desk.move(change, agent, to="BLOCKED")
    assert r.status_code == 409 and r.json()["reasons"][0]["condition"].startswith("link")
    blocker = await desk.open(
        catalog_item="platform_access", answers=platform_answers("platform_access")
    )
    r = await c.post(
        f"/v1/tickets/{change['id']}/links",
        json={"kind": "blocked_by", "target": blocker["number"]},
        headers=agent.headers,
    )
    assert r.status_code == 201 and r.json()["target_number"] == blocker["number"]
    assert (await desk.move(change, agent, to="BLOCKED")).status_code == 200
    r = await desk.move(change, agent, action="resume")
    assert r.json()["status"] == "DEPLOYMENT_QUEUE"
    # Waiting on customer is a reply: it needs a comment, which the requester then sees.
    r = await desk.move(change, agent, action="wait_on_customer")
    assert r.status_code == 409 and r.json()["reasons"][0]["code"] == "input"
    r = await desk.move(change, agent, action="wait_on_customer", comment="Which cluster?")
    assert r.json()["status"] == "WAITING_ON_CUSTOMER"
    comments = (
        await c.get(f"/v1/tickets/{change['id']}/comments", headers=desk.requester.headers)
    ).json()["items"]
    assert [(x["body"], x["visibility"]) for x in comments] == [("Which cluster?", "external")]
    assert (await desk.move(change, agent, action="resume")).json()["status"] == "DEPLOYMENT_QUEUE"
    done = (await desk.move(change, agent, action="complete")).json()
    assert (done["status"], done["resolution"], done["status_category"]) == (
        "DONE",
        "completed",
        "inactive",
    )


async def test_debug_requests_skip_authorize_and_default_to_high(desk: Desk) -> None:
    debug = await desk.open(
        catalog_item="platform_debug", answers=platform_answers("platform_debug")
    )
    assert debug["priority"] == "HIGH"
    await desk.move(debug, desk.agent, action="start_review")
    options = {
        o["action"]: o
        for o in (
            await desk.client.get(
                f"/v1/tickets/{debug['id']}/transitions", headers=desk.agent.headers
            )
        ).json()["items"]
    }
    assert options["ready"]["allowed"] and not options["request_authorization"]["allowed"]
    assert (await desk.move(debug, desk.agent, action="ready")).json()["status"] == "PENDING"


async def test_resolution_inputs(desk: Desk) -> None:
    ticket = await desk.open(
        catalog_item="platform_change", answers=platform_answers("platform_change")
    )
    r = await desk.move(
        ticket,
        desk.agent,
        action="cancel",
        comment="Duplicate of another request",
        resolution="wontfix",
    )
    assert r.status_code == 409 and r.json()["reasons"][0]["code"] == "input"
    r = await desk.move(ticket, desk.agent, action="start_review", resolution="fixed")
    assert r.status_code == 409 and r.json()["reasons"][0]["required"] == ["resolution"]
    r = await desk.move(ticket, desk.agent, action="cancel", comment="Duplicate")
    assert r.json()["resolution"] == "canceled"


async def test_transitions_honour_if_match(desk: Desk) -> None:
    ticket = await desk.open()
    url = f"/v1/tickets/{ticket['id']}/transitions"
    r = await desk.client.post(
        url, json={"action": "start"}, headers=desk.agent.headers | {"If-Match": '"7"'}
    )
    assert r.status_code == 412
    r = await desk.client.post(
        url, json={"action": "start"}, headers=desk.agent.headers | {"If-Match": '"1"'}
    )
    assert r.status_code == 200 and r.headers["etag"] == '"2"'


async def test_bad_transition_bodies(desk: Desk) -> None:
    ticket = await desk.open()
    url = f"/v1/tickets/{ticket['id']}/transitions"
    for body in (
        {},
        {"to": "closed", "action": "close"},
        {"action": "start", "extra": 1},
        {"action": "x" * 101},
    ):
        assert (
            await desk.client.post(url, json=body, headers=desk.agent.headers)
        ).status_code == 422, body
    r = await desk.client.post(url, json={"action": "fly"}, headers=desk.agent.headers)
    assert r.status_code == 409 and r.json()["type"] == "/problems/transition-unavailable"


async def test_concurrent_transitions_from_the_same_status(desk: Desk) -> None:
    """Of two concurrent moves out of one status, exactly one wins; the loser gets 409."""
    for _ in range(5):
        ticket = await desk.open()
        results = await asyncio.gather(
            desk.move(ticket, desk.agent, action="start"),
            desk.move(ticket, desk.assignee, action="start"),
        )
        codes = sorted(r.status_code for r in results)
        assert codes in ([200, 409], [200, 412]), [r.text for r in results]
        final = (
            await desk.client.get(f"/v1/tickets/{ticket['id']}", headers=desk.agent.headers)
        ).json()
        assert final["version"] == 2


async def test_stale_status_is_found_and_reset_by_an_admin(desk: Desk, app: FastAPI) -> None:
    ticket = await desk.open()
    healthy = await desk.open()
    await force_status(app, ticket["id"], "triage")  # a status the workflow no longer has
    stale = (
        await desk.client.get("/v1/tickets", params={"stale": "true"}, headers=desk.agent.headers)
    ).json()["items"]
    assert [t["id"] for t in stale] == [ticket["id"]]
    assert healthy["id"] not in [t["id"] for t in stale]
    options = (
        await desk.client.get(f"/v1/tickets/{ticket['id']}/transitions", headers=desk.agent.headers)
    ).json()["items"]
    assert [(o["action"], o["to"], o["allowed"]) for o in options] == [("_reset", "open", False)]
    assert (await desk.move(ticket, desk.agent, action="_reset")).status_code == 409
    r = await desk.move(ticket, desk.admin, action="_reset")
    assert r.status_code == 200 and r.json()["status"] == "open"
    events = (
        await desk.client.get(f"/v1/tickets/{ticket['id']}/events", headers=desk.admin.headers)
    ).json()["items"]
    assert events[-1]["kind"] == "reset" and events[-1]["data"]["from"] == "triage"
