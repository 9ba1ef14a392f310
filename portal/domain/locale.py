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


# Languages the pages are translated into (SMS texts cover all of SUPPORTED already).
PAGE_LOCALES = ("en",)


def page_locale(order_locale: str) -> str:
    """Dates and money follow the page's words, so a page never mixes two languages."""
    return order_locale if order_locale in PAGE_LOCALES else DEFAULT
