"""A ticket's links and approvals are listed in bounded pages (issue 16, item 9), still as
JSON arrays (the first version's shape), the next page's URL in the `Link` header."""

from __future__ import annotations

import re

from tests.tickets.conftest import Desk


async def test_links_come_in_pages_with_a_next_link(desk: Desk) -> None:
    a = await desk.open()
    targets = [await desk.open() for _ in range(5)]
    c, h = desk.client, desk.agent.headers
    url = f"/v1/tickets/{a['id']}/links"
    for t in targets:
        r = await c.post(url, json={"kind": "relates_to", "target": t["id"]}, headers=h)
        assert r.status_code == 201, r.text

    first = await c.get(url, headers=h)  # up to 100 unless told: all five, no next page
    assert [x["target_id"] for x in first.json()] == [t["id"] for t in targets]
    assert "link" not in first.headers

    seen: list[str] = []
    r = await c.get(url, params={"limit": 2}, headers=h)
    while True:
        assert r.status_code == 200 and isinstance(r.json(), list)
        seen += [x["target_id"] for x in r.json()]
        following = r.headers.get("link")
        if following is None:
            break
        match = re.fullmatch(r'<([^>]+)>; rel="next"', following)
        assert match is not None, following
        r = await c.get(match.group(1), headers=h)
    assert seen == [t["id"] for t in targets]

    r = await c.get(url, params={"cursor": "bad"}, headers=h)
    assert r.status_code == 422
    r = await c.get(url, params={"limit": 101}, headers=h)
    assert r.status_code == 422


async def test_approvals_come_in_pages_with_a_next_link(desk: Desk) -> None:
    ticket = await desk.open()
    await desk.join("INFRA approvers", desk.agent, desk.assignee)
    url = f"/v1/tickets/{ticket['id']}/approvals"
    for approver in (desk.agent, desk.assignee):
        r = await desk.client.post(url, json={"name": "infra"}, headers=approver.headers)
        assert r.status_code == 201, r.text
    h = desk.agent.headers
    r = await desk.client.get(url, params={"limit": 1}, headers=h)
    assert [a["approver"]["id"] for a in r.json()] == [desk.agent.id]
    match = re.fullmatch(r'<([^>]+)>; rel="next"', r.headers["link"])
    assert match is not None
    r = await desk.client.get(match.group(1), headers=h)
    assert [a["approver"]["id"] for a in r.json()] == [desk.assignee.id]
    assert "link" not in r.headers
