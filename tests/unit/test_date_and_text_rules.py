"""The date rule and the text-field rule of the contract's decisions, as pure functions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from portal.domain import dates
from portal.domain.text import TextRefused, clean_text
from portal.templating import day, when

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(2000, 1, 1, 0, 30, tzinfo=timezone(timedelta(minutes=-30))),  # 01:00 UTC
        datetime(2026, 11, 23, 9, 30),  # naive: UTC
    ],
)
def test_moments_inside_the_window_are_accepted_in_utc(value):
    accepted = dates.accepted(value)
    assert accepted.tzinfo == UTC
    assert accepted == (value if value.tzinfo else value.replace(tzinfo=UTC))


@pytest.mark.parametrize(
    "value",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),  # year 0 in UTC
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5))),
        datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(2000, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),  # 1999 in UTC
        datetime(2100, 1, 1, tzinfo=UTC),
    ],
)
def test_moments_outside_the_window_are_refused(value):
    with pytest.raises(dates.DateRefused, match="between 2000-01-01 and 2100-01-01"):
        dates.accepted(value)
    assert dates.shown(value) is None


def test_an_event_may_be_a_day_ahead_of_now_and_no_more():
    assert dates.occurred(NOW + timedelta(hours=24), NOW) == NOW + timedelta(hours=24)
    with pytest.raises(dates.DateRefused, match="24 hours"):
        dates.occurred(NOW + timedelta(hours=24, seconds=1), NOW)


def test_stored_days_are_shown_only_inside_the_window():
    assert dates.shown_day("2026-11-27") == date(2026, 11, 27)
    assert dates.shown_day("0001-01-01") is None
    assert dates.shown_day("not a day") is None
    assert dates.shown_day(date(2100, 1, 1)) is None


def test_a_date_only_eta_is_that_day_in_the_shoppers_zone():
    eta = dates.parse_eta("2026-12-05", "Pacific/Auckland")
    assert eta.date_only
    assert eta.moment.tzinfo == UTC
    for zone in ("Pacific/Auckland", "Europe/Rome", "America/Los_Angeles"):
        shown = dates.parse_eta("2026-12-05", zone).moment.astimezone(ZoneInfo(zone))
        assert shown.date() == date(2026, 12, 5)


def test_an_eta_with_a_time_is_a_moment_and_anything_else_is_unreadable():
    eta = dates.parse_eta("2026-12-05T23:30:00-02:00", "Europe/Rome")
    assert not eta.date_only and eta.moment == datetime(2026, 12, 6, 1, 30, tzinfo=UTC)
    with pytest.raises(dates.DateRefused):
        dates.parse_eta("0001-01-01T00:00:00Z", "Europe/Rome")
    with pytest.raises(dates.DateRefused):
        dates.parse_eta("0001-01-01", "Europe/Rome")
    for text in ("soon", "2026-02-30", "20261205", "2026-12-05T25:00:00Z"):
        with pytest.raises(dates.DateUnreadable):
            dates.parse_eta(text, "Europe/Rome")


def test_line_ends_become_lf_and_are_never_refused_where_lines_are_allowed():
    assert clean_text("Ring twice\r\nthen wait\rplease", multiline=True) == (
        "Ring twice\nthen wait\nplease"
    )
    assert clean_text("Via Roma\t1", multiline=False) == "Via Roma\t1"


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x0b", "\x0c", "\x7f"])
def test_control_characters_are_refused_by_their_code(char):
    for multiline in (True, False):
        with pytest.raises(TextRefused, match=f"U\\+{ord(char):04X}"):
            clean_text(f"Giulia{char}Bianchi", multiline=multiline)


def test_a_single_line_field_refuses_a_line_break_even_from_a_lone_cr():
    for text in ("Giulia\nBianchi", "Giulia\r\nBianchi", "Giulia\rBianchi"):
        with pytest.raises(TextRefused, match="single line"):
            clean_text(text, multiline=False)


def test_the_pages_date_filters_leave_out_what_no_zone_can_hold():
    year_1 = datetime(1, 1, 1, tzinfo=UTC)
    year_9999 = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert when(year_1, "en", "America/New_York") == ""
    assert day(year_9999, "en", "Europe/Rome") == ""
    assert when(NOW, "en", "Europe/Rome") == "Nov 23, 2026, 10:30\u202fAM"
