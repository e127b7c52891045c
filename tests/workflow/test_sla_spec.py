"""SLA policies and business calendars in the catalog: the calendar arithmetic (weekends,
holidays, time zones, DST), seed 003's shipped policies, what a status change does to a
clock (pure: no database), and the load-time checks with file:line:col."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from flowdesk.tickets import sla
from flowdesk.workflow import Catalog, CatalogError, compile_catalog
from flowdesk.workflow.calendars import WALL, Calendar

from .conftest import REPO

LONDON = ZoneInfo("Europe/London")
OFFICE = Calendar(
    "office",
    LONDON,
    days=frozenset(range(5)),
    hours=((9 * 60, 17 * 60),),
    holidays=frozenset({date(2026, 12, 25)}),
)
HOUR = 3600.0


def at(text: str, zone: ZoneInfo = LONDON) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


# --- calendar arithmetic ----------------------------------------------------------------------


def test_the_wall_clock_counts_every_second() -> None:
    start = at("2026-12-05T22:00")  # a Saturday night
    assert WALL.add(start, 48 * HOUR) == start + timedelta(hours=48)
    assert WALL.span(start, start + timedelta(days=3)) == 72 * HOUR


def test_working_hours_skip_nights_and_weekends() -> None:
    # Friday 16:00 + 2 working hours: 1 on Friday, 1 on Monday.
    assert OFFICE.add(at("2026-12-04T16:00"), 2 * HOUR) == at("2026-12-07T10:00")
    # Started outside working hours: counting begins at the next opening.
    assert OFFICE.add(at("2026-12-05T12:00"), HOUR) == at("2026-12-07T10:00")
    assert OFFICE.add(at("2026-12-07T07:00"), 8 * HOUR) == at("2026-12-07T17:00")
    assert OFFICE.span(at("2026-12-04T16:00"), at("2026-12-07T10:00")) == 2 * HOUR
    assert OFFICE.span(at("2026-12-05T00:00"), at("2026-12-06T23:59")) == 0
    assert OFFICE.span(at("2026-12-07T10:00"), at("2026-12-07T09:00")) == 0


def test_holidays_are_not_working_days() -> None:
    # Thursday 24 December 2026, 16:00 + 2 hours: one that day; Friday the 25th is a holiday
    # and the 26th a Saturday, so the second ends on Monday the 28th at 10:00.
    assert OFFICE.add(at("2026-12-24T16:00"), 2 * HOUR) == at("2026-12-28T10:00")
    assert OFFICE.span(at("2026-12-24T00:00"), at("2026-12-29T00:00")) == 16 * HOUR


def test_time_zones_and_daylight_saving() -> None:
    # 09:00-17:00 in London is 08:00-16:00 UTC in summer and 09:00-17:00 UTC in winter.
    summer = OFFICE.add(datetime(2026, 7, 6, 7, 0, tzinfo=UTC), HOUR)
    winter = OFFICE.add(datetime(2026, 12, 7, 7, 0, tzinfo=UTC), HOUR)
    assert summer == datetime(2026, 7, 6, 9, 0, tzinfo=UTC)
    assert winter == datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    # A 24-hour working day is 23 hours long the day the clocks go forward, 25 when back.
    always = Calendar("always", LONDON, days=frozenset(range(7)), hours=((0, 24 * 60),))
    spring, autumn = date(2026, 3, 29), date(2026, 10, 25)
    for day, hours in ((spring, 23), (autumn, 25)):
        start = datetime.combine(day, datetime.min.time(), tzinfo=LONDON)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=LONDON)
        assert always.span(start, end) == hours * HOUR
    # Friday 16:00 in New York is Friday 21:00 in London: the same clock, its own hours.
    new_york = Calendar(
        "ny", ZoneInfo("America/New_York"), days=frozenset(range(5)), hours=((540, 1020),)
    )
    friday = at("2026-12-04T16:00", ZoneInfo("America/New_York"))
    assert new_york.add(friday, 2 * HOUR) == at("2026-12-07T10:00", ZoneInfo("America/New_York"))


def test_add_and_span_agree() -> None:
    start = at("2026-12-03T15:17")
    for seconds in (1.0, HOUR, 7.5 * HOUR, 40 * HOUR, 100 * HOUR):
        assert OFFICE.span(start, OFFICE.add(start, seconds)) == pytest.approx(seconds)


# --- seed 003, shipped ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> Catalog:
    from flowdesk.workflow import load_catalog

    return load_catalog([], base=REPO / "workflows.yaml")


def test_seed_003_policies_are_shipped(shipped: Catalog) -> None:
    review, reply = (
        next(p for p in shipped.sla_policies if p.name == name)
        for name in ("review", "customer_reply")
    )
    assert review.calendar.wall and review.target == 48 * 3600
    assert review.start == {"SUBMITTED"} and review.stop_leaving == {"SUBMITTED"}
    assert [(m.kind, m.offset) for m in review.marks] == [
        ("warning", 36 * HOUR),
        ("breach", 48 * HOUR),
    ]
    assert reply.calendar.wall and reply.target == 72 * 3600
    assert reply.stop_on == {"requester_reply"} and reply.action == "cancel"
    assert [(m.kind, m.offset, m.to and m.to.kind) for m in reply.marks] == [
        ("reminder", 48 * HOUR, "requester"),
        ("breach", 72 * HOUR, None),
    ]
    assert "72 hours" in reply.note
    workflow = shipped.workflow("platform_request")
    assert workflow.sla_policies == (review, reply)
    assert workflow.on_reply == {"WAITING_ON_CUSTOMER": "return"}
    assert shipped.workflow("itsm_default").sla_policies == ()


def test_what_status_changes_do_to_the_clocks(shipped: Catalog) -> None:
    workflow = shipped.workflow("platform_request")
    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    created = sla.on_status(workflow, "platform_change", None, "SUBMITTED", [], now)
    assert created == [
        {
            "name": "review",
            "op": "start",
            "target": 172800,
            "due_in": 172800.0,
            "warn_in": 129600.0,
            "next_in": 129600.0,
        }
    ]
    running = [_clock("review", "running", now)]
    assert sla.on_status(workflow, "platform_change", "SUBMITTED", "REVIEW", running, now) == [
        {"name": "review", "op": "stop", "elapsed_add": None}
    ]
    # Waiting starts the 72-hour clock (its first mark, the reminder, at 48); cancelling
    # stops it; a stopped one starts over on the next wait.
    waiting = sla.on_status(workflow, "platform_change", "REVIEW", "WAITING_ON_CUSTOMER", [], now)
    assert [(o["name"], o["op"], o["next_in"]) for o in waiting] == [
        ("customer_reply", "start", 172800.0)
    ]
    clocks = [_clock("customer_reply", "running", now)]
    assert sla.on_status(workflow, "platform_change", "WAITING_ON_CUSTOMER", "DONE", clocks, now)
    stopped = [_clock("customer_reply", "met", now, stopped=True)]
    again = sla.on_status(workflow, "x", "REVIEW", "WAITING_ON_CUSTOMER", stopped, now)
    assert [o["op"] for o in again] == ["start"]
    # Only the requester's reply stops it.
    assert sla.on_reply(workflow, "x", clocks, by_requester=False, now=now) == []
    assert sla.on_reply(workflow, "x", clocks, by_requester=True, now=now) == [
        {"name": "customer_reply", "op": "stop", "elapsed_add": None}
    ]


def _clock(name: str, state: str, now: datetime, *, stopped: bool = False) -> dict[str, object]:
    return {
        "name": name,
        "state": state,
        "target_seconds": 3600,
        "elapsed_seconds": 0,
        "started_at": now.isoformat(),
        "running_since": None if stopped else now.isoformat(),
        "due_at": (now + timedelta(hours=1)).isoformat(),
        "stopped_at": now.isoformat() if stopped else None,
        "stage": 0,
    }


# --- load-time checks -------------------------------------------------------------------------

BASE = """\
workflows:
  - name: w
    transitions:
      - {from: '', to: OPEN}
      - {from: OPEN, to: IN_PROGRESS, action: start}
      - {from: IN_PROGRESS, to: RESOLVED, action: resolve, update: reply}
      - {from: RESOLVED, to: CLOSED, action: close}
      - {from: [OPEN, IN_PROGRESS], to: CLOSED, action: drop}
