"""Bodies that crash parsers, and the text-field rule on the shop API and on the shopper's
and clerks' forms: line ends made LF, control characters refused with the field named."""

from __future__ import annotations

import re

from portal.db.tables import Order, OrderEvent, OrderLine, Pickup, ReturnRequest, Shipment
from tests.factories import order_payload, store_payload
from tests.web.conftest import CLERK_PASSWORD
from tests.web.helpers import create_order, csrf_field, path_of, post_event, ship, sign_in

JSON = {"Content-Type": "application/json"}


async def test_bodies_that_crash_parsers_get_a_400_naming_the_problem(client, auth):
    order = await create_order(client, auth)
    events = f"/api/v1/orders/{order['external_id']}/events"
    cases = {
        b'{"type": "packed", "note": "caf\xe9"}': "not valid UTF-8",
        b"[" * 1000 + b"]" * 1000: "nested too deeply",
        b"[" * 5000 + b"]" * 5000: "nested too deeply",
        b'{"type": "packed", "note": ' + b"[" * 5000 + b"]" * 5000 + b"}": "nested too deeply",
    }
    for body, problem in cases.items():
        answer = await client.post(events, content=body, headers={**auth, **JSON})
        assert answer.status_code == 400, (body[:40], answer.text)
        assert problem in answer.json()["detail"]
    # PostgreSQL cannot store a NUL: refused before anything is written, by its field.
    nul = await client.post(
        events, content=b'{"type": "packed", "note": "at the\\u0000door"}', headers={**auth, **JSON}
    )
    assert nul.status_code == 422, nul.text
    assert nul.json()["field"] == "note"
    assert "U+0000" in nul.json()["detail"]
    assert await OrderEvent.count() == 1


REFUSED_TEXT = [  # (what the order says instead, the field named)
    ({"customer": {"name": "Giulia\x00Bianchi", "phone": "347 123 4567"}}, "customer.name"),
    ({"customer": {"name": "Giulia\nBianchi", "phone": "347 123 4567"}}, "customer.name"),
    (
        {"lines": [{"sku": "A", "name": "Mug\x1b[31m", "quantity": 1, "unit_price": "1.00"}]},
        "lines[0].name",
    ),
    (
        {
            "fulfilment": {
                "method": "delivery",
                "address": {
                    "line1": "Via Roma 1\x7f",
                    "city": "Milano",
                    "postcode": "20121",
                    "country": "IT",
                },
            }
        },
        "fulfilment.address.line1",
    ),
]


async def test_every_text_field_of_the_api_refuses_control_characters_by_field_and_takes_crlf(
    client, auth, stores
):
    for change, field in REFUSED_TEXT:
        answer = await client.post("/api/v1/orders", json=order_payload(**change), headers=auth)
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == field
        assert answer.json()["detail"].startswith(f"{field}: ")
    assert await Order.count() == 0

    order = await create_order(client, auth)
    note = await post_event(
        client, auth, order["external_id"], "packed", note="Left at\r\nthe\rdoor"
    )
    assert note.status_code == 201, note.text
    detail = (await client.get(f"/api/v1/orders/{order['external_id']}", headers=auth)).json()
    assert detail["timeline"][-1]["note"] == "Left at\nthe\ndoor"
    store = await client.put(
        "/api/v1/stores/MI01", json=store_payload(name="Milano\r\nCentro"), headers=auth
    )
    assert (store.status_code, store.json()["field"]) == (422, "name")
    hours = store_payload(opening_hours={"mon\x00": ["09:00-13:00"]})
    store = await client.put("/api/v1/stores/MI01", json=hours, headers=auth)
    assert (store.status_code, store.json()["field"]) == (422, "opening_hours.mon\x00")


async def get_form_page(client, path: str) -> tuple[str, str]:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return page.text, csrf_field(page.text)


