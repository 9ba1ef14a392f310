"""Which language to speak to a shopper."""

from __future__ import annotations

from portal.domain.phone import LOCALE_BY_REGION

SUPPORTED = ("en", "it", "pl", "es")
DEFAULT = "en"


def pick(requested: str | None, phone_region: str | None) -> str:
    """The shop's stated locale if we speak it ('it-IT' -> 'it'), else the phone's country's."""
    if requested:
        lang = requested.replace("_", "-").split("-")[0].strip().lower()
        if lang in SUPPORTED:
            return lang
    return LOCALE_BY_REGION.get(phone_region or "", DEFAULT)


# Languages the pages are translated into (catalogs in portal/locale), as SMS texts are.
PAGE_LOCALES = SUPPORTED
# Each language by its own name, for the page's language switch.
NATIVE_NAMES = {"it": "Italiano", "pl": "Polski", "es": "Español", "en": "English"}


def page_locale(order_locale: str) -> str:
    """Dates and money follow the page's words, so a page never mixes two languages."""
    return order_locale if order_locale in PAGE_LOCALES else DEFAULT


def from_accept_language(header: str | None) -> str:
    """The page language a browser asks for first ('it-IT,it;q=0.9,en;q=0.8' -> 'it'), for
    pages that have no order to go by."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        lang = tag.replace("_", "-").split("-")[0].strip().lower()
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if lang in PAGE_LOCALES and weight > 0:
            ranked.append((-weight, position, lang))
    return min(ranked)[2] if ranked else DEFAULT
