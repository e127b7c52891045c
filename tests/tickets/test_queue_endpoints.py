"""What a queue screen needs besides the list: whom a ticket can be assigned to
(GET /v1/agents), the admins' user search (GET /v1/users?q=), and the counts behind the
queue's tabs and badges (GET /v1/tickets/counts), each within the list's visibility."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
from fastapi import FastAPI

from tests.support import Member, TenantCtx, problem_type
from tests.tickets.conftest import AGENT, Desk, force_status

Params = dict[str, str | int | list[str]]


async def _walk(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], params: Params
) -> list[dict[str, Any]]:
    """Every item of a paged list, following its cursors."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page_params = {**params, **({"cursor": cursor} if cursor else {})}
        r = await client.get(path, params=page_params, headers=headers)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items


async def _agent_ids(desk: Desk, by: Member | None = None, **params: str | int) -> list[str]:
    items = await _walk(desk.client, "/v1/agents", (by or desk.agent).headers, dict(params))
    return [a["id"] for a in items]


# --- GET /v1/agents ------------------------------------------------------------------------


async def test_agents_are_the_assignable_users(desk: Desk, other_tenant: TenantCtx) -> None:
    c = desk.client
    # Not agents: a requester, a user of no group, one who may close but not manage, one
    # deleted, another tenant's.
    closer = await desk.tenant.user("tickets:create", "tickets:close", name="Cleo Closer")
    nobody = await desk.tenant.user(name="Nina Nobody")
    gone = await desk.tenant.user(*AGENT, name="Gus Gone")
    r = await c.delete(f"/v1/users/{gone.id}", headers=desk.admin.headers)
    assert r.status_code == 204, r.text
    await other_tenant.user(*AGENT, name="Olga Elsewhere")
    # An admin holds tickets:manage through admin.
    boss = await desk.tenant.user("admin", name="Bea Boss")

    r = await c.get("/v1/agents", headers=desk.agent.headers)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    by_id = {a["id"]: a for a in items}
    expected = {desk.assignee.id, desk.agent.id, desk.admin.id, boss.id}
    assert set(by_id) == expected
    assert not {desk.requester.id, closer.id, nobody.id, gone.id} & set(by_id)
    assert by_id[desk.agent.id] == {
        "id": desk.agent.id,
        "name": "Otto Other",
        "email": desk.agent.email,
    }
    # By name.
    names = [a["name"] for a in items]
    assert names == sorted(names)

    # Everyone listed can be assigned a ticket, and someone not listed cannot: one meaning.
    ticket = await desk.open()
    for agent_id in expected:
        r = await c.patch(
            f"/v1/tickets/{ticket['id']}",
            json={"assignee_id": agent_id},
            headers=desk.agent.headers,
        )
        assert r.status_code == 200, r.text
    for outsider in (desk.requester, closer, gone):
        r = await c.patch(
            f"/v1/tickets/{ticket['id']}",
            json={"assignee_id": outsider.id},
            headers=desk.agent.headers,
        )
        assert r.status_code == 422, r.text

    # Losing the group loses the place in the list.
    group = await desk.tenant.group(*AGENT)
    r = await c.delete(f"/v1/groups/{group}/members/{desk.agent.id}", headers=desk.admin.headers)
    assert r.status_code == 204, r.text
    assert desk.agent.id not in await _agent_ids(desk, by=desk.assignee)


async def test_agents_search(desk: Desk) -> None:
    zoe = await desk.tenant.user(*AGENT, name="Zoë Ärger")
    percent = await desk.tenant.user(*AGENT, name="100% Sure")
    underscore = await desk.tenant.user(*AGENT, name="under_score")
    # A name that `%` or `_` as wildcards would match: no literal `%` or `_` in it.
    await desk.tenant.user(*AGENT, name="1000 Sure underscore")

    async def found(q: str) -> set[str]:
        return set(await _agent_ids(desk, q=q))

    # A substring of the name, in any case, non-ASCII letters too.
    assert await found("zoë") == {zoe.id}
    assert await found("ÄRGER") == {zoe.id}
    assert await found("ZOË ä") == {zoe.id}
    assert await found("otto") == {desk.agent.id}
    # `%` and `_` are literal, as is the LIKE escape character.
    assert await found("%") == {percent.id}
    assert await found("0% s") == {percent.id}
    assert await found("_") == {underscore.id}
    assert await found("r_s") == {underscore.id}
    assert await found("\\") == set()
    # Or of the e-mail (the local part is unique to each user).
    assert await found(desk.assignee.email.split("@")[0].upper()) == {desk.assignee.id}
    # A requester matching the search is still not an agent.
    assert await found("rita") == set()
    assert await found("no such person") == set()
    # Too long, or a NUL: a 422 problem, not a 500.
    for bad in ("x" * 201, "a\x00b"):
        r = await desk.client.get("/v1/agents", params={"q": bad}, headers=desk.agent.headers)
        assert r.status_code == 422, r.text
        assert problem_type(r) == "validation-error"


