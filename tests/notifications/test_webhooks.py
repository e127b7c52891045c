"""Webhooks end to end: endpoints registered over the HTTP API, tickets changed over HTTP, the
relay running in the app's lifespan, and signed requests arriving at a real HTTP receiver on
127.0.0.1 (retries, failures, the address policy, the test event, disabling)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from flowdesk.app import create_app
from flowdesk.config import Settings
from flowdesk.db import migrate
from tests.notifications.conftest import PATIENCE, settled, until
from tests.notifications.receiver import Receiver, Seen, Send, answer, in_turn
from tests.notifications.smtp import SmtpServer
from tests.servers import free_port
from tests.sql import execute
from tests.support import Member, TenantCtx, new_tenant, problem_type
from tests.tickets.conftest import Desk

T = TypeVar("T")

ALL_EVENTS = [
    "ticket.created",
    "ticket.assigned",
    "ticket.comment_added",
    "ticket.status_changed",
]


async def register(
    client: httpx.AsyncClient, tenant: TenantCtx, url: str, events: list[str], **body: Any
) -> dict[str, Any]:
    r = await client.post(
        "/v1/webhooks", json={"url": url, "events": events, **body}, headers=tenant.headers
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def open_ticket(
    client: httpx.AsyncClient, by: Member, title: str = "Printer on fire"
) -> dict[str, Any]:
    r = await client.post(
        "/v1/tickets", json={"title": title, "catalog_item": "itsm_incident"}, headers=by.headers
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def webhook_log(client: httpx.AsyncClient, tenant: TenantCtx) -> list[dict[str, Any]]:
    """The tenant's webhook deliveries, newest first."""
    r = await client.get(
        "/v1/notifications/deliveries", params={"channel": "webhook"}, headers=tenant.headers
    )
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def eventually(probe: Callable[[], Awaitable[T | None]]) -> T:
    """Wait for the relay to make `probe` return something; that."""
    async with asyncio.timeout(PATIENCE):
        while True:
            found = await probe()
            if found is not None:
                return found
            await asyncio.sleep(0.02)


def verified(seen: Seen, secret: str) -> dict[str, Any]:
    """The request's JSON body, checked by the reference Standard Webhooks verifier."""
    payload = Webhook(secret).verify(seen.body, seen.headers)
    assert isinstance(payload, dict)
    assert payload == json.loads(seen.body)
    return payload


# ---- registering and managing endpoints ----------------------------------------------------


