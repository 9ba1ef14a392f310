"""The outbox message: statuses, transitions, retry backoff and delivery-report rules.

A message is sent at most once. The only send whose outcome we cannot know is one that timed
out (or whose process died mid-send): it goes to UNKNOWN and is sent again only if no
delivery report has vouched for it within a grace period.

A message that should not go out at all is DROPPED, with the reason in `last_error`: the
shopper opted out, the order's daily cap was reached, or a later message made it stale
(`SUPERSEDED_BY`). It is written that way, or dropped while still queued, never later.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from portal.domain import InvalidTransition


class SmsStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    UNKNOWN = "unknown"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    DROPPED = "dropped"  # never sent, on purpose (last_error says why)


FINAL = frozenset({SmsStatus.DELIVERED, SmsStatus.FAILED, SmsStatus.EXPIRED, SmsStatus.DROPPED})

_T = SmsStatus
# target -> the statuses it may be reached from.
TRANSITIONS: dict[SmsStatus, frozenset[SmsStatus]] = {
    # Claimed when due: queued, of unknown outcome past the grace period, or "sending" past
    # it (the sending process died). The dispatcher claims exactly the rows whose
    # next_attempt_at has passed, and only these statuses have one.
    _T.SENDING: frozenset({_T.QUEUED, _T.UNKNOWN, _T.SENDING}),
    _T.QUEUED: frozenset({_T.SENDING}),
    _T.UNKNOWN: frozenset({_T.SENDING}),
    _T.SENT: frozenset({_T.SENDING, _T.UNKNOWN}),
    _T.FAILED: frozenset({_T.QUEUED, _T.SENDING, _T.UNKNOWN, _T.SENT}),
    _T.DELIVERED: frozenset({_T.SENDING, _T.UNKNOWN, _T.SENT}),
    _T.EXPIRED: frozenset({_T.SENDING, _T.UNKNOWN, _T.SENT}),
    # Only a message nothing was sent for yet (a queued one; or written so at once).
    _T.DROPPED: frozenset({_T.QUEUED}),
}


def can_transition(current: SmsStatus, target: SmsStatus) -> bool:
    return current in TRANSITIONS.get(target, frozenset())


def transition(current: SmsStatus, target: SmsStatus) -> SmsStatus:
    if not can_transition(current, target):
        raise InvalidTransition("sms", current, target)
    return target


# A kind of message -> the kinds still queued for the same order that it makes stale.
# ("delivered" says all that "shipped" or "out for delivery" would, and later.)
_PICKUP_WAITING = frozenset(
    {"ready_for_pickup", "pickup_waiting", "pickup_visit_today", "pickup_last_day"}
)
_IN_TRANSIT = frozenset({"backordered", "shipped", "out_for_delivery", "delivery_failed"})
SUPERSEDED_BY: dict[str, frozenset[str]] = {
    "shipped": frozenset({"backordered"}),
    "out_for_delivery": frozenset({"backordered", "shipped", "delivery_failed"}),
    "delivery_failed": frozenset({"backordered", "shipped", "out_for_delivery"}),
    "delivered": _IN_TRANSIT,
    "ready_for_pickup": frozenset({"backordered"}),
    "pickup_last_day": frozenset({"pickup_waiting"}),
    "collected": _PICKUP_WAITING | {"backordered"},
    "pickup_expired": _PICKUP_WAITING | {"backordered"},
    "cancelled": _IN_TRANSIT | _PICKUP_WAITING | {"order_confirmed"},
    # A new code replaces the one before (which no longer works): only the latest is sent.
    "otp": frozenset({"otp"}),
}


def superseded_by(kind: str) -> frozenset[str]:
    """The kinds a queued message of the same order no longer needs once `kind` is sent."""
    return SUPERSEDED_BY.get(kind, frozenset())


def backoff(attempt: int, *, base_seconds: int = 15, cap_seconds: int = 3600) -> timedelta:
    """Delay before try number attempt+1: 15 s, 30 s, 1 min, 2 min ... at most an hour."""
    return timedelta(seconds=min(base_seconds * 2 ** max(attempt - 1, 0), cap_seconds))


# MessageBird delivery report status -> ours. Unknown words are ignored.
REPORT_STATUS: dict[str, SmsStatus] = {
    "scheduled": SmsStatus.SENT,
    "sent": SmsStatus.SENT,
    "buffered": SmsStatus.SENT,
    "delivered": SmsStatus.DELIVERED,
    "delivery_failed": SmsStatus.FAILED,
    "expired": SmsStatus.EXPIRED,
}


def apply_report(current: SmsStatus, reported: SmsStatus) -> SmsStatus | None:
    """The status a delivery report moves a message to, or None to ignore it.

    Final states never change (a late "sent" after "delivered" is ignored, and the first
    final report wins), so duplicates and out-of-order reports are harmless.
    """
    if current in FINAL or reported is current:
        return None
    return reported if can_transition(current, reported) else None
