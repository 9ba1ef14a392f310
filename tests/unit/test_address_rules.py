"""Addresses a shopper types for a redirected parcel: required fields, postcodes, tidying."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.domain.address import (
    FIELDS,
    MAX_LENGTH,
    POSTCODES,
    Address,
    AddressErrors,
    check_address,
)

FAST = settings(max_examples=200, database=None, deadline=None)

MILAN = {"name": "Anna Bianchi", "line1": "Via Torino 12", "postcode": "20123", "city": "Milano"}
WARSAW = {"line1": "ul. Marszałkowska 10", "postcode": "00-950", "city": "Warszawa"}
MADRID = {"line1": "Calle de Alcalá 42", "postcode": "28013", "city": "Madrid"}


def _errors(fields: dict[str, str | None], country: str) -> dict[str, str]:
    with pytest.raises(AddressErrors) as caught:
        check_address(fields, country)
    return caught.value.errors


# ------------------------------------------------------------------ accepted addresses


def test_an_italian_address_with_its_province_is_accepted_and_tidied() -> None:
    address = check_address(
        {**MILAN, "line1": "  Via   Torino\t12 ", "region": " mi ", "line2": ""}, "it"
    )
    assert address == Address(
        line1="Via Torino 12",
        postcode="20123",
        city="Milano",
        country="IT",
        name="Anna Bianchi",
        region="MI",
    )


def test_a_polish_and_a_spanish_address_need_no_province() -> None:
    assert check_address(WARSAW, "PL").postcode == "00-950"
    assert check_address(MADRID, "ES").city == "Madrid"


def test_the_short_form_shows_postcode_and_city_but_not_the_street() -> None:
    address = check_address({**MILAN, "region": "MI"}, "IT")
    assert address.short == "20123 Milano"
    assert "Torino" not in address.short


def test_the_stored_form_leaves_out_empty_fields() -> None:
    address = check_address(WARSAW, "PL")
    assert address.as_dict() == {
        "line1": "ul. Marszałkowska 10",
        "postcode": "00-950",
        "city": "Warszawa",
        "country": "PL",
    }


def test_control_characters_pasted_into_a_field_become_plain_spaces() -> None:
    address = check_address({**WARSAW, "line1": "ul. Marszałkowska\x00\n10\u200b"}, "PL")
    assert address.line1 == "ul. Marszałkowska 10"


# ------------------------------------------------------------------ required fields


def test_an_empty_italian_form_names_every_missing_field_at_once() -> None:
    errors = _errors({}, "IT")
    assert errors == {
        "line1": "Street and number is required",
        "postcode": "Postcode is required",
        "city": "City is required",
        "region": "Province is required",
    }


@pytest.mark.parametrize("country", ["PL", "ES", "FR", "CH"])
def test_outside_italy_the_province_is_not_asked_for(country: str) -> None:
    assert set(_errors({"line1": "   "}, country)) == {"line1", "postcode", "city"}


def test_the_name_on_the_door_and_the_flat_are_optional() -> None:
    address = check_address({**WARSAW, "name": None, "line2": None}, "PL")
    assert address.name is None and address.line2 is None


def test_a_street_given_as_a_number_alone_is_refused() -> None:
    assert _errors({**WARSAW, "line1": "10/4"}, "PL") == {
        "line1": "Write the street's name as well as the number"
    }


@pytest.mark.parametrize("region", ["Milano", "M", "M1", "MIL"])
def test_an_italian_province_must_be_its_two_letter_code(region: str) -> None:
    errors = _errors({**MILAN, "region": region}, "IT")
    assert errors == {"region": "Write the province as its two-letter code (like MI)"}


@pytest.mark.parametrize("field", [f for f in FIELDS if f != "country"])
def test_a_field_longer_than_its_limit_is_refused_with_the_limit(field: str) -> None:
    too_long = "a" * (MAX_LENGTH[field] + 1)
    errors = _errors({**MILAN, "region": "MI", field: too_long}, "IT")
    assert errors[field].endswith(f"is too long (at most {MAX_LENGTH[field]} characters)")


def test_the_errors_read_as_one_message_as_well() -> None:
    with pytest.raises(AddressErrors, match="postcode: This is not a postcode in PL"):
        check_address({**WARSAW, "postcode": "123"}, "PL")


# ------------------------------------------------------------------ postcodes


@pytest.mark.parametrize(
    ("country", "typed", "stored"),
    [
        ("IT", "20123", "20123"),
        ("IT", " 00118 ", "00118"),
        ("PL", "00-950", "00-950"),
        ("PL", "00950", "00-950"),
        ("ES", "01001", "01001"),
        ("ES", "52001", "52001"),
        ("ES", "28013", "28013"),
        ("PT", "1100148", "1100-148"),
        ("NL", "1012ab", "1012 AB"),
        ("GB", "sw1a1aa", "SW1A 1AA"),
        ("GB", "M1 1AE", "M1 1AE"),
        ("CH", "8001", "8001"),  # not listed: a loose check
    ],
)
def test_a_postcode_is_accepted_in_the_form_people_write_it(
    country: str, typed: str, stored: str
) -> None:
    fields = {**MILAN, "postcode": typed, "region": "MI"}
    assert check_address(fields, country).postcode == stored


@pytest.mark.parametrize(
    ("country", "typed", "example"),
    [
        ("IT", "2012", "20121"),
        ("IT", "201234", "20121"),
        ("IT", "2O123", "20121"),  # a letter O
        ("PL", "009-50", "00-950"),
        ("PL", "0095", "00-950"),
        ("ES", "00123", "28013"),  # no province 00
        ("ES", "53001", "28013"),  # nor 53
        ("ES", "2801", "28013"),
    ],
)
def test_a_malformed_postcode_is_refused_with_an_example_of_the_right_form(
    country: str, typed: str, example: str
) -> None:
    errors = _errors({**MILAN, "postcode": typed, "region": "MI"}, country)
    assert errors == {"postcode": f"This is not a postcode in {country} (like {example})"}


def test_a_postcode_in_a_country_without_a_pattern_still_needs_letters_or_digits() -> None:
    assert _errors({**MILAN, "postcode": "--"}, "CH") == {
        "postcode": "This is not a postcode in CH"
    }


def test_a_postcode_typed_in_full_width_or_other_digits_is_stored_in_plain_digits() -> None:
    # A courier's label printer reads 0-9 only; a phone keyboard may give other digits.
    assert check_address({**MILAN, "postcode": "２０１２３", "region": "MI"}, "IT").postcode == (
        "20123"
    )
    assert check_address({**WARSAW, "postcode": "٠٠٩٥٠"}, "PL").postcode == "00-950"


# ------------------------------------------------------------------ properties


@FAST
@given(st.integers(0, 99999).map("{:05d}".format))
def test_any_five_digits_are_an_italian_postcode(code: str) -> None:
    assert check_address({**MILAN, "postcode": code, "region": "MI"}, "IT").postcode == code


@FAST
@given(st.integers(0, 99), st.integers(0, 999), st.sampled_from(["-", ""]))
def test_any_two_and_three_digits_are_a_polish_postcode_with_or_without_the_dash(
    first: int, second: int, dash: str
) -> None:
    typed = f"{first:02d}{dash}{second:03d}"
    assert check_address({**WARSAW, "postcode": typed}, "PL").postcode == (
        f"{first:02d}-{second:03d}"
    )


@FAST
@given(st.integers(0, 99), st.integers(0, 999))
def test_a_spanish_postcode_is_accepted_exactly_when_it_starts_with_a_province(
    province: int, rest: int
) -> None:
    typed = f"{province:02d}{rest:03d}"
    if 1 <= province <= 52:
        assert check_address({**MADRID, "postcode": typed}, "ES").postcode == typed
    else:
        assert set(_errors({**MADRID, "postcode": typed}, "ES")) == {"postcode"}


ANY_TEXT = st.one_of(st.none(), st.text(max_size=40), st.text(max_size=250))
NOISE = st.sampled_from(["", " ", "  ", "\t", "\n", "\x00", "\u200b", "\u00a0"])


def _noisy(values: list[str]) -> st.SearchStrategy[str | None]:
    """Good values as people paste them (stray spaces, controls), or anything at all."""
    pasted = st.builds(
        lambda before, value, after: before + value + after,
        NOISE,
        st.sampled_from(values),
        NOISE,
    )
    return st.one_of(pasted, pasted, ANY_TEXT)


FORMS = st.fixed_dictionaries(
    {
        "name": _noisy(["Anna Bianchi", "Łukasz Nowak", ""]),
        "line1": _noisy(["Via Torino 12", "ul. Marszałkowska 10", "Calle de Alcalá 42"]),
        "line2": _noisy(["Scala B, interno 4", ""]),
        "postcode": _noisy(["20123", "00-950", "00950", "28013", "sw1a1aa", "1012ab"]),
        "city": _noisy(["Milano", "Warszawa", "Madrid"]),
        "region": _noisy(["MI", "mi", "Milano", ""]),
    }
)


@FAST
@given(
    fields=FORMS,
    country=st.sampled_from(["IT", "PL", "ES", "GB", "NL", "CH", "it"]),
)
def test_any_typed_form_gives_a_clean_address_or_errors_for_named_fields(
    fields: dict[str, str | None], country: str
) -> None:
    try:
        address = check_address(fields, country)
    except AddressErrors as caught:
        assert caught.errors
        assert set(caught.errors) <= set(FIELDS)
        return
    for name, value in address.as_dict().items():
        assert value == " ".join(value.split())  # one line, no stray spaces
        assert value.isprintable()
        assert len(value) <= MAX_LENGTH[name]
    if address.country in POSTCODES:
        assert re.fullmatch(POSTCODES[address.country][0], address.postcode, re.ASCII)
    # What was accepted is accepted again, unchanged: saving twice changes nothing.
    assert check_address(address.as_dict(), address.country) == address
