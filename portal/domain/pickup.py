"""Click-and-collect rules: readiness, the pickup code, holding period, visits, reminders.

Pure: no I/O. Times are aware datetimes; opening hours are the store's own
({"mon": ["09:30-13:00", "15:00-19:30"], ...}) in the store's time zone.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from portal.domain import DomainError, InvalidTransition
from portal.domain.i18n import N_, Nf_
from portal.domain.store import DAYS

HOLD_DAYS = 7
WAITING_REMINDER_AFTER = timedelta(days=2)
VISIT_REMINDER_AT = time(8, 0)  # store time, on the morning of the visit
# The reminders this module plans (the reminder table also holds other capabilities').
REMINDER_KINDS = ("pickup_waiting", "pickup_last_day", "pickup_visit_today")
CODE_DIGITS = 6
MAX_WRONG_CODES = 5
CODE_LOCK = timedelta(minutes=15)
DELEGATE_MAX = 80


class PickupStatus(StrEnum):
    PREPARING = "preparing"
    PARTLY_READY = "partly_ready"
    READY = "ready"
    COLLECTED = "collected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


P = PickupStatus
FINAL = frozenset({P.COLLECTED, P.EXPIRED, P.CANCELLED})
# target -> the statuses it may be reached from
TRANSITIONS: dict[PickupStatus, frozenset[PickupStatus]] = {
    P.PREPARING: frozenset({P.PARTLY_READY, P.READY}),  # a clerk corrects counts back to zero
    P.PARTLY_READY: frozenset({P.PREPARING, P.PARTLY_READY, P.READY}),
    P.READY: frozenset({P.PREPARING, P.PARTLY_READY}),
    P.COLLECTED: frozenset({P.READY}),
    P.EXPIRED: frozenset({P.READY}),
    P.CANCELLED: frozenset({P.PREPARING, P.PARTLY_READY, P.READY}),
}


def can_transition(current: PickupStatus, target: PickupStatus) -> bool:
    return current in TRANSITIONS.get(target, frozenset())


def transition(current: PickupStatus, target: PickupStatus) -> PickupStatus:
    if not can_transition(current, target):
        raise InvalidTransition("pickup", current, target)
    return target


# ------------------------------------------------------------------ readiness


@dataclass(frozen=True, slots=True)
class Line:
    id: int
    quantity: int
    ready: int = 0


def readiness(lines: Iterable[Line]) -> PickupStatus:
    """PREPARING when nothing is set aside, READY when everything is, else PARTLY_READY."""
    items = list(lines)
    ready = sum(line.ready for line in items)
    total = sum(line.quantity for line in items)
    if ready == 0:
        return P.PREPARING
    return P.READY if ready >= total else P.PARTLY_READY


def items_ready(lines: Iterable[Line]) -> tuple[int, int]:
    """(ready, total) item counts: "2 of 3 items ready"."""
    items = list(lines)
    return sum(line.ready for line in items), sum(line.quantity for line in items)


def set_ready(
    status: PickupStatus, lines: Iterable[Line], changes: Mapping[int, int]
) -> tuple[list[Line], PickupStatus]:
    """Apply a clerk's counts (line id -> items set aside). Returns the lines and the status
    they make. Refuses unknown lines, counts out of range, and any change once final."""
    if status in FINAL:
        raise InvalidTransition("pickup", status, P.READY)
    by_id = {line.id: line for line in lines}
    for line_id, ready in changes.items():
        if line_id not in by_id:
            raise DomainError(f"line {line_id} is not part of this order")
        line = by_id[line_id]
        if not 0 <= ready <= line.quantity:
            raise DomainError(f"ready quantity must be between 0 and {line.quantity}")
        by_id[line_id] = replace(line, ready=ready)
    updated = list(by_id.values())
    target = readiness(updated)
    if target is not status:
        transition(status, target)
    return updated, target


def all_ready(lines: Iterable[Line]) -> dict[int, int]:
    """The changes that mark every line fully ready."""
    return {line.id: line.quantity for line in lines}


# ------------------------------------------------------------------ the pickup code


def new_code() -> str:
    """Six digits: short, and easy to read aloud in any language."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def display_code(code: str) -> str:
    """'482913' -> '482 913'."""
    return f"{code[:3]} {code[3:]}" if len(code) == CODE_DIGITS else code


def normalise_code(typed: str) -> str:
    return "".join(c for c in (typed or "") if not c.isspace() and c != "-")


def code_matches(expected: str, typed: str) -> bool:
    return hmac.compare_digest(expected.encode(), normalise_code(typed).encode())


