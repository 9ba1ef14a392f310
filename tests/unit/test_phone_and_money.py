"""Phone numbers (normalised, masked, placed) and money (decimal strings to minor units)."""

from __future__ import annotations

from decimal import Decimal

import phonenumbers
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberType

from portal.domain import DomainError
from portal.domain.locale import page_locale, pick
from portal.domain.money import (
    InvalidMoney,
    check_currency,
    format_decimal_string,
    from_minor,
    to_minor,
)
from portal.domain.phone import InvalidPhone, mask, msisdn, normalise, region_of, timezone_of

FAST = settings(max_examples=200, database=None, deadline=None)

# ------------------------------------------------------------------ normalise


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("347 123 4567", "IT", "+393471234567"),
        ("347-123-4567", "IT", "+393471234567"),
        ("  3471234567 ", "IT", "+393471234567"),
        ("0039 347 1234567", "IT", "+393471234567"),
        ("+39 347 123 4567", "PL", "+393471234567"),
        ("+48 601 234 567", "IT", "+48601234567"),
        ("601 234 567", "PL", "+48601234567"),
        ("612 34 56 78", "ES", "+34612345678"),
        ("06 1234 5678", "IT", "+390612345678"),  # Italian landlines keep their 0
    ],
)
def test_a_number_is_stored_in_e164(raw: str, region: str, expected: str) -> None:
    assert normalise(raw, region) == expected


def test_an_international_number_keeps_its_own_country_whatever_the_default() -> None:
    e164 = normalise("+48 601 234 567", "IT")
    assert region_of(e164) == "PL"


PERSON_MESSAGES = {
    "a phone number is required",
    "this is too long for a phone number",
    "this is not a phone number",
    "this is not a valid phone number",
}


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "hello",
        "not a number",
        "12",
        "347",
        "3471",
        "+39",
        "+39 12",
        "1" * 33,
        "+999 1234",
    ],
)
def test_garbage_and_too_short_numbers_are_refused_in_words_a_person_understands(
    raw: str,
) -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalise(raw, "IT")
    assert isinstance(caught.value, DomainError)
    assert str(caught.value) in PERSON_MESSAGES


def test_a_national_number_without_a_known_default_region_is_refused() -> None:
    with pytest.raises(InvalidPhone):
        normalise("347 123 4567", "ZZ")


# ------------------------------------------------------------------ mask

REGIONS = ["IT", "PL", "ES", "GB", "US", "DE", "FR", "NL", "PT", "IE"]


@st.composite
def valid_numbers(draw: st.DrawFn) -> phonenumbers.PhoneNumber:
    region = draw(st.sampled_from(REGIONS))
    kind = draw(st.sampled_from([PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE]))
    example = phonenumbers.example_number_for_type(region, kind)
    nsn = phonenumbers.national_significant_number(example)
    tail = draw(st.text(alphabet="0123456789", min_size=len(nsn) - 3, max_size=len(nsn) - 3))
    number = phonenumbers.parse(f"+{example.country_code}{nsn[:3]}{tail}")
    assume(phonenumbers.is_valid_number(number))
    return number


@FAST
@given(valid_numbers())
def test_a_masked_number_shows_the_country_code_and_only_the_last_three_digits(
    number: phonenumbers.PhoneNumber,
) -> None:
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    nsn = phonenumbers.national_significant_number(number)
    prefix = f"+{number.country_code}"
    masked = mask(e164)
    assert masked.startswith(prefix)
    rest = masked[len(prefix) :]
    assert "".join(c for c in rest if c.isdigit()) == nsn[-3:]
    assert rest.count("•") == len(nsn) - 3
    assert nsn[:4] not in masked


def test_an_italian_mobile_is_masked_to_its_last_three_digits() -> None:
    assert mask("+393471234567") == "+39 ••• ••• •567"


def test_something_that_is_not_a_number_is_masked_completely() -> None:
    assert mask("garbage") == "•••"


# ------------------------------------------------------------------ msisdn, region, zone, locale


def test_messagebird_gets_the_digits_without_the_plus() -> None:
    assert msisdn("+393471234567") == "393471234567"


