"""Delivery changes on the shopper's page: a new address or a store (with a code texted to
the order's phone), a new day and instructions for a parcel; what the page says when a
change is no longer possible; the shop's side through the API.

The clock starts on Monday 23 November 2026, 10:30 in Milan; parcels are expected on
Wednesday 25 November, so changes close on Tuesday 24 at 18:00 (6 hours before the day).
"""

from __future__ import annotations

import asyncio
import re

import pytest

from portal.db.tables import DeliveryChange, OneTimeCode, Order, Shipment, SmsMessage
from portal.services import delivery, shop_events
from portal.services.errors import Conflict
from tests.web.helpers import create_order, csrf_field, path_of, post_event

ETA = "2026-11-25T12:00:00+01:00"


@pytest.fixture
async def order(client, auth, stores):
    body = await create_order(client, auth, external_id="D-300100")
    return {**body, "path": path_of(body["tracking_url"])}


async def ship(client, auth, order, tracking="BRT0001", **shipment):
    response = await post_event(
        client,
        auth,
        order["external_id"],
        "shipped",
        shipment={"tracking_number": tracking, "carrier": "BRT", "eta": ETA, **shipment},
    )
    assert response.status_code == 201, response.text


async def post_form(client, path, action, data, *, htmx=False, version=True):
    """What a browser does: open the page (CSRF cookie, field and the page's version),
    then post the form."""
    page = await client.get(path)
    # A page with no form left still carries the token htmx sends (on <body>).
    token = re.search(r'(?:name="_csrf_token" value=|"x-csrftoken": )"([^"]+)"', page.text)
    fields = {"_csrf_token": token.group(1), **data}
    if version:
        fields["version"] = re.search(r'name="version" value="(\d+)"', page.text).group(1)
    headers = {"HX-Request": "true"} if htmx else {}
    return await client.post(f"{path}/{action}", data=fields, headers=headers)


async def texted_code(order_id: int) -> str:
    row = (
        await SmsMessage.select(SmsMessage.body, SmsMessage.urgent)
        .where((SmsMessage.order == order_id) & (SmsMessage.kind == "otp"))
        .order_by(SmsMessage.id, ascending=False)
        .first()
    )
    assert row is not None, "no code was texted"
    assert row["urgent"], "a one-time code never waits for quiet hours"
    return re.search(r"\b(\d{6})\b", row["body"]).group(1)


async def shipment_id(order_id: int, tracking: str = "BRT0001") -> int:
    row = (
        await Shipment.select(Shipment.id)
        .where((Shipment.order == order_id) & (Shipment.tracking_number == tracking))
        .first()
    )
    return row["id"]


NEW_ADDRESS = {
    "name": "Bianchi",
    "line1": "Corso Buenos Aires 12",
    "line2": "scala B",
    "postcode": "20124",
    "city": "Milano",
    "region": "mi",
}


# ------------------------------------------------------------------- before dispatch


async def test_before_dispatch_the_page_offers_a_new_address_and_a_store(client, order):
    html = (await client.get(order["path"])).text
    assert '<section id="delivery"' in html
    assert "Change the address" in html
    assert "Collect it in a store instead" in html
    assert "Milano Centro, Milano" in html and "Roma Termini" in html
    assert f'action="{order["path"]}/delivery/address"' in html
    # Days and instructions come with the parcel.
    assert "Choose another day" not in html