@dataclass(frozen=True, slots=True)
class CodeCheck:
    ok: bool
    wrong_codes: int
    locked_until: datetime | None


def check_code(
    expected: str, typed: str, wrong_codes: int, locked_until: datetime | None, now: datetime
) -> CodeCheck:
    """Verify a typed code with a lock after MAX_WRONG_CODES wrong ones in a row."""
    if locked_until is not None and locked_until > now:
        raise DomainError("too many wrong codes for this order: try again in a few minutes")
    if code_matches(expected, typed):
        return CodeCheck(True, 0, None)
    wrong = wrong_codes + 1
    if wrong >= MAX_WRONG_CODES:
        return CodeCheck(False, 0, now + CODE_LOCK)
    return CodeCheck(False, wrong, None)


# ------------------------------------------------------------------ holding and visits


def hold_until(ready_at: datetime, hold_days: int = HOLD_DAYS) -> datetime:
    return ready_at + timedelta(days=hold_days)


def check_delegate(name: str) -> str:
    clean = " ".join((name or "").split())
    if not clean:
        raise DomainError(N_("write the name of the person who will collect"))
    if len(clean) > DELEGATE_MAX:
        raise DomainError(Nf_("the name can be at most %(max)s characters", max=DELEGATE_MAX))
    if not all(c.isprintable() for c in clean):
        raise DomainError(N_("the name contains characters that cannot be printed"))
    return clean


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime  # UTC
    end: datetime


def _spans(hours: Mapping[str, list[str]], day: date) -> list[tuple[time, time]]:
    out = []
    for span in hours.get(DAYS[day.weekday()], []):
        start, end = span.split("-")
        out.append((time.fromisoformat(start), _end_time(end)))
    return out


def _end_time(hhmm: str) -> time:
    return time(23, 59, 59) if hhmm == "24:00" else time.fromisoformat(hhmm)


def opening_windows(
    hours: Mapping[str, list[str]], tz: str, now: datetime, until: datetime, days: int = 7
) -> list[Window]:
    """The store's opening spans from now until `until` (at most `days` days), in UTC;
    a span already under way starts now."""
    zone = ZoneInfo(tz)
    local_now = now.astimezone(zone)
    windows = []
    for offset in range(days + 1):
        day = local_now.date() + timedelta(days=offset)
        for start_t, end_t in _spans(hours, day):
            start = datetime.combine(day, start_t, zone).astimezone(UTC)
            end = datetime.combine(day, end_t, zone).astimezone(UTC)
            start = max(start, now)
            end = min(end, until)
            if start < end:
                windows.append(Window(start, end))
    return windows


def check_visit(
    start: datetime,
    end: datetime,
    hours: Mapping[str, list[str]],
    tz: str,
    now: datetime,
    until: datetime,
) -> Window:
    """A shopper's visit must sit inside one opening span, in the future, before expiry."""
    if end <= start:
        raise DomainError(N_("the visit must end after it starts"))
    if start < now - timedelta(minutes=1):
        raise DomainError(N_("choose a time that has not passed"))
    if start >= until:
        raise DomainError(N_("the order is held only until then: choose an earlier time"))
    days = (until.date() - now.date()).days + 1
    for window in opening_windows(hours, tz, now, until, days=max(days, 1)):
        if window.start <= start and end <= window.end:
            return Window(start, end)
    raise DomainError(N_("the store is closed then: choose a time within its opening hours"))


# ------------------------------------------------------------------ reminders


@dataclass(frozen=True, slots=True)
class Due:
    kind: str
    at: datetime


def reminders(
    ready_at: datetime,
    until: datetime,
    tz: str,
    visit_start: datetime | None = None,
    waiting_after: timedelta = WAITING_REMINDER_AFTER,
) -> list[Due]:
    """What to send while an order waits: after two days, on the day before expiry, and on
    the morning of a confirmed visit. Reminders that would fall after expiry are dropped."""
    due = [Due("pickup_waiting", ready_at + waiting_after)]
    last_day = until - timedelta(days=1)
    if last_day > ready_at + waiting_after:
        due.append(Due("pickup_last_day", last_day))
    if visit_start is not None:
        zone = ZoneInfo(tz)
        local = visit_start.astimezone(zone)
        morning = datetime.combine(local.date(), VISIT_REMINDER_AT, zone).astimezone(UTC)
        if morning < visit_start:
            due.append(Due("pickup_visit_today", morning))
    return [d for d in due if d.at < until]
