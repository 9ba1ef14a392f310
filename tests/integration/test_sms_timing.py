"""When SMS leave, and which never do: quiet hours in the shopper's zone, the daily cap per
order, messages made stale by newer ones, and opted-out numbers. On SQLite and PostgreSQL,
with the clock in the test's hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from portal.db.tables import Customer, SmsMessage
from portal.domain.sms import SmsStatus
from portal.runtime import Runtime
from portal.services import messaging
from portal.services.inputs import (
    AddressIn,
    CustomerIn,
    DeliveryIn,
    EventIn,
    LineIn,
    OrderIn,
    ShipmentIn,
)
from portal.services.orders import create_order, record_event
from tests.fakes.clock import ManualClock
from tests.fakes.messagebird_server import FakeMessageBird, assert_sent_as_stored

ROME = ZoneInfo("Europe/Rome")
WARSAW = ZoneInfo("Europe/Warsaw")
PHONE = "+393471234567"


def rome(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=ROME).astimezone(UTC)  # type: ignore[misc]


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


async def new_order(rt: Runtime, external_id: str, phone: str = "+39 347 123 4567") -> int:
    receipt, _ = await create_order(rt, order(external_id, phone))
    return receipt.id


async def text(
    rt: Runtime,
    order_id: int,
    key: str,
    *,
    kind: str = "order_confirmed",
    urgent: bool = False,
    requested: bool = False,
    recipient: str = PHONE,
) -> bool:
    async with rt.writing():
        return await messaging.enqueue(
            rt,
            order_id=order_id,
            access_token_id=None,
            recipient=recipient,
            locale="it",
            kind=kind,
            dedupe_key=key,
            context={"first_name": "Giulia", "order_number": "O-1", "pickup": False},
            urgent=urgent,
            requested=requested,
        )


async def row(key: str) -> dict[str, Any]:
    found = await SmsMessage.select().where(SmsMessage.dedupe_key == key).first()
    assert found is not None, key
    return found


async def by_kind(kind: str) -> dict[str, Any]:
    found = await SmsMessage.select().where(SmsMessage.kind == kind).first()
    assert found is not None, kind
    return found


async def event(rt: Runtime, external_id: str, type_: str) -> None:
    await record_event(
        rt,
        external_id,
        EventIn(type=type_, shipment=ShipmentIn(tracking_number="BRT123", carrier="BRT")),
    )


# ------------------------------------------------------------------ quiet hours


async def test_an_sms_written_at_half_past_ten_at_night_in_rome_goes_out_at_eight(
    rt, fake_mb: FakeMessageBird, clock: ManualClock
):
    clock.current = rome(2026, 11, 23, 22, 30)
    await new_order(rt, "T-NIGHT")
    queued = await by_kind("order_confirmed")
    assert queued["status"] == SmsStatus.QUEUED
    assert queued["next_attempt_at"] == rome(2026, 11, 24, 8, 0)
    assert (await messaging.dispatch_due(rt)).claimed == 0
    clock.current = rome(2026, 11, 24, 7, 59, 59)
    assert (await messaging.dispatch_due(rt)).claimed == 0
    clock.current = rome(2026, 11, 24, 8, 0)
    assert (await messaging.dispatch_due(rt)).sent == 1
    [sent] = fake_mb.messages
    assert sent["validity"] == messaging.VALIDITY_SECONDS
    assert_sent_as_stored(sent, await by_kind("order_confirmed"))


async def test_an_urgent_sms_at_night_goes_out_at_once_and_expires_soon(
    rt, fake_mb: FakeMessageBird, clock: ManualClock
):
    clock.current = rome(2026, 11, 23, 22, 30)
    order_id = await new_order(rt, "T-URGENT")
    assert await text(rt, order_id, "handover", kind="collected", urgent=True)
    assert (await row("handover"))["next_attempt_at"] == clock.now()
    result = await messaging.dispatch_due(rt)
    assert (result.claimed, result.sent) == (1, 1)
    [sent] = fake_mb.messages
    assert sent["reference"] == str((await row("handover"))["id"])
    assert sent["validity"] == messaging.URGENT_VALIDITY_SECONDS


async def test_quiet_hours_follow_the_phone_not_the_store(rt, clock: ManualClock):
    # 07:30 in Rome and in Warsaw alike (same offset), 06:30 in Lisbon: all wait for 08:00.
    clock.current = rome(2026, 11, 24, 7, 30)
    await new_order(rt, "T-PL", phone="+48 601 234 567")
    await new_order(rt, "T-PT", phone="+351 912 345 678")
    pl = await SmsMessage.select().where(SmsMessage.recipient == "+48601234567").first()
    pt = await SmsMessage.select().where(SmsMessage.recipient == "+351912345678").first()
    assert pl["next_attempt_at"] == datetime(2026, 11, 24, 8, 0, tzinfo=WARSAW)
    assert pt["next_attempt_at"] == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)  # Lisbon: UTC+0


async def test_the_night_before_the_clocks_go_forward_ends_at_eight_summer_time(
    rt, clock: ManualClock
):
    clock.current = rome(2026, 3, 28, 22, 30)
    await new_order(rt, "T-DST")
    assert (await by_kind("order_confirmed"))["next_attempt_at"] == datetime(
        2026, 3, 29, 6, 0, tzinfo=UTC
    )


async def test_a_retry_that_falls_due_in_quiet_hours_waits_for_the_morning(
    rt, fake_mb: FakeMessageBird, clock: ManualClock
):
    clock.current = rome(2026, 11, 23, 20, 59, 50)
    await new_order(rt, "T-RETRY")
    fake_mb.fail_next(1, status=503)
    assert (await messaging.dispatch_due(rt)).retrying == 1
    clock.advance(seconds=15)  # 21:00:05: the retry is due, but it is night now
    result = await messaging.dispatch_due(rt)
    assert (result.claimed, result.held) == (0, 1)
    held = await by_kind("order_confirmed")
    assert held["status"] == SmsStatus.QUEUED
    assert held["next_attempt_at"] == rome(2026, 11, 24, 8, 0)
    assert fake_mb.messages == []
    clock.current = rome(2026, 11, 24, 8, 0)
    assert (await messaging.dispatch_due(rt)).sent == 1


async def test_quiet_hours_can_be_turned_off_for_a_server_on_the_wall_clock(rt, clock: ManualClock):
    rt.settings = rt.settings.with_(extra={"sms_quiet_hours": None})
    clock.current = rome(2026, 11, 23, 23, 0)
    await new_order(rt, "T-OFF")
    assert (await by_kind("order_confirmed"))["next_attempt_at"] == clock.now()


# ------------------------------------------------------------------ the daily cap


async def test_an_order_sends_at_most_the_cap_of_non_urgent_sms_a_day_but_urgent_ones_always(
    rt, fake_mb: FakeMessageBird, clock: ManualClock
):
    clock.current = rome(2026, 11, 23, 10, 30)
    order_id = await new_order(rt, "T-CAP")  # the confirmation: one
    await messaging.dispatch_due(rt)  # sent ones count too
    for n in range(2, messaging.DAILY_CAP + 1):
        assert await text(rt, order_id, f"n{n}")
        assert (await row(f"n{n}"))["status"] == SmsStatus.QUEUED
    assert await text(rt, order_id, "over")  # a row is written, and says why it never left
    over = await row("over")
    assert over["status"] == SmsStatus.DROPPED
    assert over["next_attempt_at"] is None
    assert (
        over["last_error"] == f"daily cap: {messaging.DAILY_CAP} SMS for this order on 2026-11-23"
    )
    assert await text(rt, order_id, "code", urgent=True)
    assert (await row("code"))["status"] == SmsStatus.QUEUED
    # Another order of the same shopper has its own count.
    other = await new_order(rt, "T-CAP-2")
    assert await text(rt, other, "other")
    assert (await row("other"))["status"] == SmsStatus.QUEUED
    result = await messaging.dispatch_due(rt)
    assert result.sent == messaging.DAILY_CAP - 1 + 1 + 2


async def test_the_cap_counts_the_shoppers_day_the_sms_goes_out_on(rt, clock: ManualClock):
    clock.current = rome(2026, 11, 23, 10, 30)
    order_id = await new_order(rt, "T-DAY")
    for n in range(2, messaging.DAILY_CAP + 1):
        await text(rt, order_id, f"n{n}")
    # Written at 22:30 the same day, but it leaves tomorrow at 8: tomorrow's first.
    clock.current = rome(2026, 11, 23, 22, 30)
    await text(rt, order_id, "tonight")
    tonight = await row("tonight")
    assert tonight["status"] == SmsStatus.QUEUED
    assert tonight["next_attempt_at"] == rome(2026, 11, 24, 8, 0)


# ------------------------------------------------------------------ stale messages


async def test_a_queued_shipped_sms_is_dropped_when_delivered_comes_before_it_leaves(
    rt, fake_mb: FakeMessageBird, clock: ManualClock
):
    clock.current = rome(2026, 11, 23, 10, 30)
    await new_order(rt, "T-STALE")
    await messaging.dispatch_due(rt)
    clock.current = rome(2026, 11, 23, 22, 30)
    await event(rt, "T-STALE", "shipped")
    clock.current = rome(2026, 11, 24, 7, 15)
    await event(rt, "T-STALE", "out_for_delivery")
    await event(rt, "T-STALE", "delivered")
    shipped, out, delivered = (
        await by_kind("shipped"),
        await by_kind("out_for_delivery"),
        await by_kind("delivered"),
    )
    assert (shipped["status"], shipped["last_error"]) == (
        SmsStatus.DROPPED,
        "superseded by out_for_delivery",
    )
    assert (out["status"], out["last_error"]) == (SmsStatus.DROPPED, "superseded by delivered")
    assert out["next_attempt_at"] is None
    assert delivered["status"] == SmsStatus.QUEUED
    clock.current = rome(2026, 11, 24, 8, 0)
    assert (await messaging.dispatch_due(rt)).sent == 1
    assert [m["reference"] for m in fake_mb.messages][-1] == str(delivered["id"])
    assert len(fake_mb.messages) == 2


async def test_a_shipped_sms_already_sent_stays_as_it_is(
    rt, fake_mb: FakeMessageBird, clock: ManualClock
):
    await new_order(rt, "T-SENT")
    await event(rt, "T-SENT", "shipped")
    await messaging.dispatch_due(rt)
    await event(rt, "T-SENT", "delivered")
    assert (await by_kind("shipped"))["status"] == SmsStatus.SENT
    assert (await messaging.dispatch_due(rt)).sent == 1


# ------------------------------------------------------------------ opt-out


async def opt_out(phone: str = PHONE) -> None:
    await Customer.update({Customer.sms_opt_out_at: datetime(2026, 11, 1, tzinfo=UTC)}).where(
        Customer.phone == phone
    )


async def test_an_opted_out_number_gets_nothing_but_what_it_asks_for(
    rt, fake_mb: FakeMessageBird, clock: ManualClock
):
    first = await new_order(rt, "T-STOP")
    await messaging.dispatch_due(rt)
    await opt_out()
    await new_order(rt, "T-STOP-2")  # the shopper's next order: no confirmation
    confirmation = await SmsMessage.select().order_by(SmsMessage.id, ascending=False).first()
    assert (confirmation["status"], confirmation["last_error"]) == (
        SmsStatus.DROPPED,
        "opted out",
    )
    assert await text(rt, first, "update")
    assert await text(rt, first, "handover", kind="collected", urgent=True)
    assert (await row("update"))["status"] == SmsStatus.DROPPED
    assert (await row("handover"))["status"] == SmsStatus.DROPPED
    # A one-time code asked for on the page goes, at once, even at night.
    clock.current = rome(2026, 11, 23, 23, 0)
    assert await text(rt, first, "otp", requested=True)
    code = await row("otp")
    assert (code["status"], code["urgent"], code["next_attempt_at"]) == (
        SmsStatus.QUEUED,
        True,
        clock.now(),
    )
    result = await messaging.dispatch_due(rt)
    assert (result.claimed, result.sent) == (1, 1)
    assert fake_mb.messages[-1]["reference"] == str(code["id"])
    assert len(fake_mb.messages) == 2  # the first order's confirmation, and the code


async def test_an_sms_queued_before_the_shopper_opted_out_is_not_sent(
    rt, fake_mb: FakeMessageBird, clock: ManualClock
):
    clock.current = rome(2026, 11, 23, 22, 30)
    await new_order(rt, "T-LATE-STOP")  # waits for the morning
    await opt_out()  # STOP at 23:00
    clock.current = rome(2026, 11, 24, 8, 0)
    result = await messaging.dispatch_due(rt)
    assert (result.claimed, result.dropped) == (0, 1)
    dropped = await by_kind("order_confirmed")
    assert (dropped["status"], dropped["last_error"]) == (SmsStatus.DROPPED, "opted out")
    assert fake_mb.messages == []


async def test_a_repeated_dedupe_key_writes_nothing(rt):
    order_id = await new_order(rt, "T-DUP")
    assert await text(rt, order_id, "k")
    assert not await text(rt, order_id, "k")
    assert await SmsMessage.count().where(SmsMessage.dedupe_key == "k") == 1