async def test_a_new_address_waits_for_the_code_texted_to_the_phone(client, order):
    answer = await post_form(client, order["path"], "delivery/address", NEW_ADDRESS)
    assert answer.status_code == 303
    page = (await client.get(answer.headers["location"])).text
    assert "Enter the code we texted you" in page
    assert "Corso Buenos Aires 12, 20124 Milano" in page
    assert "We texted you a code." in page
    # Nothing has changed yet: a forwarded link alone does not move the parcel.
    row = (
        await Order.select(Order.delivery_address)
        .where(Order.id == order["id"])
        .output(load_json=True)
        .first()
    )
    assert row["delivery_address"]["line1"] == "Via Roma 1"

    code = await texted_code(order["id"])
    done = await post_form(client, order["path"], "delivery/code", {"code": code}, version=False)
    assert done.status_code == 303
    assert done.headers["location"].endswith("?saved=address#delivery")
    page = (await client.get(done.headers["location"].split("#")[0])).text
    assert "Done: the new address is saved." in page
    assert "20124 Milano, IT" in page
    assert "Address changed" in page  # the timeline
    row = (
        await Order.select(Order.delivery_address)
        .where(Order.id == order["id"])
        .output(load_json=True)
        .first()
    )
    assert row["delivery_address"] == {
        "name": "Bianchi",
        "line1": "Corso Buenos Aires 12",
        "line2": "scala B",
        "postcode": "20124",
        "city": "Milano",
        "region": "MI",
        "country": "IT",
    }
    confirmation = await SmsMessage.select(SmsMessage.body).where(
        (SmsMessage.order == order["id"]) & (SmsMessage.kind == "delivery_changed")
    )
    assert len(confirmation) == 1
    assert "new address saved" in confirmation[0]["body"]


async def test_an_incomplete_address_is_shown_back_with_what_is_wrong_and_sends_no_code(
    client, order
):
    typed = {**NEW_ADDRESS, "postcode": "2012", "region": ""}
    answer = await post_form(client, order["path"], "delivery/address", typed)
    assert answer.status_code == 422
    html = answer.text
    assert "This is not a postcode in IT (like 20121)" in html
    assert "Province is required" in html
    assert 'value="Corso Buenos Aires 12"' in html and 'value="2012"' in html
    assert 'aria-invalid="true" aria-describedby="err-postcode"' in html
    assert not await OneTimeCode.exists().where(OneTimeCode.order == order["id"])


async def test_a_wrong_code_counts_and_the_fifth_locks_changes_for_an_hour(client, order, clock):
    await post_form(client, order["path"], "delivery/address", NEW_ADDRESS)
    code = await texted_code(order["id"])
    wrong = "000000" if code != "000000" else "111111"
    for left in (4, 3, 2, 1):
        answer = await post_form(
            client, order["path"], "delivery/code", {"code": wrong}, version=False
        )
        assert answer.status_code == 422
        assert f"That is not the code we sent ({left} {'try' if left == 1 else 'tries'} left)" in (
            answer.text
        )
        assert f'value="{wrong}"' in answer.text
    answer = await post_form(client, order["path"], "delivery/code", {"code": code}, version=False)
    # The right code after four wrong ones still works: only the fifth wrong one locks.
    assert answer.status_code == 303

    clock.advance(minutes=2)  # a new code a minute after the last one at the earliest
    again = {**NEW_ADDRESS, "line1": "Via Po 1"}
    assert (await post_form(client, order["path"], "delivery/address", again)).status_code == 303
    for _ in range(5):
        answer = await post_form(
            client, order["path"], "delivery/code", {"code": wrong}, version=False
        )
    assert answer.status_code == 409
    assert "changes are locked for an hour" in answer.text
    again = await post_form(client, order["path"], "delivery/address", NEW_ADDRESS)
    assert again.status_code == 409 and "locked for an hour" in again.text
    clock.advance(minutes=61)
    assert (
        await post_form(client, order["path"], "delivery/address", NEW_ADDRESS)
    ).status_code == 303


async def test_a_code_expires_after_ten_minutes(client, order, clock):
    await post_form(client, order["path"], "delivery/address", NEW_ADDRESS)
    code = await texted_code(order["id"])
    clock.advance(minutes=10, seconds=1)
    answer = await post_form(client, order["path"], "delivery/code", {"code": code}, version=False)
    assert answer.status_code == 409
    assert "No change is waiting for a code" in answer.text or "expired" in answer.text
    row = (
        await Order.select(Order.delivery_address)
        .where(Order.id == order["id"])
        .output(load_json=True)
        .first()
    )
    assert row["delivery_address"]["line1"] == "Via Roma 1"


