"""A return in real browsers, from the shopper's phone to the store's counter to the money.

The shop creates and delivers the order through its API; the shopper opens the link texted
on delivery and returns one of the two lines to a store (review, then confirm) on a phone;
the clerk finds the return by its code on the counter's tablet, checks it and receives it;
the shop pays the refund through its API and the shopper's page says so. The SMS go through
the real MessageBird SDK to the fake server, sent by the live server's own dispatcher. Each
test runs on SQLite and on PostgreSQL.

Weeks happen here in a minute of wall-clock time, so one order's texts (confirmed,
delivered, return started and approved, received, refund paid) all fall on one local day:
more than the daily cap of non-urgent texts per order (`messaging.DAILY_CAP`, 4), which
would drop the last two. The test raises the cap; the live server reads it when it writes
each text.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from portal.services import messaging
from tests.browser.conftest import LiveServer
from tests.browser.test_pickup_journey import (
    open_store_with_a_clerk,
    sign_in_at_the_counter,
    wait_for_sms,
)

pytestmark = pytest.mark.browser

CUSTOMER = {"name": "Emma Clarke", "phone": "347 765 4321", "locale": "en"}
CODE_RE = re.compile(r"^[A-Z0-9]{4}-[A-Z0-9]{4}$")
CLERK_SCREENSHOT = "/tmp/clerk-return.png"  # noqa: S108 - fixed paths for a person to look at
SHOPPER_SCREENSHOT = "/tmp/shopper-refund.png"  # noqa: S108


def delivered_order(live_server: LiveServer) -> dict[str, str]:
    """2 T-shirts at 19.90 and a mug at 12.50 (tests/factories), shipped and delivered."""
    receipt = live_server.create_order(customer=CUSTOMER)
    number = receipt["external_id"]
    live_server.post_event(
        number, "shipped", shipment={"tracking_number": "BRT77", "carrier": "BRT"}
    )
    live_server.post_event(number, "delivered")
    return receipt


def start_a_return_of_the_mug(phone: Page) -> str:
    """On the shopper's page: one mug back to Milano Centro. Returns the code shown."""
    returns = phone.locator("#returns")
    returns.get_by_text("Start a return", exact=True).click()
    mug = returns.get_by_role("group", name="Ceramic mug")
    mug.get_by_label("How many").select_option("1")
    mug.get_by_label("Why").select_option(label="Arrived damaged")
    returns.get_by_label("I will bring it to a store").check()
    returns.get_by_label("Store (for a store)").select_option(label="Milano Centro, Milano")
    returns.get_by_role("button", name="Review the return").click()

    expect(returns.get_by_role("heading", name="Check your return")).to_be_visible()
    expect(returns).to_contain_text("1 × Ceramic mug (Arrived damaged)")
    expect(returns).to_contain_text("You will bring it to Milano Centro.")
    expect(returns).to_contain_text("Refund up to €12.50 once the items are checked.")
    returns.get_by_role("button", name="Confirm the return").click()

    expect(returns.locator(".notice")).to_have_text(
        "Done: your return is registered. Keep the code below."
    )
    code = returns.locator(".return h3 .num")
    expect(code).to_have_text(CODE_RE)
    expect(returns.locator(".return .qr-box svg")).to_be_visible()
    expect(returns).to_contain_text("Bring the items and this code to Milano Centro.")
    return code.inner_text()


def receive_at_the_counter(tablet: Page, base_url: str, code: str, number: str) -> None:
    tablet.get_by_role("link", name="Returns").click()
    expect(tablet).to_have_url(f"{base_url}/clerk/returns")
    tablet.get_by_label("Return code").fill(code.lower().replace("-", " "))
    tablet.get_by_role("button", name="Find the return").click()
    expect(tablet.locator("h1")).to_have_text(f"Return {code}")
    facts = tablet.locator(".counter-facts")
    expect(facts).to_contain_text(number)
    expect(facts).to_contain_text("Emma Clarke")
    row = tablet.locator(".counter-table tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Ceramic mug")
    expect(row).to_contain_text("Arrived damaged")
    accepted = tablet.get_by_label("Accepted: Ceramic mug", exact=True)
    expect(accepted).to_have_value("1")  # all of it, unless the clerk says otherwise
    accepted.select_option("1")
    tablet.get_by_role("button", name="Receive the return").click()
    expect(tablet.locator(".counter-notice")).to_have_text(
        "Received and checked. Refund of €12.50 started; the shopper has been told."
    )
    expect(tablet.locator(".counter-badge")).to_have_text("Received and checked")
    expect(tablet.get_by_role("button", name="Receive the return")).to_have_count(0)


