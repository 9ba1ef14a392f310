"""The shopper's side of click-and-collect on the tracking page: the visit form's choices,
reading a chosen visit back.

The visit form is two plain selects (day, time), so it works without JavaScript; a time
that is closed on the chosen day is refused by the service with the domain's words.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from portal.domain import pickup as rules
from portal.domain.i18n import N_
from portal.services.errors import Invalid
from portal.services.orders import TrackingView
from portal.templating import clock, isoday

SLOT = timedelta(hours=1)
SHORTEST_SLOT = timedelta(minutes=15)
GRID_MINUTES = 15  # a span under way is offered from the next quarter hour
NAME_KEPT = 200  # what is typed is shown back on an error, cut to a sane length


@dataclass(frozen=True, slots=True)
class PickupForms:
    """What the visit and delegate forms show: choices, the selected values, any error."""

    days: list[tuple[str, str]]  # (YYYY-MM-DD, label), store dates
    times: list[tuple[str, str]]  # (HH:MM, label), store clock
    day: str
    time: str
    visit_error: str | None = None
    delegate: str = ""
    delegate_error: str | None = None


def _until(view: TrackingView, now: datetime) -> datetime:
    # As services.pickup.choose_visit: before the order is ready, the holding period it
    # would get if it were ready now.
    assert view.pickup is not None and view.store is not None
    return view.pickup.hold_until or rules.hold_until(now, view.store["hold_days"])


def _windows(view: TrackingView, now: datetime) -> list[rules.Window]:
    until = _until(view, now)
    days = max((until.date() - now.date()).days + 1, 1)
    hours = (view.store or {}).get("opening_hours") or {}
    return rules.opening_windows(hours, view.timezone, now, until, days=days)


def _round_up(moment: datetime, zone: ZoneInfo) -> datetime:
    local = moment.astimezone(zone)
    whole = local.replace(second=0, microsecond=0)
    if whole < local:
        whole += timedelta(minutes=1)
    return (whole + timedelta(minutes=(-whole.minute) % GRID_MINUTES)).astimezone(UTC)


def slots(view: TrackingView, now: datetime) -> list[tuple[datetime, datetime]]:
    """One-hour visits inside each opening span still ahead (the last one may be shorter)."""
    zone = ZoneInfo(view.timezone)
    out = []
    for window in _windows(view, now):
        start = _round_up(window.start, zone)
        while start < window.end:
            end = min(start + SLOT, window.end)
            if end - start >= SHORTEST_SLOT:
                out.append((start, end))
            start += SLOT
    return out


def forms_for(
    view: TrackingView,
    now: datetime,
    locale: str,
    *,
    day: str | None = None,
    at: str | None = None,
    visit_error: str | None = None,
    delegate: str | None = None,
    delegate_error: str | None = None,
) -> PickupForms | None:
    """None once the order is final: nothing left to choose."""
    if view.pickup is None or view.pickup.final:
        return None
    zone = ZoneInfo(view.timezone)
    days: dict[str, str] = {}
    times: dict[str, str] = {}
    for start, _ in slots(view, now):  # a week of half hours: each label made once
        local = start.astimezone(zone)
        day_key, time_key = local.date().isoformat(), f"{local.hour:02d}:{local.minute:02d}"
        if day_key not in days:
            days[day_key] = isoday(local.date(), locale)
        if time_key not in times:
            times[time_key] = clock(local, locale)
    chosen = view.pickup.visit_start.astimezone(zone) if view.pickup.visit_start else None
    # A refused choice stays selected even when it is not one the form offers.
    _keep(days, day, lambda d: isoday(d, locale))
    _keep(times, at, lambda t: clock(time.fromisoformat(t), locale))
    return PickupForms(
        days=sorted(days.items()),
        times=sorted(times.items()),
        day=day if day is not None else (chosen.date().isoformat() if chosen else ""),
        time=at if at is not None else (chosen.strftime("%H:%M") if chosen else ""),
        visit_error=visit_error,
        delegate=delegate if delegate is not None else (view.pickup.delegate_name or ""),
        delegate_error=delegate_error,
    )


def _keep(options: dict[str, str], value: str | None, label: Callable[[str], str]) -> None:
    if not value or value in options:
        return
    with contextlib.suppress(ValueError):  # not a day or a time: nothing to show
        options[value] = label(value)


def parse_visit(view: TrackingView, day: str, at: str, now: datetime) -> tuple[datetime, datetime]:
    """The form's day and time as a visit in UTC: an hour, or up to the closing time of the
    opening span it starts in. Whether the store is open then is the service's to say."""
    try:
        if len(at) != 5:
            raise ValueError(at)
        local_day, local_time = date.fromisoformat(day), time.fromisoformat(at)
    except ValueError:
        raise Invalid(N_("choose a day and a time for your visit"), field="visit") from None
    start = datetime.combine(local_day, local_time, ZoneInfo(view.timezone)).astimezone(UTC)
    end = start + SLOT
    for window in _windows(view, now):
        if window.start <= start < window.end:
            end = min(end, window.end)
            break
    return start, end