async def test_new_codes_are_rationed_and_a_new_one_replaces_the_old(client, order, clock):
    await post_form(client, order["path"], "delivery/address", NEW_ADDRESS)
    first = await texted_code(order["id"])
    soon = await post_form(client, order["path"], "delivery/resend", {}, version=False)
    assert soon.status_code == 409 and "wait a minute" in soon.text
    clock.advance(seconds=61)
    assert (
        await post_form(client, order["path"], "delivery/resend", {}, version=False)
    ).status_code == 303
    second = await texted_code(order["id"])
    if first != second:
        old = await post_form(
            client, order["path"], "delivery/code", {"code": first}, version=False
        )
        assert old.status_code == 422
    done = await post_form(client, order["path"], "delivery/code", {"code": second}, version=False)
    assert done.status_code == 303


async def test_switching_to_a_store_turns_the_page_into_a_pickup(client, order):
    answer = await post_form(client, order["path"], "delivery/store", {"store": "RM01"})
    assert answer.status_code == 303
    code = await texted_code(order["id"])
    done = await post_form(client, order["path"], "delivery/code", {"code": code}, version=False)
    assert done.status_code == 303
    html = (await client.get(order["path"])).text
    assert "Pick up at Roma Termini" in html
    assert '<section id="pickup"' in html and '<section id="delivery"' not in html
    assert "Switched to collection in store" in html
    row = await Order.select(Order.fulfilment, Order.status).where(Order.id == order["id"]).first()
    assert row == {"fulfilment": "pickup", "status": "placed"}


async def test_an_unknown_store_is_refused_with_the_choice_kept_open(client, order):
    answer = await post_form(client, order["path"], "delivery/store", {"store": "NOPE"})
    assert answer.status_code == 422
    assert "Choose one of the stores listed" in answer.text
    assert not await OneTimeCode.exists().where(OneTimeCode.order == order["id"])


# -------------------------------------------------------------------- after dispatch


async def test_after_dispatch_the_parcel_offers_days_and_instructions_not_the_address(
    client, auth, order
):
    await ship(client, auth, order)
    html = (await client.get(order["path"])).text
    assert "Change the address" not in html
    assert "Delivery day: <strong>Wed, Nov 25</strong>" in html
    days = re.findall(r'name="day" value="([\d-]+)"', html)
    assert days == ["2026-11-26", "2026-11-27", "2026-11-30", "2026-12-01", "2026-12-02"]
    assert "Leave instructions for the courier" in html
    assert "Changes are possible until Nov 24, 6:00" in html


async def test_a_new_day_is_saved_shown_and_confirmed_by_sms(client, auth, order):
    await ship(client, auth, order)
    answer = await post_form(
        client,
        order["path"],
        f"parcels/{await shipment_id(order['id'])}/day",
        {"day": "2026-11-27"},
    )
    assert answer.status_code == 303
    html = (await client.get(answer.headers["location"].split("#")[0])).text
    assert "Done: the new delivery day is saved." in html
    assert "Delivery day: <strong>Fri, Nov 27</strong> (your choice)" in html
    assert "New delivery day" in html  # timeline
    sms = await SmsMessage.select(SmsMessage.body).where(
        (SmsMessage.order == order["id"]) & (SmsMessage.kind == "delivery_changed")
    )
    assert "new delivery day Fri, Nov 27" in sms[0]["body"]


async def test_a_day_that_is_not_offered_is_refused(client, auth, order):
    await ship(client, auth, order)
    sid = await shipment_id(order["id"])
    answer = await post_form(client, order["path"], f"parcels/{sid}/day", {"day": "2026-11-28"})
    assert answer.status_code == 422
    assert "Choose one of the days offered" in answer.text