def test_region_and_time_zone_come_from_the_number() -> None:
    assert region_of("+393471234567") == "IT"
    assert region_of("+48601234567") == "PL"
    assert region_of("nonsense") is None
    assert timezone_of("+393471234567") == "Europe/Rome"
    assert timezone_of("+48601234567") == "Europe/Warsaw"
    assert timezone_of("nonsense", fallback="Europe/Rome") == "Europe/Rome"


def test_a_spanish_mobile_is_in_madrid_time() -> None:
    assert timezone_of("+34612345678") == "Europe/Madrid"


@pytest.mark.parametrize(
    ("requested", "region", "expected"),
    [
        ("it-IT", None, "it"),
        ("pl_PL", "IT", "pl"),
        ("ES", None, "es"),
        (" en-GB", "PL", "en"),
        ("fr-FR", "PL", "pl"),  # not spoken: the phone's country decides
        (None, "SM", "it"),
        ("", "ES", "es"),
        (None, "US", "en"),
        (None, None, "en"),
    ],
)
def test_the_shoppers_language_is_the_shops_word_if_spoken_else_the_phones_country(
    requested: str | None, region: str | None, expected: str
) -> None:
    assert pick(requested, region) == expected


def test_pages_speak_every_supported_language_and_fall_back_to_english() -> None:
    assert page_locale("en") == "en"
    assert page_locale("pl") == "pl"
    assert page_locale("de") == "en"


# ------------------------------------------------------------------ money


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("19.90", "EUR", 1990),
        ("19.9", "EUR", 1990),
        ("19", "EUR", 1900),
        ("0", "EUR", 0),
        ("0.01", "EUR", 1),
        (" 2.50 ", "EUR", 250),
        ("1500", "JPY", 1500),
        ("1.234", "KWD", 1234),
        ("999999999.99", "EUR", 99999999999),
    ],
)
def test_a_decimal_string_becomes_integer_minor_units(
    amount: str, currency: str, minor: int
) -> None:
    assert to_minor(amount, currency) == minor


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("-1.00", "EUR"),
        ("1e3", "EUR"),
        ("1E-2", "EUR"),
        ("1,50", "EUR"),
        ("19.999", "EUR"),
        ("1.5", "JPY"),
        ("1.2345", "KWD"),
        (".50", "EUR"),
        ("5.", "EUR"),
        ("", "EUR"),
        ("NaN", "EUR"),
        ("Infinity", "EUR"),
        ("+1.00", "EUR"),
        ("1 000", "EUR"),
        ("1234567890", "EUR"),  # ten integer digits
        ("1.00001", "EUR"),
    ],
)
def test_negatives_exponents_and_too_many_decimals_are_refused(amount: str, currency: str) -> None:
    with pytest.raises(InvalidMoney):
        to_minor(amount, currency)


def test_a_number_instead_of_a_string_is_refused() -> None:
    with pytest.raises(InvalidMoney):
        to_minor(19.9, "EUR")  # type: ignore[arg-type]


def test_the_refusal_names_the_currencys_decimals() -> None:
    with pytest.raises(InvalidMoney, match="JPY has 0 decimals at most"):
        to_minor("1.5", "JPY")


CURRENCIES = st.sampled_from(["EUR", "PLN", "GBP", "USD", "JPY", "KWD", "CHF"])


@FAST
@given(minor=st.integers(0, 99_999_999), currency=CURRENCIES)
def test_minor_units_survive_a_round_trip_through_the_decimal_string(
    minor: int, currency: str
) -> None:
    text = format_decimal_string(minor, currency)
    assert to_minor(text, currency) == minor
    assert from_minor(minor, currency) == Decimal(text)


@pytest.mark.parametrize(
    ("raw", "code"), [("EUR", "EUR"), ("eur", "EUR"), (" pln ", "PLN"), ("JPY", "JPY")]
)
def test_a_currency_code_is_cleaned_to_its_iso_form(raw: str, code: str) -> None:
    assert check_currency(raw) == code


@pytest.mark.parametrize("raw", ["", "   ", "EURO", "XYZ", "€", "E"])
def test_an_unknown_currency_is_refused(raw: str) -> None:
    with pytest.raises(InvalidMoney, match="is not an ISO 4217 currency code"):
        check_currency(raw)
