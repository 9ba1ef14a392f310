"""The outbox message: its transitions, retry backoff and delivery reports."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.domain import InvalidTransition
from portal.domain.sms import (
    FINAL,
    REPORT_STATUS,
    TRANSITIONS,
    SmsStatus,
    apply_report,
    backoff,
    can_transition,
    transition,
)

T = SmsStatus
NON_FINAL = [s for s in SmsStatus if s not in FINAL]


def _reachable(start: SmsStatus) -> set[SmsStatus]:
    seen, todo = {start}, [start]
    while todo:
        here = todo.pop()
        for target in SmsStatus:
            if can_transition(here, target) and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


@pytest.mark.parametrize("status", NON_FINAL)
def test_every_live_message_can_still_fail(status: SmsStatus) -> None:
    assert T.FAILED in _reachable(status)


@pytest.mark.parametrize("status", NON_FINAL)
def test_every_live_message_can_still_be_sent_and_delivered(status: SmsStatus) -> None:
    reachable = _reachable(status)
    assert T.SENT in reachable or status is T.SENT
    assert T.DELIVERED in reachable


@pytest.mark.parametrize("status", sorted(FINAL))
def test_a_final_message_goes_nowhere(status: SmsStatus) -> None:
    for target in SmsStatus:
        assert not can_transition(status, target)


PAIRS = list(itertools.product(SmsStatus, SmsStatus))


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{c}->{t}" for c, t in PAIRS])
def test_a_message_transition_succeeds_exactly_when_the_table_lists_it(
    current: SmsStatus, target: SmsStatus
) -> None:
    if current in TRANSITIONS.get(target, frozenset()):
        assert transition(current, target) is target
    else:
        with pytest.raises(InvalidTransition, match=f"sms cannot go from {current} to {target}"):
            transition(current, target)


def test_the_send_path_is_queued_sending_then_sent_or_settling() -> None:
    assert can_transition(T.QUEUED, T.SENDING)
    assert can_transition(T.SENDING, T.SENT)
    assert can_transition(T.SENDING, T.SETTLING)  # maybe sent, or its sender died
    assert can_transition(T.SENDING, T.QUEUED)  # a transient error: retry later
    assert can_transition(T.SETTLING, T.SENT)  # MessageBird has it
    assert can_transition(T.SETTLING, T.QUEUED)  # MessageBird has nothing: it never left
    assert can_transition(T.SETTLING, T.UNKNOWN)  # could not be found out
    # Never sent blind: only a queued text is sent, and nothing leads back from unknown.
    assert not can_transition(T.SETTLING, T.SENDING)
    assert not can_transition(T.SENDING, T.SENDING)
    assert not can_transition(T.UNKNOWN, T.SENDING)
    assert not can_transition(T.UNKNOWN, T.QUEUED)
    assert not can_transition(T.SENT, T.SENDING)  # sent at most once
    assert not can_transition(T.SENT, T.QUEUED)


# ------------------------------------------------------------------ delivery reports


def test_every_report_word_maps_to_a_status_a_report_can_set() -> None:
    assert set(REPORT_STATUS.values()) <= {T.SENT, T.DELIVERED, T.FAILED, T.EXPIRED}
    assert REPORT_STATUS["delivered"] is T.DELIVERED
    assert REPORT_STATUS["delivery_failed"] is T.FAILED
    assert REPORT_STATUS["expired"] is T.EXPIRED
    assert REPORT_STATUS["buffered"] is T.SENT


@pytest.mark.parametrize("final", sorted(FINAL))
@pytest.mark.parametrize("reported", list(SmsStatus))
def test_a_report_after_a_final_state_is_ignored(final: SmsStatus, reported: SmsStatus) -> None:
    assert apply_report(final, reported) is None


@pytest.mark.parametrize("status", list(SmsStatus))
def test_a_duplicate_report_is_ignored(status: SmsStatus) -> None:
    assert apply_report(status, status) is None


def test_a_sent_message_accepts_delivered_failed_and_expired() -> None:
    assert apply_report(T.SENT, T.DELIVERED) is T.DELIVERED
    assert apply_report(T.SENT, T.FAILED) is T.FAILED
    assert apply_report(T.SENT, T.EXPIRED) is T.EXPIRED


def test_a_report_vouches_for_a_message_whose_send_outcome_was_unknown() -> None:
    assert apply_report(T.UNKNOWN, T.SENT) is T.SENT
    assert apply_report(T.UNKNOWN, T.DELIVERED) is T.DELIVERED


def test_a_report_that_overtakes_the_send_response_is_taken() -> None:
    assert apply_report(T.SENDING, T.DELIVERED) is T.DELIVERED
    assert apply_report(T.SENDING, T.SENT) is T.SENT


def test_a_late_sent_report_after_delivered_is_ignored_and_the_first_final_one_wins() -> None:
    assert apply_report(T.DELIVERED, T.SENT) is None
    assert apply_report(T.DELIVERED, T.FAILED) is None
    assert apply_report(T.FAILED, T.DELIVERED) is None


def test_a_report_for_a_message_never_sent_is_ignored() -> None:
    assert apply_report(T.QUEUED, T.SENT) is None
    assert apply_report(T.QUEUED, T.DELIVERED) is None


@settings(max_examples=200, database=None, deadline=None)
@given(st.lists(st.sampled_from(sorted(REPORT_STATUS)), max_size=12))
def test_any_stream_of_reports_after_a_send_ends_in_one_final_state_at_most(
    words: list[str],
) -> None:
    status = T.SENT
    finals = []
    for word in words:
        target = apply_report(status, REPORT_STATUS[word])
        if target is None:
            continue
        assert can_transition(status, target)
        status = target
        if status in FINAL:
            finals.append(status)
    assert len(finals) <= 1
    if finals:
        assert status is finals[0]


# ------------------------------------------------------------------ backoff


def test_backoff_doubles_from_fifteen_seconds() -> None:
    assert [backoff(n).total_seconds() for n in range(1, 7)] == [15, 30, 60, 120, 240, 480]


def test_backoff_before_the_first_retry_is_never_below_the_base() -> None:
    assert backoff(0) == timedelta(seconds=15)
    assert backoff(-3) == timedelta(seconds=15)


def test_backoff_is_capped_at_one_hour() -> None:
    assert backoff(9) == timedelta(hours=1)
    assert backoff(10_000) == timedelta(hours=1)


def test_backoff_grows_and_never_exceeds_the_cap() -> None:
    delays = [backoff(n) for n in range(1, 40)]
    assert delays == sorted(delays)
    assert max(delays) == timedelta(hours=1)
    growing = delays[: delays.index(timedelta(hours=1))]
    assert all(a < b for a, b in itertools.pairwise(growing))


def test_backoff_follows_its_arguments() -> None:
    assert backoff(3, base_seconds=10, cap_seconds=25) == timedelta(seconds=25)
    assert backoff(2, base_seconds=10) == timedelta(seconds=20)