async def test_the_shop_may_offer_its_own_days(client, auth, order):
    await ship(client, auth, order, delivery_days=["2026-11-28", "2026-11-26", "2026-11-20"])
    html = (await client.get(order["path"])).text
    # Past days (their cut-off gone) are not offered; the rest in order.
    assert re.findall(r'name="day" value="([\d-]+)"', html) == ["2026-11-26", "2026-11-28"]


async def test_after_the_cut_off_the_page_says_why_instead_of_offering(client, auth, order, clock):
    await ship(client, auth, order)
    clock.advance(days=1, hours=7, minutes=31)  # Tuesday 18:01 in Milan
    html = (await client.get(order["path"])).text
    assert "Choose another day" not in html and "Leave instructions" not in html
    assert "Changes closed the evening before the delivery day." in html
    sid = await shipment_id(order["id"])
    answer = await post_form(
        client, order["path"], f"parcels/{sid}/day", {"day": "2026-11-27"}, version=False
    )
    assert answer.status_code == 409


async def test_instructions_are_checked_kept_on_error_and_saved(client, auth, order):
    await ship(client, auth, order)
    sid = await shipment_id(order["id"])
    bad = await post_form(
        client,
        order["path"],
        f"parcels/{sid}/instructions",
        {"safe_place": "neighbour", "neighbour": "", "note": "x" * 201},
    )
    assert bad.status_code == 422
    assert "Write the neighbour&#39;s name" in bad.text
    assert "At most 200 characters (201 written)" in bad.text
    assert 'value="neighbour" selected' in bad.text

    good = await post_form(
        client,
        order["path"],
        f"parcels/{sid}/instructions",
        {"safe_place": "neighbour", "neighbour": "Rossi, 2nd floor", "note": "Ring twice"},
    )
    assert good.status_code == 303
    html = (await client.get(order["path"])).text
    assert "Instructions: With a neighbour (Rossi, 2nd floor). “Ring twice”" in html
    row = (
        await Shipment.select(Shipment.instructions)
        .where(Shipment.id == sid)
        .output(load_json=True)
        .first()
    )
    assert row["instructions"] == {
        "safe_place": "neighbour",
        "neighbour": "Rossi, 2nd floor",
        "note": "Ring twice",
    }


async def test_out_for_delivery_nothing_changes_and_the_page_says_so(client, auth, order):
    await ship(client, auth, order)
    sid = await shipment_id(order["id"])
    await post_event(client, auth, order["external_id"], "out_for_delivery")
    html = (await client.get(order["path"])).text
    assert "The parcel is out for delivery today: nothing can change now." in html
    answer = await post_form(
        client, order["path"], f"parcels/{sid}/instructions", {"note": "hi"}, version=False
    )
    assert answer.status_code == 409


async def test_after_a_failed_attempt_a_new_day_or_a_store_is_offered(client, auth, order):
    await ship(client, auth, order)
    await post_event(client, auth, order["external_id"], "delivery_failed")
    html = (await client.get(order["path"])).text
    assert "Choose another day" in html
    assert "Collect it in a store instead" in html
    sid = await shipment_id(order["id"])
    await post_form(client, order["path"], f"parcels/{sid}/store", {"store": "MI01"})
    code = await texted_code(order["id"])
    done = await post_form(client, order["path"], "delivery/code", {"code": code}, version=False)
    assert done.status_code == 303
    row = await Order.select(Order.fulfilment, Order.status).where(Order.id == order["id"]).first()
    # On its way to the store; the store receives it and sets it aside.
    assert row == {"fulfilment": "pickup", "status": "shipped"}
    arrived = await post_event(client, auth, order["external_id"], "arrived_in_store")
    assert arrived.status_code == 201


