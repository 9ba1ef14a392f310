"""The shopper's page: what a person sees on the link, and how the live part behaves."""

from __future__ import annotations

import re

import pytest

from portal.db.tables import Customer
from tests.factories import CUSTOMER
from tests.web.helpers import create_order, path_of, post_event, ship


@pytest.fixture
async def order(client, auth):
    body = await create_order(client, auth, external_id="T-100234")
    return {**body, "path": path_of(body["tracking_url"])}


async def test_the_page_shows_the_order_to_its_shopper(client, order):
    page = await client.get(order["path"])
    assert page.status_code == 200
    html = page.text
    assert "Hi Giulia," in html
    assert "T-100234" in html
    assert "Organic cotton T-shirt" in html and "Ceramic mug" in html
    assert "€52.30" in html
    assert "We have your order" in html
    assert re.search(
        r'class="step current"[^>]*>\s*<span class="dot"[^>]*></span><span class="label">Ordered',
        html,
    )
    # Private bits stay private: masked phone, no street. (The link's token and the CSRF
    # token are random, so they are taken out before looking for the number's digits.)
    assert "+39 ••• ••• •567" in html
    csrf = re.search(r'"x-csrftoken": "([^"]+)"', html).group(1)
    shown = html.replace(csrf, "").replace(order["path"], "")
    assert "4567" not in shown and "Via Roma" not in html
    assert "20121 Milano" in html


async def test_the_page_is_private_and_self_contained(client, order):
    page = await client.get(order["path"])
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert "noindex" in page.headers["x-robots-tag"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    external = re.findall(r'(?:src|href)="(https?://[^"]+)"', page.text)
    assert external == []
    assert re.search(r'<script src="/static/htmx-2\.0\.11\.min\.js\?v=\w+" defer>', page.text)


async def test_the_static_files_the_page_needs_are_served_and_cached(client, order):
    page = await client.get(order["path"])
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        response = await client.get(asset)
        assert response.status_code == 200, asset
        assert "max-age=31536000" in response.headers["cache-control"]


async def test_the_progress_fragment_is_only_the_live_part_and_polls(client, order):
    fragment = await client.get(order["path"] + "/progress", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<section id="progress"')
    assert "<html" not in fragment.text
    assert 'hx-trigger="every 20s"' in fragment.text
    assert fragment.headers["etag"]


async def test_an_unchanged_order_answers_the_poll_with_304(client, auth, order):
    first = await client.get(order["path"] + "/progress")
    etag = first.headers["etag"]
    same = await client.get(order["path"] + "/progress", headers={"If-None-Match": etag})
    assert same.status_code == 304
    assert same.content == b""
    await ship(client, auth, order["external_id"])
    changed = await client.get(order["path"] + "/progress", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert "Your order is on its way" in changed.text
    assert "BRT123" in changed.text


async def test_a_final_order_tells_htmx_to_stop_polling(client, auth, order):
    external_id = order["external_id"]
    await ship(client, auth, external_id)
    await post_event(client, auth, external_id, "delivered")
    fragment = await client.get(order["path"] + "/progress", headers={"HX-Request": "true"})
    assert fragment.status_code == 286
    assert "hx-trigger" not in fragment.text
    assert "Delivered" in fragment.text
    page = await client.get(order["path"])
    assert "hx-trigger" not in page.text


async def test_a_cancelled_order_says_so_and_about_the_refund(client, auth, order):
    await post_event(client, auth, order["external_id"], "cancelled")
    page = await client.get(order["path"])
    assert "Order cancelled" in page.text
    assert "refund" in page.text


async def test_a_split_delivery_shows_each_parcel(client, auth, order):
    await ship(client, auth, order["external_id"], "P1")
    await ship(client, auth, order["external_id"], "P2")
    page = await client.get(order["path"])
    assert "Parcel 1/2" in page.text and "Parcel 2/2" in page.text


async def link_not_found(client, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert "This link is not available" in response.text


async def test_unknown_malformed_expired_and_revoked_links_look_the_same(
    client, auth, clock, order
):
    await link_not_found(client, "/t/AAAAAAAAAAAAAAAAAAAAAA")
    await link_not_found(client, "/t/short")
    await link_not_found(client, "/t/" + "x" * 300)
    await link_not_found(client, order["path"][:-1] + ("A" if order["path"][-1] != "A" else "B"))
    clock.advance(days=366)
    await link_not_found(client, order["path"])
    clock.advance(days=-366)
    assert (await client.get(order["path"])).status_code == 200
    revoked = await client.post(f"/api/v1/orders/{order['external_id']}/links/revoke", headers=auth)
    assert revoked.json() == {"revoked": 1}
    await link_not_found(client, order["path"])
    await link_not_found(client, order["path"] + "/progress")


async def test_a_delivered_orders_link_expires_90_days_after_delivery(client, auth, clock, order):
    await ship(client, auth, order["external_id"])
    await post_event(client, auth, order["external_id"], "delivered")
    clock.advance(days=89)
    assert (await client.get(order["path"])).status_code == 200
    clock.advance(days=2)
    await link_not_found(client, order["path"])


async def test_guessing_links_from_one_address_is_slowed_down(client, app, order):
    app.state.miss_limiter.limit = 5
    for _ in range(5):
        await link_not_found(client, "/t/AAAAAAAAAAAAAAAAAAAAAA")
    blocked = await client.get("/t/BBBBBBBBBBBBBBBBBBBBBB")
    assert blocked.status_code == 429
    assert blocked.headers["retry-after"] == "60"
    assert "Too many" in blocked.text
    # While blocked, even a real link is not checked from there: no answer tells a guess apart.
    assert (await client.get(order["path"])).status_code == 429


async def test_a_shoppers_phone_and_time_zone_are_worked_out_once_and_shown_the_same(client, auth):
    """A new customer gets the masked number and the number's time zone stored; a customer
    from before they were stored sees the very same page, worked out from the number."""
    lisbon = {**CUSTOMER, "phone": "+351 912 345 678"}
    body = await create_order(client, auth, external_id="T-ZONE-1", customer=lisbon)
    path = path_of(body["tracking_url"])
    stored = await Customer.select(Customer.phone_masked, Customer.timezone).first()
    assert stored == {"phone_masked": "+351 ••• ••• 678", "timezone": "Europe/Lisbon"}

    def without_tokens(html: str) -> str:
        csrf = re.search(r'"x-csrftoken": "([^"]+)"', html).group(1)
        return html.replace(csrf, "")

    page = without_tokens((await client.get(path)).text)
    assert "+351 ••• ••• 678" in page
    # Placed at 10:30 in Milan (the test clock): 09:30 in Lisbon.
    assert "9:30" in page and "10:30" not in page
    await Customer.update({Customer.phone_masked: "", Customer.timezone: ""}).where(Customer.id > 0)
    assert without_tokens((await client.get(path)).text) == page
    # Such a customer's next order keeps them.
    await create_order(client, auth, external_id="T-ZONE-2", customer=lisbon)
    assert await Customer.select(Customer.phone_masked, Customer.timezone).first() == stored
