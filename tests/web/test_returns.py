"""Returns and refunds: the shopper starts a return from the link (choose, review, confirm),
follows it to the refund; the shop moves it on through the API; refunds never exceed what
was paid.

The order (tests/factories): 2 T-shirts at 19.90 and a mug at 12.50, 52.30 EUR in all,
delivered on Monday 23 November 2026, 10:30 in Milan.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from portal.db.tables import (
    OrderLine,
    Refund,
    Reminder,
    ReturnLine,
    ReturnRequest,
    SmsMessage,
    Store,
)
from portal.domain import qr
from portal.services import orders, returns
from portal.services.errors import Conflict
from tests.conftest import BASE_URL
from tests.web.helpers import create_order, csrf_field, path_of, post_event


@pytest.fixture
async def order(client, auth, stores):
    body = await create_order(client, auth, external_id="R-400100")
    await post_event(
        client, auth, "R-400100", "shipped", shipment={"tracking_number": "BRT9", "carrier": "BRT"}
    )
    delivered = await post_event(client, auth, "R-400100", "delivered")
    assert delivered.status_code == 201, delivered.text
    lines = {
        r["sku"]: r["id"]
        for r in await OrderLine.select(OrderLine.id, OrderLine.sku).where(
            OrderLine.order == body["id"]
        )
    }
    return {**body, "path": path_of(body["tracking_url"]), "lines": lines}


async def post_form(client, path, action, data, *, htmx=False):
    page = await client.get(path)
    token = re.search(r'(?:name="_csrf_token" value=|"x-csrftoken": )"([^"]+)"', page.text)
    headers = {"HX-Request": "true"} if htmx else {}
    return await client.post(
        f"{path}/{action}", data={"_csrf_token": token.group(1), **data}, headers=headers
    )


def tshirts(order, n="1", reason="too_small", **more):
    line = order["lines"]["TSHIRT-M"]
    return {f"qty_{line}": n, f"reason_{line}": reason, **more}


async def start(client, order, **form):
    data = {**tshirts(order), "method": "store", "store": "MI01", **form}
    answer = await post_form(client, order["path"], "returns", data)
    assert answer.status_code == 303, answer.text
    return await ReturnRequest.select().where(ReturnRequest.order == order["id"]).first()


# ------------------------------------------------------------------- the shopper


async def test_a_delivered_order_offers_a_return_until_the_window_closes(client, order, clock):
    html = (await client.get(order["path"])).text
    assert '<section id="returns"' in html
    assert "Start a return" in html
    assert "You can start a return until Dec 23, 2026" in html
    # The form is a step of its own: the page links to it, and works without JavaScript.
    assert 'name="qty_' not in html
    assert f'href="{order["path"]}/returns/new#returns"' in html
    form = await client.get(order["path"] + "/returns/new")
    assert form.status_code == 200
    assert f'action="{order["path"]}/returns/review"' in form.text
    assert 'name="qty_' in form.text and "Review the return" in form.text
    # With htmx, only the card comes back.
    card = await client.get(order["path"] + "/returns/new", headers={"HX-Request": "true"})
    assert card.text.startswith('<section id="returns"') and 'name="qty_' in card.text
    clock.advance(days=30, minutes=1)
    html = (await client.get(order["path"])).text
    assert "Start a return" not in html
    assert "Returns for this order closed on Dec 23, 2026." in html
    late = await client.get(order["path"] + "/returns/new")
    assert late.status_code == 200 and 'name="qty_' not in late.text
    assert "Returns for this order closed on Dec 23, 2026." in late.text


async def test_an_order_on_its_way_has_no_returns_card(client, auth, stores):
    body = await create_order(client, auth, external_id="R-400101")
    html = (await client.get(path_of(body["tracking_url"]))).text
    assert '<section id="returns"' not in html


async def test_review_shows_what_will_go_back_then_confirm_gives_a_code(client, order):
    data = {**tshirts(order, "2"), "method": "store", "store": "MI01"}
    review = await post_form(client, order["path"], "returns/review", data)
    assert review.status_code == 200
    assert "Check your return" in review.text
    assert '2 ×</span> <span class="name">Organic cotton T-shirt' in review.text
    assert "You will bring it to <strong>Milano Centro</strong>." in review.text
    assert "Refund up to <strong>€39.80</strong> once the items are checked." in review.text
    assert not await ReturnRequest.exists().where(ReturnRequest.order == order["id"])

    csrf = csrf_field(review.text)
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', review.text))
    hidden.pop("_csrf_token")
    done = await client.post(f"{order['path']}/returns", data={"_csrf_token": csrf, **hidden})
    assert done.status_code == 303
    page = (await client.get(done.headers["location"].split("#")[0])).text
    ret = await ReturnRequest.select().where(ReturnRequest.order == order["id"]).first()
    assert ret["status"] == "approved" and ret["method"] == "store"
    assert "Done: your return is registered." in page
    assert f"{ret['code'][:4]}-{ret['code'][4:]}" in page
    assert "Bring the items and this code to <strong>Milano Centro</strong>" in page
    # The QR of the clerks' page for this return, made with the return and kept with it.
    url = qr.counter_url(BASE_URL, ret["id"], ret["code"])
    shown = qr.svg(url, "QR code of the return code")
    assert shown in page
    assert (ret["qr_svg"], ret["qr_url"]) == (qr.image(url), url)
    # One kept for another address (the base URL changed since) is not shown.
    old = qr.counter_url("https://old.example.com", ret["id"], ret["code"])
    await ReturnRequest.update(
        {ReturnRequest.qr_svg: qr.image(old), ReturnRequest.qr_url: old}
    ).where(ReturnRequest.id == ret["id"])
    again = (await client.get(order["path"])).text
    assert shown in again and qr.svg(old, "QR code of the return code") not in again
    assert "Return approved" in page  # the timeline
    kinds = [
        r["kind"]
        for r in await SmsMessage.select(SmsMessage.kind).where(SmsMessage.order == order["id"])
    ]
    # Approved at once: one text says both (and goes now: the shopper just asked for it).
    assert kinds.count("return_started") == 1 and "return_approved" not in kinds


async def test_change_it_goes_back_to_the_form_with_the_choices_kept(client, order):
    data = {**tshirts(order, "2", "other", **{f"note_{order['lines']['TSHIRT-M']}": "colour"})}
    answer = await post_form(
        client, order["path"], "returns/edit", {**data, "method": "courier", "store": ""}
    )
    assert answer.status_code == 200
    line = order["lines"]["TSHIRT-M"]
    assert '<option value="2" selected>2</option>' in answer.text
    assert '<option value="other" selected>' in answer.text
    assert (
        f'id="note-r{line}" name="note_{line}" type="text" maxlength="300" value="colour"'
        in answer.text
    )
    assert 'value="courier" checked' in answer.text


async def test_bad_choices_are_shown_back_with_what_is_wrong(client, order):
    line = order["lines"]["TSHIRT-M"]
    mug = order["lines"]["MUG-01"]
    data = {
        f"qty_{line}": "3",
        f"reason_{line}": "too_small",
        f"qty_{mug}": "1",
        f"reason_{mug}": "other",
        "method": "store",
        "store": "",
    }
    answer = await post_form(client, order["path"], "returns/review", data)
    assert answer.status_code == 422
    assert "You can return from 1 to 2 of this item" in answer.text
    assert "Tell us why in a few words" in answer.text
    assert "Choose one of the stores listed" in answer.text
    assert '<option value="3"' not in answer.text  # the select only offers what is left
    assert 'value="store" checked' in answer.text
    nothing = await post_form(client, order["path"], "returns/review", {"method": "courier"})
    assert nothing.status_code == 422
    assert "Choose at least one item to return" in nothing.text


async def test_what_is_returned_cannot_be_returned_again(client, order):
    await start(client, order, **tshirts(order, "2"))
    html = (await client.get(order["path"] + "/returns/new")).text
    line = order["lines"]["TSHIRT-M"]
    assert f'name="qty_{line}"' not in html
    assert "Already returned." in html
    again = await post_form(
        client, order["path"], "returns/review", {**tshirts(order, "1"), "method": "courier"}
    )
    assert again.status_code == 422
    assert "This item has already been returned" in again.text


async def test_each_return_shows_its_own_items(client, order):
    first = await start(client, order)
    mug = order["lines"]["MUG-01"]
    data = {f"qty_{mug}": "1", f"reason_{mug}": "damaged", "method": "courier"}
    assert (await post_form(client, order["path"], "returns", data)).status_code == 303
    second = (
        await ReturnRequest.select()
        .where((ReturnRequest.order == order["id"]) & (ReturnRequest.id != first["id"]))
        .first()
    )
    html = (await client.get(order["path"])).text
    cards = {
        ret_id: html[html.index(f'id="return-{ret_id}"') :].split("</ul>", 1)[0]
        for ret_id in (first["id"], second["id"])
    }
    assert "T-shirt" in cards[first["id"]] and "Ceramic mug" not in cards[first["id"]]
    assert "Ceramic mug" in cards[second["id"]] and "T-shirt" not in cards[second["id"]]
    assert html.index(f'id="return-{first["id"]}"') < html.index(f'id="return-{second["id"]}"')
    # One T-shirt of two is still returnable; the mug is not.
    form = (await client.get(order["path"] + "/returns/new")).text
    assert f'name="qty_{order["lines"]["TSHIRT-M"]}"' in form
    assert f'name="qty_{mug}"' not in form


async def test_a_line_the_shop_marks_non_returnable_is_excluded(client, auth, stores):
    body = await create_order(
        client,
        auth,
        external_id="R-400102",
        lines=[
            {
                "sku": "EAR",
                "name": "Earrings",
                "quantity": 1,
                "unit_price": "30.00",
                "returnable": False,
            },
            {"sku": "CAP", "name": "Cap", "quantity": 1, "unit_price": "15.00"},
        ],
    )
    await post_event(client, auth, "R-400102", "shipped", shipment={"tracking_number": "X1"})
    await post_event(client, auth, "R-400102", "delivered")
    path = path_of(body["tracking_url"])
    html = (await client.get(path + "/returns/new")).text
    assert "This item cannot be returned." in html
    ear = (await OrderLine.select(OrderLine.id).where(OrderLine.sku == "EAR").first())["id"]
    answer = await post_form(
        client,
        path,
        "returns/review",
        {f"qty_{ear}": "1", f"reason_{ear}": "changed_mind", "method": "courier"},
    )
    assert answer.status_code == 422 and "This item cannot be returned" in answer.text


async def test_a_courier_return_says_label_coming_until_the_shop_sends_one(client, auth, order):
    ret = await start(client, order, method="courier", store="")
    html = (await client.get(order["path"])).text
    assert "Label coming: we will text you when it is ready." in html
    answer = await client.post(
        f"/api/v1/returns/{ret['id']}/label",
        json={"url": "https://labels.example/abc.pdf", "carrier": "BRT", "tracking_number": "RT1"},
        headers=auth,
    )
    assert answer.status_code == 201, answer.text
    html = (await client.get(order["path"])).text
    assert 'href="https://labels.example/abc.pdf"' in html and "Download the return label" in html
    assert await SmsMessage.exists().where(
        (SmsMessage.order == order["id"]) & (SmsMessage.kind == "return_label")
    )


# --------------------------------------------------------------------- the shop


async def test_the_shop_follows_a_return_to_its_refund_and_the_shopper_sees_each_step(
    client, auth, order
):
    ret = await start(client, order, method="courier", store="")
    listed = (await client.get("/api/v1/returns?status=approved", headers=auth)).json()
    assert [r["id"] for r in listed["returns"]] == [ret["id"]]
    assert listed["returns"][0]["lines"][0]["quantity"] == 1
    line_id = listed["returns"][0]["lines"][0]["id"]
    assert (
        await client.post(f"/api/v1/returns/{ret['id']}/in_transit", headers=auth)
    ).status_code == 201
    assert (
        await client.post(f"/api/v1/returns/{ret['id']}/receive", headers=auth)
    ).status_code == 201
    inspected = await client.post(
        f"/api/v1/returns/{ret['id']}/inspect",
        json={"lines": [{"line_id": line_id, "accepted": 1}]},
        headers=auth,
    )
    assert inspected.status_code == 201, inspected.text
    refund = await Refund.select().where(Refund.order == order["id"]).first()
    assert refund["amount_minor"] == 1990 and refund["status"] == "pending"
    assert refund["return_request"] == ret["id"]
    html = (await client.get(order["path"])).text
    assert "Refund of <strong>€19.90</strong> to your original payment method:" in html
    assert '<span class="rstatus">pending</span>' in html

    for status in ("processing", "paid"):
        moved = await client.patch(
            f"/api/v1/refunds/{refund['id']}", json={"status": status}, headers=auth
        )
        assert moved.status_code == 200, moved.text
    html = (await client.get(order["path"])).text
    assert '<span class="rstatus">paid</span> (Nov 23, 2026)' in html
    assert "Refund paid" in html  # the timeline
    ret = await ReturnRequest.select().where(ReturnRequest.id == ret["id"]).first()
    assert ret["status"] == "refunded"
    assert (ret["qr_svg"], ret["qr_url"]) == ("", "")  # over: no QR is kept any more
    sms = [
        r["kind"]
        for r in await SmsMessage.select(SmsMessage.kind).where(SmsMessage.order == order["id"])
    ]
    assert "return_received" in sms and "refund_paid" in sms


async def test_a_return_rejected_by_the_shop_tells_the_shopper_why(client, auth, order):
    ret = await start(client, order)
    answer = await client.post(
        f"/api/v1/returns/{ret['id']}/reject", json={"reason": "Worn and washed"}, headers=auth
    )
    assert answer.status_code == 201
    html = (await client.get(order["path"])).text
    assert "Not accepted: Worn and washed" in html
    # Illegal now: receive a rejected return.
    late = await client.post(f"/api/v1/returns/{ret['id']}/receive", headers=auth)
    assert late.status_code == 409
    assert "this return is rejected" in late.json()["detail"]
    # The items are free to be returned again.
    assert "Start a return" in html
    again = (await client.get(order["path"] + "/returns/new")).text
    assert 'name="qty_' in again and "Already returned." not in again


async def test_a_rejection_needs_a_reason(client, auth, order):
    ret = await start(client, order)
    answer = await client.post(f"/api/v1/returns/{ret['id']}/reject", json={}, headers=auth)
    assert answer.status_code == 422
    assert "say why" in answer.json()["detail"]


async def test_inspection_checks_every_line_and_a_partial_accept_needs_a_reason(
    client, auth, order
):
    ret = await start(client, order, **tshirts(order, "2"))
    await client.post(f"/api/v1/returns/{ret['id']}/receive", headers=auth)
    line_id = (await client.get(f"/api/v1/returns/{ret['id']}", headers=auth)).json()["lines"][0][
        "id"
    ]
    bad = await client.post(
        f"/api/v1/returns/{ret['id']}/inspect",
        json={"lines": [{"line_id": line_id, "accepted": 1}]},
        headers=auth,
    )
    assert bad.status_code == 422 and "say why it is not accepted" in bad.json()["detail"]
    ok = await client.post(
        f"/api/v1/returns/{ret['id']}/inspect",
        json={"lines": [{"line_id": line_id, "accepted": 1, "reason": "Stained"}]},
        headers=auth,
    )
    assert ok.status_code == 201
    html = (await client.get(order["path"])).text
    assert "1 of 2 accepted: Stained" in html
    assert "Refund of <strong>€19.90</strong>" in html


async def test_refunds_never_exceed_what_was_paid(client, auth, order):
    first = await client.post(
        "/api/v1/orders/R-400100/refunds",
        json={"amount": "50.00", "reason": "goodwill"},
        headers=auth,
    )
    assert first.status_code == 201, first.text
    over = await client.post(
        "/api/v1/orders/R-400100/refunds",
        json={"amount": "2.31", "reason": "goodwill"},
        headers=auth,
    )
    assert over.status_code == 409
    assert "only 2.30 EUR is left to refund on this order" in over.json()["detail"]
    failed = await client.patch(
        f"/api/v1/refunds/{first.json()['id']}",
        json={"status": "failed", "reason": "Card expired: we will email you"},
        headers=auth,
    )
    assert failed.status_code == 200
    # A failed refund gave nothing back, so the money is refundable again.
    again = await client.post(
        "/api/v1/orders/R-400100/refunds",
        json={"amount": "52.30", "reason": "goodwill"},
        headers=auth,
    )
    assert again.status_code == 201
    # ...and the failed one cannot be retried on top of it.
    retry = await client.patch(
        f"/api/v1/refunds/{first.json()['id']}", json={"status": "processing"}, headers=auth
    )
    assert retry.status_code == 409
    html = (await client.get(order["path"])).text
    assert "Card expired: we will email you" in html
    assert html.count('class="refund refund-') == 2


async def test_refund_input_is_checked(client, auth, order):
    for body, word in (
        ({"amount": "-1", "reason": "goodwill"}, "amount"),  # the schema's pattern: 400
        ({"amount": "1.234", "reason": "goodwill"}, "2 decimals"),
        ({"amount": "1.00", "reason": "gift"}, "reason"),  # the schema's enum: 400
        ({"amount": "1.00", "reason": "return", "return_id": 999}, "not a return of this order"),
    ):
        answer = await client.post("/api/v1/orders/R-400100/refunds", json=body, headers=auth)
        assert answer.status_code in (400, 422), (body, answer.text)
        assert word in answer.json()["detail"], answer.json()
    bad_status = await client.patch("/api/v1/refunds/1", json={"status": "done"}, headers=auth)
    assert bad_status.status_code == 400 and bad_status.json()["field"] == "status"
    assert (
        await client.patch("/api/v1/refunds/999", json={"status": "paid"}, headers=auth)
    ).status_code == 404
    assert (await client.post("/api/v1/returns/999/approve", headers=auth)).status_code == 404


async def test_a_paid_refund_cannot_move_again(client, auth, order):
    made = await client.post(
        "/api/v1/orders/R-400100/refunds",
        json={"amount": "10.00", "reason": "goodwill"},
        headers=auth,
    )
    rid = made.json()["id"]
    await client.patch(f"/api/v1/refunds/{rid}", json={"status": "paid"}, headers=auth)
    again = await client.patch(f"/api/v1/refunds/{rid}", json={"status": "failed"}, headers=auth)
    assert again.status_code == 409
    same = await client.patch(f"/api/v1/refunds/{rid}", json={"status": "paid"}, headers=auth)
    assert same.status_code == 200  # a retried call: the same answer


@pytest.fixture
def manual(rt):
    object.__setattr__(rt, "settings", rt.settings.with_(return_approval="manual"))
    return rt


async def test_when_the_shop_approves_returns_the_page_says_it_waits(manual, client, auth, order):
    ret = await start(client, order)
    assert ret["status"] == "requested"
    html = (await client.get(order["path"])).text
    assert "The shop will confirm your return by text message." in html
    approved = await client.post(f"/api/v1/returns/{ret['id']}/approve", headers=auth)
    assert approved.json()["status"] == "approved"
    assert (
        await client.post(f"/api/v1/returns/{ret['id']}/approve", headers=auth)
    ).status_code == 201
    # Approved by the shop later: that is news, so it is texted.
    assert await SmsMessage.exists().where(
        (SmsMessage.order == order["id"]) & (SmsMessage.kind == "return_approved")
    )


async def test_two_clerks_receiving_one_return_at_once_have_one_winner(rt, client, order, clerk):
    ret = await start(client, order)
    store = (await Store.select(Store.id).where(Store.code == "MI01").first())["id"]
    line = (
        await ReturnLine.select(ReturnLine.id).where(ReturnLine.return_request == ret["id"]).first()
    )
    verdicts = [returns.VerdictIn(line["id"], 1)]
    results = await asyncio.gather(
        returns.receive_at_counter(rt, clerk.id, store, ret["id"], verdicts),
        returns.receive_at_counter(rt, clerk.id, store, ret["id"], verdicts),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, dict)]
    lost = [r for r in results if isinstance(r, Conflict)]
    assert len(won) == 1 and len(lost) == 1, results
    assert won[0]["status"] == "inspected"
    assert await Refund.count().where(Refund.order == order["id"]) == 1


async def test_a_reminder_goes_out_once_when_an_approved_return_is_not_sent(
    rt, client, order, clock
):
    ret = await start(client, order, method="courier", store="")
    clock.advance(days=5, minutes=1)
    assert await returns.send_due_reminders(rt) == 1
    assert await returns.send_due_reminders(rt) == 0
    assert await SmsMessage.exists().where(
        (SmsMessage.order == order["id"]) & (SmsMessage.kind == "return_not_sent")
    )
    assert ret["method"] == "courier"


async def test_a_reminder_is_dropped_when_the_return_moved_on(rt, client, auth, order, clock):
    ret = await start(client, order, method="courier", store="")
    await client.post(f"/api/v1/returns/{ret['id']}/receive", headers=auth)
    clock.advance(days=6)
    assert await returns.send_due_reminders(rt) == 0
    assert not await Reminder.exists().where(
        Reminder.due_at.is_not_null() & Reminder.key.like("return:%")
    )


async def test_ids_beyond_the_database_range_are_a_clear_4xx(client, auth, order):
    huge = 2**40
    for method, url, body in (
        ("GET", f"/api/v1/returns/{huge}", None),
        ("POST", f"/api/v1/returns/{huge}/approve", None),
        ("PATCH", f"/api/v1/refunds/{huge}", {"status": "paid"}),
        ("GET", f"/api/v1/changes/{huge}", None),
        ("GET", f"/api/v1/changes?after={huge}", None),
        ("POST", "/api/v1/orders/R-400100/refunds", {"amount": "1.00", "return_id": huge}),
    ):
        answer = await client.request(method, url, json=body, headers=auth)
        assert answer.status_code in (400, 404, 422), (url, answer.status_code, answer.text)


async def test_an_italian_shopper_reads_what_is_wrong_in_italian(client, auth, stores):
    from tests.factories import ITALIAN

    body = await create_order(client, auth, external_id="R-400109", customer=ITALIAN)
    await post_event(client, auth, "R-400109", "shipped", shipment={"tracking_number": "I1"})
    await post_event(client, auth, "R-400109", "delivered")
    path = path_of(body["tracking_url"])
    line = (await OrderLine.select(OrderLine.id).where(OrderLine.sku == "TSHIRT-M").first())["id"]
    answer = await post_form(
        client,
        path,
        "returns/review",
        {f"qty_{line}": "3", f"reason_{line}": "too_small", "method": ""},
    )
    assert answer.status_code == 422
    assert "Puoi rendere da 1 a 2 di questo articolo" in answer.text
    assert "Scegli come lo rimanderai" in answer.text


async def test_the_returns_card_is_the_same_whether_the_page_read_it_or_the_card(
    rt, client, auth, order
):
    """On PostgreSQL the page's one query brings the order's returns and refunds with it;
    the card built from them is the card built from its own reads (SQLite's road)."""
    await start(client, order)
    await start(client, order, **tshirts(order, reason="changed_mind"))
    for amount in ("5.00", "7.50"):
        refund = await client.post(
            "/api/v1/orders/R-400100/refunds",
            json={"amount": amount, "reason": "goodwill"},
            headers=auth,
        )
        assert refund.status_code == 201, refund.text
    token = order["path"].removeprefix("/t/")

    view = await orders.tracking_page(rt, token)
    assert view is not None and view.has_returns and view.has_refunds
    flags = {"status": view.state.status, "closed_at": view.closed_at}
    as_read = await returns.returns_view(
        rt,
        view.state.order_id,
        **flags,
        has_returns=True,
        has_refunds=True,
        order_lines=view.lines,
        refunds=view.refunds,
        return_rows=view.return_rows,
    )
    on_its_own = await returns.returns_view(
        rt, view.state.order_id, **flags, has_returns=True, has_refunds=True
    )
    assert as_read == on_its_own
    assert as_read is not None
    assert [len(r.lines) for r in as_read.returns] == [1, 1]
    assert [r["amount_minor"] for r in as_read.refunds] == [500, 750]
    if not rt.is_sqlite:
        assert view.return_rows is not None and len(view.return_rows) == 2