def pay_the_refund(live_server: LiveServer, number: str) -> None:
    """The shop, through its API: the inspected return's refund, processing then paid."""
    listed = live_server.api.get("/api/v1/returns", params={"status": "inspected"})
    assert listed.status_code == 200, listed.text
    mine = [r for r in listed.json()["returns"] if r["order"] == number]
    assert len(mine) == 1, listed.json()
    assert mine[0]["lines"][0]["accepted"] == 1
    (refund_id,) = mine[0]["refund_ids"]
    refund = live_server.api.get(f"/api/v1/refunds/{refund_id}").json()
    assert (refund["amount"], refund["status"]) == ("12.50", "pending")
    for status in ("processing", "paid"):
        moved = live_server.api.patch(f"/api/v1/refunds/{refund_id}", json={"status": status})
        assert moved.status_code == 200, moved.text
        assert moved.json()["status"] == status


def test_a_shopper_returns_an_item_at_a_store_and_follows_it_to_the_refund(
    live_server: LiveServer,
    db_url: str,
    phone: Page,
    tablet: Page,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(messaging, "DAILY_CAP", 10)  # a month in one day: see the docstring
    base = live_server.base_url
    open_store_with_a_clerk(live_server, db_url)
    receipt = delivered_order(live_server)
    number = receipt["external_id"]

    # The shopper's phone: the link from the delivery text, then the return form.
    delivered = wait_for_sms(live_server, number, "has been delivered")
    link = live_server.sms_link(delivered)
    assert link == receipt["tracking_url"]
    response = phone.goto(link)
    assert response is not None and response.status == 200
    code = start_a_return_of_the_mug(phone)
    started = wait_for_sms(live_server, number, "started")
    assert code in started["body"]
    assert live_server.sms_link(started) == link

    # The counter's tablet: the clerk types the code the shopper shows and receives the mug.
    sign_in_at_the_counter(tablet, base)
    receive_at_the_counter(tablet, base, code, number)
    tablet.screenshot(path=CLERK_SCREENSHOT, full_page=True)
    received = wait_for_sms(live_server, number, "we received your return")
    assert live_server.sms_link(received) == link

    # The shopper's page: checked, the refund on its way.
    phone.reload()
    returns = phone.locator("#returns")
    refund = returns.locator(".refund")
    expect(refund).to_have_text(
        re.compile(r"Refund of €12\.50 to your original payment method:\s+pending")
    )
    expect(returns.locator(".return .lines")).to_contain_text("accepted")
    expect(phone.locator("#progress")).to_contain_text("Return checked")

    # The shop pays the refund; the shopper's page and a text say so.
    pay_the_refund(live_server, number)
    phone.reload()
    expect(refund).to_have_text(
        re.compile(r"Refund of €12\.50 to your original payment method:\s+paid \(.+\)")
    )
    expect(returns.locator(".return .step.done").last).to_have_text("Refunded")
    phone.screenshot(path=SHOPPER_SCREENSHOT, full_page=True)
    paid = wait_for_sms(live_server, number, "refund of €12.50")
    assert "paid" in paid["body"]
    assert paid["recipients_list"] == ["393477654321"]

    # The counter sees the return closed with its money back.
    tablet.reload()
    expect(tablet.locator(".counter-badge")).to_have_text("Refunded")
    expect(tablet.locator(".return-refund")).to_have_text("€12.50: paid")