catalog:
  - {name: item, type: t, workflow: w}
"""


def errors(text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        compile_catalog([("base.yaml", BASE), ("sla.yaml", text)])
    return [str(d) for d in caught.value.diagnostics]


def test_a_good_policy_on_a_business_calendar_loads() -> None:
    catalog = compile_catalog(
        [
            ("base.yaml", BASE),
            (
                "sla.yaml",
                """\
calendars:
  - name: office
    timezone: Europe/Berlin
    days: [mon, tue, wed, thu, fri]
    hours: ["09:00-12:30", "13:30-17:00"]
    holidays: [2026-12-25, "2026-12-26"]
sla_policies:
  - name: resolution
    workflows: [w]
    catalog_items: [item]
    start: [OPEN]
    pause: [RESOLVED]
    stop: {entering: [CLOSED], events: [agent_reply]}
    target: 1d12h
    calendar: office
    warn_at: 80%
    reminders: [{after: 4h, to: assignee}, {after: 30m, to: {user: ann@example.test}}]
    on_breach: {escalate: {group: Managers}, action: drop}
""",
            ),
        ]
    )
    (policy,) = catalog.sla_policies
    assert policy.calendar is catalog.calendars["office"]
    assert policy.calendar.hours == ((540, 750), (810, 1020))
    assert policy.calendar.holidays == {date(2026, 12, 25), date(2026, 12, 26)}
    assert policy.target == 36 * 3600 and policy.warn_at == pytest.approx(0.8 * 36 * 3600)
    assert [m.kind for m in policy.marks] == ["reminder", "reminder", "warning", "breach"]
    assert policy.items == frozenset({"item"}) and policy.applies_to("item")
    assert not policy.applies_to("other")


def test_unknown_names_and_bad_values_point_at_the_line() -> None:
    found = errors(
        """\
