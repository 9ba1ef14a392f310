"""Delivery changes in a real browser, on a phone: a new day and instructions for a parcel
on its way, and a new address confirmed with the code texted to the phone (with JavaScript
and with plain forms).

The live server runs on the wall clock (`SystemClock`), so dates are computed from today in
Milan: the parcel is expected the day after tomorrow, so its changes close tomorrow at 18:00
and are always open while a test runs. The SMS go through the real MessageBird SDK to the
fake server, sent by the live server's own scheduler (its dispatcher runs every 0.3 s).
Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_skeleton, format_time
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import LiveServer, submit_and_follow

pytestmark = pytest.mark.browser

ZONE = "Europe/Rome"  # the order's phone is Italian: its days and cut-offs are Milan's
# An Italian order (phone, address, province) read in English, so the page's words are these.
CUSTOMER = {"name": "Giulia Bianchi", "phone": "347 123 4567", "locale": "en"}
SHIPMENT = {"tracking_number": "BRT0001", "carrier": "BRT"}
NEW_ADDRESS = {
    "Street and number": "Corso Buenos Aires 12",
    "Postcode": "20124",
    "City": "Milano",
    "Province": "MI",
}
OTP_RE = re.compile(r"^(\d{6}) ")  # the code text starts with the code
SCREENSHOT = "/tmp/delivery-card.png"  # noqa: S108 - a fixed path for a person to look at


def wait_for_sms(
    live_server: LiveServer, matches: Callable[[str], bool], what: str, timeout: float = 10.0
) -> dict[str, Any]:
    """The latest SMS the fake MessageBird accepted whose body `matches`."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in live_server.sms.messages if matches(m["body"])]
        if found:
            return found[-1]
        if time.monotonic() > deadline:
            bodies = [m["body"] for m in live_server.sms.messages]
            raise AssertionError(f"no SMS {what} within {timeout}s: {bodies}")
        time.sleep(0.05)


def about(number: str, words: str) -> Callable[[str], bool]:
    return lambda body: number in body and words in body


def texted_code(live_server: LiveServer, number: str, *, after: int = 0) -> str:
    """The 6 digits of the newest one-time code for order `number`, sent after the first
    `after` messages."""

    def is_code(body: str) -> bool:
        return number in body and OTP_RE.match(body) is not None

    deadline = time.monotonic() + 10.0
    while True:
        codes = [m for m in live_server.sms.messages[after:] if is_code(m["body"])]
        if codes:
            found = OTP_RE.match(codes[-1]["body"])
            assert found is not None
            return found.group(1)
        if time.monotonic() > deadline:
            bodies = [m["body"] for m in live_server.sms.messages]
            raise AssertionError(f"no code was texted for {number}: {bodies}")
        time.sleep(0.05)


def isoday(day: date) -> str:
    """A day as the page writes it in English: "Fri, Nov 27"."""
    return format_skeleton("MMMEd", day, locale="en")


def cut_off(day: date) -> str:
    """When changes for a delivery on `day` close, as the page writes it: 18:00 in Milan
    the evening before ("Nov 24, 6:00 PM")."""
    evening = datetime.combine(day - timedelta(days=1), clock_time(18), ZoneInfo(ZONE))
    on_day = format_skeleton("MMMd", evening, locale="en")
    return f"{on_day}, {format_time(evening, 'short', locale='en')}"


def fits_the_phone(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px phone"


def today_in_milan() -> date:
    return datetime.now(ZoneInfo(ZONE)).date()


def working_days_after(day: date, count: int) -> list[date]:
    days: list[date] = []
    while len(days) < count:
        day += timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    return days


def card(page: Page) -> Locator:
    return page.locator("#delivery")


def timeline(page: Page) -> Locator:
    return page.locator("#progress .timeline")


def mark_the_document(page: Page) -> None:
    page.evaluate("window.__sameDocument = true")  # gone if the page is loaded again


def still_the_same_document(page: Page) -> bool:
    return page.evaluate("window.__sameDocument === true") is True


def submit_in_place(page: Page, button: str, path_end: str, status: int = 200) -> None:
    """Click the card's `button`: htmx posts the form and the answer (the card, `status`)
    replaces the card in place."""
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith(path_end)
    ) as answer:
        card(page).get_by_role("button", name=button).click()
    assert answer.value.status == status, f"POST …{path_end} answered {answer.value.status}"
    assert answer.value.request.headers.get("hx-request") == "true"


