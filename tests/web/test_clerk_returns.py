"""The store counter's returns: find a return by its code or the shopper's QR, check each
line, receive it; a clerk only ever sees their own store's returns.

The order (tests/factories): 2 T-shirts at 19.90 and a mug at 12.50, delivered; the shopper
returns both T-shirts to Milano Centro (MI01) from the page's form.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from portal.db.tables import AuditLog, Refund, ReturnRequest, SmsMessage
from portal.domain.qr import counter_url
from portal.services.staff import create_staff
from tests.conftest import BASE_URL
from tests.web.conftest import CLERK_PASSWORD, MANAGER_PASSWORD
from tests.web.helpers import create_order, csrf_field, path_of, post_event, sign_in

RM_PASSWORD = "roma-counter-2026"


async def delivered_order(client, auth, external_id: str) -> dict[str, Any]:
    body = await create_order(client, auth, external_id=external_id)
    shipped = await post_event(
        client, auth, external_id, "shipped", shipment={"tracking_number": "BRT9", "carrier": "BRT"}
    )
    assert shipped.status_code == 201, shipped.text
    delivered = await post_event(client, auth, external_id, "delivered")
    assert delivered.status_code == 201, delivered.text
    return {**body, "path": path_of(body["tracking_url"])}


async def store_return(
    client, order: dict[str, Any], store: str = "MI01", **form: str
) -> dict[str, Any]:
    """The shopper's return of both T-shirts (too small), to be brought to `store`."""
    page = await client.get(order["path"] + "/returns/new")
    line = re.search(r'name="qty_(\d+)"', page.text)
    assert line, page.text
    data = {
        "_csrf_token": csrf_field(page.text),
        f"qty_{line.group(1)}": "2",
        f"reason_{line.group(1)}": "too_small",
        "method": "store",
        "store": store,
        **form,
    }
    answer = await client.post(f"{order['path']}/returns", data=data)
    assert answer.status_code == 303, answer.text
    ret = await ReturnRequest.select().where(ReturnRequest.order == order["id"]).first()
    assert ret is not None
    return ret


@pytest.fixture
async def order(client, auth, stores):
    return await delivered_order(client, auth, "R-500100")


@pytest.fixture
async def returned(client, order):
    """The return waiting at MI01 (approved at once: the default approval is automatic)."""
    ret = await store_return(client, order)
    assert ret["status"] == "approved"
    return ret


@pytest.fixture
async def counter(client, clerk):
    """The MI01 clerk, signed in on `client` (the shopper's page needs no session)."""
    assert (await sign_in(client, "anna.rossi", CLERK_PASSWORD)).status_code == 303
    return client


@pytest.fixture
async def roma(rt, stores, client_from):
    """A clerk of RM01, signed in on a browser of their own."""
    await create_staff(rt, "rita.bruno", RM_PASSWORD, store_code="RM01")
    browser = await client_from("198.51.100.20")
    assert (await sign_in(browser, "rita.bruno", RM_PASSWORD)).status_code == 303
    return browser


def spaced(code: str) -> str:
    return f"{code[:4]} {code[4:]}"


async def find(client, code: str):
    form = await client.get("/clerk/returns")
    assert form.status_code == 200, form.text
    return await client.post(
        "/clerk/returns", data={"_csrf_token": csrf_field(form.text), "code": code}
    )


async def receive(client, return_id: int, data: dict[str, str] | None = None, **headers: str):
    page = await client.get(f"/clerk/returns/{return_id}")
    assert page.status_code == 200, page.text
    token = csrf_field(page.text)
    return await client.post(
        f"/clerk/returns/{return_id}/receive",
        data={"_csrf_token": token, **(data or {})},
        headers=headers,
    )


def line_field(html: str, prefix: str) -> str:
    found = re.search(rf'name="({prefix}-\d+)"', html)
    assert found, html
    return found.group(1)


def selected(html: str, name: str) -> str:
    select = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', html, re.S)
    assert select, html
    chosen = re.findall(r'<option value="(\d+)" selected>', select.group(1))
    assert len(chosen) == 1, select.group(0)
    return chosen[0]


