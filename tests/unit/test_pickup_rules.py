"""Click-and-collect rules: readiness, the code and its lock, visits within opening hours,
reminders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.domain import DomainError, InvalidTransition
from portal.domain.pickup import (
    FINAL,
    MAX_WRONG_CODES,
    Line,
    PickupStatus,
    all_ready,
    check_code,
    check_delegate,
    check_visit,
    display_code,
    hold_until,
    items_ready,
    new_code,
    opening_windows,
    readiness,
    reminders,
    set_ready,
)

P = PickupStatus
HOURS = {d: ["09:30-13:00", "15:00-19:30"] for d in ("mon", "tue", "wed", "thu", "fri", "sat")}
ROME = "Europe/Rome"
# Monday 23 November 2026, 10:30 in Rome
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
LINES = [Line(1, 2), Line(2, 1)]


def test_nothing_set_aside_is_preparing_some_is_partly_ready_all_is_ready():
    assert readiness(LINES) is P.PREPARING
    assert readiness([Line(1, 2, 1), Line(2, 1)]) is P.PARTLY_READY
    assert readiness([Line(1, 2, 2), Line(2, 1, 1)]) is P.READY
    assert items_ready([Line(1, 2, 2), Line(2, 1)]) == (2, 3)


def test_a_clerk_can_mark_lines_ready_one_by_one_and_then_all():
    lines, status = set_ready(P.PREPARING, LINES, {1: 2})
    assert status is P.PARTLY_READY
    lines, status = set_ready(status, lines, all_ready(lines))
    assert status is P.READY
    assert items_ready(lines) == (3, 3)


@pytest.mark.parametrize("count", [-1, 3])
def test_a_count_outside_the_line_quantity_is_refused(count):
    with pytest.raises(DomainError, match="between 0 and 2"):
        set_ready(P.PREPARING, LINES, {1: count})


def test_an_unknown_line_is_refused():
    with pytest.raises(DomainError, match="line 9"):
        set_ready(P.PREPARING, LINES, {9: 1})


@pytest.mark.parametrize("final", sorted(FINAL))
def test_nothing_is_marked_ready_after_collection_expiry_or_cancellation(final):
    with pytest.raises(InvalidTransition):
        set_ready(final, [Line(1, 2, 2)], {1: 2})


@settings(max_examples=200)
@given(
    quantities=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    steps=st.lists(st.tuples(st.integers(0, 3), st.integers(-1, 6)), max_size=12),
)
def test_any_sequence_of_counts_keeps_status_and_lines_consistent(quantities, steps):
    lines = [Line(i, q) for i, q in enumerate(quantities)]
    status = P.PREPARING
    for index, count in steps:
        try:
            lines, status = set_ready(status, lines, {index: count})
        except DomainError:
            continue
        assert all(0 <= line.ready <= line.quantity for line in lines)
        assert status is readiness(lines)


def test_codes_are_six_digits_and_shown_in_two_groups():
    codes = {new_code() for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert len(codes) > 190
    assert display_code("482913") == "482 913"


def test_a_typed_code_may_have_spaces_or_a_dash():
    assert check_code("482913", "482 913", 0, None, NOW).ok
    assert check_code("482913", "482-913", 0, None, NOW).ok
    assert not check_code("482913", "482914", 0, None, NOW).ok


def test_wrong_codes_lock_the_order_for_a_while():
    wrong, locked = 0, None
    for _ in range(MAX_WRONG_CODES):
        result = check_code("482913", "000000", wrong, locked, NOW)
        wrong, locked = result.wrong_codes, result.locked_until
    assert locked == NOW + timedelta(minutes=15)
    with pytest.raises(DomainError, match="too many wrong codes"):
        check_code("482913", "482913", wrong, locked, NOW + timedelta(minutes=5))
    assert check_code("482913", "482913", wrong, locked, NOW + timedelta(minutes=16)).ok


def test_orders_are_held_seven_days_by_default():
    assert hold_until(NOW) == NOW + timedelta(days=7)


@pytest.mark.parametrize("name", ["", "   ", "x" * 81, "Anna\x00"])
def test_a_delegate_needs_a_printable_name_of_at_most_80_characters(name):
    with pytest.raises(DomainError):
        check_delegate(name)


def test_a_delegate_name_is_tidied():
    assert check_delegate("  Marco   Rossi ") == "Marco Rossi"


def test_opening_windows_follow_the_stores_hours_in_its_time_zone():
    windows = opening_windows(HOURS, ROME, NOW, NOW + timedelta(days=2))
    # Monday: the morning span is under way (starts now), then the afternoon; Tuesday's two;
    # Wednesday morning until the hold ends at 10:30 Rome.
    assert windows[0].start == NOW
    assert windows[0].end == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert windows[1].start == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    assert windows[-1].end == NOW + timedelta(days=2)
    assert len(windows) == 5


def test_no_windows_on_a_closed_day():
    sunday = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)
    assert opening_windows(HOURS, ROME, sunday, sunday + timedelta(hours=12)) == []


def test_a_visit_inside_opening_hours_is_accepted():
    start = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # Tuesday 16:00 Rome
    window = check_visit(
        start, start + timedelta(hours=1), HOURS, ROME, NOW, NOW + timedelta(days=7)
    )
    assert window.start == start


@pytest.mark.parametrize(
    ("start", "hours", "message"),
    [
        (datetime(2026, 11, 24, 12, 30, tzinfo=UTC), 1, "closed"),  # lunch break
        (datetime(2026, 11, 29, 10, 0, tzinfo=UTC), 1, "closed"),  # Sunday
        (datetime(2026, 11, 23, 8, 0, tzinfo=UTC), 1, "passed"),
        (datetime(2026, 12, 5, 10, 0, tzinfo=UTC), 1, "held only until"),
        (datetime(2026, 11, 24, 15, 0, tzinfo=UTC), -1, "end after"),
    ],
)
def test_visits_outside_hours_in_the_past_or_after_expiry_are_refused(start, hours, message):
    with pytest.raises(DomainError, match=message):
        check_visit(
            start, start + timedelta(hours=hours), HOURS, ROME, NOW, NOW + timedelta(days=7)
        )


def test_opening_hours_follow_daylight_saving_time():
    # 30 March 2026 (Monday) is after the switch to summer time: 09:30 Rome is 07:30 UTC.
    monday = datetime(2026, 3, 30, 6, 0, tzinfo=UTC)
    [first, *_] = opening_windows(HOURS, ROME, monday, monday + timedelta(days=1))
    assert first.start == datetime(2026, 3, 30, 7, 30, tzinfo=UTC)


def test_reminders_after_two_days_the_day_before_expiry_and_on_the_visit_morning():
    until = hold_until(NOW)
    visit = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
    due = reminders(NOW, until, ROME, visit)
    assert [(d.kind, d.at) for d in due] == [
        ("pickup_waiting", NOW + timedelta(days=2)),
        ("pickup_last_day", until - timedelta(days=1)),
        ("pickup_visit_today", datetime(2026, 11, 26, 7, 0, tzinfo=UTC)),  # 08:00 Rome
    ]


def test_a_short_hold_has_no_last_day_reminder_after_expiry():
    due = reminders(NOW, NOW + timedelta(days=2), ROME)
    assert [d.kind for d in due] == []
    due = reminders(NOW, NOW + timedelta(days=3), ROME)
    assert [d.kind for d in due] == ["pickup_waiting"]
