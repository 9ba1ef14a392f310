"""The date rule on the shop API, and a page that stays up whatever dates it holds.

The clock starts on Monday 23 November 2026, 09:30 UTC; the shopper's phone is Italian, so
the page reads dates in Europe/Rome.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from portal.db.tables import Order, OrderEvent, Shipment
from portal.services import orders
from tests.factories import CUSTOMER, order_payload
from tests.web.helpers import create_order, csrf_field, path_of, post_event


async def shipped(client, auth, external_id: str, **shipment):
    return await post_event(
        client,
        auth,
        external_id,
        "shipped",
        shipment={"tracking_number": "BRT0001", "carrier": "BRT", **shipment},
    )


async def page_and_poll(client, path: str) -> tuple[str, str]:
    page = await client.get(path)
    poll = await client.get(f"{path}/progress")
    assert (page.status_code, poll.status_code) == (200, 200), (page.text[-300:], poll.text)
    return page.text, poll.text


async def test_an_eta_placeholder_is_left_out_with_a_warning_and_the_event_kept(client, auth):
    order = await create_order(client, auth)
    path = path_of(order["tracking_url"])

    answer = await shipped(client, auth, order["external_id"], eta="0001-01-01T00:00:00Z")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["status"] == "shipped"
    assert [w["field"] for w in body["warnings"]] == ["shipment.eta"]
    assert "2000-01-01 and 2100-01-01" in body["warnings"][0]["detail"]
    page, poll = await page_and_poll(client, path)
    assert "BRT0001" in page and "BRT0001" in poll and "expected" not in poll

    later = await post_event(
        client,
        auth,
        order["external_id"],
        "out_for_delivery",
        shipment={"tracking_number": "BRT0001", "eta": "9999-12-31T23:59:59Z"},
    )
    assert later.status_code == 201, later.text
    assert [w["field"] for w in later.json()["warnings"]] == ["shipment.eta"]
    await page_and_poll(client, path)
    detail = (await client.get(f"/api/v1/orders/{order['external_id']}", headers=auth)).json()
    assert detail["status"] == "out_for_delivery"
    assert detail["shipments"][0]["eta"] is None

    good = await post_event(client, auth, order["external_id"], "delivered")
    assert good.json()["warnings"] == []


async def test_dates_outside_the_window_are_refused_naming_the_field(client, auth, clock):
    for placed_at in ("1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00"):
        refused = await client.post(
            "/api/v1/orders", json=order_payload(placed_at=placed_at), headers=auth
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "placed_at"
    assert await Order.count() == 0

    order = await create_order(client, auth, placed_at="2000-01-01T00:30:00+00:00")
    external_id = order["external_id"]
    for occurred_at in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-11-24T09:31:00Z"):
        refused = await post_event(client, auth, external_id, "packed", occurred_at=occurred_at)
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "occurred_at"
    days = ["2026-11-26", "2026-11-27", "0001-01-01"]
    refused = await shipped(client, auth, external_id, delivery_days=days)
    assert (refused.status_code, refused.json()["field"]) == (422, "shipment.delivery_days[2]")
    for eta in ("soon", "2026-02-30", "2026-W49-6"):  # not YYYY-MM-DD, though ISO 8601
        malformed = await shipped(client, auth, external_id, eta=eta)
        assert (malformed.status_code, malformed.json()["field"]) == (400, "shipment.eta")
    assert await OrderEvent.count() == 1  # "placed" alone

    # A day ahead of the shop's clock is still an event (clocks differ); the page shows it.
    ahead = await post_event(
        client, auth, external_id, "packed", occurred_at="2026-11-24T09:29:00Z"
    )
    assert ahead.status_code == 201, ahead.text
    page, _ = await page_and_poll(client, path_of(order["tracking_url"]))
    assert "Jan 1, 2000" in page and "Nov 24, 10:29" in page


async def test_a_date_only_eta_is_that_day_for_the_shopper(client, auth):
    order = await create_order(client, auth)
    answer = await shipped(client, auth, order["external_id"], eta="2026-12-05")
    assert answer.status_code == 201, answer.text
    assert answer.json()["warnings"] == []

    page, poll = await page_and_poll(client, path_of(order["tracking_url"]))
    for html in (page, poll):
        assert "expected Saturday, December 5, 2026" in html
    detail = (await client.get(f"/api/v1/orders/{order['external_id']}", headers=auth)).json()
    assert detail["shipments"][0]["eta"] == "2026-12-05"
    row = await Shipment.select(Shipment.eta, Shipment.eta_date_only).first()
    assert row["eta_date_only"] is True

    # A later event with a moment replaces the day.
    moment = "2026-12-04T23:30:00Z"  # 00:30 on the 5th in Rome
    await post_event(
        client,
        auth,
        order["external_id"],
        "out_for_delivery",
        shipment={"tracking_number": "BRT0001", "eta": moment},
    )
    detail = (await client.get(f"/api/v1/orders/{order['external_id']}", headers=auth)).json()
    assert detail["shipments"][0]["eta"].startswith("2026-12-04T23:30:00")


@pytest.fixture
def page_log(caplog):
    caplog.set_level(logging.WARNING)
    orders._UNREADABLE_LOGGED.clear()  # each database's order 1 is logged afresh
    return caplog


async def test_dates_already_stored_that_no_page_can_show_leave_page_and_poll_working(
    client, auth, rt, stores, page_log
):
    order = await create_order(client, auth, external_id="D-1")
    path = path_of(order["tracking_url"])
    eta = "2026-11-25T12:00:00Z"
    days = ["2026-11-26", "2026-11-27"]
    assert (await shipped(client, auth, "D-1", eta=eta, delivery_days=days)).status_code == 201

    # What the API let in before the rule, and what a hand in the database may write.
    year_1, year_9999 = (
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    )
    await Order.update({Order.placed_at: year_9999}, force=True)
    await OrderEvent.update({OrderEvent.occurred_at: year_1}).where(OrderEvent.type == "shipped")
    await Shipment.update(
        {
            Shipment.eta: year_1,
            Shipment.delivery_days: ["0001-01-01", "2026-11-27", "not a day"],
            Shipment.delivery_day: "31/12/9999",  # text: a hand may write anything
        },
        force=True,
    )
    if not rt.is_sqlite:  # PostgreSQL's own extremes come back as naive datetime.min/max
        await Shipment.raw("UPDATE shipment SET eta = '-infinity'")
        await OrderEvent.raw(
            "UPDATE order_event SET occurred_at = '-infinity' WHERE type = 'shipped'"
        )
        await Order.raw("UPDATE orders SET closed_at = 'infinity'")

    for _ in range(2):
        page, poll = await page_and_poll(client, path)
    assert "BRT0001" in page and "Shipped" in page and "Shipped" in poll
    assert "Placed" not in page  # the placing time cannot be shown; the rest is
    assert "Nov 27" in page  # the offered day that can be, offered
    detail = await client.get("/api/v1/orders/D-1", headers=auth)  # and the shop's view
    assert detail.status_code == 200, detail.text
    parcel = detail.json()["shipments"][0]
    assert (parcel["eta"], parcel["delivery_day"]) == (None, None)
    assert all(e["occurred_at"].endswith("Z") for e in detail.json()["timeline"])
    sid = (await Shipment.select(Shipment.id).first())["id"]
    moved = await client.post(
        f"{path}/parcels/{sid}/day", data={"_csrf_token": csrf_field(page), "day": "2026-11-27"}
    )
    assert moved.status_code in (303, 409, 422), moved.text

    logged = [r.getMessage() for r in page_log.records if "not shown" in r.getMessage()]
    columns = sorted(m.split(": ")[1] for m in logged)
    assert columns == sorted(
        f"{c} of order 1"
        for c in (
            "orders.placed_at",
            "order_event.occurred_at",
            "shipment.eta",
            "shipment.delivery_day",
            "shipment.delivery_days",
        )
        + (() if rt.is_sqlite else ("orders.closed_at",))
    ), logged  # each once, however often the page was opened
    text = "\n".join(logged)
    assert CUSTOMER["name"].split()[0] not in text and "347" not in text