async def kinds(order_id: int) -> list[str]:
    rows = await SmsMessage.select(SmsMessage.kind).where(SmsMessage.order == order_id)
    return [r["kind"] for r in rows]


# Finding a return


async def test_the_console_links_to_returns_and_the_form_asks_for_the_code(counter):
    home = await counter.get("/clerk/")
    assert 'href="/clerk/returns"' in home.text
    form = await counter.get("/clerk/returns")
    assert form.status_code == 200
    assert re.search(
        r'<label for="code">Return code</label>\s*<input id="code" name="code"', form.text
    )
    assert '<form class="code-form" method="post" action="/clerk/returns">' in form.text
    assert re.search(r"<button[^>]*>Find the return</button>", form.text)


async def test_a_code_typed_with_spaces_or_in_lowercase_finds_the_return(counter, order, returned):
    code = returned["code"]
    for typed in (code, spaced(code).lower(), f"{code[:4]}-{code[4:]}"):
        answer = await find(counter, typed)
        assert answer.status_code == 303, (typed, answer.text)
        assert answer.headers["location"] == f"/clerk/returns/{returned['id']}"
    by_get = await counter.get("/clerk/returns", params={"code": spaced(code).lower()})
    assert by_get.status_code == 303
    assert by_get.headers["location"] == f"/clerk/returns/{returned['id']}"

    page = await counter.get(f"/clerk/returns/{returned['id']}")
    assert page.status_code == 200
    html = page.text
    assert f"{code[:4]}-{code[4:]}" in html
    assert "<dd>R-500100</dd>" in html and "<dd>Giulia Bianchi</dd>" in html
    assert "Organic cotton T-shirt" in html and "Too small" in html
    assert "Approved: waiting for the items" in html
    accepted = line_field(html, "accepted")
    assert selected(html, accepted) == "2"  # everything, unless the clerk says otherwise
    assert re.findall(rf'name="{accepted}".*?</select>', html, re.S)[0].count("<option") == 3
    assert f'<label class="sr" for="{accepted}">Accepted: Organic cotton T-shirt</label>' in html
    assert re.search(r"<button[^>]*>Receive the return</button>", html)
    assert page.headers["cache-control"] == "no-store"


async def test_an_unknown_code_shows_the_form_again_with_the_code_kept(counter, returned):
    answer = await find(counter, "zzzz 9999")
    assert answer.status_code == 404
    assert "No return with this code at this store" in answer.text
    assert 'value="zzzz 9999"' in answer.text
    empty = await find(counter, "  ")
    assert empty.status_code == 422
    assert "Type the return code" in empty.text


async def test_the_qr_url_without_a_session_goes_to_the_sign_in_and_back(client, clerk, returned):
    url = counter_url(BASE_URL, returned["id"], returned["code"])
    path = path_of(url)
    scanned = await client.get(path)
    assert scanned.status_code == 303
    next_path = f"/clerk/returns/{returned['id']}%3Fcode%3D{returned['code']}"
    assert scanned.headers["location"] == f"/clerk/login?next={next_path}"

    signed_in = await sign_in(client, "anna.rossi", CLERK_PASSWORD, next_path=path)
    assert signed_in.headers["location"] == path
    page = await client.get(path)
    assert page.status_code == 200
    assert re.search(r"<button[^>]*>Receive the return</button>", page.text)
    # A QR whose code is not this return's finds nothing.
    forged = await client.get(f"/clerk/returns/{returned['id']}", params={"code": "AAAAAAAA"})
    assert forged.status_code == 404
    assert "No return with this code at this store" in forged.text


# Store isolation, CSRF


async def test_a_clerk_of_another_store_gets_404_on_every_return_route(
    client, clerk, roma, order, returned
):
    code, base = returned["code"], f"/clerk/returns/{returned['id']}"
    assert (await find(roma, code)).status_code == 404
    assert (await roma.get("/clerk/returns", params={"code": code})).status_code == 404
    assert (await roma.get(base)).status_code == 404
    assert (await roma.get(base, params={"code": code})).status_code == 404
    token = csrf_field((await roma.get("/clerk/returns")).text)
    posted = await roma.post(f"{base}/receive", data={"_csrf_token": token})
    assert posted.status_code == 404
    assert "R-500100" not in posted.text and "Giulia" not in posted.text

    ret = await ReturnRequest.select().where(ReturnRequest.id == returned["id"]).first()
    assert ret["status"] == "approved"
    assert await AuditLog.count().where(AuditLog.order == order["id"]) == 0


