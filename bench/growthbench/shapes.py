"""The requests a queue screen sends, as the growth benchmark measures them: every list shape
(sorts, filters, search, deep cursor pages, counts) and the events of a long-lived ticket, each
resolved to the one URL that is then timed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

LIST_TARGET_MS = 50.0
SEARCH_TARGET_MS = 100.0
TICKETS = "/v1/tickets"


@dataclass(frozen=True)
class Shape:
    name: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    pages: int = 1  # follow the cursor to this page
    search: bool = False
    # Counts read every ticket they count: flagged only when they read the whole tenant.
    counts: bool = False

    @property
    def target_ms(self) -> float:
        return SEARCH_TARGET_MS if self.search else LIST_TARGET_MS


@dataclass(frozen=True)
class Resolved:
    shape: Shape
    url: str  # path and query string of the request that is timed
    page: int  # the page it is (a small tenant may have fewer pages than the shape asks)


def list_shapes(requester: str, event_ticket: str, deep: bool) -> list[Shape]:
    """Every shape, in the big tenant, as its admin (an agent who sees every ticket)."""
    t = TICKETS
    shapes = [
        Shape("default (open and active, newest first)", t),
        Shape("sort created", t, {"sort": "created"}),
        Shape("sort -created", t, {"sort": "-created"}),
        Shape("sort updated", t, {"sort": "-updated"}),
        Shape("sort priority", t, {"sort": "-priority"}),
        Shape("status=in_progress", t, {"status": "in_progress"}),
        Shape("status=closed (inactive, asked for)", t, {"status": "closed"}),
        Shape("status_category=active", t, {"status_category": "active"}),
        Shape("assignee=me", t, {"assignee": "me"}),
        Shape("assignee=none", t, {"assignee": "none"}),
        Shape("requester", t, {"requester": requester}),
        Shape("priority=CRITICAL", t, {"priority": "CRITICAL"}),
        Shape("type=service_request", t, {"type": "service_request"}),
        Shape("catalog_item=itsm_incident", t, {"catalog_item": "itsm_incident"}),
        Shape(
            "created in the last 30 days",
            t,
            {"created_after": _ago(30), "status_category": ["initial", "active", "inactive"]},
        ),
        Shape(
            "updated in a past week", t, {"updated_after": _ago(400), "updated_before": _ago(393)}
        ),
        Shape("resolved in the last 90 days", t, {"resolved_after": _ago(90), "status": "closed"}),
        Shape("q common word (printer)", t, {"q": "printer"}, search=True),
        Shape("q rare word (zeppelin)", t, {"q": "zeppelin"}, search=True),
        Shape("page 100 (default)", t, pages=100),
    ]
    if deep:
        shapes.append(Shape("page 1000 (default)", t, pages=1000))
    shapes += [
        Shape("counts by status", f"{t}/counts", {"group_by": "status"}, counts=True),
        Shape("counts by assignee", f"{t}/counts", {"group_by": "assignee"}, counts=True),
        Shape("events of a 1,000-event ticket", f"{t}/{event_ticket}/events"),
    ]
    return shapes


def _ago(days: int) -> str:
    return datetime.fromtimestamp(time.time() - days * 86400, UTC).isoformat()


async def resolve(client: httpx.AsyncClient, key: str, shape: Shape) -> Resolved:
    """Walk the cursor to the shape's page (or the last one) and return that page's URL."""
    headers = {"Authorization": f"Bearer {key}"}
    params = dict(shape.params)
    page = 1
    while page < shape.pages:
        r = await client.get(shape.path, params=params, headers=headers)
        r.raise_for_status()
        cursor = r.json().get("next_cursor")
        if not cursor:
            break
        params = {**shape.params, "cursor": cursor}
        page += 1
    url = httpx.URL(shape.path, params=params)
    return Resolved(shape, url.raw_path.decode("ascii"), page)


async def big_tenant_subjects(client: httpx.AsyncClient, key: str) -> tuple[str, str]:
    """The big tenant's requester of ticket 1 (the seed spreads tickets evenly over its
    people, so any one has as many as the next) and ticket 1's id: it carries 1,000 events."""
    headers = {"Authorization": f"Bearer {key}"}
    r = await client.get(f"{TICKETS}/TKT-000001", headers=headers)
    r.raise_for_status()
    ticket = r.json()
    return str(ticket["requester"]["id"]), str(ticket["id"])
