"""The shopper's journey in a real browser: SMS link -> live order page -> updates by itself.

Everything runs for real except the outside world: the app under uvicorn with its scheduler,
the real MessageBird SDK talking to the fake MessageBird server, the system Chromium as a
phone (and once with JavaScript off). Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import secrets

import pytest
from playwright.sync_api import Locator, Page, Request, expect

from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

# The page polls every second (poll_seconds=1); allow a few polls for an update to show.
UPDATE_MS = 5_000
SHIPMENT = {"tracking_number": "BRT123", "carrier": "BRT"}
SCREENSHOT = "/tmp/portal-phone.png"  # noqa: S108 - a fixed path for a person to look at


def headline(page: Page) -> Locator:
    return page.locator("#progress .headline")


def current_step(page: Page) -> Locator:
    return page.locator("#progress .stepper [aria-current=step]")


def test_a_shopper_opens_the_sms_link_and_sees_the_order_ship_without_reloading(
    live_server: LiveServer, phone: Page
) -> None:
    receipt = live_server.create_order()
    number = receipt["external_id"]

    # The scheduler's dispatcher sends the confirmation through the real SDK.
    [confirmed] = live_server.sms.wait_for_messages(1, timeout=10)
    assert number in confirmed["body"]
    assert confirmed["recipients_list"] == ["393471234567"]
    assert confirmed["reportUrl"] == f"{live_server.base_url}/webhooks/messagebird/status"
    link = live_server.sms_link(confirmed)
    assert link == receipt["tracking_url"]

    response = phone.goto(link)
    assert response is not None and response.status == 200
    expect(phone.locator("h1 .num")).to_have_text(number)
    expect(phone.locator(".hello")).to_contain_text("Giulia")
    lines = phone.locator(".lines li")
    expect(lines).to_have_count(2)
    expect(lines.nth(0)).to_contain_text("2 ×")
    expect(lines.nth(0)).to_contain_text("Organic cotton T-shirt")
    expect(lines.nth(1)).to_contain_text("Ceramic mug")
    expect(headline(phone)).to_have_text("We have your order")
    expect(current_step(phone)).to_have_text("Ordered")

    phone.evaluate("window.__sameDocument = true")  # gone if the page reloads
    live_server.post_event(number, "shipped", shipment=SHIPMENT)

    expect(headline(phone)).to_have_text("Your order is on its way", timeout=UPDATE_MS)
    expect(phone.locator(".parcel .tracking code")).to_have_text("BRT123")
    expect(phone.locator(".parcel .carrier")).to_have_text("BRT")
    expect(current_step(phone)).to_have_text("Shipped")
    expect(phone.locator(".timeline .event")).to_have_count(2)
    assert phone.evaluate("window.__sameDocument") is True
    phone.screenshot(path=SCREENSHOT, full_page=True)

    shipped = live_server.sms.wait_for_messages(2, timeout=10)[1]
    assert number in shipped["body"]
    assert "BRT" in shipped["body"]
    assert live_server.sms_link(shipped) == link


def test_a_delivered_order_shows_delivered_and_stops_polling(
    live_server: LiveServer, phone: Page
) -> None:
    receipt = live_server.create_order()
    number = receipt["external_id"]
    live_server.post_event(number, "shipped", shipment=SHIPMENT)
    phone.goto(receipt["tracking_url"])
    expect(headline(phone)).to_have_text("Your order is on its way")

    live_server.post_event(number, "out_for_delivery", shipment=SHIPMENT)
    expect(headline(phone)).to_have_text("Arriving today", timeout=UPDATE_MS)
    expect(current_step(phone)).to_have_text("Out for delivery")

    live_server.post_event(number, "delivered", shipment=SHIPMENT)
    expect(headline(phone)).to_have_text("Delivered", timeout=UPDATE_MS)
    expect(phone.locator(".stepper .step.done")).to_have_count(5)
    expect(phone.locator("#progress[hx-trigger]")).to_have_count(0)

    polls: list[str] = []

    def on_request(request: Request) -> None:
        if "/progress" in request.url:
            polls.append(request.url)

    phone.on("request", on_request)
    phone.wait_for_timeout(3_000)  # three poll intervals
    assert len(polls) <= 1, f"still polling after delivery: {polls}"


def test_without_javascript_the_page_shows_the_whole_order_and_a_reload_shows_updates(
    live_server: LiveServer, phone_without_js: Page
) -> None:
    page = phone_without_js
    receipt = live_server.create_order()
    number = receipt["external_id"]

    response = page.goto(receipt["tracking_url"])
    assert response is not None and response.status == 200
    expect(page.locator("h1 .num")).to_have_text(number)
    expect(page.locator(".lines li")).to_have_count(2)
    expect(page.locator(".lines")).to_contain_text("Organic cotton T-shirt")
    expect(page.locator(".lines")).to_contain_text("Ceramic mug")
    expect(headline(page)).to_have_text("We have your order")
    expect(current_step(page)).to_have_text("Ordered")
    expect(page.locator(".timeline .event")).to_have_count(1)
    expect(page.locator(".timeline .event")).to_contain_text("Order placed")
    expect(page.get_by_role("link", name="Refresh")).to_be_visible()

    live_server.post_event(number, "shipped", shipment=SHIPMENT)
    page.reload()

    expect(headline(page)).to_have_text("Your order is on its way")
    expect(page.locator(".parcel .tracking code")).to_have_text("BRT123")
    expect(page.locator(".timeline .event")).to_have_count(2)
    expect(current_step(page)).to_have_text("Shipped")


def test_an_unknown_or_garbled_link_shows_a_friendly_not_available_page(
    live_server: LiveServer, phone: Page
) -> None:
    unknown_token = secrets.token_urlsafe(16)  # well-formed, 22 characters, matches nothing
    for path in (f"/t/{unknown_token}", "/t/this-is-not-a-link%21", "/t/x"):
        response = phone.goto(live_server.base_url + path)
        assert response is not None and response.status == 404, path
        expect(phone.locator("h1")).to_have_text("This link is not available")
        expect(phone).to_have_title("Link not available")
        expect(phone.locator(".lines")).to_have_count(0)


def test_the_page_loads_nothing_from_other_hosts_and_fits_a_phone_screen(
    live_server: LiveServer, phone: Page
) -> None:
    receipt = live_server.create_order()
    # A shipped order has the widest content: stepper, parcel line and tracking number.
    live_server.post_event(
        receipt["external_id"],
        "shipped",
        shipment={"tracking_number": "BRT0123456789012345678901", "carrier": "BRT"},
    )
    urls: list[str] = []
    phone.on("request", lambda request: urls.append(request.url))

    with phone.expect_request(lambda request: "/progress" in request.url, timeout=UPDATE_MS):
        phone.goto(receipt["tracking_url"])
    expect(headline(phone)).to_have_text("Your order is on its way")

    assert any("/static/app.css" in url for url in urls), urls
    assert any("/static/htmx-" in url for url in urls), urls
    outside = [url for url in urls if not url.startswith(live_server.base_url + "/")]
    assert not outside, f"requests to other hosts: {outside}"

    # The stylesheet applied, so the width below is the real layout's.
    assert phone.evaluate("getComputedStyle(document.querySelector('.stepper')).display") == (
        "flex"
    )
    scroll_width = phone.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= 390, f"the page is {scroll_width}px wide on a 390px phone"
