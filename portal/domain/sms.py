"""The outbox message: statuses, transitions, retry backoff and delivery-report rules.

A message is sent at most once. A send whose outcome we cannot know (it timed out, the
connection broke after the request left, or the dispatcher that claimed it died) is
SETTLING: it is never sent blind, but settled first, by MessageBird's delivery report or by
asking MessageBird what it has for that recipient and time. Found: SENT (or what MessageBird
says); MessageBird has nothing: QUEUED again, since it never left. Still unresolved when the
settle period is over: UNKNOWN, for good (a later report may still settle it), never sent
again.

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
    SETTLING = "settling"  # maybe sent: being settled before anything else happens
    UNKNOWN = "unknown"  # maybe sent, and it could not be found out: never sent again
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    DROPPED = "dropped"  # never sent, on purpose (last_error says why)


FINAL = frozenset({SmsStatus.DELIVERED, SmsStatus.FAILED, SmsStatus.EXPIRED, SmsStatus.DROPPED})

_T = SmsStatus
# target -> the statuses it may be reached from.
TRANSITIONS: dict[SmsStatus, frozenset[SmsStatus]] = {
    # Claimed when due: only a queued message is ever sent. A "sending" claim whose owner
    # stopped renewing its lease is taken over as SETTLING, never sent again as it is.
    _T.SENDING: frozenset({_T.QUEUED}),
    # A transient error (nothing left), a claim given back on shutdown, or settled as
    # "MessageBird has no such message".
    _T.QUEUED: frozenset({_T.SENDING, _T.SETTLING}),
    _T.SETTLING: frozenset({_T.SENDING}),
    _T.UNKNOWN: frozenset({_T.SETTLING}),
    _T.SENT: frozenset({_T.SENDING, _T.SETTLING, _T.UNKNOWN}),
    _T.FAILED: frozenset({_T.QUEUED, _T.SENDING, _T.SETTLING, _T.UNKNOWN, _T.SENT}),
    _T.DELIVERED: frozenset({_T.SENDING, _T.SETTLING, _T.UNKNOWN, _T.SENT}),
    _T.EXPIRED: frozenset({_T.SENDING, _T.SETTLING, _T.UNKNOWN, _T.SENT}),
    # Only a message nothing was sent for: a queued one, one written so at once, or one
    # settled as never sent that a newer text replaces.
    _T.DROPPED: frozenset({_T.QUEUED, _T.SETTLING}),
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


# Kinds that a newer message of the same kind replaces (a new one-time code).
REPLACED_BY_ITS_KIND = frozenset({"otp"})


def made_stale_by(kind: str, newer: str) -> bool:
    """Whether a message of `kind` is no use once a newer one of kind `newer` exists for the
    same order (a message found unsent while settling is queued again only if not)."""
    return kind in superseded_by(newer) or (kind == newer and kind in REPLACED_BY_ITS_KIND)


# Settling a "maybe sent" message: how often MessageBird is asked at most, and the delays
# between lookups that could not get an answer (within the settle period).
MAX_LOOKUPS = 6


def lookup_delay(lookups: int) -> timedelta:
    """Delay before lookup number lookups+1 when the last one got no answer: 30 s, 1 min,
    2 min, 4 min, 8 min."""
    return timedelta(seconds=30 * 2 ** max(lookups - 1, 0))


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
