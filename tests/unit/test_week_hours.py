"""The store's week as the pickup card shows it: each day's spans in the shopper's words."""

from __future__ import annotations

import pytest

from portal.templating import week_hours

WEEK = {"mon": ["09:30-13:00", "15:00-19:30"], "sat": ["10:00-24:00"], "sun": ["00:00-24:00"]}
NNBSP = "\u202f"  # Babel's narrow no-break space before AM/PM


def test_each_day_lists_its_spans_monday_first_and_closed_days_have_none() -> None:
    days = dict(week_hours(WEEK, "en"))
    assert list(days) == [
        "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"
    ]  # fmt: skip
    assert days["Monday"] == (f"9:30{NNBSP}AM – 1:00{NNBSP}PM", f"3:00{NNBSP}PM – 7:30{NNBSP}PM")
    assert days["Tuesday"] == ()
    assert days["Saturday"] == (f"10:00{NNBSP}AM – 12:00{NNBSP}AM",)  # until midnight


@pytest.mark.parametrize(
    ("locale", "sunday", "all_day"),
    [
        ("en", "Sunday", "Open 24 hours"),
        ("it", "domenica", "Aperto 24 ore su 24"),
        ("pl", "niedziela", "Czynne całą dobę"),
        ("es", "domingo", "Abierto las 24 horas"),
    ],
)
def test_a_day_open_round_the_clock_says_so_in_the_shoppers_language(
    locale: str, sunday: str, all_day: str
) -> None:
    # Midnight to midnight would read "12:00 AM – 12:00 AM".
    assert week_hours(WEEK, locale)[6] == (sunday, (all_day,))