async def test_an_endpoint_is_registered_listed_changed_and_deleted(
    client: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    admin = tenant.headers
    r = await client.post(
        "/v1/webhooks",
        json={
            "url": "  https://hooks.example.com/flowdesk?tenant=7 ",
            "events": ["ticket.created", "ticket.closed", "ticket.created"],
            "description": "CRM",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_")
    assert created["url"] == "https://hooks.example.com/flowdesk?tenant=7"
    assert created["events"] == ["ticket.closed", "ticket.created"]
    assert (created["description"], created["enabled"]) == ("CRM", True)
    assert created["disabled_reason"] is None and created["failing_since"] is None
    hook_id = created["id"]

    # The secret is shown once.
    r = await client.get(f"/v1/webhooks/{hook_id}", headers=admin)
    assert r.status_code == 200, r.text
    shown = r.json()
    assert "secret" not in shown
    assert shown == {k: v for k, v in created.items() if k != "secret"}

    # Pages, oldest first.
    others = [
        await register(client, tenant, f"https://hooks.example.com/{n}", ["ticket.resolved"])
        for n in range(2)
    ]
    r = await client.get("/v1/webhooks", params={"limit": 2}, headers=admin)
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["next_cursor"] is not None
    r = await client.get(
        "/v1/webhooks", params={"limit": 2, "cursor": first["next_cursor"]}, headers=admin
    )
    assert r.status_code == 200, r.text
    rest = r.json()
    assert rest["next_cursor"] is None
    listed = first["items"] + rest["items"]
    assert [h["id"] for h in listed] == [hook_id, others[0]["id"], others[1]["id"]]
    assert all("secret" not in h for h in listed)

    # Changed.
    r = await client.patch(
        f"/v1/webhooks/{hook_id}",
        json={"events": ["ticket.resolved", "ticket.assigned"], "description": "CRM (EU)"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["events"] == ["ticket.assigned", "ticket.resolved"]
    assert changed["description"] == "CRM (EU)"
    assert changed["url"] == created["url"] and changed["enabled"]
    assert "secret" not in changed
    r = await client.patch(f"/v1/webhooks/{hook_id}", json={"enabled": False}, headers=admin)
    assert r.status_code == 200, r.text
    assert (r.json()["enabled"], r.json()["disabled_reason"]) == (False, "disabled by an admin")
    r = await client.patch(f"/v1/webhooks/{hook_id}", json={"enabled": True}, headers=admin)
    assert r.status_code == 200, r.text
    assert (r.json()["enabled"], r.json()["disabled_reason"]) == (True, None)
    r = await client.patch(
        f"/v1/webhooks/{hook_id}", json={"url": "ftp://hooks.example.com/"}, headers=admin
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"pointer": "/url", "detail": "the scheme must be http or https"}]

    # Deleted.
    r = await client.delete(f"/v1/webhooks/{hook_id}", headers=admin)
    assert r.status_code == 204, r.text
    for method in ("GET", "DELETE"):
        r = await client.request(method, f"/v1/webhooks/{hook_id}", headers=admin)
        assert r.status_code == 404, r.text
    r = await client.get("/v1/webhooks", headers=admin)
    assert [h["id"] for h in r.json()["items"]] == [o["id"] for o in others]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://hooks.example.com/in", "the scheme must be http or https"),
        ("https://user:secret@hooks.example.com/in", "credentials in the URL are not accepted"),
        ("https://hooks.example.com/in#frag", "it has a fragment"),
    ],
)
async def test_an_unusable_url_is_refused(
    client: httpx.AsyncClient, tenant: TenantCtx, url: str, reason: str
) -> None:
    r = await client.post(
        "/v1/webhooks", json={"url": url, "events": ["ticket.created"]}, headers=tenant.headers
    )
    assert r.status_code == 422, r.text
    assert problem_type(r) == "validation-error"
    assert r.json()["errors"] == [{"pointer": "/url", "detail": reason}]
    r = await client.get("/v1/webhooks", headers=tenant.headers)
    assert r.json()["items"] == []


@pytest.mark.parametrize("events", [["ticket.exploded"], ["ticket.created", "webhook.test"], []])
async def test_events_must_be_ticket_events(
    client: httpx.AsyncClient, tenant: TenantCtx, events: list[str]
) -> None:
    r = await client.post(
        "/v1/webhooks",
        json={"url": "https://hooks.example.com/in", "events": events},
        headers=tenant.headers,
    )
    assert r.status_code == 422, r.text
    assert problem_type(r) == "validation-error"
    assert all(e["pointer"].startswith("/events") for e in r.json()["errors"])


async def test_only_the_tenants_admins_reach_its_endpoints(
    client: httpx.AsyncClient, tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    hook = await register(client, tenant, "https://hooks.example.com/in", ["ticket.created"])
    requester = await tenant.user("tickets:create")
    body = {"url": "https://hooks.example.com/mine", "events": ["ticket.created"]}
    r = await client.post("/v1/webhooks", json=body, headers=requester.headers)
    assert r.status_code == 403, r.text
    for method, path in [
        ("GET", "/v1/webhooks"),
        ("GET", f"/v1/webhooks/{hook['id']}"),
        ("DELETE", f"/v1/webhooks/{hook['id']}"),
        ("POST", f"/v1/webhooks/{hook['id']}/test"),
    ]:
        r = await client.request(method, path, headers=requester.headers)
        assert r.status_code == 403, (method, path, r.text)

    # Another tenant's admin: no such endpoint.
    path = f"/v1/webhooks/{hook['id']}"
    for method, change in [("GET", None), ("PATCH", {"enabled": False}), ("DELETE", None)]:
        r = await client.request(method, path, json=change, headers=other_tenant.headers)
        assert r.status_code == 404, (method, r.text)
    r = await client.post(f"{path}/test", headers=other_tenant.headers)
    assert r.status_code == 404, r.text
    r = await client.get("/v1/webhooks", headers=other_tenant.headers)
    assert r.json()["items"] == []
    r = await client.get(path, headers=tenant.headers)
    assert r.status_code == 200 and r.json()["enabled"] is True


# ---- ticket events -------------------------------------------------------------------------


async def test_ticket_events_arrive_signed(desk: Desk, app: FastAPI) -> None:
    client, tenant = desk.client, desk.tenant
    async with Receiver(answer(204)) as receiver:
        hook = await register(client, tenant, receiver.url("/all"), ALL_EVENTS)
        closed_only = await register(client, tenant, receiver.url("/closed"), ["ticket.closed"])
        secret = hook["secret"]

        ticket = await desk.open(title="VPN drops every hour")
        await settled(app, tenant.id)
        [seen] = receiver.requests
        assert (seen.method, seen.target) == ("POST", "/all")
        created = verified(seen, secret)
        assert created["type"] == "ticket.created"
        assert created["data"]["ticket"]["number"] == ticket["number"]
        r = await client.get(f"/v1/tickets/{ticket['id']}", headers=tenant.headers)
        assert r.status_code == 200, r.text
        current = r.json()
        for name in ("id", "number", "title", "status"):
            assert created["data"]["ticket"][name] == current[name], name
        assert created["data"]["ticket"]["requester"]["id"] == desk.requester.id
        # Signed for this endpoint only.
        with pytest.raises(WebhookVerificationError):
            Webhook(closed_only["secret"]).verify(seen.body, seen.headers)

        # Started before it is assigned (an assignment would start the open ticket itself).
        r = await desk.move(ticket, desk.agent, action="start")
        assert r.status_code == 200, r.text
        await settled(app, tenant.id)
        moved = verified(receiver.requests[-1], secret)
        assert moved["type"] == "ticket.status_changed"
        assert moved["data"]["from"] == ticket["status"]
        assert moved["data"]["to"] == r.json()["status"] == moved["data"]["ticket"]["status"]

        await desk.assign(ticket, desk.assignee)
        await settled(app, tenant.id)
        assigned = verified(receiver.requests[-1], secret)
        assert assigned["type"] == "ticket.assigned"
        assert assigned["data"]["assignee_id"] == desk.assignee.id
        assert assigned["data"]["ticket"]["assignee"]["id"] == desk.assignee.id

        r = await client.post(
            f"/v1/tickets/{ticket['id']}/comments",
            json={"body": "Please try the new VPN profile", "visibility": "external"},
            headers=desk.assignee.headers,
        )
        assert r.status_code == 201, r.text
        await settled(app, tenant.id)
        commented = verified(receiver.requests[-1], secret)
        assert commented["type"] == "ticket.comment_added"
        assert commented["data"]["comment"]["body"] == "Please try the new VPN profile"
        assert commented["data"]["comment"]["visibility"] == "external"
        assert commented["data"]["comment"]["id"] == r.json()["id"]

    # One request per event, each its own message; nothing for the endpoint that wants only
    # closures.
    assert [s.target for s in receiver.requests] == ["/all"] * 4
    ids = [s.headers["webhook-id"] for s in receiver.requests]
    assert len(set(ids)) == 4
    log = await webhook_log(client, tenant)
    assert {d["state"] for d in log} == {"sent"}
    assert {d["recipient"] for d in log} == {d["webhook_id"] for d in log} == {hook["id"]}
    assert sorted(d["message_id"] for d in log) == sorted(ids)
    assert [d["event"] for d in log] == [
        "ticket.comment_added",
        "ticket.assigned",
        "ticket.status_changed",
        "ticket.created",
    ]
    assert {d["ticket_id"] for d in log} == {ticket["id"]}


async def test_a_failing_endpoint_is_retried_with_the_same_webhook_id(
    client: httpx.AsyncClient, tenant: TenantCtx, app: FastAPI
) -> None:
    async with Receiver(in_turn(answer(500), answer(500), answer(200))) as receiver:
        hook = await register(client, tenant, receiver.url(), ["ticket.created"])
        ticket = await open_ticket(client, tenant.admin)
        await settled(app, tenant.id)

    assert len(receiver.requests) == 3
    assert len({s.headers["webhook-id"] for s in receiver.requests}) == 1
    assert len({s.body for s in receiver.requests}) == 1
    for seen in receiver.requests:
        assert verified(seen, hook["secret"])["data"]["ticket"]["id"] == ticket["id"]
    [delivery] = await webhook_log(client, tenant)
    assert (delivery["state"], delivery["attempts"]) == ("sent", 3)
    assert delivery["message_id"] == receiver.requests[0].headers["webhook-id"]
    assert delivery["last_error"] is None and delivery["sent_at"] is not None
    # A success ends the endpoint's failing streak.
    r = await client.get(f"/v1/webhooks/{hook['id']}", headers=tenant.headers)
    assert r.json()["failing_since"] is None


async def test_an_unreachable_endpoint_is_retried_then_fails_and_can_be_retried(
    client: httpx.AsyncClient, tenant: TenantCtx, app: FastAPI
) -> None:
    admin = tenant.headers
    hook = await register(client, tenant, f"http://127.0.0.1:{free_port()}/", ["ticket.created"])
    await open_ticket(client, tenant.admin)

    async def tried_twice() -> dict[str, Any] | None:
        log = await webhook_log(client, tenant)
        return log[0] if log and log[0]["attempts"] >= 2 else None

    pending = await eventually(tried_twice)
    assert pending["state"] == "pending", pending
    assert pending["last_error"] == "connection refused"
    assert pending["next_attempt_at"] is not None
    r = await client.get(f"/v1/webhooks/{hook['id']}", headers=admin)
    assert r.json()["failing_since"] is not None and r.json()["enabled"]

    # The retry window ends: the next failure is the last.
    await execute(
        app,
        "UPDATE deliveries SET give_up_at = now() - interval '1 second', next_attempt_at = now()"
        " WHERE tenant_id = $1 AND id = $2",
        args=(tenant.id, uuid.UUID(pending["id"])),
    )
    await settled(app, tenant.id)
    r = await client.get(f"/v1/notifications/deliveries/{pending['id']}", headers=admin)
    assert r.status_code == 200, r.text
    failed = r.json()
    assert failed["state"] == "failed"
    assert failed["attempts"] > pending["attempts"]
    assert failed["last_error"] == "connection refused"
    assert failed["next_attempt_at"] is None and failed["sent_at"] is None

    # The endpoint is fixed, the delivery retried by hand: the same message arrives.
    async with Receiver(answer(200)) as receiver:
        r = await client.patch(
            f"/v1/webhooks/{hook['id']}", json={"url": receiver.url()}, headers=admin
        )
        assert r.status_code == 200, r.text
        r = await client.post(f"/v1/notifications/deliveries/{failed['id']}/retry", headers=admin)
        assert r.status_code == 200, r.text
        retried = r.json()
        assert retried["state"] == "pending" and retried["last_error"] is None
        assert retried["give_up_at"] > failed["give_up_at"]
        await settled(app, tenant.id)

    [seen] = receiver.requests
    assert seen.headers["webhook-id"] == failed["message_id"]
    assert verified(seen, hook["secret"])["type"] == "ticket.created"
    r = await client.get(f"/v1/notifications/deliveries/{failed['id']}", headers=admin)
    assert r.json()["state"] == "sent"
    r = await client.post(f"/v1/notifications/deliveries/{failed['id']}/retry", headers=admin)
    assert r.status_code == 409, r.text
    assert problem_type(r) == "conflict" and r.json()["state"] == "sent"
    r = await client.post(f"/v1/notifications/deliveries/{uuid.uuid4()}/retry", headers=admin)
    assert r.status_code == 404, r.text


# ---- the address policy --------------------------------------------------------------------


@pytest.fixture
def strict_settings(
    create_database: Callable[[], str],
    notify_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    """The notification settings on a database of their own, with private addresses refused
    (as in production)."""
    url = create_database()
    migrate.upgrade(url)
    return notify_settings.model_copy(
        update={
            "database_url": url,
            "data_dir": tmp_path_factory.mktemp("strict"),
            "webhook_allow_private": False,
        }
    )


@pytest.fixture
async def strict_app(strict_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(strict_settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_a_private_address_is_refused_for_good(strict_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=strict_app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://flowdesk.test") as client,
        Receiver(answer(200)) as receiver,
    ):
        tenant = await new_tenant(strict_app, client)
        # Registered (what a name resolves to is judged when sending), never reached.
        hook = await register(client, tenant, receiver.url(), ["ticket.created"])
        await open_ticket(client, tenant.admin)
        await settled(strict_app, tenant.id)
        [delivery] = await webhook_log(client, tenant)
        r = await client.post(f"/v1/webhooks/{hook['id']}/test", headers=tenant.headers)
        assert r.status_code == 200, r.text
        tested = r.json()

    refusal = "refused: 127.0.0.1 is a loopback address"
    assert (delivery["state"], delivery["attempts"], delivery["last_error"]) == (
        "failed",
        1,
        refusal,
    )
    assert (tested["ok"], tested["status"], tested["error"]) == (False, None, refusal)
    assert tested["delivery"]["state"] == "failed"
    assert receiver.connections == 0


# ---- the test event ------------------------------------------------------------------------


async def test_the_test_event_reports_the_endpoints_answer(
    client: httpx.AsyncClient, tenant: TenantCtx, app: FastAPI
) -> None:
    async with Receiver(answer(200)) as receiver:
        hook = await register(client, tenant, receiver.url("/in"), ["ticket.closed"])
        r = await client.post(f"/v1/webhooks/{hook['id']}/test", headers=tenant.headers)
        assert r.status_code == 200, r.text
        ok = r.json()
        receiver.reply = answer(500)
        r = await client.post(f"/v1/webhooks/{hook['id']}/test", headers=tenant.headers)
        assert r.status_code == 200, r.text
        refused = r.json()
        await settled(app, tenant.id)

    assert (ok["ok"], ok["status"], ok["error"]) == (True, 200, None)
    assert ok["delivery"]["event"] == "webhook.test"
    assert ok["delivery"]["channel"] == "webhook"
    assert (ok["delivery"]["state"], ok["delivery"]["attempts"]) == ("sent", 1)
    assert (refused["ok"], refused["status"], refused["error"]) == (False, 500, "HTTP 500")
    assert (refused["delivery"]["state"], refused["delivery"]["attempts"]) == ("failed", 1)
    assert refused["delivery"]["last_error"] == "HTTP 500"

    # Each test sent once, signed; not retried.
    assert len(receiver.requests) == 2
    first, second = (verified(s, hook["secret"]) for s in receiver.requests)
    assert first["type"] == second["type"] == "webhook.test"
    assert first["data"]["webhook_id"] == hook["id"]
    assert receiver.requests[0].target == "/in"
    assert [s.headers["webhook-id"] for s in receiver.requests] == [
        ok["delivery"]["message_id"],
        refused["delivery"]["message_id"],
    ]
    log = await webhook_log(client, tenant)
    assert [(d["event"], d["state"]) for d in log] == [
        ("webhook.test", "failed"),
        ("webhook.test", "sent"),
    ]


async def test_a_slow_endpoint_gets_the_test_event_once(
    client: httpx.AsyncClient, tenant: TenantCtx, app: FastAPI
) -> None:
    """The relay, polling meanwhile, does not send the test delivery a second time."""

    async def slow(seen: Seen, send: Send) -> None:
        await asyncio.sleep(0.3)  # many relay polls (every 0.05 s)
        await answer(200)(seen, send)

    async with Receiver(slow) as receiver:
        hook = await register(client, tenant, receiver.url(), ["ticket.closed"])
        r = await client.post(f"/v1/webhooks/{hook['id']}/test", headers=tenant.headers)
        assert r.status_code == 200, r.text
        await settled(app, tenant.id)

    assert r.json()["ok"] is True
    assert len(receiver.requests) == 1


# ---- disabling -----------------------------------------------------------------------------


async def test_an_endpoint_failing_too_long_is_disabled_and_the_admins_told(
    client: httpx.AsyncClient, tenant: TenantCtx, app: FastAPI, mailer: SmtpServer
) -> None:
    admin = tenant.headers
    async with Receiver(answer(503)) as receiver:
        hook = await register(
            client, tenant, receiver.url(), ["ticket.created"], description="ERP bridge"
        )
        # Failing since long before the limit (webhook_disable_after_hours, 72 h): the next
        # failure is the one too many.
        await execute(
            app,
            "UPDATE webhooks SET failing_since = now() - interval '100 hours'"
            " WHERE tenant_id = $1 AND id = $2",
            args=(tenant.id, uuid.UUID(hook["id"])),
        )
        await open_ticket(client, tenant.admin)
        subject = f"[Tenant {tenant.slug}] Webhook disabled: {receiver.url()}"
        await until(
            lambda: any(str(m["Subject"]) == subject for m in mailer.handler.to(tenant.admin.email))
        )
        # The failed event waits for its retry: made due now rather than waited for.
        await execute(
            app,
            "UPDATE deliveries SET next_attempt_at = now()"
            " WHERE tenant_id = $1 AND channel = 'webhook' AND state = 'pending'",
            args=(tenant.id,),
        )
        await settled(app, tenant.id)

    assert len(receiver.requests) == 1  # not called again once disabled
    r = await client.get(f"/v1/webhooks/{hook['id']}", headers=admin)
    disabled = r.json()
    assert disabled["enabled"] is False
    assert disabled["disabled_reason"] == "every delivery failed for 72 h"
    notices = [m for m in mailer.handler.to(tenant.admin.email) if str(m["Subject"]) == subject]
    assert len(notices) == 1
    text = notices[0].get_body(preferencelist=("plain",))
    assert text is not None
    assert "ERP bridge" in str(text.get_content())
    # The event it failed on is dropped, not kept for later.
    [delivery] = await webhook_log(client, tenant)
    assert delivery["state"] == "dropped"
    assert delivery["last_error"] == "the endpoint is disabled"

    # Enabled again by an admin: a fresh start.
    r = await client.patch(f"/v1/webhooks/{hook['id']}", json={"enabled": True}, headers=admin)
    assert r.status_code == 200, r.text
    enabled = r.json()
    assert enabled["enabled"] is True
    assert enabled["disabled_reason"] is None and enabled["failing_since"] is None
