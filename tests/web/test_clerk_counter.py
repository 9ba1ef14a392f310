"""The store counter: the pickup queue, setting items aside, and handing orders over."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from portal.db.tables import AuditLog, OrderLine, Pickup, SmsMessage
from portal.services import pickup as pickup_service
from portal.services.staff import create_staff
from tests.web.conftest import CLERK_PASSWORD, MANAGER_PASSWORD
from tests.web.helpers import create_order, csrf_field, sign_in

RM_PASSWORD = "roma-counter-2026"


async def pickup_order(client, auth, store: str = "MI01", **overrides: Any) -> dict[str, Any]:
    """A pickup order of two lines: 2 T-shirts and 1 mug, 3 items."""
    return await create_order(
        client, auth, fulfilment={"method": "pickup", "store": store}, **overrides
    )


async def line_ids(order_id: int) -> list[int]:
    rows = (
        await OrderLine.select(OrderLine.id)
        .where(OrderLine.order == order_id)
        .order_by(OrderLine.position)
    )
    return [r["id"] for r in rows]


async def pickup_code(order_id: int) -> str:
    row = await Pickup.select(Pickup.code).where(Pickup.order == order_id).first()
    return row["code"]


async def api_status(client, auth, external_id: str) -> str:
    response = await client.get(f"/api/v1/orders/{external_id}", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()["status"]


async def token_for(client, path: str = "/clerk/") -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return csrf_field(page.text)


async def post_form(client, path: str, data: dict[str, Any] | None = None):
    """A plain browser POST from the console, with the CSRF field a page carries."""
    return await client.post(path, data={"_csrf_token": await token_for(client), **(data or {})})


async def mark_ready(client, order_id: int, counts: dict[int, Any] | None = None):
    data = {f"line-{k}": str(v) for k, v in (counts or {}).items()}
    return await post_form(client, f"/clerk/orders/{order_id}/ready", data)


async def hand_over(client, order_id: int, code: str):
    return await post_form(client, f"/clerk/orders/{order_id}/handover", {"code": code})


def section(html: str, key: str) -> str:
    start = html.index(f'queue-section queue-{key}"')
    return html[start : html.index("</section>", start)]


def button(label: str) -> re.Pattern[str]:
    return re.compile(rf"<button[^>]*>{re.escape(label)}</button>")


@pytest.fixture
async def counter(client, clerk):
    """The MI01 clerk, signed in on `client`."""
    assert (await sign_in(client, "anna.rossi", CLERK_PASSWORD)).status_code == 303
    return client


@pytest.fixture
async def roma(rt, stores, client_from):
    """A clerk of RM01, signed in on a browser of their own."""
    await create_staff(rt, "rita.bruno", RM_PASSWORD, store_code="RM01")
    browser = await client_from("198.51.100.20")
    assert (await sign_in(browser, "rita.bruno", RM_PASSWORD)).status_code == 303
    return browser


# The queue


async def test_the_queue_sorts_pickup_orders_into_sections_that_link_to_each_order(
    rt, counter, auth, clock
):
    client = counter
    prepare = await pickup_order(client, auth, external_id="Q-PREP")
    partly = await pickup_order(client, auth, external_id="Q-PART")
    waiting = await pickup_order(client, auth, external_id="Q-WAIT")
    collected = await pickup_order(client, auth, external_id="Q-DONE")
    expired = await pickup_order(client, auth, external_id="Q-GONE")

    assert (await mark_ready(client, expired["id"])).status_code == 303
    clock.advance(days=7, minutes=1)
    assert await pickup_service.expire_due(rt) == 1

    # Monday 30 Nov: ready; the shopper names a friend and a Saturday visit (11:00 in Milan).
    assert (await mark_ready(client, waiting["id"])).status_code == 303
    await pickup_service.name_delegate(rt, waiting["id"], "Marco Rossi")
    visit = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    await pickup_service.choose_visit(rt, waiting["id"], visit, visit + timedelta(minutes=30))
    clock.advance(days=2)

    assert (await mark_ready(client, collected["id"])).status_code == 303
    code = await pickup_code(collected["id"])
    assert (await hand_over(client, collected["id"], code)).status_code == 303
    first, second = await line_ids(partly["id"])
    assert (await mark_ready(client, partly["id"], {first: 2, second: 0})).status_code == 303

    page = await client.get("/clerk/")
    assert page.status_code == 200
    html = page.text
    assert "Signed in as <strong>anna.rossi</strong> · Milano Centro" in html
    headings = re.findall(r'<h2 id="h-[a-z_]+">([^<]+?) <span', html)
    assert headings == [
        "To prepare",
        "Partly ready",
        "Ready and waiting",
        "Collected today",
        "Return to stock",
    ]
    expected = {
        "to_prepare": prepare,
        "partly_ready": partly,
        "waiting": waiting,
        "collected_today": collected,
        "return_to_stock": expired,
    }
    for key, order in expected.items():
        part = section(html, key)
        assert f'href="/clerk/orders/{order["id"]}"' in part, key
        assert re.findall(r"Q-[A-Z]+", part) == [order["external_id"]], key
    assert "2 of 3 items" in section(html, "partly_ready")
    ready = section(html, "waiting")
    assert "Waiting 2 days" in ready
    assert "Collected by: Marco Rossi" in ready
    # The visit in the store's time zone: 10:00 UTC is 11:00 in Milan.
    assert '<time datetime="2026-12-05T10:00:00+00:00">Dec 5, 11:00' in ready
    assert "Collected at" in section(html, "collected_today")


async def test_the_queue_search_finds_orders_by_number_name_or_pickup_code(counter, auth):
    client = counter
    giulia = await pickup_order(client, auth, external_id="S-100")
    emma = await pickup_order(
        client,
        auth,
        external_id="S-200",
        customer={"name": "Emma Clarke", "phone": "347 765 4321", "locale": "en"},
    )
    code = await pickup_code(emma["id"])

    def found(html: str) -> list[str]:
        return re.findall(r'<span class="queue-number">([^<]+)</span>', html)

    assert found((await client.get("/clerk/", params={"q": "S-100"})).text) == ["S-100"]
    assert found((await client.get("/clerk/", params={"q": "clarke"})).text) == ["S-200"]
    by_code = await client.get("/clerk/", params={"q": f"{code[:3]} {code[3:]}"})
    assert found(by_code.text) == ["S-200"]
    assert found((await client.get("/clerk/", params={"q": "nobody"})).text) == []
    page = (await client.get("/clerk/")).text
    assert sorted(found(page)) == [giulia["external_id"], emma["external_id"]]
    assert '<input id="q" name="q" type="search" value=""' in page
    assert '<form class="queue-search" method="get" action="/clerk/"' in page


async def test_the_queue_polls_itself_and_an_htmx_request_gets_only_the_queue_block(counter, auth):
    client = counter
    await pickup_order(client, auth, external_id="H-1")
    page = await client.get("/clerk/", params={"q": "H-1"})
    poller = re.search(r'<div id="queue"[^>]*>', page.text)
    assert poller, page.text
    tag = poller.group(0)
    assert 'hx-get="/clerk/?q=H-1"' in tag
    assert 'hx-trigger="every 15s"' in tag
    assert 'hx-target="this"' in tag and 'hx-swap="outerHTML"' in tag

    fragment = await client.get("/clerk/", params={"q": "H-1"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<div id="queue"')
    assert fragment.text.rstrip().endswith("</div>")
    assert "<html" not in fragment.text and "Signed in as" not in fragment.text
    assert "H-1" in fragment.text
    assert fragment.headers["cache-control"] == "no-store"


async def test_a_manager_sees_every_stores_queue_and_can_narrow_it_to_one(client, manager, auth):
    milano = await pickup_order(client, auth, external_id="M-MI")
    roma = await pickup_order(client, auth, store="RM01", external_id="M-RM")
    await sign_in(client, "marco", MANAGER_PASSWORD)

    everything = (await client.get("/clerk/")).text
    assert "M-MI" in everything and "M-RM" in everything
    assert 'href="/clerk/audit"' in everything
    only_roma = await client.get("/clerk/", params={"store": "RM01"})
    assert "M-RM" in only_roma.text and "M-MI" not in only_roma.text
    assert 'hx-get="/clerk/?store=RM01"' in only_roma.text

    assert (await client.get(f"/clerk/orders/{milano['id']}")).status_code == 200
    assert (await mark_ready(client, roma["id"])).status_code == 303
    assert await api_status(client, auth, "M-RM") == "ready_for_pickup"


# Store isolation and CSRF


async def test_a_clerk_of_another_store_gets_404_on_every_counter_route(client, clerk, roma, auth):
    order = await pickup_order(client, auth)  # at MI01
    code = await pickup_code(order["id"])
    base = f"/clerk/orders/{order['id']}"
    token = await token_for(roma)

    assert (await roma.get(base)).status_code == 404
    assert (await roma.get(f"{base}/handover", params={"code": code})).status_code == 404
    ready = await roma.post(f"{base}/ready", data={"_csrf_token": token})
    assert ready.status_code == 404
    handover = await roma.post(f"{base}/handover", data={"_csrf_token": token, "code": code})
    assert handover.status_code == 404
    assert "Milano" not in handover.text and order["external_id"] not in handover.text

    assert await api_status(client, auth, order["external_id"]) == "placed"
    assert await AuditLog.count().where(AuditLog.order == order["id"]) == 0
    # ... and the order is not in their queue either.
    assert order["external_id"] not in (await roma.get("/clerk/")).text


async def test_ready_and_handover_posts_without_the_csrf_token_are_refused(counter, auth):
    client = counter
    order = await pickup_order(client, auth)
    base = f"/clerk/orders/{order['id']}"
    await client.get(base)  # the CSRF cookie is there; the field is not
    assert (await client.post(f"{base}/ready", data={})).status_code == 403
    assert await api_status(client, auth, order["external_id"]) == "placed"

    assert (await mark_ready(client, order["id"])).status_code == 303
    code = await pickup_code(order["id"])
    refused = await client.post(f"{base}/handover", data={"code": code})
    assert refused.status_code == 403
    assert await api_status(client, auth, order["external_id"]) == "ready_for_pickup"


async def test_counter_pages_need_a_signed_in_clerk(client, clerk, auth):
    order = await pickup_order(client, auth)
    response = await client.get(f"/clerk/orders/{order['id']}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/clerk/login?next=/clerk/orders/{order['id']}"


# Setting items aside


async def test_mark_ready_sets_everything_aside_and_the_shopper_gets_the_ready_text(counter, auth):
    client = counter
    order = await pickup_order(client, auth)
    page = await client.get(f"/clerk/orders/{order['id']}")
    assert page.status_code == 200
    assert button("Mark ready").search(page.text)
    assert f'action="/clerk/orders/{order["id"]}/ready"' in page.text

    response = await mark_ready(client, order["id"])
    assert response.status_code == 303
    assert response.headers["location"] == f"/clerk/orders/{order['id']}?done=ready"
    after = await client.get(response.headers["location"])
    assert "3 of 3 items set aside. The shopper has been told the order is ready." in after.text
    assert "Ready and waiting" in after.text
    assert not button("Mark ready").search(after.text)  # nothing left to set aside

    assert await api_status(client, auth, order["external_id"]) == "ready_for_pickup"
    texts = await SmsMessage.count().where(
        (SmsMessage.order == order["id"]) & (SmsMessage.kind == "ready_for_pickup")
    )
    assert texts == 1


async def test_counts_set_line_by_line_show_partial_readiness(counter, auth):
    client = counter
    order = await pickup_order(client, auth)
    shirts, mug = await line_ids(order["id"])
    page = (await client.get(f"/clerk/orders/{order['id']}")).text
    assert re.search(
        rf'<input class="count" id="line-{shirts}" name="line-{shirts}" type="number"'
        r'\s+inputmode="numeric"\s+min="0" max="2"',
        page,
    )

    response = await mark_ready(client, order["id"], {shirts: 1, mug: 1})
    assert response.status_code == 303
    after = (await client.get(response.headers["location"])).text
    assert "2 of 3 items set aside" in after
    assert "Partly ready" in after
    assert f'name="line-{shirts}" type="number"' in after
    assert re.search(rf'id="line-{shirts}"[^>]*value="1"', after)
    assert "2 of 3 items" in section((await client.get("/clerk/")).text, "partly_ready")
    assert await SmsMessage.count().where(SmsMessage.kind == "ready_for_pickup") == 0


async def test_a_count_out_of_range_is_refused_with_its_message_and_the_typed_values(counter, auth):
    client = counter
    order = await pickup_order(client, auth)
    shirts, mug = await line_ids(order["id"])

    response = await mark_ready(client, order["id"], {shirts: 5, mug: 1})
    assert response.status_code == 422
    assert "ready quantity must be between 0 and 2" in response.text
    assert re.search(rf'id="line-{shirts}"[^>]*value="5"', response.text)
    assert re.search(rf'id="line-{mug}"[^>]*value="1"', response.text)

    not_a_number = await mark_ready(client, order["id"], {shirts: "two", mug: 1})
    assert not_a_number.status_code == 422
    assert "write a whole number of items" in not_a_number.text
    assert (await client.get(f"/clerk/orders/{order['id']}")).text.count('value="0"') == 2


async def test_an_htmx_ready_post_answers_the_order_block_and_errors_too(counter, auth):
    client = counter
    order = await pickup_order(client, auth)
    shirts, mug = await line_ids(order["id"])
    page = (await client.get(f"/clerk/orders/{order['id']}")).text
    assert f'hx-post="/clerk/orders/{order["id"]}/ready" hx-target="#order"' in page
    htmx = {"HX-Request": "true", "X-CSRFToken": csrf_field(page)}

    partly = await client.post(
        f"/clerk/orders/{order['id']}/ready",
        data={f"line-{shirts}": "2", f"line-{mug}": "0"},
        headers=htmx,
    )
    assert partly.status_code == 200
    assert partly.text.lstrip().startswith('<div id="order"')
    assert "<html" not in partly.text
    assert "2 of 3 items set aside" in partly.text

    refused = await client.post(
        f"/clerk/orders/{order['id']}/ready", data={f"line-{mug}": "7"}, headers=htmx
    )
    assert refused.status_code == 422
    assert refused.text.lstrip().startswith('<div id="order"')
    assert "ready quantity must be between 0 and 1" in refused.text

    done = await client.post(f"/clerk/orders/{order['id']}/ready", headers=htmx)
    assert done.status_code == 200
    assert "The shopper has been told the order is ready." in done.text
    assert '<label for="code">Pickup code</label>' in done.text  # the handover form appears


async def test_counts_cannot_go_down_once_the_shopper_was_told_the_order_is_ready(counter, auth):
    client = counter
    order = await pickup_order(client, auth)
    shirts, _ = await line_ids(order["id"])
    await mark_ready(client, order["id"])
    response = await mark_ready(client, order["id"], {shirts: 1})
    assert response.status_code == 409
    assert "counts cannot go down" in response.text


# Handing over


async def test_the_order_page_names_who_may_collect_and_never_shows_the_code(rt, counter, auth):
    client = counter
    order = await pickup_order(client, auth)
    await pickup_service.name_delegate(rt, order["id"], "Marco Rossi")
    await mark_ready(client, order["id"])
    code = await pickup_code(order["id"])
    page = (await client.get(f"/clerk/orders/{order['id']}")).text
    assert "May collect: Marco Rossi" in page
    assert "Giulia Bianchi" in page
    assert code not in page and f"{code[:3]} {code[3:]}" not in page
    assert re.search(
        rf'<form class="code-form" method="get" action="/clerk/orders/{order["id"]}/handover">',
        page,
    )
    assert re.search(r'<label for="code">Pickup code</label>\s*<input id="code" name="code"', page)
    assert 'inputmode="numeric"' in page
    assert code not in (await client.get("/clerk/")).text

    confirm = await client.get(f"/clerk/orders/{order['id']}/handover", params={"code": code})
    assert confirm.status_code == 200
    assert "Hand over to Marco Rossi?" in confirm.text
    assert "Organic cotton T-shirt" in confirm.text and "Ceramic mug" in confirm.text
    assert button("Hand over").search(confirm.text)
    # The code rides along in the form only, to be checked when the clerk confirms.
    assert confirm.text.count(code) == 1
    assert f'<input type="hidden" name="code" value="{code}">' in confirm.text


async def test_the_right_code_hands_the_order_over_once_and_a_second_handover_gets_409(
    counter, auth
):
    client = counter
    order = await pickup_order(client, auth)
    await mark_ready(client, order["id"])
    code = await pickup_code(order["id"])

    response = await hand_over(client, order["id"], f"{code[:3]} {code[3:]}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/clerk/orders/{order['id']}?done=handed-over"
    done = await client.get(response.headers["location"])
    assert "Handed over to Giulia Bianchi." in done.text
    assert "handed to Giulia Bianchi, by anna.rossi" in done.text
    assert not button("Mark ready").search(done.text)
    assert await api_status(client, auth, order["external_id"]) == "collected"
    # The handover QR kept while it waited is dropped with it.
    kept = await Pickup.select(Pickup.qr_svg, Pickup.qr_url).where(Pickup.order == order["id"])
    assert kept == [{"qr_svg": "", "qr_url": ""}]

    again = await hand_over(client, order["id"], code)
    assert again.status_code == 409
    assert "this order has already been handed over" in again.text
    scanned_again = await client.get(f"/clerk/orders/{order['id']}/handover", params={"code": code})
    assert scanned_again.status_code == 409
    assert not button("Hand over").search(scanned_again.text)


async def test_a_wrong_code_is_refused_with_422_and_five_wrong_codes_lock_the_order(counter, auth):
    client = counter
    order = await pickup_order(client, auth)
    await mark_ready(client, order["id"])
    code = await pickup_code(order["id"])
    wrong = "111111" if code != "111111" else "222222"

    first = await hand_over(client, order["id"], wrong)
    assert first.status_code == 422
    assert "that code is not right for this order" in first.text
    assert 'name="code"' in first.text  # the code form, to try again
    for _ in range(4):
        last = await hand_over(client, order["id"], wrong)
    assert last.status_code == 422
    assert "too many wrong codes" in last.text
    locked = await hand_over(client, order["id"], code)
    assert locked.status_code == 422
    assert "too many wrong codes" in locked.text
    assert await api_status(client, auth, order["external_id"]) == "ready_for_pickup"


async def test_an_order_still_being_prepared_cannot_be_handed_over(counter, auth):
    client = counter
    order = await pickup_order(client, auth)
    code = await pickup_code(order["id"])
    response = await hand_over(client, order["id"], code)
    assert response.status_code == 409
    assert "this order cannot be handed over: it is preparing" in response.text
    confirm = await client.get(f"/clerk/orders/{order['id']}/handover", params={"code": code})
    assert confirm.status_code == 409
    assert await api_status(client, auth, order["external_id"]) == "placed"


async def test_a_scanned_qr_code_opens_the_confirm_screen_after_sign_in(client, clerk, auth):
    order = await pickup_order(client, auth)
    code = await pickup_code(order["id"])
    path = f"/clerk/orders/{order['id']}/handover?code={code}"

    scanned = await client.get(path)
    assert scanned.status_code == 303
    next_path = f"/clerk/orders/{order['id']}/handover%3Fcode%3D{code}"
    assert scanned.headers["location"] == f"/clerk/login?next={next_path}"
    form = await client.get(scanned.headers["location"])
    assert f'<input type="hidden" name="next" value="{path}">' in form.text

    signed_in = await sign_in(client, "anna.rossi", CLERK_PASSWORD, next_path=path)
    assert signed_in.headers["location"] == path
    # Not ready yet: the clerk lands on the order with the reason, not on a dead end.
    assert (await client.get(path)).status_code == 409
    await mark_ready(client, order["id"])
    confirm = await client.get(path)
    assert confirm.status_code == 200
    assert "Hand over to Giulia Bianchi?" in confirm.text
    assert (await hand_over(client, order["id"], code)).status_code == 303


async def test_an_empty_code_asks_for_the_code_again(counter, auth):
    client = counter
    order = await pickup_order(client, auth)
    await mark_ready(client, order["id"])
    response = await client.get(f"/clerk/orders/{order['id']}/handover", params={"code": " "})
    assert response.status_code == 422
    assert "type the pickup code" in response.text


async def test_an_order_id_beyond_the_database_range_is_a_clear_400(client, clerk):
    await sign_in(client, "anna.rossi", CLERK_PASSWORD)
    answer = await client.get(f"/clerk/orders/{2**40}")
    assert answer.status_code == 400