async def test_agents_pages(desk: Desk) -> None:
    for i in range(4):
        # Two of the same name: the id breaks the tie.
        await desk.tenant.user(*AGENT, name=f"Pat {i // 2}")
    everyone = await _agent_ids(desk, limit=100)
    assert len(everyone) == 7
    paged = await _agent_ids(desk, limit=2)
    assert paged == everyone
    searched = await _agent_ids(desk, q="pat", limit=1)
    assert len(searched) == 4 and searched == [i for i in everyone if i in searched]
    r = await desk.client.get("/v1/agents", params={"cursor": "bogus"}, headers=desk.agent.headers)
    assert r.status_code == 422, r.text


async def test_agents_are_for_agents(desk: Desk) -> None:
    r = await desk.client.get("/v1/agents", headers=desk.requester.headers)
    assert r.status_code == 403, r.text
    assert problem_type(r) == "forbidden"
    assert r.json()["required_permission"] == "tickets:manage"
    # An agent's key without tickets:read cannot read it either.
    writer = await desk.tenant.key(desk.agent.id, ["tickets:write"])
    r = await desk.client.get("/v1/agents", headers={"Authorization": f"Bearer {writer}"})
    assert r.status_code == 403, r.text
    # An agent's read-only key can: reading is decided on what the user holds.
    reader = await desk.tenant.key(desk.agent.id, ["tickets:read"])
    r = await desk.client.get("/v1/agents", headers={"Authorization": f"Bearer {reader}"})
    assert r.status_code == 200, r.text
    assert r.json()["items"]
    r = await desk.client.get("/v1/agents")
    assert r.status_code == 401, r.text


# --- GET /v1/users?q= ----------------------------------------------------------------------


async def test_users_search_for_admins(desk: Desk) -> None:
    c, h = desk.client, desk.admin.headers
    ines = await desk.tenant.user(name="Inès Éclair")
    odd = await desk.tenant.user(name="50%_off")
    gone = await desk.tenant.user(name="Inès Gone")
    assert (await c.delete(f"/v1/users/{gone.id}", headers=h)).status_code == 204

    async def found(q: str, limit: int = 50) -> list[str]:
        return [u["id"] for u in await _walk(c, "/v1/users", h, {"q": q, "limit": limit})]

    assert await found("ÉCLAIR") == [ines.id]
    assert await found("inès") == [ines.id]
    assert await found("%") == [odd.id]
    assert await found("%_") == [odd.id]
    assert await found("_") == [odd.id]
    # Requesters are users too; the search is not limited to agents.
    assert await found("rita") == [desk.requester.id]
    assert await found(desk.agent.email.split("@")[0]) == [desk.agent.id]
    # Pages of a search; without q, every live user.
    assert await found("e", limit=1) == await found("e")
    everyone = await _walk(c, "/v1/users", h, {})
    assert len(everyone) == 6  # admin, requester, assignee, agent, Inès, 50%_off
    r = await c.get("/v1/users", params={"q": "a\x00"}, headers=h)
    assert r.status_code == 422, r.text
    r = await c.get("/v1/users", params={"q": "rita"}, headers=desk.agent.headers)
    assert r.status_code == 403, r.text


# --- GET /v1/tickets/counts ----------------------------------------------------------------


def _key(ticket: dict[str, Any], group_by: str) -> str | None:
    if group_by == "assignee":
        return ticket["assignee"]["id"] if ticket["assignee"] else None
    return str(ticket[group_by])


