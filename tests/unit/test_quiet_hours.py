"""Quiet hours: the next moment a non-urgent SMS may leave, in the shopper's zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.domain.quiet_hours import (
    DEFAULT_WINDOW,
    QuietWindow,
    is_quiet,
    local_day,
    next_send_time,
    zone,
)

ROME = ZoneInfo("Europe/Rome")
WARSAW = ZoneInfo("Europe/Warsaw")
MADRID = ZoneInfo("Europe/Madrid")
NEW_YORK = ZoneInfo("America/New_York")


def at(tz: ZoneInfo, *parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=tz, fold=fold)  # type: ignore[misc]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# ------------------------------------------------------------------ plain days


@pytest.mark.parametrize("tz", [ROME, WARSAW, MADRID, NEW_YORK], ids=str)
def test_a_message_at_half_past_ten_at_night_waits_until_eight_the_next_morning(
    tz: ZoneInfo,
) -> None:
    result = next_send_time(at(tz, 2026, 11, 23, 22, 30), tz)
    assert result == at(tz, 2026, 11, 24, 8, 0)
    assert result.tzinfo is UTC


def test_the_rome_evening_in_utc() -> None:
    assert next_send_time(utc(2026, 11, 23, 21, 30), ROME) == utc(2026, 11, 24, 7, 0)


def test_one_instant_is_evening_in_new_york_and_night_in_rome() -> None:
    instant = utc(2026, 11, 24, 1, 30)  # 20:30 in New York, 02:30 in Rome
    assert next_send_time(instant, NEW_YORK) == instant
    assert next_send_time(instant, ROME) == utc(2026, 11, 24, 7, 0)
    assert next_send_time(utc(2026, 11, 24, 3, 30), NEW_YORK) == utc(2026, 11, 24, 13, 0)


@pytest.mark.parametrize("tz", [ROME, WARSAW, MADRID, NEW_YORK], ids=str)
def test_an_early_morning_message_waits_until_eight_the_same_day(tz: ZoneInfo) -> None:
    assert next_send_time(at(tz, 2026, 11, 24, 0, 1), tz) == at(tz, 2026, 11, 24, 8, 0)
    assert next_send_time(at(tz, 2026, 11, 24, 7, 59, 59), tz) == at(tz, 2026, 11, 24, 8, 0)


@pytest.mark.parametrize(
    ("hour", "minute", "second", "quiet"),
    [(8, 0, 0, False), (20, 59, 59, False), (21, 0, 0, True), (7, 59, 59, True), (13, 0, 0, False)],
)
def test_the_window_holds_its_start_and_not_its_end(
    hour: int, minute: int, second: int, quiet: bool
) -> None:
    instant = at(ROME, 2026, 11, 23, hour, minute, second)
    assert is_quiet(instant, ROME) is quiet
    if not quiet:
        assert next_send_time(instant, ROME) == instant


def test_a_window_inside_one_day_ends_the_same_day() -> None:
    lunch = QuietWindow(time(12, 30), time(14, 0))
    assert next_send_time(at(MADRID, 2026, 6, 1, 13, 0), MADRID, lunch) == at(
        MADRID, 2026, 6, 1, 14, 0
    )
    assert next_send_time(at(MADRID, 2026, 6, 1, 22, 0), MADRID, lunch) == at(
        MADRID, 2026, 6, 1, 22, 0
    )


def test_a_window_that_starts_where_it_ends_is_never_quiet() -> None:
    none = QuietWindow(time(21), time(21))
    instant = at(ROME, 2026, 11, 23, 21, 0)
    assert not is_quiet(instant, ROME, none)
    assert next_send_time(instant, ROME, none) == instant


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_send_time(datetime(2026, 11, 23, 22, 30), ROME)


def test_an_unknown_or_missing_zone_falls_back_to_the_store_then_rome() -> None:
    assert zone("Europe/Warsaw") == WARSAW
    assert zone("Mars/Olympus", "Europe/Madrid") == MADRID
    assert zone("", "Europe/Madrid") == MADRID
    assert zone(None, "") == ROME
    assert zone("Mars/Olympus", "Mars/Base") == ROME


# ------------------------------------------------------------------ DST changes


def test_the_spring_night_is_an_hour_shorter_in_europe() -> None:
    # 2026-03-29 02:00 CET -> 03:00 CEST
    for tz in (ROME, WARSAW, MADRID):
        evening = at(tz, 2026, 3, 28, 22, 0)
        result = next_send_time(evening, tz)
        assert result == at(tz, 2026, 3, 29, 8, 0)
        assert result - evening == timedelta(hours=9)
        assert result.astimezone(tz).utcoffset() == timedelta(hours=2)


def test_the_autumn_night_is_an_hour_longer_in_europe() -> None:
    # 2026-10-25 03:00 CEST -> 02:00 CET
    for tz in (ROME, WARSAW, MADRID):
        evening = at(tz, 2026, 10, 24, 22, 0)
        result = next_send_time(evening, tz)
        assert result == at(tz, 2026, 10, 25, 8, 0)
        assert result - evening == timedelta(hours=11)
        assert result.astimezone(tz).utcoffset() == timedelta(hours=1)


def test_new_york_changes_its_clocks_on_other_sundays() -> None:
    # 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST
    assert next_send_time(utc(2026, 3, 8, 4, 0), NEW_YORK) == utc(2026, 3, 8, 12, 0)
    assert next_send_time(utc(2026, 11, 1, 3, 0), NEW_YORK) == utc(2026, 11, 1, 13, 0)
    # Rome, still in winter time that week: 8:00 is 7:00 UTC.
    assert next_send_time(utc(2026, 3, 8, 4, 0), ROME) == utc(2026, 3, 8, 7, 0)


def test_a_night_that_ends_in_the_skipped_hour_ends_when_the_clocks_jump() -> None:
    window = QuietWindow(time(21), time(2, 30))  # 02:30 does not exist on 2026-03-29
    result = next_send_time(at(ROME, 2026, 3, 28, 23, 0), ROME, window)
    assert result == utc(2026, 3, 29, 1, 0)  # 03:00 CEST, the first moment past 02:30
    assert not is_quiet(result, ROME, window)
    assert is_quiet(result - timedelta(seconds=1), ROME, window)  # 01:59:59 CET


def test_a_night_that_ends_in_the_repeated_hour_ends_at_its_first_occurrence() -> None:
    window = QuietWindow(time(21), time(2, 30))  # 02:00-03:00 happens twice on 2026-10-25
    first = next_send_time(at(ROME, 2026, 10, 24, 23, 0), ROME, window)
    assert first == utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    assert first.astimezone(ROME).replace(tzinfo=None) == datetime(2026, 10, 25, 2, 30)
    # The clocks go back to 02:00: the wall clock is before 02:30 again, so quiet again.
    again = at(ROME, 2026, 10, 25, 2, 10, fold=1)
    assert is_quiet(again, ROME, window)
    assert next_send_time(again, ROME, window) == utc(2026, 10, 25, 1, 30)


def test_a_local_day_has_twenty_three_or_twenty_five_hours_when_the_clocks_change() -> None:
    start, end = local_day(at(ROME, 2026, 3, 29, 12, 0), ROME)
    assert (start, end) == (at(ROME, 2026, 3, 29, 0, 0), at(ROME, 2026, 3, 30, 0, 0))
    assert end - start == timedelta(hours=23)
    start, end = local_day(at(ROME, 2026, 10, 25, 12, 0), ROME)
    assert end - start == timedelta(hours=25)
    start, end = local_day(at(NEW_YORK, 2026, 11, 23, 23, 59), NEW_YORK)
    assert (start, end) == (utc(2026, 11, 23, 5, 0), utc(2026, 11, 24, 5, 0))


# ------------------------------------------------------------------ properties

ZONES = [
    ROME,
    WARSAW,
    MADRID,
    NEW_YORK,
    ZoneInfo("Australia/Lord_Howe"),  # a half-hour change
    ZoneInfo("America/Santiago"),  # changes at midnight
    ZoneInfo("Asia/Kolkata"),  # none, and a half-hour offset
]


def _transitions(tz: ZoneInfo) -> list[datetime]:
    found, previous = [], None
    moment = utc(2024, 1, 1)
    while moment < utc(2029, 1, 1):
        offset = moment.astimezone(tz).utcoffset()
        if previous is not None and offset != previous:
            found.append(moment)
        previous, moment = offset, moment + timedelta(hours=1)
    return found


TRANSITIONS = sorted({t for tz in ZONES for t in _transitions(tz)})

anywhere = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)
near_a_clock_change = st.builds(
    lambda t, seconds: t + timedelta(seconds=seconds),
    st.sampled_from(TRANSITIONS),
    st.integers(min_value=-36 * 3600, max_value=36 * 3600),
)
instants = st.one_of(anywhere, near_a_clock_change)
wall_times = st.one_of(
    st.builds(time, st.integers(0, 23)),
    st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45])),
    st.times(),
)
windows = st.one_of(st.just(DEFAULT_WINDOW), st.builds(QuietWindow, wall_times, wall_times))


@settings(max_examples=600, deadline=None, database=None)
@given(instants, st.sampled_from(ZONES), windows)
def test_the_next_send_time_is_never_quiet_never_early_and_the_earliest_such(
    instant: datetime, tz: ZoneInfo, window: QuietWindow
) -> None:
    result = next_send_time(instant, tz, window)
    assert result >= instant
    assert not is_quiet(result, tz, window)
    if not is_quiet(instant, tz, window):
        assert result == instant
    else:
        # The earliest: the moment before it is still quiet.
        assert is_quiet(result - timedelta(microseconds=1), tz, window)


@settings(max_examples=300, deadline=None, database=None)
@given(instants, st.sampled_from(ZONES))
def test_a_local_day_holds_the_instant_and_is_one_calendar_day(
    instant: datetime, tz: ZoneInfo
) -> None:
    start, end = local_day(instant, tz)
    assert start <= instant < end
    assert start.astimezone(tz).date() == instant.astimezone(tz).date()
    assert (end - timedelta(microseconds=1)).astimezone(tz).date() == instant.astimezone(tz).date()
    assert end.astimezone(tz).date() > instant.astimezone(tz).date()
    assert timedelta(hours=22) <= end - start <= timedelta(hours=26)