async def test_find_and_receive_posts_without_the_csrf_token_are_refused(counter, returned):
    page = await counter.get(f"/clerk/returns/{returned['id']}")
    accepted = line_field(page.text, "accepted")
    refused = await counter.post(f"/clerk/returns/{returned['id']}/receive", data={accepted: "2"})
    assert refused.status_code == 403
    assert (
        await counter.post("/clerk/returns", data={"code": returned["code"]})
    ).status_code == 403
    ret = await ReturnRequest.select().where(ReturnRequest.id == returned["id"]).first()
    assert ret["status"] == "approved"


# Receiving


async def test_a_partial_accept_needs_a_reason_and_keeps_what_was_typed(counter, order, returned):
    page = (await counter.get(f"/clerk/returns/{returned['id']}")).text
    accepted, reason = line_field(page, "accepted"), line_field(page, "reason")

    refused = await receive(counter, returned["id"], {accepted: "1", reason: "  "})
    assert refused.status_code == 422
    assert "Organic cotton T-shirt: say why it is not accepted" in refused.text
    assert selected(refused.text, accepted) == "1"
    assert re.search(rf'name="{reason}"[^>]*aria-invalid="true"', refused.text)
    # Nothing happened: not received, no text to the shopper, nothing audited.
    ret = await ReturnRequest.select().where(ReturnRequest.id == returned["id"]).first()
    assert ret["status"] == "approved" and ret["received_at"] is None
    assert "return_received" not in await kinds(order["id"])
    assert await AuditLog.count().where(AuditLog.action == "return_received") == 0

    not_a_number = await receive(counter, returned["id"], {accepted: "two", reason: "Stained"})
    assert not_a_number.status_code == 422
    assert "choose how many were accepted" in not_a_number.text
    assert 'value="Stained"' in not_a_number.text

    done = await receive(counter, returned["id"], {accepted: "1", reason: "Stained"})
    assert done.status_code == 303
    html = (await counter.get(done.headers["location"])).text
    assert "Received and checked. Refund of €19.90 started" in html
    assert "Stained" in html
    refund = await Refund.select().where(Refund.return_request == returned["id"]).first()
    assert refund["amount_minor"] == 1990 and refund["status"] == "pending"
    shopper = (await counter.get(order["path"])).text
    assert "1 of 2 accepted: Stained" in shopper


async def test_receiving_starts_the_refund_the_shopper_sees_and_a_second_receive_is_refused(
    client, auth, counter, manager, client_from, order, returned
):
    page = (await counter.get(f"/clerk/returns/{returned['id']}")).text
    accepted = line_field(page, "accepted")
    done = await receive(counter, returned["id"], {accepted: "2"})
    assert done.status_code == 303
    assert done.headers["location"] == f"/clerk/returns/{returned['id']}?done=received"
    html = (await counter.get(done.headers["location"])).text
    assert "Received and checked. Refund of €39.80 started; the shopper has been told." in html
    assert '<span class="counter-badge">Received and checked</span>' in html
    assert "Receive the return</button>" not in html  # nothing left to do here

    ret = await ReturnRequest.select().where(ReturnRequest.id == returned["id"]).first()
    assert ret["status"] == "inspected" and ret["received_by"] is not None
    refund = await Refund.select().where(Refund.return_request == returned["id"]).first()
    assert refund["amount_minor"] == 3980 and refund["status"] == "pending"
    shopper = (await client.get(order["path"])).text
    assert "Return checked" in shopper  # the timeline
    assert "Refund of <strong>€39.80</strong> to your original payment method:" in shopper
    assert '<span class="rstatus">pending</span>' in shopper
    assert "return_received" in await kinds(order["id"])
    # The shop finds the refund from the return.
    api = (await client.get(f"/api/v1/returns/{returned['id']}", headers=auth)).json()
    assert api["status"] == "inspected" and api["refund_ids"] == [refund["id"]]

    again = await receive(counter, returned["id"], {accepted: "2"})
    assert again.status_code == 409
    assert "This return is already inspected." in again.text
    assert await Refund.count().where(Refund.order == order["id"]) == 1

    # The managers' audit log: who received which order's return, where.
    boss = await client_from("198.51.100.30")
    await sign_in(boss, "marco", MANAGER_PASSWORD)
    audit = (await boss.get("/clerk/audit")).text
    row = re.search(r'<tr class="audit-return_received">(.*?)</tr>', audit, re.S)
    assert row, audit
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert cells[1:] == ["anna.rossi", "return_received", "R-500100", "MI01"]


