"""The language switch on a phone: an Italian order's page, switched to Polish in the footer,
stays Polish after a reload and while it updates itself; the texts follow the choice.

The real app under uvicorn, the system Chromium as a phone (and once with JavaScript off).
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer
from tests.factories import ITALIAN

pytestmark = pytest.mark.browser

UPDATE_MS = 5_000  # the page polls every second in these tests


def open_italian_order(live_server: LiveServer, page: Page) -> str:
    receipt = live_server.create_order(customer=ITALIAN)
    response = page.goto(receipt["tracking_url"])
    assert response is not None and response.status == 200
    expect(page.locator("html")).to_have_attribute("lang", "it")
    expect(page.locator("#progress .headline")).to_have_text("Abbiamo ricevuto il tuo ordine")
    return str(receipt["external_id"])


def switch_to_polish(page: Page) -> None:
    switch = page.locator("form#language")
    expect(switch.locator("[aria-current=true]")).to_have_text("Italiano")
    button = switch.get_by_role("button", name="Polski")
    button.scroll_into_view_if_needed()
    button.tap()
    expect(page.locator("html")).to_have_attribute("lang", "pl")


def expect_polish(page: Page) -> None:
    expect(page.locator("html")).to_have_attribute("lang", "pl")
    expect(page.locator("#progress .headline")).to_have_text("Mamy Twoje zamówienie")
    expect(page.locator(".hello")).to_have_text("Cześć Giulia!")
    expect(page.locator("#progress .stepper [aria-current=step]")).to_have_text("Zamówione")
    expect(page.locator("form#language [aria-current=true]")).to_have_text("Polski")
    expect(page.locator("form#language")).to_contain_text("SMS-y też będą w wybranym języku.")


def gaps_between_step_labels(page: Page) -> list[float]:
    """Pixels between each step label of the stepper and the next, as laid out."""
    edges = page.locator("#progress .stepper .label").evaluate_all(
        "labels => labels.map(l => [l.getBoundingClientRect().left, l.getBoundingClientRect().right])"
    )
    return [round(after[0] - before[1], 1) for before, after in pairwise(edges)]


def test_a_shopper_switches_the_page_to_polish_and_it_stays_polish(
    live_server: LiveServer, phone: Page
) -> None:
    number = open_italian_order(live_server, phone)
    # The footer fits the phone: no sideways scrolling.
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390

    switch_to_polish(phone)
    expect_polish(phone)
    # Polish step names are long ("Zamówione", "Spakowane"): each keeps to its own step,
    # with space between them, instead of running into one word across the phone.
    assert min(gaps_between_step_labels(phone)) >= 2, gaps_between_step_labels(phone)
    phone.reload()
    expect_polish(phone)

    # The live part keeps speaking Polish as the order moves on.
    live_server.post_event(
        number, "shipped", shipment={"tracking_number": "BRT7", "carrier": "BRT"}
    )
    expect(phone.locator("#progress .headline")).to_have_text(
        "Twoje zamówienie jest w drodze", timeout=UPDATE_MS
    )
    expect(phone.locator("#progress .parcel .tracking")).to_contain_text("numer przesyłki")

    # And so do the texts: the confirmation went in Italian, the shipping news in Polish.
    confirmed, shipped = live_server.sms.wait_for_messages(2, timeout=10)[:2]
    assert confirmed["body"].startswith("Ciao Giulia")
    assert shipped["body"].startswith("Czesc Giulia")  # Polish texts drop diacritics (GSM-7)


def test_the_switch_works_without_javascript(
    live_server: LiveServer, phone_without_js: Page
) -> None:
    open_italian_order(live_server, phone_without_js)
    switch_to_polish(phone_without_js)
    expect_polish(phone_without_js)
    phone_without_js.reload()
    expect_polish(phone_without_js)
