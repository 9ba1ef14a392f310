"""Money as integer minor units with an ISO 4217 currency."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from babel.numbers import get_currency_precision, list_currencies

from portal.domain import DomainError

_DECIMAL_RE = re.compile(r"[0-9]{1,9}(\.[0-9]{1,4})?")
_CURRENCIES = frozenset(list_currencies())


class InvalidMoney(DomainError):
    pass


def check_currency(code: str) -> str:
    code = (code or "").strip().upper()
    if code not in _CURRENCIES:
        raise InvalidMoney(f"{code or 'empty'} is not an ISO 4217 currency code")
    return code


def to_minor(amount: str, currency: str) -> int:
    """'19.90' EUR -> 1990. Refuses negatives, exponents and more decimals than the currency has."""
    if not isinstance(amount, str) or not _DECIMAL_RE.fullmatch(amount.strip()):
        raise InvalidMoney('must be a decimal string like "19.90"')
    digits = get_currency_precision(check_currency(currency))
    try:
        value = Decimal(amount.strip())
    except InvalidOperation as exc:  # pragma: no cover - the regex already refused it
        raise InvalidMoney('must be a decimal string like "19.90"') from exc
    scaled = value.scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise InvalidMoney(f"{currency} has {digits} decimals at most")
    return int(scaled)


def from_minor(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-get_currency_precision(currency))


def format_decimal_string(minor: int, currency: str) -> str:
    digits = get_currency_precision(currency)
    return f"{from_minor(minor, currency):.{digits}f}"
