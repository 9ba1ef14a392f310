"""Returns: the window, what may be returned, the return's state machine and its code.

A shopper returns lines of a delivered or collected order within the window; a line's
returned quantity never exceeds what was received minus what other returns already took.
Pure: no I/O.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from portal.domain import DomainError, InvalidTransition
from portal.domain.i18n import N_, Nf_

WINDOW_DAYS = 30
NOTE_MAX = 300
# Reminders: approved but not on its way after 5 days; a label unused after 7.
REMIND_APPROVED_AFTER = timedelta(days=5)
REMIND_LABEL_AFTER = timedelta(days=7)


class ReturnStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    DROPPED_OFF = "dropped_off"  # handed to the courier or a drop-off point
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    INSPECTED = "inspected"
    REFUNDED = "refunded"
    REJECTED = "rejected"


R = ReturnStatus
FINAL = frozenset({R.REFUNDED, R.REJECTED})
# target -> the statuses it may be reached from
TRANSITIONS: dict[ReturnStatus, frozenset[ReturnStatus]] = {
    R.APPROVED: frozenset({R.REQUESTED}),
    R.DROPPED_OFF: frozenset({R.APPROVED}),
    R.IN_TRANSIT: frozenset({R.APPROVED, R.DROPPED_OFF}),
    # A store receives a return straight from the shopper's hands.
    R.RECEIVED: frozenset({R.APPROVED, R.DROPPED_OFF, R.IN_TRANSIT}),
    R.INSPECTED: frozenset({R.RECEIVED}),
    R.REFUNDED: frozenset({R.INSPECTED}),
    # Refused before anything came back (or everything inspected was refused: see inspect).
    R.REJECTED: frozenset({R.REQUESTED, R.APPROVED, R.RECEIVED}),
}
# Where the shopper's stepper puts each status.
STEPS = (R.REQUESTED, R.APPROVED, R.IN_TRANSIT, R.RECEIVED, R.INSPECTED, R.REFUNDED)
_STEP_OF = {R.DROPPED_OFF: R.IN_TRANSIT}


def can_transition(current: ReturnStatus, target: ReturnStatus) -> bool:
    return current in TRANSITIONS.get(target, frozenset())


def transition(current: ReturnStatus, target: ReturnStatus) -> ReturnStatus:
    if not can_transition(current, target):
        raise InvalidTransition("return", current, target)
    return target


def steps(status: ReturnStatus) -> list[tuple[ReturnStatus, str]]:
    """(step, "done" | "current" | "todo") for the shopper's stepper."""
    if status is R.REJECTED:
        return [(s, "todo") for s in STEPS]
    index = STEPS.index(_STEP_OF.get(status, status))
    return [
        (
            s,
            "done"
            if i < index or (i == index and s is R.REFUNDED)
            else "current"
            if i == index
            else "todo",
        )
        for i, s in enumerate(STEPS)
    ]


class Method(StrEnum):
    STORE = "store"  # dropped off at a store's counter
    COURIER = "courier"  # a label (or a pickup) from the shop


class Reason(StrEnum):
    TOO_SMALL = "too_small"
    TOO_BIG = "too_big"
    NOT_AS_DESCRIBED = "not_as_described"
    DAMAGED = "damaged"
    WRONG_ITEM = "wrong_item"
    CHANGED_MIND = "changed_mind"
    ARRIVED_LATE = "arrived_late"
    OTHER = "other"  # asks for a note


# ------------------------------------------------------------------------- the window


def window_closes(received_at: datetime | None, days: int = WINDOW_DAYS) -> datetime | None:
    """When returns close: `days` after delivery or collection (None: nothing received)."""
    return None if received_at is None else received_at + timedelta(days=days)


def window_open(received_at: datetime | None, now: datetime, days: int = WINDOW_DAYS) -> bool:
    closes = window_closes(received_at, days)
    return closes is not None and now < closes


# -------------------------------------------------------------------------- the lines


