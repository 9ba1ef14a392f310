"""Reading a shopper's text: keywords, yes, survey answers, and when the survey is due."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from portal.domain.inbound import Keyword, is_yes, keyword, local_day, survey_answer, survey_due


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STOP", Keyword.STOP),
        (" stop ", Keyword.STOP),
        ("Stop!", Keyword.STOP),
        ("s t o p", Keyword.STOP),
        ("Basta", Keyword.STOP),
        ("nie", Keyword.STOP),
        ("BAJA.", Keyword.STOP),
        ("start", Keyword.START),
        ("Attiva", Keyword.START),
        ("ALTA", Keyword.START),
        ("help", Keyword.HELP),
        ("Aiuto?", Keyword.HELP),
        ("pomoc", Keyword.HELP),
        ("AYUDA", Keyword.HELP),
        ("please stop sending", None),
        ("stopped", None),
        ("", None),
    ],
)
def test_a_keyword_is_the_whole_text_whatever_its_case_spaces_and_punctuation(text, expected):
    assert keyword(text) is expected


@pytest.mark.parametrize("text", ["1", "ok", "OK!", "Sì", "si", "SÍ", "tak", "Yes", " y "])
def test_a_yes_is_read_in_every_language_with_accents_tolerated(text):
    assert is_yes(text)


@pytest.mark.parametrize("text", ["2", "no", "not sure", "okay then see you", ""])
def test_anything_else_is_not_a_yes(text):
    assert not is_yes(text)


@pytest.mark.parametrize(
    ("text", "score", "comment"),
    [
        ("5", 5, None),
        (" 4 ", 4, None),
        ("4/5", 4, None),
        ("3 / 5 slow", 3, "slow"),
        ("5 great   service", 5, "great service"),
        ("2. the box was wet", 2, "the box was wet"),
        ("1!", 1, None),
    ],
)
def test_a_survey_answer_is_a_score_then_an_optional_comment(text, score, comment):
    answer = survey_answer(text)
    assert answer is not None
    assert (answer.score, answer.comment) == (score, comment)


@pytest.mark.parametrize("text", ["0", "6", "10", "45", "I'd say 4", "", "great"])
def test_other_texts_are_not_survey_answers(text):
    assert survey_answer(text) is None


def test_a_long_comment_is_cut_to_what_the_column_holds():
    answer = survey_answer("4 " + "x" * 500)
    assert answer is not None and answer.comment is not None
    assert len(answer.comment) == 300


def test_the_survey_is_due_the_next_local_day_at_ten():
    # Monday 22:30 in Rome -> Tuesday 10:00 in Rome (09:00 UTC).
    assert survey_due(datetime(2026, 11, 23, 21, 30, tzinfo=UTC), "Europe/Rome") == datetime(
        2026, 11, 24, 9, 0, tzinfo=UTC
    )
    # Monday 23:30 UTC is already Tuesday in Rome -> Wednesday 10:00.
    assert survey_due(datetime(2026, 11, 23, 23, 30, tzinfo=UTC), "Europe/Rome") == datetime(
        2026, 11, 25, 9, 0, tzinfo=UTC
    )
    # Across the switch to summer time: 10:00 is 08:00 UTC the day after.
    assert survey_due(datetime(2027, 3, 27, 12, 0, tzinfo=UTC), "Europe/Rome") == datetime(
        2027, 3, 28, 8, 0, tzinfo=UTC
    )


def test_the_local_day_follows_the_shoppers_zone():
    assert local_day(datetime(2026, 11, 23, 23, 30, tzinfo=UTC), "Europe/Warsaw") == "2026-11-24"
    assert local_day(datetime(2026, 11, 23, 23, 30, tzinfo=UTC), "Europe/London") == "2026-11-23"
