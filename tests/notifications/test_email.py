"""E-mail notifications end to end: tickets changed over HTTP, the relay running in the app's
lifespan, mails arriving at a real SMTP server (seed 004's six events and their recipients)."""

from __future__ import annotations

from email.message import EmailMessage

import httpx
from fastapi import FastAPI

from flowdesk.itsm.quotas import run_quota_check
from tests.notifications.conftest import PORTAL, settled
from tests.notifications.smtp import SmtpServer
from tests.sql import fetch, fetchval
from tests.support import Operator, TenantCtx, new_tenant, problem_type, runtime
from tests.tickets.conftest import Desk


def subjects(mails: list[EmailMessage]) -> list[str]:
    return [str(m["Subject"]) for m in mails]


def body_text(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def body_html(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


async def test_a_ticket_life_mails_the_people_seed_004_names(
    desk: Desk, mailer: SmtpServer, app: FastAPI
) -> None:
    requester, assignee, agent, admin = desk.requester, desk.assignee, desk.agent, desk.admin
    ticket = await desk.open(title="VPN drops every hour")
    number = ticket["number"]
    # Created: the reporter's acknowledgement, and the agent queue (every agent; the admin
    # works the queue too), but not twice for anyone.
    await settled(app, desk.tenant.id)
    assert len(mailer.handler.to(agent.email)) == 1
    assert len(mailer.handler.to(requester.email)) == 1
    assert len(mailer.handler.to(assignee.email)) == 1
    assert len(mailer.handler.to(admin.email)) == 1
    ack = mailer.handler.to(requester.email)[0]
    assert number in str(ack["Subject"])
    assert "VPN drops every hour" in body_text(ack)

    # Assigned: the assignee (the admin assigned, so the admin hears nothing); the open
    # ticket started with it (itsm_default's on_assign), which the reporter hears of.
    await desk.assign(ticket, assignee)
    await settled(app, desk.tenant.id)
    assert len(mailer.handler.to(assignee.email)) == 2
    assert number in str(mailer.handler.to(assignee.email)[1]["Subject"])
    assert len(mailer.handler.to(requester.email)) == 2

    # An internal note reaches no requester; an external reply does.
    url = f"/v1/tickets/{ticket['id']}/comments"
    r = await desk.client.post(
        url,
        json={"body": "Looks like the DHCP lease", "visibility": "internal"},
        headers=assignee.headers,
    )
    assert r.status_code == 201, r.text
    r = await desk.client.post(
        url,
        json={"body": "Please try the new profile", "visibility": "external"},
        headers=assignee.headers,
    )
    assert r.status_code == 201, r.text
    await settled(app, desk.tenant.id)
    assert len(mailer.handler.to(requester.email)) == 3
    reply = mailer.handler.to(requester.email)[2]
    assert "Please try the new profile" in body_text(reply)
    assert "DHCP" not in body_text(reply)

    # Resolve: the reporter gets the resolved mail, not also a status-changed one for the
    # same change; then close.
    assert (await desk.move(ticket, assignee, action="resolve")).status_code == 200
    await settled(app, desk.tenant.id)
    assert len(mailer.handler.to(requester.email)) == 4
    assert (await desk.move(ticket, agent, action="close")).status_code == 200
    await settled(app, desk.tenant.id)
    assert len(mailer.handler.to(requester.email)) == 5
    await settled(app, desk.tenant.id)

    mails = mailer.handler.to(requester.email)
    assert len(mails) == 5
    resolved, closed = mails[3], mails[4]
    assert "confirm" in body_text(resolved).lower()
    assert "closed" in str(closed["Subject"]).lower() or "closed" in body_text(closed).lower()
    # Nobody else heard of the comments or the status changes.
    assert len(mailer.handler.to(assignee.email)) == 2
    assert len(mailer.handler.to(agent.email)) == 1
    assert len(mailer.handler.to(admin.email)) == 1

    # Mail as mail clients expect it.
    everything = [
        m for who in (requester, assignee, agent, admin) for m in mailer.handler.to(who.email)
    ]
    ids = [str(m["Message-ID"]) for m in everything]
    assert len(set(ids)) == len(ids)
    thread = {str(m["In-Reply-To"]) for m in everything}
    assert len(thread) == 1 and ticket["id"] in thread.pop()
    for mail in everything:
        assert number in str(mail["Subject"])
        assert mail["Auto-Submitted"] == "auto-generated"
        assert str(mail["From"]) == "Example Desk <desk@example.com>"
        assert mail.get_content_type() == "multipart/alternative"
        assert f"{PORTAL}/tickets/{number}" in body_html(mail)

    # The delivery log holds each, sent.
    r = await desk.client.get(
        "/v1/notifications/deliveries", params={"ticket": number}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    log = r.json()["items"]
    assert len(log) == 9  # 4 on creation, then one each
    assert {d["state"] for d in log} == {"sent"}
    assert {d["channel"] for d in log} == {"email"}


async def test_nobody_is_mailed_about_their_own_action(
    desk: Desk, mailer: SmtpServer, app: FastAPI
) -> None:
    # An agent files a ticket for themselves: they get the acknowledgement, the queue the
    # announcement, and nobody mails them about their own comment.
    ticket = await desk.open(by=desk.agent)
    r = await desk.client.post(
        f"/v1/tickets/{ticket['id']}/comments",
        json={"body": "more detail", "visibility": "external"},
        headers=desk.agent.headers,
    )
    assert r.status_code == 201
    await settled(app, desk.tenant.id)
    assert len(mailer.handler.to(desk.agent.email)) == 1  # the acknowledgement only
    assert len(mailer.handler.to(desk.assignee.email)) == 1  # the queue's announcement


async def test_the_queue_address_replaces_mailing_every_agent(
    desk: Desk, mailer: SmtpServer, app: FastAPI
) -> None:
    queue = f"queue@{desk.tenant.slug}.example"
    r = await desk.client.patch(
        "/v1/tenant",
        json={"queue_email": queue, "mail_from_name": "ACME Service Desk"},
        headers=desk.admin.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["queue_email"] == queue
    await desk.open()
    await settled(app, desk.tenant.id)
    assert len(mailer.handler.to(queue)) == 1
    await settled(app, desk.tenant.id)
    assert mailer.handler.to(desk.agent.email) == []
    mail = mailer.handler.to(queue)[0]
    assert str(mail["From"]) == "ACME Service Desk <desk@example.com>"
    # A queue address cleared with null: every agent again.
    r = await desk.client.patch(
        "/v1/tenant", json={"queue_email": None}, headers=desk.admin.headers
    )
    assert r.status_code == 200 and r.json()["queue_email"] is None
    r = await desk.client.patch("/v1/tenant", json={"name": None}, headers=desk.admin.headers)
    assert r.status_code == 422


async def test_no_mail_without_the_email_notifications_flag(
    quiet_tenant: TenantCtx, mailer: SmtpServer, app: FastAPI
) -> None:
    requester = await quiet_tenant.user("tickets:create")
    r = await quiet_tenant.client.post(
        "/v1/tickets",
        json={"title": "Nobody hears", "catalog_item": "itsm_incident"},
        headers=requester.headers,
    )
    assert r.status_code == 201
    await settled(app, quiet_tenant.id)
    assert mailer.handler.to(requester.email) == []
    assert (
        await fetchval(app, "SELECT count(*) FROM deliveries WHERE tenant_id = $1", quiet_tenant.id)
        == 0
    )


async def test_custom_templates_with_every_placeholder(
    desk: Desk, mailer: SmtpServer, app: FastAPI, operator: Operator
) -> None:
    admin = desk.admin.headers
    template = {
        "subject": "[{{ ticket_number }}] {{ ticket_title }} is {{ ticket_status }}",
        "html": "<p>{{ reporter_name }} / {{ assignee_name }} / {{ comment_body }}</p>",
        "text": "{{ ticket_number }}|{{ ticket_title }}|{{ ticket_status }}|{{ assignee_name }}"
        "|{{ reporter_name }}|{{ comment_body }}|{{ ticket_url }}",
    }
    r = await desk.client.put(
        "/v1/notification-templates/ticket.comment_added", json=template, headers=admin
    )
    assert r.status_code == 201, r.text
    assert r.json()["custom"] is True
    r = await desk.client.put(
        "/v1/notification-templates/ticket.comment_added", json=template, headers=admin
    )
    assert r.status_code == 200

    ticket = await desk.open(title="<b>Printer</b>")
    await desk.assign(ticket, desk.assignee)
    r = await desk.client.post(
        f"/v1/tickets/{ticket['id']}/comments",
        json={"body": "Try <turning> it off", "visibility": "external"},
        headers=desk.assignee.headers,
    )
    assert r.status_code == 201
    await settled(app, desk.tenant.id)
    # The acknowledgement, the start the assignment made (on_assign), and the reply.
    assert len(mailer.handler.to(desk.requester.email)) == 3
    mail = mailer.handler.to(desk.requester.email)[2]
    n = ticket["number"]
    assert str(mail["Subject"]) == f"[{n}] <b>Printer</b> is in progress"
    assert body_text(mail).strip() == (
        f"{n}|<b>Printer</b>|in progress|Ada Assignee|Rita Requester|Try <turning> it off"
        f"|{PORTAL}/tickets/{n}"
    )
    # HTML escapes what people wrote.
    assert "Rita Requester / Ada Assignee / Try &lt;turning&gt; it off" in body_html(mail)

    # A subject that leaves the ticket's number out gets it, in front.
    r = await desk.client.put(
        "/v1/notification-templates/ticket.comment_added",
        json={**template, "subject": "News about {{ ticket_title }}"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    r = await desk.client.post(
        f"/v1/tickets/{ticket['id']}/comments",
        json={"body": "Numbered", "visibility": "external"},
        headers=desk.assignee.headers,
    )
    await settled(app, desk.tenant.id)
    numbered = mailer.handler.to(desk.requester.email)[-1]
    assert str(numbered["Subject"]) == f"[{n}] News about <b>Printer</b>"
    sent_before = len(mailer.handler.to(desk.requester.email))

    # With the email_templates flag off the built-in template is used, though one is stored.
    await operator.flags(desk.tenant.slug, email_templates=False)
    r = await desk.client.get("/v1/notification-templates/ticket.comment_added", headers=admin)
    assert r.json()["custom"] is True and r.json()["in_use"] is False
    r = await desk.client.put(
        "/v1/notification-templates/ticket.comment_added", json=template, headers=admin
    )
    assert r.status_code == 403 and problem_type(r) == "feature-disabled"
    r = await desk.client.post(
        f"/v1/tickets/{ticket['id']}/comments",
        json={"body": "Second try", "visibility": "external"},
        headers=desk.assignee.headers,
    )
    await settled(app, desk.tenant.id)
    assert len(mailer.handler.to(desk.requester.email)) == sent_before + 1
    built_in = mailer.handler.to(desk.requester.email)[-1]
    assert str(built_in["Subject"]) != f"[{n}] <b>Printer</b> is open"
    assert "Second try" in body_text(built_in)

    # Back to the built-in one for good.
    r = await desk.client.delete("/v1/notification-templates/ticket.comment_added", headers=admin)
    assert r.status_code == 204
    r = await desk.client.delete("/v1/notification-templates/ticket.comment_added", headers=admin)
    assert r.status_code == 404


async def test_templates_are_checked_at_save(desk: Desk) -> None:
    admin = desk.admin.headers
    url = "/v1/notification-templates/ticket.created"
    bad = {"subject": "ok", "html": "<p>\n{{ ticket_number }}\n{{ nope }}</p>", "text": "x"}
    r = await desk.client.put(url, json=bad, headers=admin)
    assert r.status_code == 422, r.text
    error = r.json()["errors"][0]
    assert error["pointer"] == "/html" and "line 3" in error["detail"] and "nope" in error["detail"]
    broken = {"subject": "ok", "html": "ok", "text": "{% if %}"}
    r = await desk.client.put(url, json=broken, headers=admin)
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/text"
    escape = {"subject": "{{ ticket_title.__class__.__mro__ }}", "html": "x", "text": "x"}
    r = await desk.client.put(url, json=escape, headers=admin)
    assert r.status_code == 422
    r = await desk.client.put("/v1/notification-templates/ticket.nope", json=broken, headers=admin)
    assert r.status_code == 404
    r = await desk.client.get(url, headers=admin)
    assert r.status_code == 200 and r.json()["custom"] is False
    # A requester is no admin.
    r = await desk.client.get(url, headers=desk.requester.headers)
    assert r.status_code == 403


async def test_preview_renders_a_sample_or_a_real_ticket(desk: Desk) -> None:
    admin = desk.admin.headers
    url = "/v1/notification-templates/ticket.resolved/preview"
    r = await desk.client.post(url, json={}, headers=admin)
    assert r.status_code == 200, r.text
    sample = r.json()
    assert sample["subject"] and sample["html"] and sample["text"]
    ticket = await desk.open(title="Preview me")
    r = await desk.client.post(
        url,
        json={
            "ticket": ticket["number"],
            "template": {
                "subject": "{{ ticket_number }}: {{ ticket_title }}",
                "html": "h",
                "text": "t",
            },
        },
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert r.json()["subject"] == f"{ticket['number']}: Preview me"
    r = await desk.client.post(url, json={"ticket": "TKT-999999"}, headers=admin)
    assert r.status_code == 404


async def test_the_monthly_quota_drops_mail_past_it_and_raises_one_alert(
    app: FastAPI, client: httpx.AsyncClient, mailer: SmtpServer, operator: Operator
) -> None:
    tenant = await new_tenant(app, client, quotas={"max_emails_month": 3})
    queue = f"queue@{tenant.slug}.example"
    r = await client.patch("/v1/tenant", json={"queue_email": queue}, headers=tenant.headers)
    assert r.status_code == 200
    requester = await tenant.user("tickets:create")
    for title in ("one", "two"):  # two mails each: the acknowledgement and the queue's
        r = await client.post(
            "/v1/tickets",
            json={"title": title, "catalog_item": "itsm_incident"},
            headers=requester.headers,
        )
        assert r.status_code == 201
    await settled(app, tenant.id)
    sent = len(mailer.handler.to(queue)) + len(mailer.handler.to(requester.email))
    assert sent == 3
    states = await fetch(
        app,
        "SELECT state, last_error FROM deliveries WHERE tenant_id = $1 ORDER BY created_at",
        tenant.id,
    )
    assert sorted(s[0] for s in states) == ["dropped", "sent", "sent", "sent"]
    assert "quota" in next(s[1] for s in states if s[0] == "dropped")
    r = await operator.get("/quota-alerts", tenant=tenant.slug)
    alerts = [a for a in r.json()["items"] if a["quota"] == "max_emails_month"]
    assert len(alerts) == 1 and alerts[0]["limit"] == 3
    r = await client.get("/v1/tenant", headers=tenant.headers)
    assert r.json()["quota_usage"]["max_emails_month"] == {"limit": 3, "current": 3}
    # The platform operator sees the same count.
    r = await operator.get(f"/tenants/{tenant.slug}")
    assert r.json()["quota_usage"]["max_emails_month"] == {"limit": 3, "current": 3}

    # A dropped mail is never retried by the relay; an admin may, once the quota allows.
    dropped = await fetchval(
        app, "SELECT id FROM deliveries WHERE tenant_id = $1 AND state = 'dropped'", tenant.id
    )
    r = await client.post(f"/v1/notifications/deliveries/{dropped}/retry", headers=tenant.headers)
    assert r.status_code == 200 and r.json()["state"] == "pending"
    await settled(app, tenant.id)
    r = await client.get(f"/v1/notifications/deliveries/{dropped}", headers=tenant.headers)
    assert r.json()["state"] == "dropped"  # still over the quota
    await operator.licence(tenant.slug, quotas={"max_emails_month": 10})
    # Mail may flow again: the background check closes the alert.
    assert (await run_quota_check(runtime(app).db)).ran
    r = await operator.get("/quota-alerts", tenant=tenant.slug)
    alerts = [a for a in r.json()["items"] if a["quota"] == "max_emails_month"]
    assert len(alerts) == 1 and not alerts[0]["open"]
    r = await client.post(f"/v1/notifications/deliveries/{dropped}/retry", headers=tenant.headers)
    await settled(app, tenant.id)
    r = await client.get(f"/v1/notifications/deliveries/{dropped}", headers=tenant.headers)
    assert r.json()["state"] == "sent"
    r = await client.post(f"/v1/notifications/deliveries/{dropped}/retry", headers=tenant.headers)
    assert r.status_code == 409


async def test_the_delivery_log_filters_and_pages(desk: Desk, app: FastAPI) -> None:
    for _ in range(3):
        await desk.open()
    await settled(app, desk.tenant.id)
    admin = desk.admin.headers
    r = await desk.client.get("/v1/notifications/deliveries", params={"limit": 5}, headers=admin)
    page = r.json()
    assert len(page["items"]) == 5 and page["next_cursor"]
    r = await desk.client.get(
        "/v1/notifications/deliveries",
        params={"limit": 100, "cursor": page["next_cursor"]},
        headers=admin,
    )
    rest = r.json()["items"]
    seen = [d["id"] for d in page["items"] + rest]
    assert len(seen) == len(set(seen)) == 12  # 3 tickets x (acknowledgement + 3 agents)
    for params, status in (
        ({"status": "sent", "channel": "email"}, 200),
        ({"status": "lost"}, 422),
        ({"channel": "pigeon"}, 422),
        ({"ticket": "TKT-999999"}, 404),
        ({"cursor": "bm9wZQ"}, 422),
    ):
        r = await desk.client.get("/v1/notifications/deliveries", params=params, headers=admin)
        assert r.status_code == status, (params, r.text)


async def test_a_rolled_back_change_is_never_announced(desk: Desk, app: FastAPI) -> None:
    from tests.sql import failing_writes

    ticket = await desk.open()
    await settled(app, desk.tenant.id)
    before = await fetchval(
        app, "SELECT count(*) FROM deliveries WHERE tenant_id = $1", desk.tenant.id
    )
    async with failing_writes(app, "ticket_events"):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.post(
                f"/v1/tickets/{ticket['id']}/comments",
                json={"body": "lost", "visibility": "external"},
                headers=desk.assignee.headers,
            )
            assert r.status_code == 500
    await settled(app, desk.tenant.id)
    after = await fetchval(
        app, "SELECT count(*) FROM deliveries WHERE tenant_id = $1", desk.tenant.id
    )
    assert after == before
    assert (
        await fetchval(
            app,
            "SELECT count(*) FROM outbox WHERE tenant_id = $1 AND topic = 'ticket.comment_added'",
            desk.tenant.id,
        )
        == 0
    )


async def test_tenant_shows_the_months_mail_count(desk: Desk, app: FastAPI) -> None:
    await desk.open()
    await settled(app, desk.tenant.id)
    r = await desk.client.get("/v1/tenant", headers=desk.admin.headers)
    assert r.json()["quota_usage"]["max_emails_month"]["current"] == 4
