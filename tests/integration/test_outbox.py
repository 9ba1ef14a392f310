"""The SMS outbox and dispatcher against the fake MessageBird, through the real SDK."""

from __future__ import annotations

import asyncio

from portal.db.tables import SmsMessage
from portal.domain.sms import SmsStatus
from portal.services import messaging
from portal.services.inputs import AddressIn, CustomerIn, DeliveryIn, LineIn, OrderIn
from portal.services.orders import create_order
from tests.fakes.messagebird_server import assert_sent_as_stored


def order(external_id: str, phone: str = "+39 347 123 4567", locale: str = "it") -> OrderIn:
    return OrderIn(
        external_id=external_id,
        customer=CustomerIn(name="Giulia Bianchi", phone=phone, locale=locale),
        fulfilment=DeliveryIn(
            address=AddressIn(line1="Via Roma 1", city="Milano", postcode="20121", country="IT")
        ),
        lines=[LineIn(sku="A", name="T-shirt", quantity=1, unit_price="19.90")],
        currency="EUR",
    )


async def only_message() -> dict:
    rows = await SmsMessage.select()
    assert len(rows) == 1
    return rows[0]


async def test_a_queued_sms_leaves_through_messagebird_with_our_reference_and_report_url(
    rt, fake_mb
):
    receipt, _ = await create_order(rt, order("O-1"))
    result = await messaging.dispatch_due(rt)
    assert (result.claimed, result.sent) == (1, 1)
    [sent] = fake_mb.messages
    row = await only_message()
    assert sent["reference"] == str(row["id"])
    assert sent["reportUrl"] == "http://portal.test/webhooks/messagebird/status"
    assert sent["recipients_list"] == ["393471234567"]
    assert sent["originator"] == "TestShop"
    assert sent["datacoding"] == "plain"
    assert sent["validity"] == messaging.VALIDITY_SECONDS
    assert_sent_as_stored(sent, row)
    assert receipt.tracking_url in sent["body"]
    assert sent["body"].startswith("Ciao Giulia")
    assert row["status"] == SmsStatus.SENT
    assert row["gateway_id"] == sent["id"]
    assert row["next_attempt_at"] is None
    # The stored text never holds the working link.
    assert receipt.tracking_url not in row["body"]
    assert messaging.LINK_MARKER in row["body"]


async def test_a_sent_sms_is_not_sent_again(rt, fake_mb):
    await create_order(rt, order("O-2"))
    await messaging.dispatch_due(rt)
    again = await messaging.dispatch_due(rt)
    assert again.claimed == 0
    assert len(fake_mb.messages) == 1


async def test_a_gateway_outage_is_retried_with_backoff_and_sent_once(rt, fake_mb, clock):
    await create_order(rt, order("O-3"))
    fake_mb.fail_next(2, status=503)
    first = await messaging.dispatch_due(rt)
    assert first.retrying == 1
    row = await only_message()
    assert row["status"] == SmsStatus.QUEUED
    assert "503" in row["last_error"]
    assert (row["next_attempt_at"] - clock.now()).total_seconds() == 15
    assert (await messaging.dispatch_due(rt)).claimed == 0  # not due yet
    clock.advance(seconds=15)
    assert (await messaging.dispatch_due(rt)).retrying == 1
    assert ((await only_message())["next_attempt_at"] - clock.now()).total_seconds() == 30
    clock.advance(seconds=30)
    assert (await messaging.dispatch_due(rt)).sent == 1
    assert len(fake_mb.messages) == 1
    assert (await only_message())["attempts"] == 3


async def test_a_message_messagebird_refuses_is_failed_with_the_reason_and_not_retried(
    rt, fake_mb, clock
):
    await create_order(rt, order("O-4"))
    fake_mb.reject_recipient("393471234567")
    result = await messaging.dispatch_due(rt)
    assert result.failed == 1
    row = await only_message()
    assert row["status"] == SmsStatus.FAILED
    assert "recipients" in row["last_error"]
    clock.advance(hours=2)
    assert (await messaging.dispatch_due(rt)).claimed == 0


