"""Delivery changes: which change a shopper may make in which state, until when, and the
change's own small state machine (requested -> accepted | rejected).

Before dispatch the change is for the whole order (a new address, or collect in a store);
after dispatch it is for one parcel (a new day, instructions for the courier); after a
failed attempt, a new day or (for a single parcel) collection in a store.
Pure: no I/O. Times are aware datetimes; days are the delivery zone's dates.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from portal.domain import DomainError, InvalidTransition
from portal.domain.i18n import N_, Nf_
from portal.domain.order import Fulfilment, OrderStatus, ShipmentStatus

OFFERED_DAYS = 5  # working days offered when the shop names none
NOTE_MAX = 200
NEIGHBOUR_MAX = 80


class ChangeKind(StrEnum):
    ADDRESS = "address"
    SWITCH_TO_PICKUP = "switch_to_pickup"
    RESCHEDULE = "reschedule"
    INSTRUCTIONS = "instructions"


# A forwarded link alone must not redirect a parcel: these need a code sent to the phone.
SENSITIVE = frozenset({ChangeKind.ADDRESS, ChangeKind.SWITCH_TO_PICKUP})


class ChangeStatus(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


TRANSITIONS: dict[ChangeStatus, frozenset[ChangeStatus]] = {
    ChangeStatus.ACCEPTED: frozenset({ChangeStatus.REQUESTED}),
    ChangeStatus.REJECTED: frozenset({ChangeStatus.REQUESTED}),
}


def transition(current: ChangeStatus, target: ChangeStatus) -> ChangeStatus:
    if current not in TRANSITIONS.get(target, frozenset()):
        raise InvalidTransition("delivery change", current, target)
    return target


class Closed(StrEnum):
    """Why a change is not offered; the page says it in words."""

    NOT_DELIVERY = "not_delivery"  # a pickup order
    DISPATCHED = "dispatched"  # the parcel has left: the address is fixed
    PREPARING = "preparing"  # too late for the address by the shop's cut-off (packed)
    NOT_DISPATCHED = "not_dispatched"  # days and instructions come with the parcel
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    CUTOFF = "cutoff"  # the evening before the delivery day has passed
    SEVERAL_PARCELS = "several_parcels"  # one parcel of several cannot go to a store
    WAITING = "waiting"  # an earlier change waits for the shop's answer


@dataclass(frozen=True, slots=True)
class Cutoffs:
    # The address may change while the order is in a status before this one.
    address_until: OrderStatus = OrderStatus.SHIPPED
    # Days and instructions: until this long before the delivery day begins.
    hours_before_day: int = 6


@dataclass(frozen=True, slots=True)
class Offer:
    kind: ChangeKind
    closed: Closed | None = None
    # Until when it stays open (None: no clock on it), to tell the shopper.
    until: datetime | None = None

    @property
    def open(self) -> bool:
        return self.closed is None


_BEFORE_DISPATCH = (OrderStatus.PLACED, OrderStatus.BACKORDERED, OrderStatus.PACKED)


def order_offers(
    fulfilment: Fulfilment, status: OrderStatus, cutoffs: Cutoffs
) -> dict[ChangeKind, Offer]:
    """The whole-order changes (before dispatch): a new address, collect in a store."""
    kinds = (ChangeKind.ADDRESS, ChangeKind.SWITCH_TO_PICKUP)
    closed: Closed | None
    if fulfilment is not Fulfilment.DELIVERY:
        closed = Closed.NOT_DELIVERY
    elif status is OrderStatus.CANCELLED:
        closed = Closed.CANCELLED
    elif status not in _BEFORE_DISPATCH:
        closed = Closed.DELIVERED if status is OrderStatus.DELIVERED else Closed.DISPATCHED
    elif cutoffs.address_until is OrderStatus.PACKED and status is OrderStatus.PACKED:
        closed = Closed.PREPARING
    else:
        closed = None
    return {kind: Offer(kind, closed) for kind in kinds}


def day_cutoff(day: date, tz: str, hours_before: int) -> datetime:
    """The moment changes for a delivery on `day` close: its local midnight minus hours."""
    start = datetime.combine(day, time(0), ZoneInfo(tz))
    return (start - timedelta(hours=hours_before)).astimezone(UTC)


def parcel_offers(
    status: ShipmentStatus,
    delivery_day: date | None,
    *,
    now: datetime,
    tz: str,
    cutoffs: Cutoffs,
    parcels: int = 1,
) -> dict[ChangeKind, Offer]:
    """The changes for one parcel: a new day and instructions while it travels (until the
    evening before its delivery day), and after a failed attempt also collection in a
    store (for an order sent as one parcel)."""
    kinds = (ChangeKind.RESCHEDULE, ChangeKind.INSTRUCTIONS, ChangeKind.SWITCH_TO_PICKUP)
    if status is ShipmentStatus.DELIVERED:
        return {k: Offer(k, Closed.DELIVERED) for k in kinds}
    if status is ShipmentStatus.OUT_FOR_DELIVERY:
        return {k: Offer(k, Closed.OUT_FOR_DELIVERY) for k in kinds}
    if status is ShipmentStatus.DELIVERY_FAILED:
        switch = Offer(ChangeKind.SWITCH_TO_PICKUP, Closed.SEVERAL_PARCELS if parcels > 1 else None)
        return {
            ChangeKind.RESCHEDULE: Offer(ChangeKind.RESCHEDULE),
            ChangeKind.INSTRUCTIONS: Offer(ChangeKind.INSTRUCTIONS),
            ChangeKind.SWITCH_TO_PICKUP: switch,
        }
    # On its way: until the evening before the delivery day.
    until = day_cutoff(delivery_day, tz, cutoffs.hours_before_day) if delivery_day else None
    closed = Closed.CUTOFF if until is not None and now >= until else None
    return {
        ChangeKind.RESCHEDULE: Offer(ChangeKind.RESCHEDULE, closed, until),
        ChangeKind.INSTRUCTIONS: Offer(ChangeKind.INSTRUCTIONS, closed, until),
        ChangeKind.SWITCH_TO_PICKUP: Offer(ChangeKind.SWITCH_TO_PICKUP, Closed.DISPATCHED),
    }


def working_days_after(start: date, count: int = OFFERED_DAYS) -> list[date]:
    """The next `count` days after `start` from Monday to Friday."""
    out: list[date] = []
    day = start
    while len(out) < count:
        day += timedelta(days=1)
        if day.weekday() < 5:
            out.append(day)
    return out


def offered_days(
    shop_days: Sequence[date] | None,
    eta: date | None,
    *,
    now: datetime,
    tz: str,
    cutoffs: Cutoffs,
) -> list[date]:
    """The days a parcel may be rescheduled to: the shop's, or the next working days after
    the ETA (or after today when the ETA has passed or is unknown); only days whose
    cut-off is still ahead."""

    def still_open(day: date) -> bool:
        return day_cutoff(day, tz, cutoffs.hours_before_day) > now

    if shop_days:
        return [d for d in sorted(set(shop_days)) if still_open(d)]
    # Five days the shopper can still choose: a day whose cut-off has passed (tomorrow,
    # after 18:00) does not count towards them.
    today = now.astimezone(ZoneInfo(tz)).date()
    days: list[date] = []
    day = max(eta or today, today)
    while len(days) < OFFERED_DAYS:
        day = working_days_after(day, 1)[0]
        if still_open(day):
            days.append(day)
    return days


def check_day(chosen: date, offered: Iterable[date]) -> date:
    if chosen not in set(offered):
        raise DomainError(N_("choose one of the days offered"))
    return chosen


class SafePlace(StrEnum):
    FRONT_DOOR = "front_door"
    BACK_DOOR = "back_door"
    PORCH = "porch"
    GARAGE = "garage"
    RECEPTION = "reception"  # concierge, porter
    NEIGHBOUR = "neighbour"


@dataclass(frozen=True, slots=True)
class Instructions:
    safe_place: SafePlace | None = None
    neighbour: str | None = None
    note: str | None = None

    @property
    def empty(self) -> bool:
        return self.safe_place is None and not self.note

    def as_dict(self) -> dict[str, str]:
        out = {"safe_place": self.safe_place, "neighbour": self.neighbour, "note": self.note}
        return {k: str(v) for k, v in out.items() if v}


class InstructionErrors(DomainError):
    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def _line(value: str | None) -> str:
    text = unicodedata.normalize("NFC", value or "")
    return " ".join("".join(" " if unicodedata.category(c)[0] == "C" else c for c in text).split())


def check_instructions(
    safe_place: str | None, neighbour: str | None, note: str | None
) -> Instructions:
    """Instructions for the courier. All empty clears them."""
    errors: dict[str, str] = {}
    place: SafePlace | None = None
    if safe_place:
        try:
            place = SafePlace(safe_place)
        except ValueError:
            errors["safe_place"] = N_("choose one of the places listed")
    who = _line(neighbour)
    text = _line(note)
    if place is SafePlace.NEIGHBOUR and not who:
        errors["neighbour"] = N_("write the neighbour's name")
    if len(who) > NEIGHBOUR_MAX:
        errors["neighbour"] = Nf_("at most %(max)s characters", max=NEIGHBOUR_MAX)
    if len(text) > NOTE_MAX:
        errors["note"] = Nf_(
            "at most %(max)s characters (%(written)s written)", max=NOTE_MAX, written=len(text)
        )
    if errors:
        raise InstructionErrors(errors)
    return Instructions(place, who if place is SafePlace.NEIGHBOUR else None, text or None)
