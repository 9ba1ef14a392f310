"""Click-and-collect services on both databases: set aside, hand over, visits, reminders,
expiry, and racing clerks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from portal.db.tables import (
    Order,
    OrderEvent,
    OrderLine,
    Pickup,
    Refund,
    Reminder,
    SmsMessage,
    StaffUser,
)
from portal.services import pickup as service
from portal.services import returns
from portal.services.errors import Conflict, Invalid, NotFound
from portal.services.inputs import AddressIn, CustomerIn, LineIn, OrderIn, PickupIn, StoreIn
from portal.services.orders import create_order
from portal.services.stores import put_store

HOURS = {d: ["09:30-13:00", "15:00-19:30"] for d in ("mon", "tue", "wed", "thu", "fri", "sat")}


async def make_store(rt, code: str) -> int:
    await put_store(
        rt,
        code,
        StoreIn(
            name=f"Store {code}",
            address=AddressIn(line1="Via Torino 21", city="Milano", postcode="20123", country="IT"),
            timezone="Europe/Rome",
            opening_hours=HOURS,
        ),
    )
    from portal.db.tables import Store

    return (await Store.select(Store.id).where(Store.code == code).first())["id"]


async def make_clerk(store_id: int | None, name: str) -> int:
    rows = await StaffUser.insert(
        StaffUser(
            username=name,
            password_hash="-",
            role="clerk" if store_id else "manager",
            store=store_id,
        )
    ).returning(StaffUser.id)
    return rows[0]["id"]


@pytest.fixture
async def shop(rt):
    mi = await make_store(rt, "MI01")
    rm = await make_store(rt, "RM01")
    receipt, _ = await create_order(
        rt,
        OrderIn(
            external_id="P-1",
            customer=CustomerIn(name="Emma Clarke", phone="+39 320 111 2233", locale="en"),
            fulfilment=PickupIn(store="MI01"),
            lines=[
                LineIn(sku="A", name="T-shirt", quantity=2, unit_price="19.90"),
                LineIn(sku="B", name="Mug", quantity=1, unit_price="12.50"),
            ],
            currency="EUR",
        ),
    )
    clerk = service.Actor(await make_clerk(mi, "anna"), mi)
    other = service.Actor(await make_clerk(rm, "rita"), rm)
    return {"order_id": receipt.id, "clerk": clerk, "other": other}


async def pickup_row(order_id: int) -> dict:
    return await Pickup.select().where(Pickup.order == order_id).first()


async def sms_kinds() -> list[str]:
    return [r["kind"] for r in await SmsMessage.select(SmsMessage.kind).order_by(SmsMessage.id)]


async def test_a_pickup_order_gets_a_six_digit_code_and_waits_to_be_prepared(rt, shop):
    row = await pickup_row(shop["order_id"])
    assert row["status"] == "preparing"
    assert len(row["code"]) == 6 and row["code"].isdigit()


async def test_partial_then_full_readiness_tells_the_shopper_once(rt, shop, clock):
    order_id = shop["order_id"]
    lines = [
        r["id"] for r in await OrderLine.select(OrderLine.id).where(OrderLine.order == order_id)
    ]
    part = await service.mark_ready(rt, shop["clerk"], order_id, {lines[0]: 2})
    assert (part.status, part.ready, part.total) == ("partly_ready", 2, 3)
    assert await sms_kinds() == ["order_confirmed"]
    full = await service.mark_ready(rt, shop["clerk"], order_id)
    assert full.status == "ready"
    assert await sms_kinds() == ["order_confirmed", "ready_for_pickup"]
    order = await Order.select(Order.status).where(Order.id == order_id).first()
    assert order["status"] == "ready_for_pickup"
    row = await pickup_row(order_id)
    assert row["hold_until"] == clock.now() + timedelta(days=7)
    kinds = sorted(
        r["kind"] for r in await Reminder.select(Reminder.kind).where(Reminder.due_at.is_not_null())
    )
    assert kinds == ["pickup_last_day", "pickup_waiting"]
    events = [e["type"] for e in await OrderEvent.select(OrderEvent.type).order_by(OrderEvent.id)]
    assert events == ["placed", "partly_ready", "ready_for_pickup"]
    with pytest.raises(Conflict, match="cannot go down"):
        await service.mark_ready(rt, shop["clerk"], order_id, {lines[0]: 1})


async def test_a_clerk_of_another_store_cannot_touch_the_order(rt, shop):
    with pytest.raises(NotFound):
        await service.mark_ready(rt, shop["other"], shop["order_id"])
    with pytest.raises(NotFound):
        await service.hand_over(rt, shop["other"], shop["order_id"], "000000")


async def test_an_unready_order_cannot_be_handed_over(rt, shop):
    code = (await pickup_row(shop["order_id"]))["code"]
    with pytest.raises(Conflict, match="preparing"):
        await service.hand_over(rt, shop["clerk"], shop["order_id"], code)


async def test_the_right_code_hands_over_once_and_a_second_handover_is_refused(rt, shop, clock):
    order_id = shop["order_id"]
    await service.mark_ready(rt, shop["clerk"], order_id)
    code = (await pickup_row(order_id))["code"]
    done = await service.hand_over(rt, shop["clerk"], order_id, f"{code[:3]} {code[3:]}")
    assert done.ok and done.handed_to == "Emma Clarke"
    row = await pickup_row(order_id)
    assert row["status"] == "collected"
    assert row["collected_by"] == shop["clerk"].staff_id
    assert row["collected_at"] == clock.now()
    assert (await Order.select(Order.status).where(Order.id == order_id).first())[
        "status"
    ] == "collected"
    assert (await sms_kinds())[-1] == "collected"
    # The pickup's reminders are over; what is left is the next day's satisfaction survey.
    pending = await Reminder.select(Reminder.kind).where(Reminder.due_at.is_not_null())
    assert [r["kind"] for r in pending] == ["survey"]
    with pytest.raises(Conflict, match="already been handed over"):
        await service.hand_over(rt, shop["clerk"], order_id, code)


async def test_wrong_codes_are_counted_and_lock_the_order(rt, shop, clock):
    order_id = shop["order_id"]
    await service.mark_ready(rt, shop["clerk"], order_id)
    code = (await pickup_row(order_id))["code"]
    wrong = "111111" if code != "111111" else "222222"
    results = [await service.hand_over(rt, shop["clerk"], order_id, wrong) for _ in range(5)]
    assert not any(r.ok for r in results)
    assert "too many wrong codes" in results[-1].message
    locked = await service.hand_over(rt, shop["clerk"], order_id, code)
    assert not locked.ok
    clock.advance(minutes=16)
    assert (await service.hand_over(rt, shop["clerk"], order_id, code)).ok


async def test_two_clerks_handing_over_at_once_make_one_handover(rt, shop):
    order_id = shop["order_id"]
    await service.mark_ready(rt, shop["clerk"], order_id)
    code = (await pickup_row(order_id))["code"]
    manager = service.Actor(await make_clerk(None, "boss"), None)
    outcomes = await asyncio.gather(
        service.hand_over(rt, shop["clerk"], order_id, code),
        service.hand_over(rt, manager, order_id, code),
        return_exceptions=True,
    )
    wins = [o for o in outcomes if not isinstance(o, Exception) and o.ok]
    refusals = [o for o in outcomes if isinstance(o, Conflict)]
    assert (len(wins), len(refusals)) == (1, 1), outcomes
    assert await OrderEvent.count().where(OrderEvent.type == "collected") == 1
    assert (await sms_kinds()).count("collected") == 1


async def test_an_uncollected_order_expires_with_a_pending_refund_and_an_sms(rt, shop, clock):
    order_id = shop["order_id"]
    await service.mark_ready(rt, shop["clerk"], order_id)
    clock.advance(days=6, hours=23)
    assert await service.expire_due(rt) == 0
    clock.advance(hours=1)
    assert await service.expire_due(rt) == 1
    assert await service.expire_due(rt) == 0
    assert (await pickup_row(order_id))["status"] == "expired"
    assert (await Order.select(Order.status).where(Order.id == order_id).first())[
        "status"
    ] == "cancelled"
    [refund] = await Refund.select()
    assert (refund["amount_minor"], refund["status"], refund["reason"]) == (
        5230,
        "pending",
        "pickup_expired",
    )
    assert (await sms_kinds())[-1] == "pickup_expired"
    code = (await pickup_row(order_id))["code"]
    with pytest.raises(Conflict):
        await service.hand_over(rt, shop["clerk"], order_id, code)


async def test_reminders_go_out_once_when_due_and_never_after_collection(rt, shop, clock):
    order_id = shop["order_id"]
    await service.mark_ready(rt, shop["clerk"], order_id)
    clock.advance(days=2)
    assert await service.send_due_reminders(rt) == 1
    assert await service.send_due_reminders(rt) == 0
    assert (await sms_kinds())[-1] == "pickup_waiting"
    code = (await pickup_row(order_id))["code"]
    await service.hand_over(rt, shop["clerk"], order_id, code)
    clock.advance(days=5)
    assert await service.send_due_reminders(rt) == 0
    assert "pickup_last_day" not in await sms_kinds()


async def test_the_shopper_chooses_a_visit_within_opening_hours(rt, shop, clock):
    order_id = shop["order_id"]
    await service.mark_ready(rt, shop["clerk"], order_id)
    start = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # Tuesday 16:00 in Milan
    await service.choose_visit(rt, order_id, start, start + timedelta(hours=1))
    row = await pickup_row(order_id)
    assert row["visit_start"] == start
    assert (
        await Reminder.count().where(
            (Reminder.kind == "pickup_visit_today") & Reminder.due_at.is_not_null()
        )
        == 1
    )
    lunch = datetime(2026, 11, 24, 12, 30, tzinfo=UTC)
    with pytest.raises(Invalid, match="closed"):
        await service.choose_visit(rt, order_id, lunch, lunch + timedelta(minutes=30))


async def test_the_shopper_names_someone_else_to_collect(rt, shop):
    order_id = shop["order_id"]
    assert await service.name_delegate(rt, order_id, "  Marco   Rossi ") == "Marco Rossi"
    with pytest.raises(Invalid):
        await service.name_delegate(rt, order_id, "")
    await service.mark_ready(rt, shop["clerk"], order_id)
    code = (await pickup_row(order_id))["code"]
    assert (await service.hand_over(rt, shop["clerk"], order_id, code)).handed_to == "Marco Rossi"


async def test_the_shopper_takes_the_name_back_and_collects_herself(rt, shop):
    order_id = shop["order_id"]
    await service.name_delegate(rt, order_id, "Marco Rossi")
    assert await service.name_delegate(rt, order_id, None) is None
    assert (await pickup_row(order_id))["delegate_name"] is None
    assert (await service.counter_view(rt, shop["clerk"], order_id)).may_collect == "Emma Clarke"
    await service.mark_ready(rt, shop["clerk"], order_id)
    code = (await pickup_row(order_id))["code"]
    assert (await service.hand_over(rt, shop["clerk"], order_id, code)).handed_to == "Emma Clarke"
    with pytest.raises(Conflict):
        await service.name_delegate(rt, order_id, None)  # collected: nothing to change


async def test_the_counter_queue_sorts_orders_into_sections_for_the_clerks_store_only(
    rt, shop, clock
):
    order_id = shop["order_id"]
    sections = await service.store_queue(rt, shop["clerk"])
    assert [e.external_id for e in sections["to_prepare"]] == ["P-1"]
    assert await service.store_queue(rt, shop["other"]) == {
        name: [] for name in service.QUEUE_SECTIONS
    }
    await service.mark_ready(rt, shop["clerk"], order_id)
    clock.advance(days=3)
    [waiting] = (await service.store_queue(rt, shop["clerk"]))["waiting"]
    assert waiting.days_waiting(clock.now()) == 3
    assert (waiting.ready, waiting.total) == (3, 3)
    code = (await pickup_row(order_id))["code"]
    assert [
        e.external_id for e in (await service.store_queue(rt, shop["clerk"], code))["waiting"]
    ] == ["P-1"]
    assert (await service.store_queue(rt, shop["clerk"], "Clarke"))["waiting"]
    assert not (await service.store_queue(rt, shop["clerk"], "nobody"))["waiting"]
    await service.hand_over(rt, shop["clerk"], order_id, code)
    assert [
        e.external_id for e in (await service.store_queue(rt, shop["clerk"]))["collected_today"]
    ] == ["P-1"]
    clock.advance(days=1)
    assert (await service.store_queue(rt, shop["clerk"]))["collected_today"] == []


async def test_the_counter_view_names_who_may_collect_but_not_the_code(rt, shop):
    order_id = shop["order_id"]
    await service.name_delegate(rt, order_id, "Marco Rossi")
    view = await service.counter_view(rt, shop["clerk"], order_id)
    assert view.may_collect == "Marco Rossi"
    assert (view.ready, view.total) == (0, 3)
    assert [line["name"] for line in view.lines] == ["T-shirt", "Mug"]
    assert not hasattr(view, "code")
    with pytest.raises(NotFound):
        await service.counter_view(rt, shop["other"], order_id)


async def test_counter_actions_land_in_the_audit_log(rt, shop):
    from portal.db.tables import AuditLog

    order_id = shop["order_id"]
    await service.mark_ready(rt, shop["clerk"], order_id)
    await service.hand_over(rt, shop["clerk"], order_id, "999999x")
    code = (await pickup_row(order_id))["code"]
    await service.hand_over(rt, shop["clerk"], order_id, code)
    entries = await AuditLog.select(AuditLog.action, AuditLog.staff, AuditLog.order).order_by(
        AuditLog.id
    )
    assert [e["action"] for e in entries] == ["mark_ready", "wrong_pickup_code", "hand_over"]
    assert {e["staff"] for e in entries} == {shop["clerk"].staff_id}
    assert {e["order"] for e in entries} == {order_id}


async def test_each_store_sets_its_holding_period_and_first_reminder(rt, shop, clock):
    from portal.db.tables import Store

    await Store.update({Store.pickup_hold_days: 3, Store.pickup_reminder_days: 1}).where(
        Store.code == "MI01"
    )
    order_id = shop["order_id"]
    await service.mark_ready(rt, shop["clerk"], order_id)
    assert (await pickup_row(order_id))["hold_until"] == clock.now() + timedelta(days=3)
    due = {
        r["kind"]: r["due_at"]
        for r in await Reminder.select(Reminder.kind, Reminder.due_at).where(
            Reminder.due_at.is_not_null()
        )
    }
    assert due == {
        "pickup_waiting": clock.now() + timedelta(days=1),
        "pickup_last_day": clock.now() + timedelta(days=2),
    }


async def test_an_expired_pickup_refunds_only_what_the_shop_has_not_refunded_yet(rt, shop, clock):
    order_id = shop["order_id"]
    external_id = (await Order.select(Order.external_id).where(Order.id == order_id).first())[
        "external_id"
    ]
    await returns.create_refund(rt, external_id, "10.00", "goodwill", None)
    await service.mark_ready(rt, shop["clerk"], order_id)
    clock.advance(days=7)
    assert await service.expire_due(rt) == 1
    amounts = sorted(
        (r["reason"], r["amount_minor"])
        for r in await Refund.select().where(Refund.order == order_id)
    )
    assert amounts == [("goodwill", 1000), ("pickup_expired", 4230)]


async def test_two_schedulers_sweeping_at_once_expire_an_order_once(rt, shop, clock):
    await service.mark_ready(rt, shop["clerk"], shop["order_id"])
    clock.advance(days=8)
    results = await asyncio.gather(service.expire_due(rt), service.expire_due(rt))
    assert sorted(results) == [0, 1]
    assert await Refund.count() == 1
    assert (await sms_kinds()).count("pickup_expired") == 1
