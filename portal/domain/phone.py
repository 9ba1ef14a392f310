"""Phone numbers: parsed and validated with `phonenumbers`, stored as E.164, shown masked."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

from portal.domain import DomainError

# Language a shopper most likely reads, from the phone's country.
LOCALE_BY_REGION = {"IT": "it", "SM": "it", "VA": "it", "PL": "pl", "ES": "es"}


# Countries whose numbers map to several zones: where most people live. phonenumbers lists
# zones alphabetically, which would put every Spanish mobile in the Canary Islands.
PRIMARY_ZONE = {
    "ES": "Europe/Madrid",
    "PT": "Europe/Lisbon",
    "FR": "Europe/Paris",
    "NL": "Europe/Amsterdam",
    "DK": "Europe/Copenhagen",
    "GB": "Europe/London",
    "DE": "Europe/Berlin",
    "EC": "America/Guayaquil",
    "CL": "America/Santiago",
}


class InvalidPhone(DomainError):
    pass


def normalise(raw: str, default_region: str) -> str:
    """E.164 form of `raw`; national numbers are read in `default_region`."""
    text = (raw or "").strip()
    if not text:
        raise InvalidPhone("a phone number is required")
    if len(text) > 32:
        raise InvalidPhone("this is too long for a phone number")
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone("this is not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone("this is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def region_of(e164: str) -> str | None:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return None


@lru_cache(maxsize=16384)
def mask(e164: str) -> str:
    """+39 ••• ••• •567: enough to recognise one's own number, not to read someone else's."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return "•••"
    shown = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    prefix = f"+{number.country_code}"
    rest = shown[len(prefix) :]
    digits = sum(c.isdigit() for c in rest)
    out, seen = [], 0
    for c in rest:
        if c.isdigit():
            seen += 1
            out.append(c if seen > digits - 3 else "•")
        else:
            out.append(c)
    return prefix + "".join(out)


def msisdn(e164: str) -> str:
    """Digits only, as MessageBird wants recipients."""
    return e164.lstrip("+")


@lru_cache(maxsize=16384)
def timezone_of(e164: str, fallback: str = "UTC") -> str:
    """The shopper's likely time zone, from the number (the first one when a country has many)."""
    from phonenumbers import timezone as pn_timezone

    try:
        zones = pn_timezone.time_zones_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return fallback
    candidates = [z for z in zones if z != "Etc/Unknown"]
    if not candidates:
        return fallback
    primary = PRIMARY_ZONE.get(region_of(e164) or "")
    return primary if primary in candidates else candidates[0]


def page_zone(store_zone: str | None, customer_zone: str | None, phone: str) -> str:
    """The zone the shopper's page speaks in: the store's for an order collected there,
    else the customer's (their phone's country), else Europe/Rome."""
    return store_zone or customer_zone or timezone_of(phone, "Europe/Rome")
