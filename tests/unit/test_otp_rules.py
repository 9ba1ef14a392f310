"""One-time codes for sensitive delivery changes: six digits, ten minutes, five tries, an
hour's lock, and new codes rationed."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.domain.otp import (
    LOCK_FOR,
    MAX_PER_HOUR,
    MAX_TRIES,
    RESEND_AFTER,
    VALID_FOR,
    Check,
    CodeState,
    IssueCheck,
    Refusal,
    Verdict,
    check,
    hash_code,
    may_issue,
    new_code,
    normalise,
)

FAST = settings(max_examples=200, database=None, deadline=None)
SECRET = "test-secret-key-0123456789abcdef"
ORDER = 4711
CODE = "482913"
# Monday 23 November 2026, 10:30 in Rome
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
RIGHT = hash_code(SECRET, ORDER, CODE)
WRONG = hash_code(SECRET, ORDER, "000000")


def _fresh(now: datetime = NOW) -> CodeState:
    return CodeState(code_hash=RIGHT, attempts=0, expires_at=now + VALID_FOR)


def _after(state: CodeState, result: Check) -> CodeState:
    """What the service stores after a try."""
    return replace(state, attempts=result.attempts, locked_until=result.locked_until)


# ------------------------------------------------------------------ the codes


def test_codes_are_six_digits_with_leading_zeros_kept_and_hard_to_guess() -> None:
    codes = [new_code() for _ in range(500)]
    assert all(len(c) == 6 and c.isascii() and c.isdigit() for c in codes)
    assert len(set(codes)) > 490


def test_only_a_keyed_hash_bound_to_the_order_is_stored() -> None:
    assert CODE not in RIGHT
    assert hash_code(SECRET, ORDER, CODE) == RIGHT
    assert hash_code(SECRET, ORDER + 1, CODE) != RIGHT  # no use on another order
    assert hash_code("another-secret", ORDER, CODE) != RIGHT  # a leaked table gives nothing


@pytest.mark.parametrize("typed", ["482913", "482 913", "482-913", " 482913\n", "４８２９１３"])
def test_a_code_may_be_typed_with_spaces_a_dash_or_full_width_digits(typed: str) -> None:
    assert normalise(typed) == CODE


def test_odd_digit_like_characters_are_ignored_rather_than_crashing_the_form() -> None:
    assert normalise("482913²") == CODE
    assert normalise("①482913") == CODE


@FAST
@given(st.text())
def test_whatever_is_typed_normalises_to_plain_digits_only(typed: str) -> None:
    result = normalise(typed)
    assert result.isascii()
    assert result == "" or result.isdigit()


# ------------------------------------------------------------------ trying a code


def test_the_right_code_within_ten_minutes_is_accepted() -> None:
    result = check(_fresh(), RIGHT, NOW + timedelta(minutes=9, seconds=59))
    assert result.verdict is Verdict.OK
    assert result.locked_until is None


def test_the_right_code_is_refused_once_ten_minutes_have_passed() -> None:
    assert check(_fresh(), RIGHT, NOW + timedelta(minutes=10)).verdict is Verdict.EXPIRED


def test_a_code_works_only_once() -> None:
    used = replace(_fresh(), attempts=1, used_at=NOW + timedelta(minutes=1))
    assert check(used, RIGHT, NOW + timedelta(minutes=2)).verdict is Verdict.USED


def test_each_wrong_try_says_how_many_are_left_and_the_fifth_locks_for_an_hour() -> None:
    state, seen = _fresh(), []
    for minute in range(MAX_TRIES):
        result = check(state, WRONG, NOW + timedelta(minutes=minute))
        seen.append((result.verdict, result.tries_left))
        state = _after(state, result)
    assert seen == [
        (Verdict.WRONG, 4),
        (Verdict.WRONG, 3),
        (Verdict.WRONG, 2),
        (Verdict.WRONG, 1),
        (Verdict.LOCKED, 0),
    ]
    assert state.locked_until == NOW + timedelta(hours=1, minutes=4)


def test_the_right_code_on_the_fifth_try_still_goes_through() -> None:
    state = replace(_fresh(), attempts=MAX_TRIES - 1)
    assert check(state, RIGHT, NOW).verdict is Verdict.OK


def test_while_locked_even_the_right_code_or_a_new_code_is_refused() -> None:
    locked_until = NOW + LOCK_FOR
    locked = replace(_fresh(), attempts=MAX_TRIES, locked_until=locked_until)
    assert check(locked, RIGHT, NOW + timedelta(minutes=1)).verdict is Verdict.LOCKED
    # A new code sent during the lock (if one slipped through) does not lift it.
    later = NOW + timedelta(minutes=30)
    new = CodeState(RIGHT, 0, later + VALID_FOR, locked_until=locked_until)
    assert check(new, RIGHT, later) == Check(Verdict.LOCKED, 0, locked_until, 0)


@FAST
@given(
    gaps=st.lists(
        st.integers(0, 110), min_size=MAX_TRIES, max_size=MAX_TRIES
    ),  # seconds between tries: five tries within the ten minutes
    later=st.integers(0, 3 * 3600),
)
def test_wrong_codes_lock_exactly_at_the_fifth_and_stay_locked_for_an_hour(
    gaps: list[int], later: int
) -> None:
    state, at, verdicts = _fresh(), NOW, []
    for gap in gaps:
        at += timedelta(seconds=gap)
        result = check(state, WRONG, at)
        verdicts.append(result.verdict)
        state = _after(state, result)
    assert verdicts == [Verdict.WRONG] * (MAX_TRIES - 1) + [Verdict.LOCKED]
    assert state.locked_until == at + LOCK_FOR

    # Any time afterwards, a fresh code with the order's lock: refused for exactly an hour.
    when = at + timedelta(seconds=later)
    fresh = CodeState(RIGHT, 0, when + VALID_FOR, locked_until=state.locked_until)
    expected = Verdict.LOCKED if when < at + LOCK_FOR else Verdict.OK
    assert check(fresh, RIGHT, when).verdict is expected
    assert (may_issue([], state.locked_until, when).refusal is Refusal.LOCKED) == (
        when < at + LOCK_FOR
    )


@FAST
@given(
    attempts=st.integers(0, MAX_TRIES + 2),
    seconds=st.integers(-60, 700),
    right=st.booleans(),
    used=st.booleans(),
)
def test_a_try_succeeds_exactly_when_the_code_is_right_fresh_unused_and_not_locked_out(
    attempts: int, seconds: int, right: bool, used: bool
) -> None:
    state = CodeState(RIGHT, attempts, NOW + VALID_FOR, used_at=NOW if used else None)
    result = check(state, RIGHT if right else WRONG, NOW + timedelta(seconds=seconds))
    expect_ok = right and not used and seconds < VALID_FOR.total_seconds() and attempts < MAX_TRIES
    assert (result.verdict is Verdict.OK) == expect_ok
    assert 0 <= result.tries_left <= MAX_TRIES
    if result.verdict is Verdict.WRONG:
        assert result.attempts + result.tries_left == MAX_TRIES
    if result.verdict in (Verdict.WRONG, Verdict.OK):
        assert result.attempts == attempts + 1  # every try counts


# ------------------------------------------------------------------ sending new codes


def test_the_first_code_may_be_sent_at_once() -> None:
    assert may_issue([], None, NOW) == IssueCheck(None)


def test_a_second_code_within_a_minute_is_refused_until_the_minute_is_up() -> None:
    result = may_issue([NOW], None, NOW + timedelta(seconds=20))
    assert result == IssueCheck(Refusal.TOO_SOON, NOW + timedelta(seconds=60))
    assert may_issue([NOW], None, NOW + RESEND_AFTER).refusal is None


def test_a_sixth_code_within_an_hour_waits_until_the_oldest_is_an_hour_old() -> None:
    sent = [NOW + timedelta(minutes=m) for m in (0, 5, 10, 15, 20)]
    at = NOW + timedelta(minutes=30)
    assert may_issue(sent, None, at) == IssueCheck(Refusal.TOO_MANY, NOW + timedelta(hours=1))
    assert may_issue(sent, None, NOW + timedelta(hours=1)).refusal is None


def test_the_order_of_earlier_codes_does_not_matter() -> None:
    sent = [NOW + timedelta(minutes=m) for m in (20, 0, 15, 5, 10)]
    assert may_issue(sent, None, NOW + timedelta(minutes=30)).retry_at == NOW + timedelta(hours=1)


def test_no_code_is_sent_while_the_order_is_locked() -> None:
    assert may_issue([], NOW + LOCK_FOR, NOW) == IssueCheck(Refusal.LOCKED, NOW + LOCK_FOR)
    assert may_issue([], NOW, NOW).refusal is None  # the lock has just ended


def test_the_moment_to_come_back_is_when_every_limit_has_passed() -> None:
    # The fifth code went out 30 s ago and the first 50 minutes ago: "wait a minute" would
    # only lead to "too many" a minute later.
    sent = [NOW - timedelta(minutes=m) for m in (50, 40, 30, 20)] + [NOW - timedelta(seconds=30)]
    result = may_issue(sent, None, NOW)
    assert result == IssueCheck(Refusal.TOO_MANY, NOW + timedelta(minutes=10))
    assert may_issue(sent, None, result.retry_at or NOW).refusal is None


@FAST
@given(
    asks=st.lists(st.integers(0, 1800), min_size=1, max_size=60),  # seconds between asks
    lock=st.one_of(st.none(), st.integers(-3600, 7200)),
)
def test_codes_are_never_more_than_five_an_hour_nor_two_within_a_minute(
    asks: list[int], lock: int | None
) -> None:
    locked_until = None if lock is None else NOW + timedelta(seconds=lock)
    sent: list[datetime] = []
    at = NOW
    for gap in asks:
        at += timedelta(seconds=gap)
        result = may_issue(sent, locked_until, at)
        if result.refusal is None:
            assert result.retry_at is None
            sent.append(at)
            continue
        # Refused: come back at the moment given and it is allowed.
        assert result.retry_at is not None and result.retry_at > at
        assert may_issue(sent, locked_until, result.retry_at).refusal is None
        if locked_until is not None and at < locked_until:
            assert result.refusal is Refusal.LOCKED
    for earlier, later in itertools.pairwise(sent):
        assert later - earlier >= RESEND_AFTER
    for first, sixth in zip(sent, sent[MAX_PER_HOUR:], strict=False):
        assert sixth - first >= timedelta(hours=1)
    if locked_until is not None:
        assert not any(NOW <= t < locked_until for t in sent)