@dataclass(frozen=True, slots=True)
class Line:
    id: int
    quantity: int  # received
    returnable: bool = True
    returned: int = 0  # taken by other returns that are not rejected


def returnable_quantity(line: Line) -> int:
    return max(line.quantity - line.returned, 0) if line.returnable else 0


@dataclass(frozen=True, slots=True)
class Pick:
    """One line the shopper sends back: how many, and why."""

    line_id: int
    quantity: int
    reason: Reason
    note: str | None = None


class ReturnErrors(DomainError):
    """Per line (its id as a string) or per form field: what is wrong, in a person's words."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors.values()))


def check_picks(lines: Iterable[Line], picks: Iterable[Pick]) -> list[Pick]:
    """The lines chosen, each within what may still be returned, with a reason (and a note
    for "other"). At least one item."""
    by_id: Mapping[int, Line] = {line.id: line for line in lines}
    errors: dict[str, str] = {}
    chosen: list[Pick] = []
    seen: set[int] = set()
    for pick in picks:
        key = str(pick.line_id)
        line = by_id.get(pick.line_id)
        if line is None or pick.line_id in seen:
            errors[key] = N_("this item is not part of the order")
            continue
        seen.add(pick.line_id)
        if pick.quantity == 0:
            continue
        allowed = returnable_quantity(line)
        if not line.returnable:
            errors[key] = N_("this item cannot be returned")
        elif allowed == 0:
            errors[key] = N_("this item has already been returned")
        elif pick.quantity < 0 or pick.quantity > allowed:
            errors[key] = Nf_("you can return from 1 to %(most)s of this item", most=allowed)
        elif pick.reason is Reason.OTHER and not (pick.note or "").strip():
            errors[key] = N_("tell us why in a few words")
        elif pick.note and len(pick.note) > NOTE_MAX:
            errors[key] = Nf_("at most %(max)s characters", max=NOTE_MAX)
        else:
            chosen.append(pick)
    if not errors and not chosen:
        errors["lines"] = N_("choose at least one item to return")
    if errors:
        raise ReturnErrors(errors)
    return chosen


# ---------------------------------------------------------------------- inspection


@dataclass(frozen=True, slots=True)
class Verdict:
    """A line after inspection: how many were accepted, and why the rest were not."""

    line_id: int
    accepted: int
    rejection_reason: str | None = None


def check_verdicts(returned: Mapping[int, int], verdicts: Iterable[Verdict]) -> dict[int, Verdict]:
    """One verdict per returned line (return line id -> quantity sent back): accepted from
    0 to that quantity, with a reason for what is not accepted."""
    out: dict[int, Verdict] = {}
    for verdict in verdicts:
        quantity = returned.get(verdict.line_id)
        if quantity is None or verdict.line_id in out:
            raise DomainError(f"line {verdict.line_id} is not part of this return")
        if not 0 <= verdict.accepted <= quantity:
            raise DomainError(f"line {verdict.line_id}: accept from 0 to {quantity}")
        if verdict.accepted < quantity and not (verdict.rejection_reason or "").strip():
            raise DomainError(f"line {verdict.line_id}: say why it is not accepted")
        out[verdict.line_id] = verdict
    missing = sorted(set(returned) - set(out))
    if missing:
        raise DomainError(f"every returned line needs a verdict; missing: {missing}")
    return out


def after_inspection(verdicts: Iterable[Verdict]) -> ReturnStatus:
    """Inspected when anything is accepted (a refund follows), else rejected."""
    return R.INSPECTED if any(v.accepted > 0 for v in verdicts) else R.REJECTED


# ---------------------------------------------------------------------------- code

CODE_ALPHABET = "ACDEFHJKMNPRTUVWXY3479"  # no 0/O, 1/I/L, 2/Z, 5/S, 6/G, 8/B: read aloud
CODE_LENGTH = 8


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def display_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def normalise_code(typed: str) -> str:
    return "".join(ch for ch in typed.upper() if ch.isalnum())
