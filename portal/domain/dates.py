"""The date rule (shared/contract.md, "Decisions"): what the portal accepts as a date, and
what it shows of one it already holds.

A moment is accepted when 2000-01-01T00:00:00Z <= t < 2100-01-01T00:00:00Z once in UTC; an
event's `occurred_at` also at most 24 h after now. In that window every conversion a page
makes (any time zone, a few days either side) stays inside what Python's datetime can hold;
outside it, "0001-01-01T00:00:00Z" in Rome or "9999-12-31T23:59:59Z" one day later cannot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from portal.domain import DomainError

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
END = datetime(2100, 1, 1, tzinfo=UTC)  # excluded
FUTURE_SLACK = timedelta(hours=24)
WINDOW = "between 2000-01-01 and 2100-01-01 (UTC)"
# RFC 3339 (a missing offset is UTC, as for the API's other date fields).
_MOMENT = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})?", re.ASCII
)
# YYYY-MM-DD alone (date.fromisoformat also reads ISO week dates such as "2026-W49-1").
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_UNREADABLE = "expected a date (YYYY-MM-DD) or a date and time (RFC 3339)"


class DateRefused(DomainError):
    """A well-formed date the portal does not take."""


class DateUnreadable(DomainError):
    """Not a date at all (a malformed value rather than a refused one)."""


def in_utc(value: datetime) -> datetime | None:
    """`value` in UTC (a naive one is taken as UTC); None when UTC cannot hold it."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):  # year 1 east of Greenwich, year 9999 west of it
        return None


def accepted(value: datetime) -> datetime:
    """The moment in UTC, or DateRefused."""
    moment = in_utc(value)
    if moment is None or not EARLIEST <= moment < END:
        raise DateRefused(f"must be {WINDOW}")
    return moment


def accepted_day(value: date) -> date:
    if not EARLIEST.date() <= value < END.date():
        raise DateRefused(f"must be {WINDOW}")
    return value


def occurred(value: datetime, now: datetime) -> datetime:
    """An event's time: in the window and not more than a day ahead of now."""
    moment = accepted(value)
    if moment > now + FUTURE_SLACK:
        raise DateRefused("must not be more than 24 hours in the future")
    return moment


def shown(value: datetime | None) -> datetime | None:
    """A stored moment a page can show, or None (one from before the rule, or written by
    hand, that the window would refuse)."""
    if value is None:
        return None
    moment = in_utc(value)
    return moment if moment is not None and EARLIEST <= moment < END else None


def shown_day(value: date | str | None) -> date | None:
    """A stored day (a date, or ISO text as JSON columns hold it), or None as `shown`."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            return None
    return value if EARLIEST.date() <= value < END.date() else None


@dataclass(frozen=True, slots=True)
class Eta:
    """When a parcel is expected: a moment, or a day (what carriers mostly give), kept as
    noon of that day in the shopper's zone so that it reads as that day in any zone within
    eleven hours of it."""

    moment: datetime
    date_only: bool


def parse_eta(text: str, tz: str) -> Eta:
    """ "2026-12-05" (a day in `tz`) or an RFC 3339 moment; DateUnreadable for anything
    else, DateRefused outside the window."""
    text = text.strip()
    try:
        if _DAY.fullmatch(text):
            day = accepted_day(date.fromisoformat(text))
            return Eta(datetime.combine(day, time(12), ZoneInfo(tz)).astimezone(UTC), True)
        if _MOMENT.fullmatch(text):
            return Eta(accepted(datetime.fromisoformat(text.upper())), False)
    except DateRefused:
        raise
    except ValueError:  # 2026-02-30 and the like
        pass
    raise DateUnreadable(_UNREADABLE)