async def test_an_htmx_receive_answers_the_return_block_and_errors_too(counter, returned):
    page = (await counter.get(f"/clerk/returns/{returned['id']}")).text
    assert f'hx-post="/clerk/returns/{returned["id"]}/receive" hx-target="#return"' in page
    accepted, reason = line_field(page, "accepted"), line_field(page, "reason")
    htmx = {"HX-Request": "true", "X-CSRFToken": csrf_field(page)}
    url = f"/clerk/returns/{returned['id']}/receive"

    refused = await counter.post(url, data={accepted: "0"}, headers=htmx)
    assert refused.status_code == 422
    assert refused.text.lstrip().startswith('<div id="return"')
    assert "say why it is not accepted" in refused.text

    done = await counter.post(url, data={accepted: "0", reason: "Worn"}, headers=htmx)
    assert done.status_code == 200
    assert done.text.lstrip().startswith('<div id="return"') and "<html" not in done.text
    assert "Nothing was accepted, so there is no refund" in done.text
    ret = await ReturnRequest.select().where(ReturnRequest.id == returned["id"]).first()
    assert ret["status"] == "rejected"
    assert await Refund.count().where(Refund.return_request == returned["id"]) == 0


async def test_a_manager_receives_any_stores_return(client, manager, auth, stores):
    order = await delivered_order(client, auth, "R-500200")
    ret = await store_return(client, order, store="RM01")
    await sign_in(client, "marco", MANAGER_PASSWORD)
    found = await find(client, spaced(ret["code"]))
    assert found.status_code == 303
    page = (await client.get(found.headers["location"])).text
    assert "<dd>Roma Termini</dd>" in page
    done = await receive(client, ret["id"], {line_field(page, "accepted"): "2"})
    assert done.status_code == 303
    assert "Refund of €39.80 started" in (await client.get(done.headers["location"])).text
    entry = await AuditLog.select().where(AuditLog.action == "return_received").first()
    assert entry["staff"] == manager.id and entry["order"] == order["id"]


async def test_a_return_waiting_for_the_shops_approval_cannot_be_received_yet(rt, counter, order):
    object.__setattr__(rt, "settings", rt.settings.with_(return_approval="manual"))
    ret = await store_return(counter, order)
    assert ret["status"] == "requested"
    page = await counter.get(f"/clerk/returns/{ret['id']}")
    assert "Waiting for the shop" in page.text
    assert "Receive the return</button>" not in page.text
    token = csrf_field(page.text)
    refused = await counter.post(f"/clerk/returns/{ret['id']}/receive", data={"_csrf_token": token})
    assert refused.status_code == 409
    assert "waits for the shop" in refused.text


async def test_a_courier_returns_code_is_not_found_at_the_counter(client, manager, auth, order):
    ret = await store_return(client, order, method="courier", store="")
    await sign_in(client, "marco", MANAGER_PASSWORD)
    assert (await find(client, ret["code"])).status_code == 404
    assert (await client.get(f"/clerk/returns/{ret['id']}")).status_code == 404


async def test_a_return_id_beyond_the_database_range_is_a_clear_400(counter):
    assert (await counter.get(f"/clerk/returns/{2**40}")).status_code == 400