async def test_the_shoppers_forms_refuse_control_characters_and_show_back_what_was_typed(
    client, auth, stores
):
    order = await create_order(client, auth)
    path = path_of(order["tracking_url"])
    await ship(client, auth, order["external_id"], tracking="BRT0001")
    sid = (await Shipment.select(Shipment.id).first())["id"]

    html, token = await get_form_page(client, path)
    version = re.search(r'name="version" value="(\d+)"', html).group(1)
    fields = {"_csrf_token": token, "version": version, "safe_place": "neighbour"}
    refused = await client.post(
        f"{path}/parcels/{sid}/instructions",
        data={**fields, "neighbour": "Rossi\x00", "note": "Ring"},
    )
    assert refused.status_code == 422, refused.text[-500:]
    assert 'id="err-neighbour">Contains a control character (U+0000) that is not allowed' in (
        refused.text
    )
    assert 'value="Rossi\x00"' in refused.text
    assert ">Ring</textarea>" in refused.text

    saved = await client.post(
        f"{path}/parcels/{sid}/instructions",
        data={**fields, "neighbour": "Rossi", "note": "Ring\r\ntwice"},
    )
    assert saved.status_code == 303, saved.text[-500:]
    row = await Shipment.select(Shipment.instructions).output(load_json=True).first()
    assert row["instructions"]["note"] == "Ring twice"  # never refused (the note is one line)

    # The pickup card, in the shopper's language.
    italian = {"name": "Giulia Bianchi", "phone": "347 123 4567", "locale": "it"}
    order = await create_order(
        client, auth, customer=italian, fulfilment={"method": "pickup", "store": "MI01"}
    )
    path = path_of(order["tracking_url"])
    _, token = await get_form_page(client, path)
    refused = await client.post(
        f"{path}/delegate", data={"_csrf_token": token, "name": "Marco\r\nRossi"}
    )
    assert refused.status_code == 422, refused.text[-500:]
    assert 'id="delegate-error">Deve stare su una sola riga (senza a capo).' in refused.text
    assert 'value="Marco\nRossi"' in refused.text
    assert (await Pickup.select(Pickup.delegate_name).first())["delegate_name"] is None


async def test_the_clerks_forms_refuse_control_characters_and_so_do_query_strings(
    client, auth, clerk
):
    _, token = await get_form_page(client, "/clerk/login")
    answer = await client.post(
        "/clerk/login",
        data={"_csrf_token": token, "username": "anna.rossi\x00", "password": CLERK_PASSWORD},
    )
    assert answer.status_code == 422, answer.text[-500:]
    assert "username: contains a control character (U+0000)" in answer.text
    assert 'value="anna.rossi' in answer.text
    # A form sent as multipart whose field is not UTF-8 (an urlencoded one is decoded leniently).
    parts = [(b"_csrf_token", token.encode()), (b"username", b"anna\xe9"), (b"password", b"x")]
    multipart = b"".join(
        b'--b\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % part for part in parts
    )
    answer = await client.post(
        "/clerk/login",
        content=multipart + b"--b--\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert answer.status_code == 400, answer.text[-300:]
    assert "not valid UTF-8" in answer.text

    signed_in = await sign_in(client, "anna.rossi", CLERK_PASSWORD)
    assert signed_in.status_code == 303, signed_in.text
    search = await client.get("/clerk/", params={"q": "Bianchi\x00"})
    assert search.status_code == 422, search.text[-300:]
    assert "contains a control character (U+0000)" in search.text
    status = await client.get("/api/v1/returns", params={"status": "approved\x00"}, headers=auth)
    assert (status.status_code, status.json()["field"]) == (422, "status")


async def test_the_return_form_shows_a_refused_note_by_its_line(client, auth, stores):
    order = await create_order(client, auth)
    await ship(client, auth, order["external_id"], tracking="BRT0001")
    assert (await post_event(client, auth, order["external_id"], "delivered")).status_code == 201
    path = path_of(order["tracking_url"])
    line = (await OrderLine.select(OrderLine.id).where(OrderLine.sku == "MUG-01").first())["id"]
    _, token = await get_form_page(client, path)
    data = {
        "_csrf_token": token,
        f"qty_{line}": "1",
        f"reason_{line}": "damaged",
        f"note_{line}": "chipped\x00",
        "method": "store",
        "store": "MI01",
    }
    answer = await client.post(f"{path}/returns", data=data)
    assert answer.status_code == 422, answer.text[-300:]
    assert f'id="rerr-{line}">Contains a control character (U+0000)' in answer.text
    assert 'value="chipped\x00"' in answer.text
    assert await ReturnRequest.count() == 0
