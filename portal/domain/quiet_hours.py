"""Quiet hours: when a non-urgent SMS may reach the shopper, in the shopper's own time zone.

A window is a span of local wall-clock time, [start, end), that may cross midnight
(21:00-08:00). A message due inside it waits for the end of that quiet period: the first
instant at which the local clock reads `end` or later. Around DST changes that instant is
not always `end` itself: when `end` falls in the hour skipped in spring, the period ends
when the clock jumps; when it falls in the hour repeated in autumn, the period ends at its
first occurrence, and an instant in the repeat whose clock reads before `end` is quiet
again until the second one (the window is wall-clock time, as the shopper lives it).

All instants in and out are aware datetimes; results are in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE = "Europe/Rome"


@dataclass(frozen=True, slots=True)
class QuietWindow:
    """Local wall-clock span [start, end) when non-urgent SMS wait; start == end: none."""

    start: time
    end: time

    @property
    def crosses_midnight(self) -> bool:
        return self.start > self.end

    def contains(self, local: time) -> bool:
        if self.start == self.end:
            return False
        if self.crosses_midnight:
            return local >= self.start or local < self.end
        return self.start <= local < self.end


DEFAULT_WINDOW = QuietWindow(time(21, 0), time(8, 0))


def zone(name: str | None, fallback: str = DEFAULT_ZONE) -> ZoneInfo:
    """The zone of that name, or the fallback's when it is missing or unknown."""
    for candidate in (name, fallback, DEFAULT_ZONE):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo(DEFAULT_ZONE)


def _local(at: datetime, tz: tzinfo) -> datetime:
    if at.tzinfo is None:
        raise ValueError("quiet hours need an aware datetime")
    return at.astimezone(tz)


def is_quiet(at: datetime, tz: ZoneInfo, window: QuietWindow = DEFAULT_WINDOW) -> bool:
    return window.contains(_local(at, tz).time().replace(tzinfo=None))


def first_instant_at(day: date, wall: time, tz: ZoneInfo, *, not_before: datetime) -> datetime:
    """The first instant not before `not_before` at which the local clock on `day` reads
    `wall` or later: `wall` itself, its second occurrence when the first is past (autumn),
    or the moment the clock jumps over it (spring). In UTC."""
    naive = datetime.combine(day, wall)
    floor = not_before.astimezone(UTC)
    for fold in (0, 1):
        candidate = naive.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        back = candidate.astimezone(tz).replace(tzinfo=None)
        if back != naive:
            # `wall` does not exist that day (spring gap): fold=0 read it with the offset of
            # before the jump, so `candidate` lies after the jump; the jump is what we want.
            return max(_jump_before(candidate, tz), floor)
        if candidate >= floor:
            return candidate
    return floor  # both occurrences passed: not reached when called as documented


def _jump_before(after: datetime, tz: ZoneInfo) -> datetime:
    """The UTC offset change within the day before `after` (bisection to the second; a day,
    because a zone once skipped a whole one)."""
    lo, hi = after - timedelta(hours=26), after
    offset_hi = hi.astimezone(tz).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == offset_hi:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0) if hi.microsecond else hi


def next_send_time(at: datetime, tz: ZoneInfo, window: QuietWindow = DEFAULT_WINDOW) -> datetime:
    """`at` (in UTC) when it lies outside the window, else the end of that quiet period."""
    moment = _local(at, UTC)
    # Once round normally; again only when a clock jump lands inside the next period.
    for _ in range(4):
        local = _local(moment, tz)
        wall = local.time().replace(tzinfo=None)
        if not window.contains(wall):
            return moment
        day = local.date()
        if window.crosses_midnight and wall >= window.start:
            day += timedelta(days=1)  # the evening part: the period ends the next morning
        moment = first_instant_at(day, window.end, tz, not_before=moment)
    return moment


def local_day(at: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The local calendar day holding `at`, as a UTC half-open range [start, end)."""
    day = _local(at, tz).date()
    start = first_instant_at(day, time(0), tz, not_before=at - timedelta(days=2))
    end = first_instant_at(day + timedelta(days=1), time(0), tz, not_before=at)
    return start, end