async def test_a_form_from_a_page_that_is_no_longer_current_is_refused(client, auth, order):
    await ship(client, auth, order)
    sid = await shipment_id(order["id"])
    page = await client.get(order["path"])
    stale = re.search(r'name="version" value="(\d+)"', page.text).group(1)
    first = await post_form(client, order["path"], f"parcels/{sid}/day", {"day": "2026-11-26"})
    assert first.status_code == 303
    second = await client.post(
        f"{order['path']}/parcels/{sid}/day",
        data={"_csrf_token": csrf_field(page.text), "version": stale, "day": "2026-11-27"},
    )
    assert second.status_code == 409
    assert "Your order changed while you were on this page" in second.text
    row = await Shipment.select(Shipment.delivery_day).where(Shipment.id == sid).first()
    assert row["delivery_day"] == "2026-11-26"


async def test_two_changes_racing_for_one_parcel_have_one_winner(rt, client, auth, order):
    await ship(client, auth, order)
    sid = await shipment_id(order["id"])
    version = (await Order.select(Order.version).where(Order.id == order["id"]).first())["version"]
    results = await asyncio.gather(
        delivery.reschedule(rt, order["id"], sid, "2026-11-26", version=version),
        delivery.reschedule(rt, order["id"], sid, "2026-11-27", version=version),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, delivery.ChangeResult)]
    lost = [r for r in results if isinstance(r, Conflict)]
    assert len(won) == 1 and len(lost) == 1, results
    assert await DeliveryChange.count().where(DeliveryChange.order == order["id"]) == 1


async def test_changes_apply_to_one_parcel_of_several(client, auth, order):
    await ship(client, auth, order, "BRT0001")
    await ship(client, auth, order, "BRT0002")
    second = await shipment_id(order["id"], "BRT0002")
    answer = await post_form(client, order["path"], f"parcels/{second}/day", {"day": "2026-11-30"})
    assert answer.status_code == 303
    days = {
        r["tracking_number"]: r["delivery_day"]
        for r in await Shipment.select(Shipment.tracking_number, Shipment.delivery_day).where(
            Shipment.order == order["id"]
        )
    }
    assert days == {"BRT0001": None, "BRT0002": "2026-11-30"}
    html = (await client.get(order["path"])).text
    assert "Parcel 2 <code>BRT0002</code>" in html
    # One parcel of two cannot go to a store, so after a failure only a day is offered.
    await post_event(
        client,
        auth,
        order["external_id"],
        "delivery_failed",
        shipment={"tracking_number": "BRT0001"},
    )
    html = (await client.get(order["path"])).text
    assert f"/parcels/{await shipment_id(order['id'])}/store" not in html


# ---------------------------------------------------------------------------- htmx


async def test_with_htmx_the_card_and_the_timeline_are_swapped_in_place(client, auth, order):
    await ship(client, auth, order)
    sid = await shipment_id(order["id"])
    answer = await post_form(
        client, order["path"], f"parcels/{sid}/day", {"day": "2026-11-26"}, htmx=True
    )
    assert answer.status_code == 200
    assert answer.text.startswith('<section id="delivery"')
    assert '<section id="progress"' in answer.text and 'hx-swap-oob="true"' in answer.text
    assert "Done: the new delivery day is saved." in answer.text
    assert "<html" not in answer.text


async def test_with_htmx_a_refusal_is_the_card_with_the_message(client, order):
    answer = await post_form(
        client, order["path"], "delivery/address", {**NEW_ADDRESS, "city": ""}, htmx=True
    )
    assert answer.status_code == 422
    assert answer.text.startswith('<section id="delivery"')
    assert "City is required" in answer.text


async def test_with_htmx_a_switch_to_a_store_reloads_the_whole_page(client, order):
    await post_form(client, order["path"], "delivery/store", {"store": "MI01"}, htmx=True)
    code = await texted_code(order["id"])
    answer = await post_form(
        client, order["path"], "delivery/code", {"code": code}, htmx=True, version=False
    )
    assert answer.status_code == 200
    assert answer.headers["hx-redirect"] == f"{order['path']}?saved=switch_to_pickup"