async def test_retries_stop_after_the_last_attempt(rt, fake_mb, clock):
    await create_order(rt, order("O-5"))
    fake_mb.fail_next(100, status=500)
    for _ in range(rt.settings.sms_max_attempts):
        await messaging.dispatch_due(rt)
        clock.advance(hours=1)
    row = await only_message()
    assert row["status"] == SmsStatus.FAILED
    assert row["last_error"].startswith(f"gave up after {rt.settings.sms_max_attempts} tries")
    assert fake_mb.messages == []


async def test_an_unreachable_gateway_is_retried(rt, fake_mb, clock):
    await create_order(rt, order("O-6"))
    fake_mb.stop()
    assert (await messaging.dispatch_due(rt)).retrying == 1
    assert (await only_message())["status"] == SmsStatus.QUEUED


async def test_a_timed_out_send_waits_for_a_delivery_report_instead_of_sending_twice(
    rt, fake_mb, clock
):
    await create_order(rt, order("O-7"))
    fake_mb.delay_next(1, seconds=2.5)  # longer than the 1 s client timeout; MessageBird got it
    result = await messaging.dispatch_due(rt)
    assert result.unknown == 1
    row = await only_message()
    assert row["status"] == SmsStatus.SETTLING
    clock.advance(minutes=5)
    assert (await messaging.dispatch_due(rt)).claimed == 0
    # MessageBird's report vouches for it: it is never sent again.
    [accepted] = fake_mb.wait_for_messages(1)
    outcome = await messaging.apply_status_report(
        rt,
        messaging.StatusReport(str(row["id"]), accepted["id"], "393471234567", "delivered", None),
    )
    assert outcome == "updated"
    clock.advance(hours=1)
    assert (await messaging.dispatch_due(rt)).claimed == 0
    assert len(fake_mb.messages) == 1
    final = await only_message()
    assert final["status"] == SmsStatus.DELIVERED
    assert final["gateway_id"] == accepted["id"]


async def test_a_timed_out_send_messagebird_did_not_take_is_sent_once_it_is_looked_up(
    rt, fake_mb, clock
):
    await create_order(rt, order("O-8"))
    fake_mb.fail_next(1, status=503)  # stands in for a request that never arrived
    fake_mb.delay_next(1, seconds=2.5)
    await messaging.dispatch_due(rt)
    assert (await only_message())["status"] == SmsStatus.SETTLING
    clock.advance(seconds=rt.settings.sms_send_timeout + 5)
    assert (await messaging.dispatch_due(rt)).requeued == 1  # MessageBird has no such text
    assert (await messaging.dispatch_due(rt)).sent == 1
    assert len(fake_mb.messages) == 1


async def test_two_dispatchers_at_once_send_each_message_exactly_once(rt, fake_mb):
    for i in range(12):
        await create_order(rt, order(f"O-P{i}", phone=f"+39 347 123 45{i:02d}"))
    results = await asyncio.gather(*(messaging.dispatch_due(rt, limit=5) for _ in range(4)))
    assert sum(r.sent for r in results) == 12
    references = [m["reference"] for m in fake_mb.messages]
    assert len(references) == len(set(references)) == 12


async def test_polish_text_is_transliterated_to_stay_in_one_gsm7_segment(rt, fake_mb):
    await create_order(rt, order("O-PL", phone="+48 601 234 567", locale="pl"))
    row = await only_message()
    assert row["locale"] == "pl"
    assert row["encoding"] == "gsm7"
    assert row["segments"] == 1
    assert row["body"].startswith("Czesc Giulia")
    await messaging.dispatch_due(rt)
    assert fake_mb.messages[0]["datacoding"] == "plain"
    assert_sent_as_stored(fake_mb.messages[0], row)


async def test_the_language_follows_the_phone_when_the_shop_sends_none(rt):
    await create_order(rt, order("O-ES", phone="+34 612 345 678", locale=None))
    assert (await only_message())["locale"] == "es"