def open_the_order_from_its_first_sms(live_server: LiveServer, page: Page, number: str) -> str:
    confirmed = wait_for_sms(live_server, about(number, "thanks for order"), "confirming")
    link = live_server.sms_link(confirmed)
    response = page.goto(link)
    assert response is not None and response.status == 200
    expect(page.locator("h1 .num")).to_have_text(number)
    return link


def fill_the_address(page: Page, fields: dict[str, str]) -> None:
    form = card(page)
    for label, value in fields.items():
        form.get_by_label(label).fill(value)


# --------------------------------------------------------------------- after dispatch


def test_a_shopper_moves_the_parcel_to_another_day_and_leaves_instructions_in_place(
    live_server: LiveServer, phone: Page
) -> None:
    number = live_server.create_order(customer=CUSTOMER)["external_id"]
    eta_day = today_in_milan() + timedelta(days=2)
    eta = datetime.combine(eta_day, clock_time(12), ZoneInfo(ZONE))
    live_server.post_event(number, "shipped", shipment={**SHIPMENT, "eta": eta.isoformat()})

    shipped = wait_for_sms(live_server, about(number, "has shipped"), "saying it shipped")
    response = phone.goto(live_server.sms_link(shipped))
    assert response is not None and response.status == 200
    delivery = card(phone)
    expect(delivery).to_contain_text(f"Delivery day: {isoday(eta_day)}")
    expect(delivery).to_contain_text(f"Changes are possible until {cut_off(eta_day)}.")
    expect(delivery.get_by_text("Change the address")).to_have_count(0)

    # Five working days after the expected one, all before their cut-off.
    delivery.get_by_text("Choose another day").click()
    offered = working_days_after(eta_day, 5)
    radios = delivery.get_by_role("radio")
    expect(radios).to_have_count(5)
    values = radios.evaluate_all("radios => radios.map(r => r.value)")
    assert values == [d.isoformat() for d in offered]
    new_day = offered[1]
    delivery.get_by_label(isoday(new_day), exact=True).check()

    mark_the_document(phone)
    submit_in_place(phone, "Change the day", "/day")
    expect(card(phone).get_by_role("status")).to_have_text("Done: the new delivery day is saved.")
    expect(card(phone)).to_contain_text(f"Delivery day: {isoday(new_day)} (your choice)")
    expect(card(phone)).to_contain_text(f"Changes are possible until {cut_off(new_day)}.")
    expect(timeline(phone)).to_contain_text("New delivery day")
    expect(timeline(phone)).to_contain_text(isoday(new_day))
    assert still_the_same_document(phone), "the page was loaded again instead of swapped"
    moved = wait_for_sms(live_server, about(number, "new delivery day"), "about the new day")
    assert live_server.sms_link(moved) == live_server.sms_link(shipped)

    card(phone).get_by_text("Leave instructions for the courier").click()
    card(phone).get_by_label("If nobody is in, leave it").select_option(label="In the porch")
    # The card at its fullest: the saved day, its notice, the instructions form open.
    phone.screenshot(path=SCREENSHOT, full_page=True)
    fits_the_phone(phone)
    submit_in_place(phone, "Save instructions", "/instructions")
    expect(card(phone).get_by_role("status")).to_have_text(
        "Done: the courier will see your instructions."
    )
    expect(card(phone)).to_contain_text("Instructions: In the porch")
    expect(card(phone)).to_contain_text(f"Delivery day: {isoday(new_day)} (your choice)")
    assert still_the_same_document(phone)
    fits_the_phone(phone)


