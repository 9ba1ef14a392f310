"""The shop's API: what a shop's developer sees, including every kind of bad input."""

from __future__ import annotations

import asyncio
import json

import pytest

from portal.db.tables import Order, OrderEvent, SmsMessage
from tests.factories import ITALIAN, order_payload, store_payload
from tests.web.helpers import create_order, post_event, ship


async def counts() -> tuple[int, int, int]:
    return await Order.count(), await SmsMessage.count(), await OrderEvent.count()


async def test_a_new_order_gets_a_tracking_link_and_one_confirmation_sms(client, auth):
    body = await create_order(client, auth, external_id="WEB-1", customer=ITALIAN)
    assert body["external_id"] == "WEB-1"
    assert body["status"] == "placed"
    assert body["tracking_url"].startswith("http://portal.test/t/")
    assert len(body["tracking_url"].rsplit("/", 1)[1]) == 22
    sms = await SmsMessage.select().first()
    assert sms["kind"] == "order_confirmed"
    assert sms["recipient"] == "+393471234567"
    assert sms["locale"] == "it"
    assert sms["body"].startswith("Ciao Giulia,")
    assert sms["segments"] == 1
    assert sms["encoding"] == "gsm7"


async def test_posting_the_same_order_twice_creates_one_order_and_one_sms(client, auth):
    payload = order_payload(external_id="WEB-2")
    first = await client.post("/api/v1/orders", json=payload, headers=auth)
    again = await client.post("/api/v1/orders", json=payload, headers=auth)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert await counts() == (1, 1, 1)


async def test_racing_twins_of_one_order_make_exactly_one_order(client, auth):
    payload = order_payload(external_id="WEB-RACE")
    responses = await asyncio.gather(
        *(client.post("/api/v1/orders", json=payload, headers=auth) for _ in range(5))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 200, 200, 201]
    assert len({r.json()["tracking_url"] for r in responses}) == 1
    assert await counts() == (1, 1, 1)


@pytest.mark.parametrize(
    ("mutate", "status", "field_text"),
    [
        (lambda b: b.pop("customer"), 400, "customer"),
        (lambda b: b.update(colour="red"), 400, "colour"),
        (lambda b: b["lines"][0].update(quantity=0), 400, "lines[0].quantity"),
        (lambda b: b["lines"][0].update(quantity=-2), 400, "lines[0].quantity"),
        # Outside the schema's pattern (a decimal string): 400; more decimals than EUR has: 422.
        (lambda b: b["lines"][1].update(unit_price="12,50"), 400, "lines[1].unit_price"),
        (lambda b: b["lines"][1].update(unit_price="-1.00"), 400, "lines[1].unit_price"),
        (lambda b: b["lines"][1].update(unit_price="1.999"), 422, "lines[1].unit_price"),
        (lambda b: b.update(lines=[]), 400, "lines"),
        # Types as the schema states them: no number for a date, no string for a number.
        (lambda b: b["lines"][0].update(quantity="2"), 400, "lines[0].quantity"),
        (lambda b: b.update(placed_at=0), 400, "placed_at"),
        (lambda b: b["customer"].update(phone="123"), 422, "customer.phone"),
        (lambda b: b["customer"].update(phone="not a phone"), 400, "customer.phone"),
        (lambda b: b.update(currency="XYZ"), 422, "currency"),
        (
            lambda b: b.update(fulfilment={"method": "pickup", "store": "NOPE"}),
            422,
            "fulfilment.store",
        ),
        (lambda b: b.update(fulfilment={"method": "drone"}), 400, "fulfilment"),
        (lambda b: b.update(external_id="has spaces"), 400, "external_id"),
        # Python's `$` also matches before a final newline: the patterns must not.
        (lambda b: b.update(external_id="WEB-1\n"), 400, "external_id"),
    ],
)
async def test_bad_orders_are_refused_with_the_field_named_and_nothing_written(
    client, auth, mutate, status, field_text
):
    body = order_payload()
    mutate(body)
    response = await client.post("/api/v1/orders", json=body, headers=auth)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["status_code"] == status
    assert field_text in error["detail"], error
    assert await counts() == (0, 0, 0)


