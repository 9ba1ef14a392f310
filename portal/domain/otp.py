"""One-time codes that confirm a sensitive change (a new address, a switch to a store).

A forwarded link alone must not redirect a parcel: the code goes by SMS to the order's
phone. Six digits, valid ten minutes, five tries; the fifth wrong try locks the order's
codes for an hour (asking for a new code does not lift it). New codes are rationed so the
form cannot be used to send SMS in bulk. Only a keyed hash of a code is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

DIGITS = 6
VALID_FOR = timedelta(minutes=10)
MAX_TRIES = 5
LOCK_FOR = timedelta(hours=1)
RESEND_AFTER = timedelta(seconds=60)
MAX_PER_HOUR = 5


def new_code() -> str:
    return f"{secrets.randbelow(10**DIGITS):0{DIGITS}d}"


def hash_code(secret: str, order_id: int, code: str) -> str:
    """Keyed and bound to the order: a leaked table does not give codes away, and a code
    for one order is no use on another."""
    message = f"otp:{order_id}:{code}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def normalise(typed: str) -> str:
    """What people type: '123 456', '123-456', full-width digits."""
    # isdecimal, not isdigit: '²' or '①' are digits that int() refuses.
    return "".join(str(int(ch)) for ch in typed if ch.isdecimal())


class Verdict(StrEnum):
    OK = "ok"
    WRONG = "wrong"
    EXPIRED = "expired"
    LOCKED = "locked"
    USED = "used"


@dataclass(frozen=True, slots=True)
class CodeState:
    code_hash: str
    attempts: int
    expires_at: datetime
    locked_until: datetime | None = None
    used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Check:
    verdict: Verdict
    attempts: int  # after this try
    locked_until: datetime | None
    tries_left: int


def check(state: CodeState, typed_hash: str, now: datetime) -> Check:
    """The outcome of one try. A wrong try counts; the last allowed one locks."""
    if state.locked_until is not None and now < state.locked_until:
        return Check(Verdict.LOCKED, state.attempts, state.locked_until, 0)
    if state.used_at is not None:
        return Check(Verdict.USED, state.attempts, state.locked_until, 0)
    if now >= state.expires_at:
        return Check(Verdict.EXPIRED, state.attempts, state.locked_until, 0)
    if state.attempts >= MAX_TRIES:
        return Check(Verdict.LOCKED, state.attempts, state.locked_until, 0)
    if hmac.compare_digest(state.code_hash, typed_hash):
        return Check(Verdict.OK, state.attempts + 1, None, MAX_TRIES - state.attempts - 1)
    attempts = state.attempts + 1
    if attempts >= MAX_TRIES:
        return Check(Verdict.LOCKED, attempts, now + LOCK_FOR, 0)
    return Check(Verdict.WRONG, attempts, None, MAX_TRIES - attempts)


class Refusal(StrEnum):
    LOCKED = "locked"
    TOO_SOON = "too_soon"
    TOO_MANY = "too_many"


@dataclass(frozen=True, slots=True)
class IssueCheck:
    refusal: Refusal | None
    retry_at: datetime | None = None


def may_issue(
    issued_at: Iterable[datetime], locked_until: datetime | None, now: datetime
) -> IssueCheck:
    """Whether a new code may be sent now, given when earlier ones were (any order) and the
    order's lock; when not, from what moment it may."""
    recent = sorted(t for t in issued_at if now - t < timedelta(hours=1))
    # Every rule that refuses now, with the moment it stops refusing. The moment told is
    # the latest of them: "wait a minute" must not lead to "too many" a minute later.
    waits: list[tuple[datetime, Refusal]] = []
    if locked_until is not None and now < locked_until:
        waits.append((locked_until, Refusal.LOCKED))
    if recent and now - recent[-1] < RESEND_AFTER:
        waits.append((recent[-1] + RESEND_AFTER, Refusal.TOO_SOON))
    if len(recent) >= MAX_PER_HOUR:
        waits.append((recent[-MAX_PER_HOUR] + timedelta(hours=1), Refusal.TOO_MANY))
    if not waits:
        return IssueCheck(None)
    retry_at = max(at for at, _ in waits)
    if waits[0][1] is Refusal.LOCKED:
        return IssueCheck(Refusal.LOCKED, retry_at)
    return IssueCheck(max(waits)[1], retry_at)
