"""Business calendars for SLA clocks: working hours on some weekdays, in an IANA time zone,
minus holidays; and the wall clock (24x7), which counts every second.

A clock on a calendar counts only working seconds: `add(start, seconds)` is the moment a
clock started at `start` has counted `seconds`, `span(a, b)` the working seconds between two
moments. Working hours are local wall times, so a working day that a DST change shortens or
lengthens counts the hours it really has (09:00-17:00 is 8 hours either way; 00:00-24:00 is
23 or 25).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# How far a business clock looks ahead for working time before giving up (a calendar with
# hours is never empty for a year: the loader refuses one whose days are all holidays).
_HORIZON_DAYS = 3 * 366


@dataclass(frozen=True, slots=True)
class Calendar:
    """Working time: `hours` (minutes since local midnight, [start, end)) on `days`
    (0 = Monday), in `zone`, except on `holidays`. `wall` counts every second (24x7)."""

    name: str
    zone: ZoneInfo
    days: frozenset[int] = frozenset()
    hours: tuple[tuple[int, int], ...] = ()
    holidays: frozenset[date] = frozenset()
    wall: bool = False

    def add(self, start: datetime, seconds: float) -> datetime:
        """The moment at which a clock running from `start` has counted `seconds`."""
        if self.wall:
            return start + timedelta(seconds=seconds)
        left = max(0.0, seconds)
        for begin, end in self._intervals_from(start):
            begin = max(begin, start)
            available = (end - begin).total_seconds()
            if left <= available:
                return begin + timedelta(seconds=left)
            left -= available
        raise ValueError(f"calendar '{self.name}' has no working time left")

    def span(self, start: datetime, end: datetime) -> float:
        """The working seconds between two moments (0 when `end` is not after `start`)."""
        if end <= start:
            return 0.0
        if self.wall:
            return (end - start).total_seconds()
        total = 0.0
        for begin, finish in self._intervals_from(start):
            if begin >= end:
                break
            total += (min(finish, end) - max(begin, start)).total_seconds()
        return total

    def _intervals_from(self, moment: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The working intervals (UTC) that end after `moment`, in order."""
        day = moment.astimezone(self.zone).date() - timedelta(days=1)
        for _ in range(_HORIZON_DAYS):
            for begin, end in self._day(day):
                if end > moment:
                    yield begin, end
            day += timedelta(days=1)

    def _day(self, day: date) -> list[tuple[datetime, datetime]]:
        if day.weekday() not in self.days or day in self.holidays:
            return []
        out = []
        for first, last in self.hours:
            begin = self._local(day, first)
            end = self._local(day, last)
            if end > begin:
                out.append((begin, end))
        return out

    def _local(self, day: date, minutes: int) -> datetime:
        if minutes >= 24 * 60:  # 24:00: the next midnight
            day, minutes = day + timedelta(days=1), minutes - 24 * 60
        local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=self.zone)
        return local.astimezone(UTC)


WALL = Calendar(name="24x7", zone=ZoneInfo("UTC"), wall=True)
