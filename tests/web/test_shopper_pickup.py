"""Click-and-collect on the shopper's page: the pickup card, the code and its QR, the visit
and delegate forms (with and without htmx), and what the page says once it is over.

The store (tests/factories.STORE) opens Monday 09:30-13:00 and 15:00-19:30 and Saturday
10:00-19:00, Europe/Rome; the clock starts on Monday 23 November 2026, 10:30 in Milan.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from portal.db.tables import OrderLine, Pickup, Store
from portal.domain import qr
from portal.domain.qr import handover_url
from portal.services import pickup as pickup_service
from tests.conftest import BASE_URL
from tests.web.helpers import create_order, csrf_field, path_of

NBSP = "\u202f"  # Babel's narrow no-break space before AM/PM


@pytest.fixture
async def order(client, auth, stores):
    body = await create_order(
        client,
        auth,
        external_id="P-200100",
        fulfilment={"method": "pickup", "store": "MI01"},
    )
    return {**body, "path": path_of(body["tracking_url"])}


@pytest.fixture
async def actor(clerk):
    store = await Store.select(Store.id).where(Store.code == "MI01").first()
    return pickup_service.Actor(clerk.id, store["id"])


async def pickup_row(order_id: int) -> dict:
    return await Pickup.select().where(Pickup.order == order_id).first()


async def make_ready(rt, actor, order) -> str:
    await pickup_service.mark_ready(rt, actor, order["id"])
    return (await pickup_row(order["id"]))["code"]


async def post_form(client, path: str, form: str, data: dict[str, str], *, htmx: bool = False):
    """What a browser does: open the page (the CSRF cookie and field), then post the form."""
    page = await client.get(path)
    headers = {"HX-Request": "true"} if htmx else {}
    return await client.post(
        f"{path}/{form}", data={"_csrf_token": csrf_field(page.text), **data}, headers=headers
    )


def body_csrf(html: str) -> str:
    """The token htmx sends (on <body>): there even when the page has no form."""
    match = re.search(r'"x-csrftoken": "([^"]+)"', html)
    assert match
    return match.group(1)


def spaced(code: str) -> str:
    return f"{code[:3]} {code[3:]}"


async def test_a_pickup_order_shows_the_store_and_its_week_but_no_code_before_it_is_ready(
    client, order
):
    page = await client.get(order["path"])
    assert page.status_code == 200
    html = page.text
    assert '<section id="pickup"' in html
    assert "Pick up at Milano Centro" in html
    assert "Via Torino 21" in html
    assert re.search(
        r"<dt>Monday</dt><dd><span>9:30.AM – 1:00.PM</span><span>3:00.PM – 7:30.PM</span></dd>",
        html,
    )
    assert re.search(r"<dt>Saturday</dt><dd><span>10:00.AM – 7:00.PM</span></dd>", html)
    assert "<dt>Sunday</dt><dd>Closed</dd>" in html
    assert "getting your order ready" in html
    code = (await pickup_row(order["id"]))["code"]
    assert spaced(code) not in html
    assert "pickup-code" not in html and "<svg" not in html
    # Both forms are there, each with its CSRF field and a real action.
    assert f'action="/t/{order["path"].rsplit("/", 1)[1]}/visit"' in html
    assert 'for="delegate-name">Name of the person collecting</label>' in html
    card = re.search(r'<section id="pickup".*?</section>', html, re.S).group(0)
    assert card.count('name="_csrf_token"') == 2


async def test_a_partly_ready_order_says_how_many_items_are_ready_live(client, rt, actor, order):
    first = await client.get(order["path"] + "/progress")
    lines = await OrderLine.select(OrderLine.id, OrderLine.quantity).where(
        OrderLine.order == order["id"]
    )
    two = next(line["id"] for line in lines if line["quantity"] == 2)
    await pickup_service.mark_ready(rt, actor, order["id"], {two: 2})
    fragment = await client.get(
        order["path"] + "/progress",
        headers={"If-None-Match": first.headers["etag"], "HX-Request": "true"},
    )
    assert fragment.status_code == 200
    assert "2 of 3 items ready" in fragment.text
    assert '<progress value="2" max="3">' in fragment.text
    assert "pickup-code" not in fragment.text
    assert "2 of 3 items ready" in (await client.get(order["path"])).text


async def test_a_ready_order_shows_its_code_and_the_qr_of_the_clerks_handover(
    client, rt, actor, order
):
    code = await make_ready(rt, actor, order)
    html = (await client.get(order["path"])).text
    assert f'<p class="pickup-code" translate="no">{spaced(code)}</p>' in html
    # The inline SVG is the QR of the handover URL (the same bytes segno makes for it).
    url = handover_url(BASE_URL, order["id"], code)
    expected = qr.svg(url, "QR code of the pickup code")
    assert expected.startswith('<svg viewBox="0 0 ') and 'class="qr"' in expected
    assert expected in html
    # Made once, when the order became ready, and kept with the pickup for the page.
    kept = (
        await Pickup.select(Pickup.qr_svg, Pickup.qr_url).where(Pickup.order == order["id"]).first()
    )
    assert kept == {"qr_svg": qr.image(url), "qr_url": url}
    # One kept for another address (the base URL changed since) is not shown: the page
    # makes the QR of the address the clerks use now. Nor is a missing one missed.
    old = handover_url("https://old.example.com", order["id"], code)
    old_qr = qr.svg(old, "QR code of the pickup code")
    for kept_svg, kept_url in ((qr.image(old), old), ("", "")):
        await Pickup.update({Pickup.qr_svg: kept_svg, Pickup.qr_url: kept_url}).where(
            Pickup.order == order["id"]
        )
        again = (await client.get(order["path"])).text
        assert expected in again and old_qr not in again
    assert f"/clerk/orders/{order['id']}/handover?code={code}" == handover_url(
        "", order["id"], code
    )
    assert f"Held until <strong>Nov 30, 2026, 10:30{NBSP}AM</strong>" in html
    assert "items ready" not in html


async def test_readiness_reaches_an_open_page_through_the_poll_and_then_answers_304(
    client, rt, actor, order
):
    before = await client.get(order["path"] + "/progress")
    code = await make_ready(rt, actor, order)
    after = await client.get(
        order["path"] + "/progress", headers={"If-None-Match": before.headers["etag"]}
    )
    assert after.status_code == 200
    assert spaced(code) in after.text and "<svg" in after.text
    same = await client.get(
        order["path"] + "/progress", headers={"If-None-Match": after.headers["etag"]}
    )
    assert same.status_code == 304


async def test_the_visit_form_offers_the_open_days_while_held_from_the_next_quarter_hour(
    client, rt, actor, clock, order
):
    await make_ready(rt, actor, order)  # Monday 10:30 in Milan: held until next Monday 10:30
    clock.advance(minutes=7)
    html = (await client.get(order["path"])).text
    days = re.findall(r'<option value="(\d{4}-\d\d-\d\d)"', html)
    assert days == ["2026-11-23", "2026-11-28", "2026-11-30"]  # Mon, Sat, and Mon until 10:30
    assert '<option value="2026-11-28">Sat, Nov 28</option>' in html
    times = re.findall(r'<option value="(\d\d:\d\d)"', html)
    assert "10:45" in times and "12:45" in times  # today, from 10:37
    assert "09:30" in times and "18:00" in times
    assert "19:00" in times  # Monday's last one runs to closing at 19:30
    assert "19:30" not in times and "08:00" not in times


async def test_a_visit_inside_opening_hours_is_saved_and_shown(client, rt, actor, order):
    await make_ready(rt, actor, order)
    response = await post_form(
        client, order["path"], "visit", {"day": "2026-11-28", "time": "11:00"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == order["path"] + "#pickup"
    row = await pickup_row(order["id"])
    assert row["visit_start"] == datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    assert row["visit_end"] == datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
    html = (await client.get(order["path"])).text
    assert f"Your visit: <strong>Sat, Nov 28, 11:00{NBSP}AM – 12:00{NBSP}PM</strong>" in html
    # The form offers it changed, starting from the saved choice.
    assert '<option value="2026-11-28" selected>' in html
    assert '<option value="11:00" selected>' in html


async def test_a_visit_can_be_chosen_before_the_order_is_ready_and_ends_at_closing(client, order):
    response = await post_form(
        client, order["path"], "visit", {"day": "2026-11-23", "time": "12:30"}
    )
    assert response.status_code == 303
    row = await pickup_row(order["id"])
    assert row["visit_start"] == datetime(2026, 11, 23, 11, 30, tzinfo=UTC)
    assert row["visit_end"] == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # closes at 13:00


@pytest.mark.parametrize(
    ("day", "time", "message"),
    [
        ("2026-11-23", "14:00", "The store is closed then"),  # Monday lunch
        ("2026-11-24", "11:00", "The store is closed then"),  # closed on Tuesdays
        ("2026-11-23", "09:30", "Choose a time that has not passed"),
        ("2026-12-05", "11:00", "The order is held only until then"),
        ("someday", "11:00", "Choose a day and a time"),
    ],
)
async def test_a_visit_the_store_cannot_take_is_refused_with_the_choice_kept(
    client, rt, actor, order, day, time, message
):
    await make_ready(rt, actor, order)
    response = await post_form(client, order["path"], "visit", {"day": day, "time": time})
    assert response.status_code == 422
    html = response.text
    assert "<html" in html  # the whole page again, not a fragment
    assert f'<p class="form-error" role="alert" id="visit-error">{message}' in html
    if day != "someday":
        assert f'<option value="{day}" selected>' in html
        assert f'<option value="{time}" selected>' in html
    assert (await pickup_row(order["id"]))["visit_start"] is None


async def test_someone_else_can_be_named_to_collect_and_changed(client, order):
    response = await post_form(client, order["path"], "delegate", {"name": "  Marco  Rossi "})
    assert response.status_code == 303
    assert (await pickup_row(order["id"]))["delegate_name"] == "Marco Rossi"
    html = (await client.get(order["path"])).text
    assert "<strong>Marco Rossi</strong> will collect this order." in html
    assert 'name="name" type="text" value="Marco Rossi"' in html
    await post_form(client, order["path"], "delegate", {"name": "Anna Verdi"})
    assert (await pickup_row(order["id"]))["delegate_name"] == "Anna Verdi"


MYSELF = '<button type="submit" name="action" value="myself" class="button-quiet">'


@pytest.mark.parametrize("htmx", [False, True], ids=["plain form", "htmx"])
async def test_the_shopper_can_take_the_name_back_and_collect_herself(client, order, htmx):
    assert MYSELF not in (await client.get(order["path"])).text  # nobody named: nothing to undo
    await post_form(client, order["path"], "delegate", {"name": "Marco Rossi"})
    assert MYSELF + "I will collect it myself</button>" in (await client.get(order["path"])).text
    # The button posts the form with the name still in its field: the button wins.
    response = await post_form(
        client, order["path"], "delegate", {"name": "Marco Rossi", "action": "myself"}, htmx=htmx
    )
    assert response.status_code == (200 if htmx else 303)
    assert (await pickup_row(order["id"]))["delegate_name"] is None
    html = response.text if htmx else (await client.get(order["path"])).text
    assert "will collect this order" not in html
    assert 'name="name" type="text" value=""' in html and MYSELF not in html


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Write the name of the person who will collect"),
        ("   ", "Write the name of the person who will collect"),
        ("x" * 81, "The name can be at most 80 characters"),
    ],
)
async def test_a_delegate_name_that_is_empty_or_too_long_is_refused_and_kept(
    client, order, name, message
):
    response = await post_form(client, order["path"], "delegate", {"name": name})
    assert response.status_code == 422
    assert f'id="delegate-error">{message}' in response.text
    assert f'name="name" type="text" value="{name}"' in response.text
    assert 'aria-invalid="true"' in response.text
    assert (await pickup_row(order["id"]))["delegate_name"] is None


async def test_a_form_post_without_the_csrf_token_is_refused(client, order):
    await client.get(order["path"])  # the CSRF cookie is set, the field is missing
    visit = await client.post(order["path"] + "/visit", data={"day": "2026-11-28", "time": "11:00"})
    delegate = await client.post(order["path"] + "/delegate", data={"name": "Marco Rossi"})
    assert (visit.status_code, delegate.status_code) == (403, 403)
    row = await pickup_row(order["id"])
    assert row["visit_start"] is None and row["delegate_name"] is None


@pytest.mark.parametrize("form", ["visit", "delegate"])
async def test_the_forms_of_a_link_that_does_not_work_get_the_same_404(client, auth, order, form):
    page = await client.get(order["path"])
    data = {"_csrf_token": csrf_field(page.text), "day": "2026-11-28", "time": "11:00"}
    data["name"] = "Marco Rossi"
    for path in ("/t/AAAAAAAAAAAAAAAAAAAAAA", "/t/short"):
        response = await client.post(f"{path}/{form}", data=data)
        assert response.status_code == 404
        assert "This link is not available" in response.text
    await client.post(f"/api/v1/orders/{order['external_id']}/links/revoke", headers=auth)
    revoked = await client.post(f"{order['path']}/{form}", data=data)
    assert revoked.status_code == 404
    assert "This link is not available" in revoked.text
    row = await pickup_row(order["id"])
    assert row["visit_start"] is None and row["delegate_name"] is None


async def test_a_delivery_orders_link_has_no_pickup_forms_to_post_to(client, auth):
    body = await create_order(client, auth, external_id="D-200200")
    path = path_of(body["tracking_url"])
    page = await client.get(path)
    assert "Opening hours" not in page.text and "/visit" not in page.text
    response = await client.post(
        path + "/delegate", data={"_csrf_token": body_csrf(page.text), "name": "Marco"}
    )
    assert response.status_code == 404


async def test_guessing_links_through_the_forms_is_slowed_down_too(client, app, order):
    app.state.miss_limiter.limit = 3
    page = await client.get(order["path"])
    data = {"_csrf_token": csrf_field(page.text), "name": "Marco Rossi"}
    for _ in range(3):
        assert (
            await client.post("/t/AAAAAAAAAAAAAAAAAAAAAA/delegate", data=data)
        ).status_code == 404
    blocked = await client.post(order["path"] + "/delegate", data=data)
    assert blocked.status_code == 429
    assert (await pickup_row(order["id"]))["delegate_name"] is None


async def test_an_htmx_post_answers_with_the_pickup_card_only(client, rt, actor, order):
    await make_ready(rt, actor, order)
    saved = await post_form(
        client, order["path"], "visit", {"day": "2026-11-28", "time": "15:00"}, htmx=True
    )
    assert saved.status_code == 200
    assert saved.text.lstrip().startswith('<section id="pickup" class="card pickup">')
    assert "<html" not in saved.text and 'id="progress"' not in saved.text
    assert f"Sat, Nov 28, 3:00{NBSP}PM – 4:00{NBSP}PM" in saved.text
    refused = await post_form(client, order["path"], "delegate", {"name": ""}, htmx=True)
    assert refused.status_code == 422
    assert refused.text.lstrip().startswith('<section id="pickup"')
    assert "Write the name of the person who will collect" in refused.text


async def test_a_collected_order_says_when_and_by_whom_and_shows_no_code_or_forms(
    client, rt, actor, order
):
    await post_form(client, order["path"], "delegate", {"name": "Marco Rossi"})
    code = await make_ready(rt, actor, order)
    assert (await pickup_service.hand_over(rt, actor, order["id"], code)).ok
    page = await client.get(order["path"])
    html = page.text
    assert "Collected. Enjoy!" in html
    assert "Collected on <strong>Nov 23, 2026, 10:30" in html
    assert "by <strong>Marco Rossi</strong>" in html
    assert spaced(code) not in html and "<svg" not in html and "Held until" not in html
    # No pickup form is left; the returns card offers its form (collected: returnable).
    assert "/visit" not in html and "/delegate" not in html
    assert f'href="{order["path"]}/returns/new#returns"' in html
    assert "hx-trigger" not in html
    # Too late to change anything, even by posting the old form.
    late = await client.post(
        order["path"] + "/delegate", data={"_csrf_token": body_csrf(html), "name": "Anna Verdi"}
    )
    assert late.status_code == 409
    taken_back = await client.post(
        order["path"] + "/delegate", data={"_csrf_token": body_csrf(html), "action": "myself"}
    )
    assert taken_back.status_code == 409
    assert (await pickup_row(order["id"]))["delegate_name"] == "Marco Rossi"


async def test_an_order_collected_by_the_shopper_says_by_you(client, rt, actor, order):
    code = await make_ready(rt, actor, order)
    await pickup_service.hand_over(rt, actor, order["id"], code)
    assert "by you" in (await client.get(order["path"])).text


async def test_the_last_poll_also_takes_the_forms_away(client, rt, actor, order):
    code = await make_ready(rt, actor, order)
    await pickup_service.hand_over(rt, actor, order["id"], code)
    fragment = await client.get(order["path"] + "/progress", headers={"HX-Request": "true"})
    assert fragment.status_code == 286
    assert fragment.text.lstrip().startswith('<section id="progress"')
    assert '<section id="pickup" class="card pickup" hx-swap-oob="true">' in fragment.text
    assert "<form" not in fragment.text and spaced(code) not in fragment.text


async def test_an_expired_order_says_it_was_not_collected_and_the_refund_is_coming(
    client, rt, actor, clock, order
):
    code = await make_ready(rt, actor, order)
    clock.advance(days=7)
    assert await pickup_service.expire_due(rt) == 1
    html = (await client.get(order["path"])).text
    assert "Order cancelled" in html
    assert "not collected in time" in html
    assert "A refund of <strong>€52.30</strong> is on its way" in html
    assert spaced(code) not in html and "<svg" not in html
    assert "/visit" not in html and "/delegate" not in html
