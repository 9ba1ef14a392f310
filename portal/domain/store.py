"""Store rules: opening hours and time zones."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from portal.domain import DomainError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise DomainError(f"{name!r} is not an IANA time zone such as Europe/Rome") from exc
    return name


def check_opening_hours(hours: dict[str, list[str]]) -> dict[str, list[str]]:
    """{"mon": ["09:00-13:00", "15:00-19:30"], ...}: known days, valid times, ordered spans."""
    clean: dict[str, list[str]] = {}
    for day, spans in hours.items():
        if day not in DAYS:
            raise DomainError(f"{day!r} is not a day; use {', '.join(DAYS)}")
        last_end = -1
        for span in spans:
            start, end = _span(day, span)
            if not start < end or start < last_end:
                raise DomainError(f"{day} {span}: spans must run forward and not overlap")
            last_end = end
        clean[day] = list(spans)
    return clean


def _span(day: str, span: str) -> tuple[int, int]:
    parts = span.split("-")
    if len(parts) != 2:
        raise DomainError(f"{day} {span!r}: write a span as HH:MM-HH:MM")
    return _minutes(parts[0]), _minutes(parts[1])


def _minutes(hhmm: str) -> int:
    if (
        len(hhmm) != 5
        or hhmm[2] != ":"
        or not (hhmm[:2] + hhmm[3:]).isascii()
        or not (hhmm[:2] + hhmm[3:]).isdigit()
    ):
        raise DomainError(f"{hhmm!r} is not a time of day (HH:MM)")
    hours, minutes = int(hhmm[:2]), int(hhmm[3:])
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise DomainError(f"{hhmm} is not a time of day")
    return hours * 60 + minutes