async def test_forms_without_a_csrf_token_are_refused(client, order):
    answer = await client.post(f"{order['path']}/delivery/address", data=NEW_ADDRESS)
    assert answer.status_code == 403
    assert not await OneTimeCode.exists().where(OneTimeCode.order == order["id"])


# ------------------------------------------------------------------ the shop's side


async def test_the_shop_reads_changes_in_order_with_a_cursor(client, auth, order):
    await ship(client, auth, order)
    sid = await shipment_id(order["id"])
    await post_form(client, order["path"], f"parcels/{sid}/day", {"day": "2026-11-26"})
    await post_form(client, order["path"], f"parcels/{sid}/instructions", {"safe_place": "porch"})
    first = (await client.get("/api/v1/changes", headers=auth)).json()
    assert [c["kind"] for c in first["changes"]] == ["reschedule", "instructions"]
    change = first["changes"][0]
    assert change["order"] == "D-300100"
    assert change["tracking_number"] == "BRT0001"
    assert change["status"] == "accepted" and change["decided_by"] == "auto"
    assert change["data"] == {"day": "2026-11-26"}
    assert change["previous"] == {"day": None}
    again = (await client.get(f"/api/v1/changes?after={first['next']}", headers=auth)).json()
    assert again == {"changes": [], "next": first["next"]}
    assert (await client.get("/api/v1/changes")).status_code == 401
    assert (await client.get("/api/v1/changes?after=-1", headers=auth)).status_code == 400


@pytest.fixture
def manual(rt):
    """The shop decides each change."""
    object.__setattr__(rt, "settings", rt.settings.with_(delivery_changes="manual"))
    return rt


async def test_when_the_shop_decides_a_change_waits_then_is_made_on_accept(
    manual, client, auth, order
):
    await ship(client, auth, order)
    sid = await shipment_id(order["id"])
    answer = await post_form(client, order["path"], f"parcels/{sid}/day", {"day": "2026-11-27"})
    assert answer.headers["location"].endswith("?saved=requested#delivery")
    html = (await client.get(order["path"])).text
    assert "Change requested" in html
    assert "An earlier change is waiting for the shop" in html
    assert (await Shipment.select(Shipment.delivery_day).where(Shipment.id == sid).first())[
        "delivery_day"
    ] is None
    change = (await client.get("/api/v1/changes", headers=auth)).json()["changes"][0]
    assert change["status"] == "requested"
    accepted = await client.post(f"/api/v1/changes/{change['id']}/accept", headers=auth)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["status"] == "accepted" and accepted.json()["decided_by"] == "shop"
    repeat = await client.post(f"/api/v1/changes/{change['id']}/accept", headers=auth)
    assert repeat.json()["status"] == "accepted"
    refused = await client.post(f"/api/v1/changes/{change['id']}/reject", headers=auth, json={})
    assert refused.status_code == 409
    html = (await client.get(order["path"])).text
    assert "Delivery day: <strong>Fri, Nov 27</strong> (your choice)" in html


async def test_a_rejected_change_tells_the_shopper_why(manual, client, auth, order):
    await ship(client, auth, order)
    sid = await shipment_id(order["id"])
    await post_form(client, order["path"], f"parcels/{sid}/day", {"day": "2026-11-27"})
    change = (await client.get("/api/v1/changes", headers=auth)).json()["changes"][0]
    rejected = await client.post(
        f"/api/v1/changes/{change['id']}/reject",
        headers=auth,
        json={"reason": "The courier cannot deliver on Fridays in your area"},
    )
    assert rejected.status_code == 201
    html = (await client.get(order["path"])).text
    assert "Change not possible" in html
    assert "The courier cannot deliver on Fridays in your area" in html
    sms = await SmsMessage.select(SmsMessage.kind).where(
        (SmsMessage.order == order["id"]) & (SmsMessage.kind == "change_rejected")
    )
    assert len(sms) == 1
    # The parcel is free for another change.
    assert "Choose another day" in html


