"""Texts shoppers send back (MessageBird's inbound webhook): consent keywords, survey answers,
visit confirmations, unknown replies, and failed texts the counter must know about.

The customer is Giulia (+39 347 123 4567), as an Italian shop sends her (her texts are in
Italian, `ITALIAN`) except where a test says otherwise; the clock starts on
Monday 23 November 2026, 09:30 UTC (10:30 in Milan).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from urllib.parse import urlencode

import pytest

from portal.db.tables import (
    Customer,
    InboundSms,
    OrderEvent,
    Pickup,
    SmsMessage,
    Store,
    SurveyResponse,
)
from portal.services import messaging
from portal.services import pickup as pickup_service
from portal.services.surveys import plan_survey, send_due_surveys
from tests.factories import ITALIAN
from tests.web.conftest import CLERK_PASSWORD
from tests.web.helpers import create_order, path_of, post_event, ship, sign_in
from tests.web.test_webhooks import SIGNING_KEY, sign

INBOUND = "/webhooks/messagebird/inbound"
GIULIA = "393471234567"
_ids = itertools.count(1)


async def text(client, body: str, *, originator: str = GIULIA, gid: str | None = None, **kw):
    data = {
        "id": gid or f"in-{next(_ids):06d}",
        "originator": originator,
        "recipient": "3197010260144",
        "body": body,
        "createdDatetime": "2026-11-23T09:40:00+00:00",
    }
    if kw.get("as_json"):
        return await client.post(INBOUND, json=data)
    return await client.post(INBOUND, data=data)


async def handled(client, body: str, **kw) -> str:
    response = await text(client, body, **kw)
    assert response.status_code == 200, response.text
    return response.json()["result"]


async def answers(kind: str) -> list[dict]:
    return await SmsMessage.select().where(SmsMessage.kind == kind).order_by(SmsMessage.id)


async def opted_out() -> bool:
    row = await Customer.select(Customer.sms_opt_out_at).where(Customer.phone == "+" + GIULIA)
    return row[0]["sms_opt_out_at"] is not None


@pytest.fixture
async def order(client, auth, rt):
    """A delivery order whose confirmation text has reached Giulia."""
    body = await create_order(client, auth, customer=ITALIAN)
    await messaging.dispatch_due(rt)
    return body


@pytest.fixture
def signed(rt):
    rt.settings = replace(rt.settings, messagebird_signing_key=SIGNING_KEY)
    return rt


# Signatures, duplicates and bad input


async def test_with_a_signing_key_a_signed_text_is_handled_and_an_unsigned_one_gets_401(
    client, order, signed
):
    form = {"id": "in-signed", "originator": GIULIA, "body": "STOP"}
    body = urlencode(form).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    unsigned = await client.post(INBOUND, content=body, headers=headers)
    assert unsigned.status_code == 401
    assert "Signature" in unsigned.json()["detail"]
    forged = await client.post(
        INBOUND,
        content=body.replace(b"STOP", b"START"),
        headers={
            **headers,
            "MessageBird-Signature-JWT": sign(f"http://portal.test{INBOUND}", body),
        },
    )
    assert forged.status_code == 401
    assert await InboundSms.count() == 0
    good = await client.post(
        INBOUND,
        content=body,
        headers={
            **headers,
            "MessageBird-Signature-JWT": sign(f"http://portal.test{INBOUND}", body),
        },
    )
    assert good.status_code == 200, good.text
    assert good.json() == {"result": "stop"}
    assert await opted_out()


async def test_a_replayed_text_has_one_effect_and_one_confirmation(client, order):
    results = [await handled(client, "STOP", gid="in-replayed") for _ in range(3)]
    assert results == ["stop", "duplicate", "duplicate"]
    assert await InboundSms.count() == 1
    assert len(await answers("sms_stopped")) == 1


async def test_a_json_body_works_as_well_as_a_form(client, order):
    assert await handled(client, "Aiuto", as_json=True) == "help"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"originator": GIULIA, "body": "STOP"}, "id"),
        ({"id": "x1", "body": "STOP"}, "originator"),
        ({"id": "x2", "originator": "ACME", "body": "STOP"}, "originator"),
        ({"id": "x3", "originator": "12", "body": "STOP"}, "originator"),
        ({"id": "x4", "originator": GIULIA}, "body"),
        ({"id": "x" * 65, "originator": GIULIA, "body": "STOP"}, "id"),
    ],
)
async def test_a_text_with_a_missing_or_bad_field_gets_422_naming_it(client, order, fields, field):
    response = await client.post(INBOUND, data=fields)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert response.json()["detail"].startswith(f"{field}: ")
    assert await InboundSms.count() == 0


async def test_a_malformed_json_body_is_refused_with_a_4xx_not_a_500(client, order):
    response = await client.post(
        INBOUND, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert response.json()["detail"]


async def test_texts_from_numbers_we_do_not_know_are_recorded_and_not_answered(client, order):
    assert await handled(client, "STOP", originator="393331112222") == "no_customer"
    assert await handled(client, "hello", originator="+39 333 111 2222") == "no_customer"
    assert await InboundSms.count() == 2
    assert await SmsMessage.count() == 1  # the order confirmation only
    assert not await opted_out()


# Consent: STOP, START, HELP


@pytest.mark.parametrize("word", ["STOP", "stop", " Basta! ", "NIE", "baja", "s t o p."])
async def test_stop_in_each_language_opts_the_number_out_with_one_confirmation(
    client, rt, fake_mb, order, word
):
    assert await handled(client, word) == "stop"
    assert await opted_out()
    [confirmation] = await answers("sms_stopped")
    assert confirmation["urgent"] and confirmation["locale"] == "it"
    assert confirmation["recipient"] == "+" + GIULIA
    await messaging.dispatch_due(rt)
    sent = fake_mb.messages[-1]
    assert sent["body"].startswith("Non riceverai più SMS da noi. Rispondi ATTIVA")
    assert order["tracking_url"] in sent["body"]


async def test_a_repeated_stop_changes_nothing_and_is_confirmed_at_most_once_a_day(
    client, clock, order
):
    assert await handled(client, "STOP") == "stop"
    first = (await Customer.select(Customer.sms_opt_out_at).first())["sms_opt_out_at"]
    assert await handled(client, "stop") == "stop_again"
    assert await handled(client, "STOP") == "stop_again"
    assert len(await answers("sms_stopped")) == 2  # the opt-out's, and one for the repeats
    clock.advance(hours=1)
    assert await handled(client, "STOP") == "stop_again"
    assert len(await answers("sms_stopped")) == 2
    assert (await Customer.select(Customer.sms_opt_out_at).first())["sms_opt_out_at"] == first


@pytest.mark.parametrize("word", ["START", "attiva", "Alta"])
async def test_start_undoes_stop_with_a_confirmation(client, rt, fake_mb, order, word):
    await handled(client, "STOP")
    assert await handled(client, word) == "start"
    assert not await opted_out()
    [confirmation] = await answers("sms_started")
    assert confirmation["urgent"]
    await messaging.dispatch_due(rt)
    bodies = [m["body"] for m in fake_mb.messages]
    assert any(b.startswith("SMS sui tuoi ordini riattivati.") for b in bodies)


async def test_help_answers_with_the_phone_of_the_store_of_the_last_order(
    client, auth, rt, fake_mb, stores
):
    await create_order(
        client, auth, customer=ITALIAN, fulfilment={"method": "pickup", "store": "MI01"}
    )
    await messaging.dispatch_due(rt)
    assert await handled(client, "AIUTO") == "help"
    await messaging.dispatch_due(rt)
    body = fake_mb.messages[-1]["body"]
    assert "Chiama" in body and "+39 02 1234 5678" in body


async def test_help_without_a_store_points_to_the_order_page(client, rt, fake_mb, order):
    assert await handled(client, "help") == "help"
    await messaging.dispatch_due(rt)
    body = fake_mb.messages[-1]["body"]
    assert body.startswith("Aiuto per l'ordine")
    assert order["tracking_url"] in body


async def test_help_is_answered_even_after_stop(client, order):
    await handled(client, "STOP")
    assert await handled(client, "POMOC") == "help"
    assert len(await answers("sms_help")) == 1


# Replies matched to the order last texted


async def delivered_order_with_survey(client, auth, rt, clock) -> dict:
    order = await create_order(client, auth, customer=ITALIAN)
    await ship(client, auth, order["external_id"])
    response = await post_event(client, auth, order["external_id"], "delivered")
    assert response.status_code == 201, response.text
    await messaging.dispatch_due(rt)
    await plan_survey(rt, order["id"], clock.now())
    clock.advance(days=1, hours=1)  # Tuesday 10:30 UTC, after 10:00 in Milan
    assert await send_due_surveys(rt) == 1
    await messaging.dispatch_due(rt)
    return order


async def test_a_reply_to_the_survey_is_stored_once_per_order_and_a_later_answer_replaces_it(
    client, auth, rt, clock, fake_mb
):
    order = await delivered_order_with_survey(client, auth, rt, clock)
    assert fake_mb.messages[-1]["body"].startswith("Ciao Giulia, com'è andato l'ordine")
    assert await handled(client, " 4 - quick, but the box was wet") == "survey"
    [answer] = await SurveyResponse.select()
    assert (answer["order"], answer["score"]) == (order["id"], 4)
    assert answer["comment"] == "quick, but the box was wet"
    assert answer["store"] is None
    assert await handled(client, "5/5") == "survey"
    [answer] = await SurveyResponse.select()
    assert (answer["score"], answer["comment"]) == (5, None)
    assert len(await answers("reply_unknown")) == 0


async def test_a_survey_reply_that_is_not_a_score_gets_the_polite_answer(client, auth, rt, clock):
    await delivered_order_with_survey(client, auth, rt, clock)
    assert await handled(client, "10") == "reply"
    assert await SurveyResponse.count() == 0


async def test_an_unknown_reply_is_answered_once_a_day_with_the_orders_link(
    client, rt, clock, fake_mb, order
):
    assert await handled(client, "When will it arrive?") == "reply"
    assert await handled(client, "Hello??") == "reply_quiet"
    assert len(await answers("reply_unknown")) == 1
    await messaging.dispatch_due(rt)
    body = fake_mb.messages[-1]["body"]
    assert body.startswith("Spiacenti, non rispondiamo agli SMS.")
    assert order["tracking_url"] in body
    clock.advance(days=1)
    assert await handled(client, "Hello again") == "reply"
    assert len(await answers("reply_unknown")) == 2
    # A number that opted out gets no answer.
    await handled(client, "STOP")
    clock.advance(days=1)
    assert await handled(client, "why?") == "reply_quiet"


@pytest.fixture
async def ready_pickup(client, auth, rt, clerk):
    order = await create_order(client, auth, fulfilment={"method": "pickup", "store": "MI01"})
    store = await Store.select(Store.id).where(Store.code == "MI01").first()
    await pickup_service.mark_ready(rt, pickup_service.Actor(clerk.id, store["id"]), order["id"])
    await messaging.dispatch_due(rt)
    return order


async def visit_confirmations(order_id: int) -> list[dict]:
    return await OrderEvent.select().where(
        (OrderEvent.order == order_id) & (OrderEvent.type == "visit_confirmed")
    )


@pytest.mark.parametrize("yes", ["Sì", "ok", "1", "TAK", "yes!"])
async def test_a_yes_to_the_ready_text_confirms_the_visit_on_the_timeline_once(
    client, ready_pickup, yes
):
    assert await handled(client, yes) == "visit_confirmed"
    assert await handled(client, "OK") == "visit_confirmed"
    [event] = await visit_confirmations(ready_pickup["id"])
    data = event["data"]
    assert (json.loads(data) if isinstance(data, str) else data)["answering"] == "ready_for_pickup"
    page = await client.get(path_of(ready_pickup["tracking_url"]))
    assert page.status_code == 200
    assert "You confirmed your visit by SMS" in page.text


async def test_a_yes_after_the_order_was_collected_is_an_unknown_reply(
    client, rt, clerk, ready_pickup
):
    row = await Pickup.select(Pickup.code, Pickup.store).first()
    done = await pickup_service.hand_over(
        rt, pickup_service.Actor(clerk.id, row["store"]), ready_pickup["id"], row["code"]
    )
    assert done.ok
    assert await handled(client, "ok") == "reply"
    assert await visit_confirmations(ready_pickup["id"]) == []


# The counter: a text the shopper needed that never arrived


async def test_a_ready_text_that_never_arrived_shows_at_the_counter_with_the_number(
    client, rt, fake_mb, ready_pickup
):
    ready = (await answers("ready_for_pickup"))[0]
    report = {
        "id": ready["gateway_id"],
        "reference": str(ready["id"]),
        "recipient": GIULIA,
        "status": "delivery_failed",
        "statusDatetime": "2026-11-23T09:35:00+00:00",
    }
    assert (await client.get("/webhooks/messagebird/status", params=report)).status_code == 200
    assert (await sign_in(client, "anna.rossi", CLERK_PASSWORD)).status_code == 303
    home = (await client.get("/clerk/")).text
    assert "SMS not delivered — call the customer" in home
    assert 'href="tel:+393471234567"' in home
    assert ready_pickup["external_id"] in home
    # The poll's fragment carries it too.
    fragment = await client.get("/clerk/", headers={"HX-Request": "true"})
    assert "SMS not delivered" in fragment.text


async def test_the_counter_shows_no_warning_while_texts_arrive(client, ready_pickup):
    assert (await sign_in(client, "anna.rossi", CLERK_PASSWORD)).status_code == 303
    home = (await client.get("/clerk/")).text
    assert "SMS not delivered" not in home


async def test_a_ready_text_of_unknown_outcome_shows_at_the_counter_as_unknown(
    client, rt, ready_pickup, clock
):
    ready = (await answers("ready_for_pickup"))[0]
    # What the dispatcher writes once a text's send could not be settled in time.
    await SmsMessage.update(
        {SmsMessage.status: "unknown", SmsMessage.status_at: clock.now()}
    ).where(SmsMessage.id == ready["id"])
    assert (await sign_in(client, "anna.rossi", CLERK_PASSWORD)).status_code == 303
    home = (await client.get("/clerk/")).text
    assert "SMS not delivered — call the customer" in home
    assert "Not known whether it was sent" in home
    assert ready_pickup["external_id"] in home
