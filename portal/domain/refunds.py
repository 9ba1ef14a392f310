"""Refunds: states, and the rule that the money refunded never exceeds what was paid.

Money is integer minor units of the order's currency. A failed refund gave nothing back,
so it does not count against what may still be refunded; pending, processing and paid do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from portal.domain import DomainError, InvalidTransition


class RefundStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    PAID = "paid"
    FAILED = "failed"


F = RefundStatus
FINAL = frozenset({F.PAID})
TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    F.PROCESSING: frozenset({F.PENDING, F.FAILED}),  # a failed refund may be tried again
    F.PAID: frozenset({F.PENDING, F.PROCESSING}),
    F.FAILED: frozenset({F.PENDING, F.PROCESSING}),
}


class RefundReason(StrEnum):
    RETURN = "return"
    CANCELLATION = "cancellation"
    PICKUP_EXPIRED = "pickup_expired"
    GOODWILL = "goodwill"
    OTHER = "other"


def can_transition(current: RefundStatus, target: RefundStatus) -> bool:
    return current in TRANSITIONS.get(target, frozenset())


def transition(current: RefundStatus, target: RefundStatus) -> RefundStatus:
    if not can_transition(current, target):
        raise InvalidTransition("refund", current, target)
    return target


@dataclass(frozen=True, slots=True)
class Held:
    """A refund as far as the cap is concerned."""

    amount: int
    status: RefundStatus


def committed(refunds: Iterable[Held]) -> int:
    """Money refunded or on its way back."""
    return sum(r.amount for r in refunds if r.status is not F.FAILED)


def refundable(paid: int, refunds: Iterable[Held]) -> int:
    return max(paid - committed(refunds), 0)


def check_new(paid: int, refunds: Iterable[Held], amount: int) -> int:
    """A new refund of `amount`, or DomainError when it is not positive or would take the
    total refunded past what was paid."""
    if amount <= 0:
        raise DomainError("a refund is a positive amount")
    left = refundable(paid, refunds)
    if amount > left:
        raise DomainError(f"only {left} (minor units) is left to refund on this order")
    return amount


def check_retry(paid: int, refunds: Iterable[Held], retried: Held) -> None:
    """A failed refund tried again counts again: only if the money is still there."""
    if retried.status is F.FAILED and retried.amount > refundable(paid, refunds):
        raise DomainError("retrying this refund would refund more than was paid")