calendars:
  - {name: office, timezone: Mars/Olympus, hours: "17:00-09:00", days: [caturday]}
sla_policies:
  - name: review
    workflow: nope
    start: [OPEN]
    target: 48h
  - name: second
    workflow: w
    start: [OPNE]
    stop: {leaving: [GONE], events: [telepathy]}
    target: 2 days
    calendar: offfice
    warn_at: 120%
  - name: third
    workflow: w
    catalog_items: [nothing]
    start: [OPEN]
    target: 400d
    reminders: [{after: 9h}]
    on_breach: {action: fly, escalate: everyone}
"""
    )
    assert found == [
        "sla.yaml:2:30: calendar 'office': unknown time zone 'Mars/Olympus' (IANA)",
        "sla.yaml:2:51: calendar 'office': hours '17:00-09:00' must read HH:MM-HH:MM, the end "
        "after the start (24:00 for midnight)",
        "sla.yaml:2:73: calendar 'office': unknown day 'caturday' (mon ... sun)",
        "sla.yaml:5:15: sla policy 'review': unknown workflow 'nope'",
        "sla.yaml:10:13: sla policy 'second': unknown status 'OPNE' in start (workflow 'w')",
        "sla.yaml:11:22: sla policy 'second': unknown status 'GONE' in leaving (workflow 'w')",
        "sla.yaml:11:38: sla policy 'second': unknown event 'telepathy' (expected one of: "
        "agent_reply, requester_reply)",
        "sla.yaml:12:13: sla policy 'second': target '2 days' must be whole minutes, hours or "
        "days (30m, 48h, 7d, 1d12h), more than 0 and at most 366d",
        "sla.yaml:13:15: sla policy 'second': unknown calendar 'offfice' (known: 24x7)",
        "sla.yaml:14:14: sla policy 'second': warn_at must be a share of the target, e.g. 75% "
        "(1-99%)",
        "sla.yaml:17:21: sla policy 'third': unknown catalog item 'nothing'",
        "sla.yaml:19:13: sla policy 'third': target '400d' must be whole minutes, hours or days "
        "(30m, 48h, 7d, 1d12h), more than 0 and at most 366d",
        "sla.yaml:21:25: sla policy 'third': no action 'fly' out of 'OPEN' in workflow 'w' to "
        "take on breach",
        "sla.yaml:21:40: sla policy 'third': a recipient is requester, assignee, {group: NAME} "
        "or {user: EMAIL}",
    ]


def test_an_action_that_needs_a_comment_needs_a_note() -> None:
    assert errors(
        """\
sla_policies:
  - {name: p, workflow: w, start: [IN_PROGRESS], target: 1h, on_breach: {action: resolve}}
"""
    ) == [
        "sla.yaml:2:73: sla policy 'p': the action 'resolve' needs a comment: give the breach a "
        "'note'"
    ]


def test_duplicates_and_reminders_past_the_target() -> None:
    assert errors(
        """\
sla_policies:
  - {name: p, workflow: w, start: [OPEN], target: 1h, reminders: [{after: 2h}]}
  - {name: p, workflow: w, start: [OPEN], target: 1h}
"""
    ) == [
        "sla.yaml:2:75: sla policy 'p': a reminder's 'after' must be a duration within the target",
        "sla.yaml:3:5: sla_policies: duplicate name 'p' (first at line 2)",
    ]