async def test_deciding_an_unknown_change_is_a_404(client, auth):
    answer = await client.post("/api/v1/changes/999999/accept", headers=auth)
    assert answer.status_code == 404
    assert "no delivery change 999999" in answer.json()["detail"]


async def test_each_change_reaches_the_shops_webhook_signed_and_once(
    rt, client, auth, order, shop_receiver
):
    object.__setattr__(
        rt,
        "settings",
        rt.settings.with_(
            shop_webhook_url=shop_receiver.url, shop_webhook_secret=shop_receiver.secret
        ),
    )
    await ship(client, auth, order)
    sid = await shipment_id(order["id"])
    await post_form(client, order["path"], f"parcels/{sid}/day", {"day": "2026-11-26"})
    shop_receiver.fail_next(1, status=503)
    first = await shop_events.deliver_due(rt)
    assert first.delivered == 0
    rt.clock.advance(minutes=1)  # the retry is due after its backoff
    second = await shop_events.deliver_due(rt)
    assert second.delivered == 1
    rt.clock.advance(hours=2)
    assert (await shop_events.deliver_due(rt)).claimed == 0
    accepted = shop_receiver.accepted
    assert len(accepted) == 1
    event = accepted[0].json
    assert event["type"] == "delivery_change.accepted"
    assert event["data"]["kind"] == "reschedule"
    assert event["data"]["order"] == "D-300100"
    assert event["data"]["tracking_number"] == "BRT0001"
    assert event["data"]["data"] == {"day": "2026-11-26"}
    assert event["data"]["decided_by"] == "auto"
    assert event["data"]["requested_at"].endswith("Z")
    # Both tries carried the same event id: the shop can drop a repeat.
    assert len({call.event_id for call in shop_receiver.calls}) == 1


async def test_asking_for_new_codes_does_not_buy_more_guesses(client, order, clock):
    await post_form(client, order["path"], "delivery/address", NEW_ADDRESS)
    code = await texted_code(order["id"])
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(4):
        await post_form(client, order["path"], "delivery/code", {"code": wrong}, version=False)
    clock.advance(seconds=61)
    assert (
        await post_form(client, order["path"], "delivery/resend", {}, version=False)
    ).status_code == 303
    fresh = await texted_code(order["id"])
    wrong = "000000" if fresh != "000000" else "111111"
    last = await post_form(client, order["path"], "delivery/code", {"code": wrong}, version=False)
    assert last.status_code == 409
    assert "changes are locked for an hour" in last.text


async def test_a_safe_place_alone_or_a_note_alone_is_saved_and_shown(client, auth, order):
    await ship(client, auth, order)
    sid = await shipment_id(order["id"])
    await post_form(client, order["path"], f"parcels/{sid}/instructions", {"safe_place": "porch"})
    html = (await client.get(order["path"])).text
    assert "Instructions: In the porch" in html
    await post_form(
        client, order["path"], f"parcels/{sid}/instructions", {"note": "Gate code 1234"}
    )
    html = (await client.get(order["path"])).text
    assert "Instructions: “Gate code 1234”" in html
    detail = (await client.get(f"/api/v1/orders/{order['external_id']}", headers=auth)).json()
    assert detail["shipments"][0]["instructions"] == {"note": "Gate code 1234"}


async def test_the_chosen_day_replaces_the_eta_in_the_parcel_line(client, auth, order):
    await ship(client, auth, order)
    sid = await shipment_id(order["id"])
    await post_form(client, order["path"], f"parcels/{sid}/day", {"day": "2026-11-27"})
    html = (await client.get(order["path"])).text
    assert "expected Fri, Nov 27" in html
    assert "expected Wednesday, November 25, 2026" not in html
    detail = (await client.get(f"/api/v1/orders/{order['external_id']}", headers=auth)).json()
    assert detail["shipments"][0]["delivery_day"] == "2026-11-27"
