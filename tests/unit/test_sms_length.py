"""SMS length: GSM-7 or UCS-2, units, segments; transliteration into GSM-7."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.domain.sms_text import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    TRANSLITERATION,
    SmsLength,
    is_gsm7,
    measure,
    transliterate,
)

GSM7 = sorted(GSM7_BASIC | GSM7_EXTENSION)
POLISH = "ąćęłńóśźżĄĆĘŁŃÓŚŹŻ"
FAST = settings(max_examples=200, database=None, deadline=None)


# ------------------------------------------------------------------ the character sets


def test_the_gsm7_basic_set_has_its_127_printable_characters_and_the_extension_its_ten() -> None:
    # 128 code points in GSM 03.38's basic table, one of which is the escape itself.
    assert len(GSM7_BASIC) == 127
    assert sorted(GSM7_EXTENSION) == sorted("^{}\\[~]|€\f")
    assert not GSM7_BASIC & GSM7_EXTENSION


def test_the_famous_look_alikes_are_in_the_right_table() -> None:
    assert {"é", "è", "ù", "ì", "ò", "à", "Ç", "ñ", "ß", "Δ"} <= GSM7_BASIC
    assert not {"á", "í", "ó", "ú", "ç", "ę", "ł", "`", "ê"} & (GSM7_BASIC | GSM7_EXTENSION)


# ------------------------------------------------------------------ boundaries


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 160, SmsLength("gsm7", 160, 1)),
        ("a" * 161, SmsLength("gsm7", 161, 2)),
        ("a" * 306, SmsLength("gsm7", 306, 2)),
        ("a" * 307, SmsLength("gsm7", 307, 3)),
        ("a" * 459, SmsLength("gsm7", 459, 3)),
        ("a" * 460, SmsLength("gsm7", 460, 4)),
        ("€" * 80, SmsLength("gsm7", 160, 1)),
        ("€" * 81, SmsLength("gsm7", 162, 2)),
        ("a" * 159 + "€", SmsLength("gsm7", 161, 2)),
        ("ą" * 70, SmsLength("ucs2", 70, 1)),
        ("ą" * 71, SmsLength("ucs2", 71, 2)),
        ("ą" * 134, SmsLength("ucs2", 134, 2)),
        ("ą" * 135, SmsLength("ucs2", 135, 3)),
        ("😀", SmsLength("ucs2", 2, 1)),
        ("😀" * 35, SmsLength("ucs2", 70, 1)),
        ("😀" * 36, SmsLength("ucs2", 72, 2)),
        ("a" * 69 + "ą", SmsLength("ucs2", 70, 1)),
        ("€" * 70 + "ą", SmsLength("ucs2", 71, 2)),  # € is one unit in UCS-2
    ],
    ids=lambda v: repr(v)[:24] if isinstance(v, str) else str(v.segments),
)
def test_texts_at_the_segment_boundaries_count_exactly(text: str, expected: SmsLength) -> None:
    assert measure(text) == expected


def test_an_empty_text_is_gsm7_with_no_units_and_no_segments() -> None:
    assert measure("") == SmsLength("gsm7", 0, 0)


def test_one_character_outside_gsm7_turns_the_whole_text_to_ucs2() -> None:
    assert measure("a" * 100 + "ł").encoding == "ucs2"
    assert measure("a" * 100 + "ł").segments == 2


def test_the_datacoding_follows_the_encoding() -> None:
    assert measure("ciao").datacoding == "plain"
    assert measure("cześć").datacoding == "unicode"


def test_an_extension_character_is_not_split_across_two_segments() -> None:
    assert measure("a" * 152 + "€" + "a" * 152).segments == 3


def test_an_emoji_is_not_split_across_two_segments() -> None:
    assert measure("ą" * 66 + "😀" + "ą" * 66).segments == 3


@FAST
@given(st.text(alphabet=GSM7, max_size=500))
def test_gsm7_units_count_extension_characters_twice(text: str) -> None:
    got = measure(text)
    assert got.encoding == "gsm7"
    assert got.units == len(text) + sum(c in GSM7_EXTENSION for c in text)
    expected = 0 if not text else 1 if got.units <= 160 else -(-got.units // 153)
    assert got.segments == expected


# ------------------------------------------------------------------ transliteration


@pytest.mark.parametrize("char", GSM7, ids=lambda c: f"U+{ord(c):04X}")
def test_every_gsm7_character_comes_out_of_transliteration_unchanged(char: str) -> None:
    assert transliterate(char) == char


@FAST
@given(st.text(alphabet=GSM7, max_size=200))
def test_any_text_made_only_of_gsm7_characters_is_left_unchanged(text: str) -> None:
    assert transliterate(text) == text


PRINTABLE_ASCII = "".join(chr(c) for c in range(0x20, 0x7F))


@FAST
@given(st.text(alphabet=POLISH + PRINTABLE_ASCII.replace("`", ""), max_size=200))
def test_any_polish_text_transliterates_into_gsm7(text: str) -> None:
    out = transliterate(text)
    assert is_gsm7(out)
    assert measure(out).encoding == "gsm7"
    assert len(out) == len(text)  # Polish letters map one to one


def test_the_backtick_is_the_only_printable_ascii_character_outside_gsm7() -> None:
    assert [c for c in PRINTABLE_ASCII if not is_gsm7(c)] == ["`"]


def test_a_backtick_transliterates_into_gsm7() -> None:
    assert is_gsm7(transliterate("Cześć D`Angelo"))


def test_a_polish_pangram_loses_only_its_diacritics() -> None:
    assert transliterate("Zażółć gęślą jaźń. ZAŻÓŁĆ GĘŚLĄ JAŹŃ") == (
        "Zazolc gesla jazn. ZAZOLC GESLA JAZN"
    )


def test_typographic_punctuation_becomes_plain_gsm7_punctuation() -> None:
    assert transliterate("„Cześć” – ‘hi’ … «ok»\u00a0•") == '"Czesc" - \'hi\' ... "ok" -'


def test_every_transliteration_target_is_gsm7() -> None:
    for source, target in TRANSLITERATION.items():
        assert not is_gsm7(source), source
        assert is_gsm7(target), (source, target)


def test_accented_letters_without_a_table_entry_fall_back_to_their_base_letter() -> None:
    assert transliterate("Ďž") == "Dz"


def test_characters_without_a_gsm7_look_alike_stay_and_keep_the_text_ucs2() -> None:
    assert transliterate("Привет 😀") == "Привет 😀"
    assert measure(transliterate("Привет")).encoding == "ucs2"
