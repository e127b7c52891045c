"""`flowdesk sla tick`, as an operator runs it next to the servers: `--dry-run` prints what
would happen and changes nothing, `--at` replays a missed window, bad times are refused."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from tests.cli.test_commands import run
from tests.tickets.conftest import Desk
from tests.tickets.test_sla import _clock, _waiting


async def test_sla_tick_from_the_command_line(desk: Desk, database_url: str) -> None:
    ticket = await _waiting(desk)
    since = datetime.fromisoformat(_clock(ticket, "customer_reply")["started_at"])
    at = (since + timedelta(hours=73)).isoformat()

    def mine(out: str) -> list[dict[str, object]]:
        return [f for f in json.loads(out)["fired"] if f["ticket_id"] == ticket["id"]]

    dry = run(database_url, "sla", "tick", "--at", at, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    planned = {
        "ticket_id": ticket["id"],
        "clock": "customer_reply",
        "marks": ["reminder", "breach"],
        "action": "cancel",
        "to": "DONE",
    }
    assert mine(dry.stdout) == [planned] and json.loads(dry.stdout)["dry_run"] is True
    url = f"/v1/tickets/{ticket['id']}"
    h = desk.agent.headers
    assert (await desk.client.get(url, headers=h)).json()["status"] == "WAITING_ON_CUSTOMER"
    events = (await desk.client.get(f"{url}/events", headers=h)).json()["items"]
    assert not [e for e in events if e["kind"].startswith("sla_")]

    done = run(database_url, "sla", "tick", "--at", at)
    assert done.returncode == 0, done.stderr
    assert mine(done.stdout) == [planned]
    assert (await desk.client.get(url, headers=h)).json()["status"] == "DONE"
    again = run(database_url, "sla", "tick", "--at", at)
    assert again.returncode == 0 and mine(again.stdout) == []

    refused = run(database_url, "sla", "tick", "--at", "2026-12-01T09:00:00")
    assert refused.returncode != 0 and "time zone" in refused.stderr
