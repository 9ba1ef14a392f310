"""Click and collect in real browsers: the counter's tablet and the shopper's phone.

The shop creates the store and the order through its API, the clerk account comes from the
real CLI, the SMS go through the real MessageBird SDK to the fake server; the clerk works on
a tablet-sized page, the shopper on a phone (and once with JavaScript off). Each test runs
on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from datetime import time as clock_time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import LiveServer, submit_and_follow
from tests.conftest import ROOT, TEST_SECRET
from tests.factories import store_payload

pytestmark = pytest.mark.browser

STORE = "MI01"
ZONE = "Europe/Rome"
# Open around the clock, so whatever time the test runs at is inside opening hours.
ALL_DAY = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
CLERK = "anna"
CLERK_PASSWORD = "anna-counter-2026"  # a test account on a throwaway database
CUSTOMER = {"name": "Emma Clarke", "phone": "347 765 4321", "locale": "en"}
# The shopper's page polls every second (poll_seconds=1); allow a few polls.
UPDATE_MS = 5_000
CLERK_SCREENSHOT = "/tmp/clerk-tablet.png"  # noqa: S108 - fixed paths for a person to look at
SHOPPER_SCREENSHOT = "/tmp/shopper-ready.png"  # noqa: S108


def open_store_with_a_clerk(live_server: LiveServer, db_url: str) -> None:
    """MI01 through the shop's API, its clerk through `python -m portal create-clerk`."""
    response = live_server.api.put(
        f"/api/v1/stores/{STORE}", json=store_payload(timezone=ZONE, opening_hours=ALL_DAY)
    )
    assert response.status_code in (200, 201), response.text
    env = {**os.environ, "PORTAL_DATABASE_URL": db_url, "PORTAL_SECRET_KEY": TEST_SECRET}
    done = subprocess.run(
        [sys.executable, "-m", "portal", "create-clerk", CLERK, "--store", STORE],
        cwd=ROOT,
        env=env,
        input=CLERK_PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"create-clerk failed:\n{done.stdout}\n{done.stderr}"
    assert f"created clerk {CLERK} (store {STORE})" in done.stdout


def pickup_order(live_server: LiveServer) -> dict[str, Any]:
    return live_server.create_order(
        customer=CUSTOMER, fulfilment={"method": "pickup", "store": STORE}
    )


def wait_for_sms(live_server: LiveServer, number: str, words: str, timeout: float = 10.0) -> dict:
    """The first SMS about order `number` whose body contains `words`."""
    deadline = time.monotonic() + timeout
    while True:
        for message in live_server.sms.messages:
            if number in message["body"] and words in message["body"]:
                return message
        if time.monotonic() > deadline:
            bodies = [m["body"] for m in live_server.sms.messages]
            raise AssertionError(f"no SMS with {words!r} for {number} in {timeout}s: {bodies}")
        time.sleep(0.05)


def sign_in_at_the_counter(tablet: Page, base_url: str) -> None:
    tablet.goto(f"{base_url}/clerk/login")
    tablet.get_by_label("Username").fill(CLERK)
    tablet.get_by_label("Password").fill(CLERK_PASSWORD)
    tablet.get_by_role("button", name="Sign in").click()
    expect(tablet).to_have_url(f"{base_url}/clerk/")
    expect(tablet.locator(".signed-in")).to_contain_text(f"Signed in as {CLERK}")


def queue_entry(tablet: Page, section: str, number: str) -> Locator:
    return tablet.locator(f".queue-{section} .queue-entry").filter(has_text=number)


def mark_ready(tablet: Page) -> None:
    """On the clerk's order page: everything set aside (htmx swaps the order block)."""
    tablet.get_by_role("button", name="Mark ready").click()
    expect(tablet.locator(".counter-notice")).to_have_text(
        "3 of 3 items set aside. The shopper has been told the order is ready."
    )
    expect(tablet.locator(".counter-badge")).to_have_text("Ready and waiting")
    expect(tablet.get_by_role("button", name="Mark ready")).to_have_count(0)


def headline(page: Page) -> Locator:
    return page.locator("#progress .headline")


def choose_a_visit(phone: Page) -> tuple[date, str, str, str]:
    """The first day after today the form offers, and its first time. (Today's first time
    on the list is midnight, which has passed: the time list spans every offered day.)
    Returns the day, the time (HH:MM) and their labels as the form shows them."""
    today = datetime.now(ZoneInfo(ZONE)).date().isoformat()
    # Not exact: a <label> that wraps its <select> names it "Day Choose a day" and so on.
    day_select = phone.get_by_label("Day")
    time_select = phone.get_by_label("Time")
    days = [o for o in options(day_select) if o[0]]
    times = [o for o in options(time_select) if o[0]]
    assert days and times, (days, times)
    day, day_label = next(o for o in days if o[0] > today)
    at, time_label = times[0]
    day_select.select_option(day)
    time_select.select_option(at)
    return date.fromisoformat(day), at, day_label, time_label


def options(select: Locator) -> list[tuple[str, str]]:
    pairs = select.locator("option").evaluate_all(
        "options => options.map(o => [o.value, o.textContent.trim()])"
    )
    return [(value, label) for value, label in pairs]


def visit_in_utc(day: date, at: str) -> str:
    local = datetime.combine(day, clock_time.fromisoformat(at), ZoneInfo(ZONE))
    return local.astimezone(UTC).isoformat()


def test_a_clerk_marks_an_order_ready_and_hands_it_over_while_the_shoppers_page_follows(
    live_server: LiveServer, db_url: str, tablet: Page, phone: Page
) -> None:
    base = live_server.base_url
    open_store_with_a_clerk(live_server, db_url)
    receipt = pickup_order(live_server)
    number = receipt["external_id"]

    # The counter: the new order waits under "To prepare"; the clerk sets it all aside.
    sign_in_at_the_counter(tablet, base)
    expect(queue_entry(tablet, "to_prepare", number)).to_contain_text("Emma Clarke")
    queue_entry(tablet, "to_prepare", number).get_by_role("link").click()
    expect(tablet).to_have_url(f"{base}/clerk/orders/{receipt['id']}")
    expect(tablet.locator("h1")).to_have_text(f"Order {number}")
    mark_ready(tablet)
    expect(tablet.get_by_label("Pickup code")).to_be_visible()
    tablet.screenshot(path=CLERK_SCREENSHOT, full_page=True)

    # The ready text goes out through the real SDK with the order's link.
    ready = wait_for_sms(live_server, number, "is ready")
    assert "Hi Emma" in ready["body"]
    assert ready["recipients_list"] == ["393477654321"]
    link = live_server.sms_link(ready)
    assert link == receipt["tracking_url"]

    # The shopper's phone: the code, its QR, and a visit chosen with the two selects.
    response = phone.goto(link)
    assert response is not None and response.status == 200
    expect(headline(phone)).to_have_text("Ready for pickup")
    code_text = phone.locator("#progress .pickup-code")
    expect(code_text).to_have_text(re.compile(r"^\d{3} \d{3}$"))
    code = re.sub(r"\D", "", code_text.inner_text())
    assert len(code) == 6, code
    expect(phone.locator("#progress .pickup-status svg")).to_be_visible()
    day, at, day_label, time_label = choose_a_visit(phone)
    phone.get_by_role("button", name="Save my visit").click()
    chosen = phone.locator("#pickup .chosen")
    expect(chosen).to_contain_text("Your visit")
    expect(chosen).to_contain_text(day_label)
    expect(chosen).to_contain_text(time_label)
    expect(phone.get_by_role("heading", name="Change your visit")).to_be_visible()
    # A friend is named, then the shopper decides to come herself: the card follows in place.
    phone.get_by_label("Name of the person collecting").fill("Marco Rossi")
    phone.get_by_role("button", name="Save the name").click()
    expect(phone.locator("#pickup")).to_contain_text("Marco Rossi will collect this order.")
    phone.get_by_role("button", name="I will collect it myself").click()
    expect(phone.locator("#pickup")).not_to_contain_text("will collect this order")
    expect(phone.get_by_label("Name of the person collecting")).to_have_value("")
    expect(phone.get_by_role("button", name="I will collect it myself")).to_have_count(0)
    expect(chosen).to_contain_text(time_label)
    phone.screenshot(path=SHOPPER_SCREENSHOT, full_page=True)
    phone.evaluate("window.__sameDocument = true")  # gone if the page reloads

    # Back at the counter: the order is ready and waiting, with the shopper's visit.
    tablet.goto(f"{base}/clerk/")
    waiting = queue_entry(tablet, "waiting", number)
    expect(waiting).to_contain_text("Visit")
    expect(waiting.locator(f'time[datetime="{visit_in_utc(day, at)}"]')).to_have_count(1)
    expect(queue_entry(tablet, "to_prepare", number)).to_have_count(0)

    # The shopper shows the code; the clerk types it, checks who it is, and hands over.
    waiting.get_by_role("link").click()
    tablet.get_by_label("Pickup code").fill(code)
    tablet.get_by_role("button", name="Check code").click()
    expect(tablet.locator("h1")).to_have_text("Hand over to Emma Clarke?")
    tablet.get_by_role("button", name="Hand over").click()
    expect(tablet).to_have_url(f"{base}/clerk/orders/{receipt['id']}?done=handed-over")
    expect(tablet.locator(".counter-notice")).to_have_text("Handed over to Emma Clarke.")
    expect(tablet.locator(".counter-badge")).to_have_text("Collected")

    # The phone's open page catches up through its poll, without a reload.
    expect(headline(phone)).to_have_text("Collected. Enjoy!", timeout=UPDATE_MS)
    expect(phone.locator("#progress .collected")).to_contain_text("Collected on")
    expect(phone.locator(".pickup-code")).to_have_count(0)
    expect(phone.locator("#progress svg")).to_have_count(0)
    expect(phone.locator("#pickup form")).to_have_count(0)  # the forms went with the last poll
    assert phone.evaluate("window.__sameDocument") is True

    collected = wait_for_sms(live_server, number, "was collected")
    assert live_server.sms_link(collected) == link


def test_without_javascript_the_shopper_saves_a_visit_and_a_delegate_with_plain_forms(
    live_server: LiveServer, db_url: str, tablet: Page, phone_without_js: Page
) -> None:
    page = phone_without_js
    base = live_server.base_url
    open_store_with_a_clerk(live_server, db_url)
    receipt = pickup_order(live_server)
    sign_in_at_the_counter(tablet, base)
    tablet.goto(f"{base}/clerk/orders/{receipt['id']}")
    mark_ready(tablet)

    page.goto(receipt["tracking_url"])
    expect(headline(page)).to_have_text("Ready for pickup")
    expect(page.locator("#progress .pickup-code")).to_be_visible()

    _, _, day_label, time_label = choose_a_visit(page)
    submit_and_follow(page.get_by_role("button", name="Save my visit"))
    assert page.url == receipt["tracking_url"] + "#pickup"
    chosen = page.locator("#pickup .chosen").first
    expect(chosen).to_contain_text("Your visit")
    expect(chosen).to_contain_text(day_label)
    expect(chosen).to_contain_text(time_label)

    page.get_by_label("Name of the person collecting").fill("Marco Rossi")
    submit_and_follow(page.get_by_role("button", name="Save the name"))
    expect(page.locator("#pickup")).to_contain_text("Marco Rossi will collect this order.")
    expect(page.get_by_label("Name of the person collecting")).to_have_value("Marco Rossi")
    expect(page.locator("#pickup .chosen").first).to_contain_text(time_label)  # still there

    submit_and_follow(page.get_by_role("button", name="I will collect it myself"))
    expect(page.locator("#pickup")).not_to_contain_text("will collect this order")
    expect(page.get_by_label("Name of the person collecting")).to_have_value("")
    expect(page.locator("#pickup .chosen").first).to_contain_text(time_label)