async def _counts(
    desk: Desk,
    group_by: str,
    by: Member | None = None,
    path: str = "/v1/tickets/counts",
    **params: Any,
) -> dict[str | None, int]:
    r = await desk.client.get(
        path, params={"group_by": group_by, **params}, headers=(by or desk.agent).headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["group_by"] == group_by
    counts = {c["key"]: c["count"] for c in body["counts"]}
    assert len(counts) == len(body["counts"])
    assert body["total"] == sum(counts.values())
    assert all(n > 0 for n in counts.values())
    # Most first, as documented.
    assert [c["count"] for c in body["counts"]] == sorted(counts.values(), reverse=True)
    return counts


async def _listed(
    desk: Desk, group_by: str, by: Member | None = None, **params: Any
) -> dict[str | None, int]:
    """What the list shows for the same query, counted here."""
    items = await _walk(
        desk.client, "/v1/tickets", (by or desk.agent).headers, {**params, "limit": 7}
    )
    return dict(Counter(_key(t, group_by) for t in items))


GROUPS = ("status", "status_category", "assignee", "priority")


async def _queue(desk: Desk, app: FastAPI) -> dict[str, dict[str, Any]]:
    """A queue of tickets in several statuses, priorities and hands."""
    agent, rita = desk.agent, desk.requester.id
    t = {
        "vpn": await desk.open(agent, title="VPN drops", priority="LOW", requester_id=rita),
        "printer": await desk.open(
            agent,
            title="Printer jams",
            catalog_item="itsm_service_request",
            priority="CRITICAL",
            requester_id=rita,
        ),
        "laptop": await desk.open(title="Laptop will not boot"),
        "mail": await desk.open(agent, title="Mail is slow", priority="LOW"),
        "old": await desk.open(title="Old VPN issue"),
        "done": await desk.open(title="Done and dusted"),
    }
    await desk.assign(t["printer"], desk.assignee)
    await desk.assign(t["mail"], desk.assignee)
    await desk.assign(t["laptop"], desk.agent)
    # The statuses are set directly: what assignment moves (a catalog's on_assign) is not
    # what these tests are about.
    for name, status, category in (
        ("vpn", "open", "initial"),
        ("printer", "open", "initial"),
        ("laptop", "in_progress", "active"),
        ("mail", "open", "initial"),
        ("old", "closed", "inactive"),
        ("done", "resolved", "active"),
    ):
        await force_status(app, t[name]["id"], status, status_category=category)
    return t


async def test_counts_match_the_list(desk: Desk, app: FastAPI) -> None:
    t = await _queue(desk, app)
    created = (
        await desk.client.get(f"/v1/tickets/{t['laptop']['id']}", headers=desk.agent.headers)
    ).json()["created_at"]
    queries: list[dict[str, Any]] = [
        {},
        {"status": "open"},
        {"status": ["open", "closed"]},
        {"status_category": ["initial", "active", "inactive"]},
        {"status_category": "inactive"},
        {"assignee": "none"},
        {"assignee": desk.assignee.id},
        {"priority": "LOW"},
        {"priority": ["LOW", "CRITICAL"], "assignee": desk.assignee.id},
        {"q": "vpn"},
        {"q": "vpn", "status_category": ["initial", "inactive"]},
        {"created_after": created},
        {"created_before": created},
        {"requester": desk.requester.id},
        {"type": "service_request"},
        {"catalog_item": "itsm_incident"},
        {"stale": "true"},
    ]
    for query in queries:
        for group_by in GROUPS:
            assert await _counts(desk, group_by, **query) == await _listed(
                desk, group_by, **query
            ), (query, group_by)
    # assignee=me is the caller.
    for who in (desk.assignee, desk.agent):
        assert await _counts(desk, "status", by=who, assignee="me") == await _listed(
            desk, "status", by=who, assignee="me"
        )


async def test_counts_by_each_grouping(desk: Desk, app: FastAPI) -> None:
    t = await _queue(desk, app)
    # The list's defaults: the closed ticket is left out unless asked for.
    assert await _counts(desk, "status") == {"open": 3, "in_progress": 1, "resolved": 1}
    assert await _counts(desk, "status_category") == {"initial": 3, "active": 2}
    assert await _counts(desk, "priority") == {"HIGH": 2, "LOW": 2, "CRITICAL": 1}
    assert await _counts(desk, "assignee") == {
        desk.assignee.id: 2,
        desk.agent.id: 1,
        None: 2,
    }
    everything: dict[str, Any] = {"status_category": ["initial", "active", "inactive"]}
    assert await _counts(desk, "status", **everything) == {
        "open": 3,
        "in_progress": 1,
        "resolved": 1,
        "closed": 1,
    }
    # Filters.
    assert await _counts(desk, "priority", status="open") == {"CRITICAL": 1, "LOW": 2}
    assert await _counts(desk, "status", assignee="none") == {"open": 1, "resolved": 1}
    assert await _counts(desk, "priority", by=desk.assignee, assignee="me") == {
        "CRITICAL": 1,
        "LOW": 1,
    }
    assert await _counts(desk, "assignee", priority="LOW") == {desk.assignee.id: 1, None: 1}
    assert await _counts(desk, "status", q="vpn", **everything) == {"open": 1, "closed": 1}
    assert await _counts(desk, "status", q="nothing matches this") == {}
    created = (
        await desk.client.get(f"/v1/tickets/{t['mail']['id']}", headers=desk.agent.headers)
    ).json()["created_at"]
    assert await _counts(desk, "status", created_after=created, **everything) == {
        "open": 1,
        "closed": 1,
        "resolved": 1,
    }
    assert await _counts(desk, "status", created_before=created) == {
        "open": 2,
        "in_progress": 1,
    }
    # The list's paging parameters are ignored, like any other unknown parameter.
    assert await _counts(
        desk, "status", sort="priority", limit=1, cursor="not-a-cursor"
    ) == await _counts(desk, "status")


async def test_counts_respect_visibility(desk: Desk, app: FastAPI, other_tenant: TenantCtx) -> None:
    await _queue(desk, app)
    # Another tenant's tickets are never counted, whoever asks.
    stranger = await other_tenant.user(*AGENT)
    for _ in range(2):
        r = await desk.client.post(
            "/v1/tickets",
            json={"title": "Elsewhere", "catalog_item": "itsm_incident"},
            headers=stranger.headers,
        )
        assert r.status_code == 201, r.text
    assert sum((await _counts(desk, "status")).values()) == 5
    assert await _counts(desk, "status", by=stranger) == {"open": 2}

    # A requester counts only the tickets they requested, whatever the filter says: Rita
    # requested vpn, printer (filed for her), laptop, old and done; the agent filed mail.
    rita = desk.requester
    for group_by in GROUPS:
        assert await _counts(desk, group_by, by=rita) == await _listed(desk, group_by, by=rita)
    assert await _counts(desk, "status", by=rita) == {"open": 2, "in_progress": 1, "resolved": 1}
    assert await _counts(desk, "priority", by=rita, requester=desk.agent.id) == {}
    assert await _counts(desk, "assignee", by=rita, assignee=desk.assignee.id) == {
        desk.assignee.id: 1
    }
    other_requester = await desk.tenant.user("tickets:create")
    assert await _counts(desk, "status", by=other_requester) == {}
    await desk.open(by=other_requester)
    assert await _counts(desk, "status", by=other_requester) == {"open": 1}


async def test_counts_on_the_public_api(desk: Desk, app: FastAPI) -> None:
    await _queue(desk, app)
    agent = await desk.tenant.public(desk.agent)
    requester = await desk.tenant.public(desk.requester)
    for group_by in GROUPS:
        assert await _counts(
            desk, group_by, by=agent, path="/public/v1/tickets/counts"
        ) == await _counts(desk, group_by)
    assert await _counts(
        desk, "status", by=requester, path="/public/v1/tickets/counts"
    ) == await _counts(desk, "status", by=desk.requester)


async def test_counts_refuse_bad_queries(desk: Desk) -> None:
    c, h = desk.client, desk.agent.headers
    bad: list[Params] = [
        {},
        {"group_by": "title"},
        {"group_by": ""},
        {"group_by": "status", "priority": "URGENT"},
        {"group_by": "status", "status_category": "sideways"},
        {"group_by": "status", "assignee": "someone"},
        {"group_by": "status", "created_after": "yesterday"},
        {"group_by": "status", "q": "a\x00"},
    ]
    for params in bad:
        r = await c.get("/v1/tickets/counts", params=params, headers=h)
        assert r.status_code == 422, (params, r.text)
        assert problem_type(r) == "validation-error", r.text
    r = await c.get("/v1/tickets/counts", params={"group_by": "title"}, headers=h)
    assert any(e["pointer"] == "/query/group_by" for e in r.json()["errors"]), r.text
    r = await c.get("/v1/tickets/counts", params={"group_by": "status"})
    assert r.status_code == 401, r.text
