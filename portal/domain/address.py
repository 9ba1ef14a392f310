"""Postal addresses a shopper types: required fields per country and postcode formats.

Pure: no I/O. `check_address` returns a clean address or raises `AddressErrors` with one
message per field, so a form can show each next to its box and keep what was typed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from portal.domain import DomainError
from portal.domain.i18n import N_, Msg, Nf_

FIELDS = ("name", "line1", "line2", "postcode", "city", "region", "country")
MAX_LENGTH = {
    "name": 120,
    "line1": 200,
    "line2": 200,
    "postcode": 16,
    "city": 120,
    "region": 64,
    "country": 2,
}

# Postcode patterns (after normalising: upper case, single spaces) and an example each,
# for the message. Countries not listed get a loose check.
POSTCODES: dict[str, tuple[str, str]] = {
    "IT": (r"\d{5}", "20121"),
    "PL": (r"\d{2}-\d{3}", "00-950"),
    # Spanish postcodes start with the province number, 01 to 52.
    "ES": (r"(0[1-9]|[1-4]\d|5[0-2])\d{3}", "28013"),
    "FR": (r"\d{5}", "75001"),
    "DE": (r"\d{5}", "10115"),
    "AT": (r"\d{4}", "1010"),
    "BE": (r"\d{4}", "1000"),
    "PT": (r"\d{4}-\d{3}", "1100-148"),
    "NL": (r"\d{4} [A-Z]{2}", "1012 AB"),
    "GB": (r"[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}", "SW1A 1AA"),
}
LOOSE_POSTCODE = r"[A-Z0-9][A-Z0-9 -]{1,9}"

# Fields a courier needs, beyond street, postcode and city. Italian couriers want the
# province (its two-letter code, e.g. MI).
REQUIRED_BASE = ("line1", "postcode", "city")
REQUIRED_EXTRA: dict[str, tuple[str, ...]] = {"IT": ("region",)}
REGION_PATTERNS: dict[str, tuple[str, str]] = {"IT": (r"[A-Z]{2}", "MI")}

# The form's labels, which messages name (translated with them on a page).
LABELS = {
    "name": N_("Name on the door"),
    "line1": N_("Street and number"),
    "line2": N_("Flat, floor, staircase"),
    "postcode": N_("Postcode"),
    "city": N_("City"),
    "region": N_("Province"),
    "country": N_("Country"),
}


class AddressErrors(DomainError):
    """Field name -> what is wrong with it, in a person's words."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


@dataclass(frozen=True, slots=True)
class Address:
    line1: str
    postcode: str
    city: str
    country: str
    name: str | None = None
    line2: str | None = None
    region: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v}

    @property
    def short(self) -> str:
        """What a page or SMS may show: postcode and city, no street."""
        return f"{self.postcode} {self.city}"


def _clean(value: str | None) -> str:
    """One line of printable text: controls dropped, runs of spaces made one."""
    text = unicodedata.normalize("NFC", value or "")
    text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    return " ".join(text.split())


def _ascii_digits(text: str) -> str:
    """Full-width or other scripts' digits as 0-9: a courier's system reads only those."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)


def normalise_postcode(country: str, value: str) -> str:
    code = _ascii_digits(_clean(value)).upper()
    if country == "PL" and re.fullmatch(r"\d{5}", code):
        return f"{code[:2]}-{code[2:]}"
    if country == "PT" and re.fullmatch(r"\d{7}", code):
        return f"{code[:4]}-{code[4:]}"
    if country == "NL" and re.fullmatch(r"\d{4}[A-Z]{2}", code):
        return f"{code[:4]} {code[4:]}"
    if country == "GB" and " " not in code and 5 <= len(code) <= 7:
        return f"{code[:-3]} {code[-3:]}"
    return code


def check_address(fields: Mapping[str, str | None], country: str) -> Address:
    """A deliverable address in `country` (the order's: deliveries are redirected within
    it), or AddressErrors naming every field that is missing or malformed."""
    country = country.upper()
    values = {name: _clean(fields.get(name)) for name in FIELDS if name != "country"}
    errors: dict[str, str] = {}
    for name in (*REQUIRED_BASE, *REQUIRED_EXTRA.get(country, ())):
        if not values[name]:
            errors[name] = Nf_("%(field)s is required", field=Msg(LABELS[name]))
    for name, value in values.items():
        if len(value) > MAX_LENGTH[name]:
            errors[name] = Nf_(
                "%(field)s is too long (at most %(max)s characters)",
                field=Msg(LABELS[name]),
                max=MAX_LENGTH[name],
            )
    if values["postcode"] and "postcode" not in errors:
        values["postcode"] = normalise_postcode(country, values["postcode"])
        pattern, example = POSTCODES.get(country, (LOOSE_POSTCODE, ""))
        if not re.fullmatch(pattern, values["postcode"], re.ASCII):
            errors["postcode"] = (
                Nf_(
                    "This is not a postcode in %(country)s (like %(example)s)",
                    country=country,
                    example=example,
                )
                if example
                else Nf_("This is not a postcode in %(country)s", country=country)
            )
    if country in REGION_PATTERNS and values["region"] and "region" not in errors:
        values["region"] = values["region"].upper()
        pattern, example = REGION_PATTERNS[country]
        if not re.fullmatch(pattern, values["region"], re.ASCII):
            errors["region"] = Nf_(
                "Write the province as its two-letter code (like %(example)s)", example=example
            )
    if values["line1"] and not any(ch.isalpha() for ch in values["line1"]):
        errors.setdefault("line1", N_("Write the street's name as well as the number"))
    if errors:
        raise AddressErrors(errors)
    return Address(
        line1=values["line1"],
        postcode=values["postcode"],
        city=values["city"],
        country=country,
        name=values["name"] or None,
        line2=values["line2"] or None,
        region=values["region"] or None,
    )
