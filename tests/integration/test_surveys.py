"""The satisfaction survey on both databases: planned once, sent the next morning at ten in
the shopper's zone, in daytime only, never to a number that opted out; and the managers'
page with averages per store and texts per day, which clerks cannot open.

The clock starts on Monday 23 November 2026, 09:30 UTC (10:30 in Milan).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from portal.db.tables import Customer, Pickup, Reminder, SmsMessage, Store, SurveyResponse
from portal.services import messaging, surveys
from portal.services import pickup as pickup_service
from portal.services.inputs import (
    AddressIn,
    CustomerIn,
    DeliveryIn,
    EventIn,
    LineIn,
    OrderIn,
    PickupIn,
    ShipmentIn,
)
from portal.services.orders import create_order, record_event
from portal.services.staff import create_staff
from scheduler.jobs import JOBS
from tests.integration.test_pickup import make_store
from tests.web.helpers import sign_in

MANAGER_PASSWORD = "manager-pass-2026"
CLERK_PASSWORD = "counter-pass-2026"


def order_in(external_id: str, *, store: str | None = None, phone: str = "+39 347 123 4567"):
    fulfilment = (
        PickupIn(store=store)
        if store
        else DeliveryIn(
            address=AddressIn(line1="Via Roma 1", city="Milano", postcode="20121", country="IT")
        )
    )
    return OrderIn(
        external_id=external_id,
        customer=CustomerIn(name="Giulia Bianchi", phone=phone, locale="it"),
        fulfilment=fulfilment,
        lines=[LineIn(sku="A", name="T-shirt", quantity=1, unit_price="19.90")],
        currency="EUR",
    )


async def delivered(rt, external_id: str, **kw) -> int:
    receipt, _ = await create_order(rt, order_in(external_id, **kw))
    await record_event(
        rt, external_id, EventIn(type="shipped", shipment=ShipmentIn(tracking_number="T1"))
    )
    await record_event(rt, external_id, EventIn(type="delivered"))
    return receipt.id


async def collected(rt, external_id: str, store: str) -> int:
    receipt, _ = await create_order(rt, order_in(external_id, store=store))
    row = await Pickup.select(Pickup.code, Pickup.store).where(Pickup.order == receipt.id).first()
    actor = pickup_service.Actor(1, row["store"])
    await pickup_service.mark_ready(rt, actor, receipt.id)
    done = await pickup_service.hand_over(rt, actor, receipt.id, row["code"])
    assert done.ok
    return receipt.id


async def surveys_queued() -> list[dict]:
    return await SmsMessage.select().where(SmsMessage.kind == "survey")


@pytest.fixture
async def counter_staff(rt):
    """Staff id 1 acts at the counter in these tests."""
    await make_store(rt, "MI01")
    await create_staff(rt, "anna.rossi", CLERK_PASSWORD, store_code="MI01")


# Planning and sending


async def test_a_survey_is_planned_once_for_the_next_morning_at_ten_in_the_shoppers_zone(rt, clock):
    order_id = await delivered(rt, "D-1")  # the delivered event plans it
    assert not await surveys.plan_survey(rt, order_id, clock.now() + timedelta(hours=3))
    [reminder] = await Reminder.select().where(Reminder.order == order_id)
    assert reminder["key"] == f"survey:{order_id}"
    # 10:00 in Rome on Tuesday is 09:00 UTC.
    assert reminder["due_at"] == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


async def test_a_pickup_survey_follows_the_stores_zone(rt, clock, counter_staff):
    await Store.update({Store.timezone: "Europe/London"}).where(Store.code == "MI01")
    order_id = await collected(rt, "P-1", "MI01")
    await surveys.plan_survey(rt, order_id, clock.now())
    [reminder] = await Reminder.select().where(Reminder.key == f"survey:{order_id}")
    assert reminder["due_at"] == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


async def test_the_survey_job_sends_one_text_once_when_it_is_due(rt, clock, fake_mb):
    order_id = await delivered(rt, "D-2")
    await surveys.plan_survey(rt, order_id, clock.now())
    job, _seconds = JOBS["satisfaction_surveys"]
    clock.advance(hours=23)  # Tuesday 08:30 UTC: 09:30 in Rome, not yet
    assert await job(rt) == {"queued": 0}
    clock.advance(minutes=30)
    assert await job(rt) == {"queued": 1}
    assert await job(rt) == {"queued": 0}
    await surveys.plan_survey(rt, order_id, clock.now())  # planned again: still once
    clock.advance(days=1)
    assert await job(rt) == {"queued": 0}
    [sms] = await surveys_queued()
    assert not sms["urgent"]
    await messaging.dispatch_due(rt)
    [sent] = [m for m in fake_mb.messages if "1 (male) a 5 (ottimo)" in m["body"]]
    assert sent["body"].startswith("Ciao Giulia, com'è andato l'ordine D-2?")
    reminder = await Reminder.select().where(Reminder.order == order_id).first()
    assert reminder["due_at"] is None and reminder["sent_at"] is not None


async def test_the_survey_keeps_quiet_hours(rt, clock, fake_mb):
    order_id = await delivered(rt, "D-3")
    await messaging.dispatch_due(rt)
    before = len(fake_mb.messages)
    # A shop that keeps texts for after 11:00: the survey due at 10:00 waits for it.
    rt.settings = replace(rt.settings, extra={"sms_quiet_hours": ("21:00", "11:00")})
    await surveys.plan_survey(rt, order_id, clock.now())
    clock.current = datetime(2026, 11, 24, 9, 15, tzinfo=UTC)  # 10:15 in Rome
    assert await surveys.send_due_surveys(rt) == 1
    await messaging.dispatch_due(rt)
    assert len(fake_mb.messages) == before
    clock.current = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # 11:00 in Rome
    await messaging.dispatch_due(rt)
    assert len(fake_mb.messages) == before + 1


async def test_no_survey_goes_to_a_number_that_opted_out(rt, clock):
    order_id = await delivered(rt, "D-4")
    await surveys.plan_survey(rt, order_id, clock.now())
    await Customer.update({Customer.sms_opt_out_at: clock.now()}).where(Customer.id > 0)
    clock.advance(days=2)
    assert await surveys.send_due_surveys(rt) == 0
    assert await surveys_queued() == []
    reminder = await Reminder.select().where(Reminder.order == order_id).first()
    assert reminder["due_at"] is None and reminder["cancelled_at"] is not None


# Reading, for managers


async def test_the_first_row_of_a_window_is_found_by_bisecting_ids_across_gaps(rt, clock):
    start = clock.now()
    for i in range(40):
        await SmsMessage.insert(
            SmsMessage(
                dedupe_key=f"k{i}",
                kind="shipped",
                locale="it",
                recipient="+393471234567",
                body="x",
                encoding="gsm7",
                segments=1,
                created_at=start + timedelta(hours=i),
            )
        )
    await SmsMessage.delete().where(SmsMessage.id.is_in([20, 21, 22, 23, 24, 30]))
    first = surveys.first_id_since
    assert await first(SmsMessage, SmsMessage.created_at, start - timedelta(days=1)) == 1
    assert await first(SmsMessage, SmsMessage.created_at, start + timedelta(hours=5)) == 6
    assert (
        await first(SmsMessage, SmsMessage.created_at, start + timedelta(hours=19, minutes=1)) == 25
    )
    assert await first(SmsMessage, SmsMessage.created_at, start + timedelta(hours=29)) == 31
    assert await first(SmsMessage, SmsMessage.created_at, start + timedelta(hours=39)) == 40
    assert await first(SmsMessage, SmsMessage.created_at, start + timedelta(hours=40)) is None


@pytest.fixture
async def answered(rt, clock, fake_mb):
    """Answers at two stores and one home delivery, and the texts that asked for them."""
    await make_store(rt, "MI01")
    await make_store(rt, "RM01")
    await create_staff(rt, "anna.rossi", CLERK_PASSWORD, store_code="MI01")
    await create_staff(rt, "marco", MANAGER_PASSWORD, role="manager")
    stores = {r["code"]: r["id"] for r in await Store.select(Store.code, Store.id)}
    scores = [("MI01", 5), ("MI01", 4), ("RM01", 2), (None, 3)]
    for i, (code, score) in enumerate(scores):
        receipt, _ = await create_order(
            rt, order_in(f"S-{i}", store=code, phone=f"+39 347 123 45{i:02d}")
        )
        await SurveyResponse.insert(
            SurveyResponse(
                order=receipt.id,
                store=stores[code] if code else None,
                score=score,
                comment="great staff" if score == 5 else None,
                received_at=clock.now(),
            )
        )
    await messaging.dispatch_due(rt)  # four order confirmations leave today


async def test_the_manager_page_shows_answers_averages_per_store_and_texts_per_day(
    client, answered
):
    assert (await sign_in(client, "marco", MANAGER_PASSWORD)).status_code == 303
    home = await client.get("/clerk/")
    assert 'href="/clerk/surveys"' in home.text
    page = await client.get("/clerk/surveys")
    assert page.status_code == 200, page.text
    html = page.text
    row = html.split('<tr class="survey-MI01">')[1].split("</tr>")[0]
    assert '<td class="num">2</td>' in row and "4.5" in row
    row = html.split('<tr class="survey-RM01">')[1].split("</tr>")[0]
    assert "2.0" in row
    assert "Home delivery" in html
    row = html.split('<tr class="survey-all">')[1].split("</tr>")[0]
    assert '<td class="num">4</td>' in row and "3.5" in row
    assert "great staff" in html
    days = html.split('class="audit messages-per-day"')[1]
    today = days.split("<tr>")[2]
    assert "2026-11-23" in today and '<td class="num">4</td>' in today
    assert days.count("<tr>") == 1 + 14


async def test_a_clerk_gets_404_on_the_manager_pages(client, answered):
    assert (await sign_in(client, "anna.rossi", CLERK_PASSWORD)).status_code == 303
    assert 'href="/clerk/surveys"' not in (await client.get("/clerk/")).text
    for path in ("/clerk/surveys", "/clerk/audit"):
        assert (await client.get(path)).status_code == 404, path


async def test_signed_out_visitors_are_sent_to_sign_in(client, answered):
    response = await client.get("/clerk/surveys")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/clerk/login")


async def test_no_survey_is_sent_while_messagebird_webhooks_are_off(rt, clock):
    # Its answer would come back through the inbound webhook, which is not there.
    rt.settings = replace(rt.settings, messagebird_webhooks=False)
    order_id = await delivered(rt, "D-5")
    await surveys.plan_survey(rt, order_id, clock.now())
    clock.advance(days=2)
    assert await surveys.send_due_surveys(rt) == 0
    assert await surveys_queued() == []