# -------------------------------------------------------------------- before dispatch


def test_a_shopper_changes_the_address_with_the_texted_code_and_a_wrong_code_counts(
    live_server: LiveServer, phone: Page
) -> None:
    number = live_server.create_order(customer=CUSTOMER)["external_id"]
    open_the_order_from_its_first_sms(live_server, phone, number)
    mark_the_document(phone)

    card(phone).get_by_text("Change the address").click()
    fill_the_address(phone, NEW_ADDRESS)
    phone.screenshot(path=SCREENSHOT.replace(".png", "-address.png"), full_page=True)
    sent_before = len(live_server.sms.messages)
    submit_in_place(phone, "Text me a code", "/delivery/address")
    expect(card(phone).get_by_role("status")).to_have_text("We texted you a code.")
    expect(card(phone)).to_contain_text("Enter the code we texted you")
    expect(card(phone)).to_contain_text("Corso Buenos Aires 12")
    fits_the_phone(phone)

    code = texted_code(live_server, number, after=sent_before)
    wrong = "000000" if code != "000000" else "111111"
    card(phone).get_by_label("Code", exact=True).fill(wrong)
    submit_in_place(phone, "Confirm the change", "/delivery/code", status=422)
    expect(card(phone)).to_contain_text("That is not the code we sent (4 tries left)")
    expect(card(phone).get_by_label("Code", exact=True)).to_have_value(wrong)

    card(phone).get_by_label("Code", exact=True).fill(code)
    submit_in_place(phone, "Confirm the change", "/delivery/code")
    expect(card(phone).get_by_role("status")).to_have_text("Done: the new address is saved.")
    expect(card(phone)).to_contain_text("20124 Milano, IT")
    expect(timeline(phone)).to_contain_text("Address changed")
    assert still_the_same_document(phone), "the page was loaded again instead of swapped"
    wait_for_sms(live_server, about(number, "new address saved"), "confirming the address")


def test_without_javascript_the_address_changes_with_plain_forms_and_redirects(
    live_server: LiveServer, phone_without_js: Page
) -> None:
    page = phone_without_js
    number = live_server.create_order(customer=CUSTOMER)["external_id"]
    link = open_the_order_from_its_first_sms(live_server, page, number)

    # <details> opens without JavaScript too.
    card(page).get_by_text("Change the address").click()
    fill_the_address(page, {**NEW_ADDRESS, "Postcode": "2012"})
    with page.expect_navigation() as refused:
        card(page).get_by_role("button", name="Text me a code").click()
    assert refused.value is not None and refused.value.status == 422
    expect(card(page)).to_contain_text("This is not a postcode in IT")
    for label, value in {**NEW_ADDRESS, "Postcode": "2012"}.items():
        expect(card(page).get_by_label(label)).to_have_value(value)
    expect(card(page).get_by_label("Postcode")).to_have_attribute("aria-invalid", "true")

    card(page).get_by_label("Postcode").fill(NEW_ADDRESS["Postcode"])
    sent_before = len(live_server.sms.messages)
    submit_and_follow(card(page).get_by_role("button", name="Text me a code"))
    assert page.url == f"{link}?saved=code_sent#delivery"
    expect(card(page).get_by_role("status")).to_have_text("We texted you a code.")
    expect(card(page)).to_contain_text("Corso Buenos Aires 12")

    code = texted_code(live_server, number, after=sent_before)
    card(page).get_by_label("Code", exact=True).fill(code)
    submit_and_follow(card(page).get_by_role("button", name="Confirm the change"))
    assert page.url == f"{link}?saved=address#delivery"
    expect(card(page).get_by_role("status")).to_have_text("Done: the new address is saved.")
    expect(card(page)).to_contain_text("20124 Milano, IT")
    expect(timeline(page)).to_contain_text("Address changed")
