"""Every SMS template, filled with the longest realistic values, fits its segment budget in GSM-7."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

from portal.domain.order import EventType, Fulfilment, sms_for
from portal.domain.sms_text import measure
from portal.services.messaging import LINK_MARKER, budget, render_sms, with_sample_link
from portal.settings import Settings
from portal.templating import TEMPLATES_DIR, make_environment

SMS_DIR = TEMPLATES_DIR / "sms"
TEMPLATES = sorted(SMS_DIR.glob("*/*.txt"))
LOCALES = sorted(p.name for p in SMS_DIR.iterdir() if p.is_dir())
KINDS = sorted({p.stem for p in TEMPLATES})

# The longest values a real SMS carries: first names are cut to 30 characters by the caller
# (services.orders.first_name), order numbers of 20 are common, store names of 40 too.
FIRST_NAMES = {
    "en": "Christopher-Alexander-Jonathan",
    "it": "Massimiliano-Alessandro-Gianni",
    "es": "Juan-Bautista-de-la-Concepción",
    "pl": "Małgorzata-Jadwiga-Świętosława",
}
STORE_NAMES = {
    "en": "Westfield London Shepherd's Bush Level 1",
    "it": "Centro Commerciale Porta di Roma, Nord 2",
    "es": "Centro Comercial La Maquinista Barcelona",
    "pl": "Galeria Mokotów, Warszawa ul. Wołoska 12",
}
ORDER_NUMBER = "SHOP-2026-0012345678"
# The longest day each language writes ("Wed, Nov 25" in babel's MMMEd skeleton).
DAYS = {"en": "Wed, Nov 25", "it": "mer 25 nov", "es": "mié, 25 nov", "pl": "śr., 25 lis"}
# The longest money amounts as each language writes them (babel, 4 digits before the point).
AMOUNTS = {"en": "€1,234.56", "it": "1.234,56 €", "es": "1234,56 €", "pl": "1234,56 zł"}
# Texts that carry no link: a one-time code is read off the screen, not followed.
WITHOUT_LINK = {"otp"}
CHANGES = ("reschedule", "address", "switch_to_pickup", "instructions")


def _runtime() -> Any:
    return types.SimpleNamespace(
        templates=make_environment(),
        settings=Settings(base_url="https://track.example-shop.com"),
    )


def _context(locale: str, pickup: bool, change: str = "reschedule") -> dict[str, Any]:
    return {
        "change": change,
        "day": DAYS[locale],
        "code": "123456",
        "minutes": 10,
        "reason": "",
        "return_code": "ACDE-FHJK",
        "store": pickup,
        "amount": AMOUNTS[locale],
        # Answers to a shopper's text: the store's phone (HELP), the order's live link.
        "store_phone": "+39 0471 123 4567",
        "has_link": True,
        "first_name": FIRST_NAMES[locale],
        "order_number": ORDER_NUMBER,
        "carrier": "DHL Express",
        "tracking_number": "JJD000390007999999999",
        "pickup": pickup,
        "store_name": STORE_NAMES[locale],
    }


def test_the_realistic_values_are_as_long_as_the_brief_says() -> None:
    assert {len(name) for name in FIRST_NAMES.values()} == {30}
    assert {len(name) for name in STORE_NAMES.values()} == {40}
    assert len(ORDER_NUMBER) == 20
    assert set(FIRST_NAMES) == set(LOCALES)


def test_every_locale_has_every_kind_of_sms() -> None:
    for locale in LOCALES:
        assert {p.stem for p in (SMS_DIR / locale).glob("*.txt")} == set(KINDS), locale


def test_every_sms_an_event_can_cause_has_a_template() -> None:
    for event in EventType:
        for fulfilment in Fulfilment:
            kind = sms_for(event, fulfilment)
            if kind is not None:
                assert kind in KINDS, (event, fulfilment)


def _cases() -> list[Any]:
    cases = []
    for path in TEMPLATES:
        locale, kind = path.parent.name, path.stem
        # Only templates that read `pickup` render differently for a pickup order.
        text = path.read_text(encoding="utf-8")
        pickups = (False, True) if ("pickup" in text or "store" in text) else (False,)
        # Templates that say which delivery change was made: every change.
        changes = CHANGES if "change ==" in text else ("reschedule",)
        for pickup in pickups:
            for change in changes:
                cases.append(
                    pytest.param(
                        locale, kind, pickup, change, id=f"{locale}/{kind}-{pickup=}-{change}"
                    )
                )
    return cases


@pytest.mark.parametrize(("locale", "kind", "pickup", "change"), _cases())
def test_an_sms_with_the_longest_realistic_values_fits_its_budget_in_gsm7(
    locale: str, kind: str, pickup: bool, change: str
) -> None:
    rt = _runtime()
    body = render_sms(rt, kind, locale, _context(locale, pickup, change))
    if kind in WITHOUT_LINK:
        assert LINK_MARKER not in body
    else:
        assert LINK_MARKER in body, "every SMS carries the shopper's link"
    sent = with_sample_link(rt, body)
    length = measure(sent)
    assert length.encoding == "gsm7", sent
    assert length.segments <= budget(kind), f"{length.units} septets: {sent}"


def test_a_polish_sms_is_transliterated_and_keeps_the_name_readable() -> None:
    body = render_sms(_runtime(), "delivered", "pl", _context("pl", False))
    assert body.startswith("Czesc Malgorzata-Jadwiga-Swietoslawa,")


def test_a_missing_locale_falls_back_to_english() -> None:
    body = render_sms(_runtime(), "delivered", "fr", _context("en", False))
    assert body.startswith("Hi Christopher-Alexander-Jonathan,")


def test_the_sample_link_is_as_long_as_a_real_one() -> None:
    rt = _runtime()
    assert with_sample_link(rt, LINK_MARKER) == "https://track.example-shop.com/t/" + "x" * 22


def test_the_template_directory_is_where_the_app_reads_it() -> None:
    assert Path(SMS_DIR).is_dir()
    assert len(TEMPLATES) == len(LOCALES) * len(KINDS)