async def test_a_whole_number_may_be_written_as_a_float(client, auth):
    # JSON Schema's integer takes 2.0; so does the API (its types are checked strictly).
    body = order_payload()
    body["lines"][0]["quantity"] = 2.0
    response = await client.post("/api/v1/orders", json=body, headers=auth)
    assert response.status_code == 201, response.text


async def test_malformed_json_gets_a_clear_400(client, auth):
    response = await client.post(
        "/api/v1/orders",
        content=b'{"external_id": "X", ',
        headers={**auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("the body is not valid JSON")


async def test_an_oversized_body_is_refused_before_it_is_read(client, auth):
    body = order_payload()
    body["lines"][0]["name"] = "x" * 200
    body["lines"] = body["lines"] * 200  # > 64 KB
    response = await client.post(
        "/api/v1/orders",
        content=json.dumps(body).encode(),
        headers={**auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert await counts() == (0, 0, 0)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer pk_wrong"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
    ],
)
async def test_the_api_refuses_callers_without_a_valid_key(client, headers):
    response = await client.post("/api/v1/orders", json=order_payload(), headers=headers)
    assert response.status_code == 401
    assert "API key" in response.json()["detail"] or "Bearer" in response.json()["detail"]
    assert await counts() == (0, 0, 0)


async def test_a_revoked_key_stops_working(client, rt, auth):
    from portal.services.api_keys import revoke_api_key

    assert (await client.get("/api/v1/orders/NOPE", headers=auth)).status_code == 404
    await revoke_api_key(rt, "tests")
    assert (await client.get("/api/v1/orders/NOPE", headers=auth)).status_code == 401


async def test_events_move_the_order_on_and_show_in_its_timeline(client, auth):
    order = await create_order(client, auth, external_id="WEB-EV")
    assert (await post_event(client, auth, "WEB-EV", "packed")).status_code == 201
    await ship(client, auth, "WEB-EV")
    response = await post_event(client, auth, "WEB-EV", "out_for_delivery")
    assert response.json()["status"] == "out_for_delivery"
    detail = (await client.get("/api/v1/orders/WEB-EV", headers=auth)).json()
    assert detail["status"] == "out_for_delivery"
    assert [e["type"] for e in detail["timeline"]] == [
        "placed",
        "packed",
        "shipped",
        "out_for_delivery",
    ]
    assert detail["shipments"] == [
        {
            "tracking_number": "BRT123",
            "carrier": "BRT",
            "eta": None,
            "status": "out_for_delivery",
            "delivery_day": None,
            "instructions": None,
        }
    ]
    assert detail["tracking_url"] == order["tracking_url"]
    assert detail["total"] == "52.30"
    # packed sends nothing; shipped and out_for_delivery each send one
    kinds = [r["kind"] for r in await SmsMessage.select(SmsMessage.kind).order_by(SmsMessage.id)]
    assert kinds == ["order_confirmed", "shipped", "out_for_delivery"]


async def test_a_repeated_event_is_harmless_and_sends_nothing_new(client, auth):
    await create_order(client, auth, external_id="WEB-DUP")
    await ship(client, auth, "WEB-DUP")
    again = await post_event(
        client, auth, "WEB-DUP", "shipped", shipment={"tracking_number": "BRT123", "carrier": "BRT"}
    )
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert await SmsMessage.count() == 2


async def test_an_illegal_transition_is_refused_with_409_and_changes_nothing(client, auth):
    await create_order(client, auth, external_id="WEB-ILL")
    assert (await post_event(client, auth, "WEB-ILL", "cancelled")).status_code == 201
    response = await post_event(
        client, auth, "WEB-ILL", "shipped", shipment={"tracking_number": "T1", "carrier": "BRT"}
    )
    assert response.status_code == 409
    assert "cancelled" in response.json()["detail"]
    detail = (await client.get("/api/v1/orders/WEB-ILL", headers=auth)).json()
    assert detail["status"] == "cancelled"
    assert [e["type"] for e in detail["timeline"]] == ["placed", "cancelled"]


async def test_unknown_event_types_and_unknown_orders_are_named(client, auth):
    await create_order(client, auth, external_id="WEB-UNK")
    response = await post_event(client, auth, "WEB-UNK", "teleported")
    # The schema lists the types (an enum): anything else is refused as it is decoded.
    assert response.status_code == 400
    assert response.json()["field"] == "type"
    assert "teleported" in response.json()["detail"]
    missing = await post_event(client, auth, "NOPE-1", "packed")
    assert missing.status_code == 404
    assert "NOPE-1" in missing.json()["detail"]


async def test_a_shipped_event_needs_a_tracking_number(client, auth):
    await create_order(client, auth, external_id="WEB-NOTRK")
    response = await post_event(client, auth, "WEB-NOTRK", "shipped")
    assert response.status_code == 422
    assert "tracking_number" in response.json()["detail"]


async def test_a_split_delivery_is_delivered_only_when_every_parcel_is(client, auth):
    await create_order(client, auth, external_id="WEB-SPLIT")
    await ship(client, auth, "WEB-SPLIT", "P1")
    await ship(client, auth, "WEB-SPLIT", "P2")
    ambiguous = await post_event(client, auth, "WEB-SPLIT", "delivered")
    assert ambiguous.status_code == 422
    assert "2 shipments" in ambiguous.json()["detail"]
    first = await post_event(
        client, auth, "WEB-SPLIT", "delivered", shipment={"tracking_number": "P1"}
    )
    assert first.json()["status"] == "shipped"
    second = await post_event(
        client, auth, "WEB-SPLIT", "delivered", shipment={"tracking_number": "P2"}
    )
    assert second.json()["status"] == "delivered"


async def test_stores_are_created_then_updated_by_put(client, auth):
    created = await client.put("/api/v1/stores/MI01", json=store_payload(), headers=auth)
    assert created.status_code == 201, created.text
    updated = await client.put(
        "/api/v1/stores/MI01", json=store_payload(name="Milano Duomo"), headers=auth
    )
    assert updated.status_code == 200
    assert updated.json()["name"] == "Milano Duomo"


@pytest.mark.parametrize(
    ("change", "field_text"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"opening_hours": {"mon": ["19:00-09:00"]}}, "opening_hours"),
        ({"opening_hours": {"someday": ["09:00-12:00"]}}, "opening_hours"),
        ({"phone": "abc"}, "phone"),
    ],
)
async def test_bad_stores_are_refused_with_the_field_named(client, auth, change, field_text):
    response = await client.put("/api/v1/stores/MI01", json=store_payload(**change), headers=auth)
    assert response.status_code in (400, 422), response.text
    assert field_text in response.json()["detail"]


async def test_a_pickup_order_names_its_store_in_the_confirmation(client, auth):
    await client.put("/api/v1/stores/MI01", json=store_payload(), headers=auth)
    await create_order(
        client,
        auth,
        external_id="WEB-PICK",
        fulfilment={"method": "pickup", "store": "MI01"},
        customer={"name": "Emma Clarke", "phone": "+44 7911 123456", "locale": "en"},
    )
    sms = await SmsMessage.select().first()
    assert "for pickup at Milano Centro" in sms["body"]
    assert (await post_event(client, auth, "WEB-PICK", "arrived_in_store")).json()[
        "status"
    ] == "arrived_in_store"


async def test_the_openapi_schema_describes_the_shop_api(client):
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/api/v1/orders" in schema["paths"]
    assert "/api/v1/orders/{external_id}/events" in schema["paths"]
    assert "BearerToken" in schema["components"]["securitySchemes"]
