"""Store rules: IANA time zones and opening hours."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.domain import DomainError
from portal.domain.store import DAYS, check_opening_hours, check_timezone


@pytest.mark.parametrize("name", ["Europe/Rome", "Europe/Warsaw", "Europe/Madrid", "UTC"])
def test_an_iana_time_zone_is_accepted_as_written(name: str) -> None:
    assert check_timezone(name) == name


@pytest.mark.parametrize(
    "name", ["", "Rome", "Mars/Olympus_Mons", "CET+1", "../../etc/passwd", "/etc/localtime"]
)
def test_anything_else_is_refused_with_an_example_of_a_real_zone(name: str) -> None:
    with pytest.raises(DomainError, match="is not an IANA time zone such as Europe/Rome"):
        check_timezone(name)


WEEK = {
    "mon": ["09:00-13:00", "15:00-19:30"],
    "tue": ["09:00-19:30"],
    "sat": ["10:00-13:00"],
    "sun": [],
}


def test_a_normal_week_is_accepted_and_returned_unchanged() -> None:
    assert check_opening_hours(WEEK) == WEEK


def test_no_opening_hours_at_all_is_accepted() -> None:
    assert check_opening_hours({}) == {}


def test_a_span_may_start_where_the_previous_one_ends_and_end_at_midnight() -> None:
    hours = {"fri": ["08:00-12:00", "12:00-24:00"]}
    assert check_opening_hours(hours) == hours


@pytest.mark.parametrize("day", ["monday", "Mon", "lun", "", "weekend"])
def test_an_unknown_day_is_refused_naming_the_days_to_use(day: str) -> None:
    with pytest.raises(DomainError, match="mon, tue, wed, thu, fri, sat, sun"):
        check_opening_hours({day: ["09:00-13:00"]})


@pytest.mark.parametrize(
    "spans",
    [
        ["13:00-09:00"],  # backwards
        ["09:00-09:00"],  # empty
        ["09:00-13:00", "12:00-15:00"],  # overlapping
        ["15:00-19:00", "09:00-13:00"],  # out of order
        ["22:00-02:00"],  # past midnight
    ],
)
def test_spans_that_run_backwards_overlap_or_come_out_of_order_are_refused(
    spans: list[str],
) -> None:
    with pytest.raises(DomainError, match="spans must run forward and not overlap"):
        check_opening_hours({"wed": spans})


@pytest.mark.parametrize("span", ["09:60-12:00", "25:00-26:00", "09:00-24:30", "09:00-99:00"])
def test_a_time_that_is_not_a_time_of_day_is_refused(span: str) -> None:
    with pytest.raises(DomainError, match="is not a time of day"):
        check_opening_hours({"thu": [span]})


@pytest.mark.parametrize("span", ["09:00", "9-5", "09:00-13:00-15:00", "ab:cd-ef:gh"])
def test_a_malformed_span_is_refused_as_a_domain_error(span: str) -> None:
    with pytest.raises(DomainError):
        check_opening_hours({"mon": [span]})


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@settings(max_examples=200, database=None, deadline=None)
@given(
    day=st.sampled_from(DAYS),
    cuts=st.lists(st.integers(0, 24 * 60), min_size=0, max_size=8, unique=True),
)
def test_any_ordered_non_overlapping_spans_are_accepted(day: str, cuts: list[int]) -> None:
    cuts = sorted(cuts)
    spans = [f"{_hhmm(a)}-{_hhmm(b)}" for a, b in zip(cuts[::2], cuts[1::2], strict=False)]
    assert check_opening_hours({day: spans}) == {day: spans}


@settings(max_examples=200, database=None, deadline=None)
@given(
    first=st.tuples(st.integers(0, 1439), st.integers(1, 600)),
    second=st.tuples(st.integers(0, 1439), st.integers(1, 600)),
)
def test_two_spans_are_accepted_exactly_when_the_second_starts_after_the_first_ends(
    first: tuple[int, int], second: tuple[int, int]
) -> None:
    (a, la), (b, lb) = first, second
    a_end, b_end = min(a + la, 1440), min(b + lb, 1440)
    spans = [f"{_hhmm(a)}-{_hhmm(a_end)}", f"{_hhmm(b)}-{_hhmm(b_end)}"]
    valid = a < a_end and b < b_end and b >= a_end
    if valid:
        assert check_opening_hours({"sat": spans}) == {"sat": spans}
    else:
        with pytest.raises(DomainError):
            check_opening_hours({"sat": spans})
