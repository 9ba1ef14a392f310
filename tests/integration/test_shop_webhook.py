"""The outgoing shop webhook on both databases, against a local shop endpoint that checks
signatures: signed, retried with backoff, never lost, never doubled after a 2xx."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from portal.db.tables import ShopEvent
from portal.runtime import Runtime
from portal.services import shop_events
from portal.services.inputs import AddressIn, CustomerIn, DeliveryIn, LineIn, OrderIn
from portal.services.orders import create_order
from portal.settings import Settings
from scheduler.jobs import JOBS, deliver_shop_events
from tests.fakes.clock import ManualClock
from tests.fakes.shop_receiver import ShopReceiver

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 1.0  # the client's; the receiver's slow answers take longer


@pytest.fixture
def settings(settings: Settings, shop_receiver: ShopReceiver) -> Settings:
    return settings.with_(
        shop_webhook_url=shop_receiver.url,
        shop_webhook_secret=shop_receiver.secret,
        extra={"shop_webhook_timeout": TIMEOUT},
    )


async def make_order(rt: Runtime, external_id: str) -> int:
    receipt, _ = await create_order(
        rt,
        OrderIn(
            external_id=external_id,
            customer=CustomerIn(name="Giulia Bianchi", phone="+39 347 123 4567", locale="it"),
            fulfilment=DeliveryIn(
                address=AddressIn(line1="Via Roma 1", city="Milano", postcode="20121", country="IT")
            ),
            lines=[LineIn(sku="A", name="T-shirt", quantity=1, unit_price="19.90")],
            currency="EUR",
        ),
    )
    return receipt.id


async def record(
    rt: Runtime, external_id: str = "O-1", type: str = shop_events.DELIVERY_CHANGE_REQUESTED
) -> str:
    order_id = await make_order(rt, external_id)
    async with rt.writing():
        event_id = await shop_events.record(
            rt,
            type,
            order_id=order_id,
            data={"order": {"external_id": external_id}, "change": {"kind": "instructions"}},
        )
    assert event_id is not None
    return event_id


async def stored(event_id: str) -> dict[str, Any]:
    row = await ShopEvent.select().where(ShopEvent.event_id == event_id).first()
    assert row is not None
    return row


async def test_an_event_reaches_the_shop_signed_so_the_shop_can_verify_it(
    rt: Runtime, shop_receiver: ShopReceiver, clock: ManualClock
) -> None:
    order_id = await make_order(rt, "O-1")
    async with rt.writing():
        event_id = await shop_events.record(
            rt,
            shop_events.DELIVERY_CHANGE_REQUESTED,
            order_id=order_id,
            data={"order": {"external_id": "O-1"}, "requested_at": clock.now()},
        )
    assert event_id is not None and re.fullmatch(r"evt_[0-9a-f]{24}", event_id)

    result = await shop_events.deliver_due(rt)

    assert (result.claimed, result.delivered, result.errors) == (1, 1, [])
    [call] = shop_receiver.calls
    assert call.signature_ok and call.status == 200
    assert call.headers["Content-Type"] == "application/json"
    assert call.headers["X-Portal-Event-Id"] == event_id
    assert call.headers["X-Portal-Event-Type"] == "delivery_change.requested"
    assert call.headers["User-Agent"] == shop_events.USER_AGENT
    assert call.json == {
        "id": event_id,
        "type": "delivery_change.requested",
        "created_at": "2026-11-23T09:30:00Z",
        "data": {"order": {"external_id": "O-1"}, "requested_at": "2026-11-23T09:30:00Z"},
    }
    # Compact, keys sorted: what docs/webhooks.md promises.
    assert call.body == json.dumps(call.json, separators=(",", ":"), sort_keys=True).encode()
    row = await stored(event_id)
    assert row["status"] == "delivered"
    assert row["order"] == order_id
    assert row["delivered_at"] == clock.now()
    assert row["next_attempt_at"] is None
    assert row["attempts"] == 1


async def test_an_event_exists_only_if_the_change_that_caused_it_was_saved(rt: Runtime) -> None:
    order_id = await make_order(rt, "O-1")
    with pytest.raises(RuntimeError):
        async with rt.writing():
            await shop_events.record(rt, "delivery_change.requested", order_id=order_id, data={})
            raise RuntimeError("the change failed")
    assert await ShopEvent.count() == 0


async def test_a_failing_shop_gets_the_event_again_with_backoff_until_it_takes_it(
    rt: Runtime, shop_receiver: ShopReceiver, clock: ManualClock
) -> None:
    event_id = await record(rt)
    shop_receiver.fail_next(2, status=503)

    assert (await shop_events.deliver_due(rt)).retried == 1
    row = await stored(event_id)
    assert row["status"] == "pending"
    assert row["last_error"] == "try 1: HTTP 503"
    assert row["next_attempt_at"] - clock.now() == timedelta(seconds=30)
    assert (await shop_events.deliver_due(rt)).claimed == 0  # not due yet

    clock.advance(seconds=30)
    assert (await shop_events.deliver_due(rt)).retried == 1
    assert (await stored(event_id))["next_attempt_at"] - clock.now() == timedelta(minutes=1)

    clock.advance(minutes=1)
    assert (await shop_events.deliver_due(rt)).delivered == 1
    calls = shop_receiver.calls
    assert [c.status for c in calls] == [503, 503, 200]
    assert {c.event_id for c in calls} == {event_id}
    assert len({c.body for c in calls}) == 1  # every try sends the same signed bytes
    assert (await stored(event_id))["attempts"] == 3


async def test_a_shop_that_refuses_with_a_4xx_gets_the_event_again_too(
    rt: Runtime, shop_receiver: ShopReceiver, clock: ManualClock
) -> None:
    event_id = await record(rt)
    shop_receiver.fail_next(1, status=401)  # say, a secret rotated on one side only
    assert (await shop_events.deliver_due(rt)).retried == 1
    assert (await stored(event_id))["last_error"] == "try 1: HTTP 401"
    clock.advance(seconds=30)
    assert (await shop_events.deliver_due(rt)).delivered == 1
    assert [c.event_id for c in shop_receiver.accepted] == [event_id]


async def test_an_unreachable_shop_keeps_the_event_waiting(
    rt: Runtime, shop_receiver: ShopReceiver
) -> None:
    event_id = await record(rt)
    shop_receiver.stop()
    assert (await shop_events.deliver_due(rt)).retried == 1
    row = await stored(event_id)
    assert row["status"] == "pending"
    assert row["last_error"].startswith("try 1: connection error")
    assert row["next_attempt_at"] is not None


async def test_an_event_the_shop_took_is_never_sent_again(
    rt: Runtime, shop_receiver: ShopReceiver, clock: ManualClock
) -> None:
    await record(rt)
    assert (await shop_events.deliver_due(rt)).delivered == 1
    for _ in range(3):
        clock.advance(days=2)
        assert (await shop_events.deliver_due(rt)).claimed == 0
    assert len(shop_receiver.calls) == 1


async def test_a_timed_out_call_is_sent_again_with_the_same_id_and_signature(
    rt: Runtime, shop_receiver: ShopReceiver, clock: ManualClock
) -> None:
    event_id = await record(rt)
    shop_receiver.delay_next(1, seconds=TIMEOUT * 5)  # the shop got it but answers too late

    assert (await shop_events.deliver_due(rt)).retried == 1
    assert (await stored(event_id))["last_error"].startswith("try 1: timeout")
    clock.advance(seconds=30)
    assert (await shop_events.deliver_due(rt)).delivered == 1

    first, second = shop_receiver.calls
    assert first.event_id == second.event_id == event_id  # the shop drops the repeat by id
    assert first.body == second.body
    assert first.headers["X-Portal-Signature"] == second.headers["X-Portal-Signature"]
    assert (await stored(event_id))["status"] == "delivered"


async def test_a_deliverer_that_dies_mid_batch_has_its_events_sent_after_the_lease(
    rt: Runtime, shop_receiver: ShopReceiver, clock: ManualClock
) -> None:
    event_id = await record(rt)
    [claimed] = await shop_events._claim(rt, shop_events.DELIVERY_BATCH)  # then it "dies"
    assert claimed["event_id"] == event_id
    assert (await shop_events.deliver_due(rt)).claimed == 0
    clock.advance(minutes=5)
    assert (await shop_events.deliver_due(rt)).delivered == 1
    assert [c.event_id for c in shop_receiver.calls] == [event_id]


async def test_deliverers_running_at_once_post_each_event_exactly_once(
    rt: Runtime, shop_receiver: ShopReceiver
) -> None:
    # The race is the point here, not the client's timeout: on a loaded machine a POST can
    # take longer than the 1 s the other tests use, and would then (rightly) be retried.
    rt.settings = rt.settings.with_(extra={**rt.settings.extra, "shop_webhook_timeout": 15.0})
    event_ids = {await record(rt, f"O-P{i}") for i in range(12)}

    results = await asyncio.gather(*(shop_events.deliver_due(rt, limit=5) for _ in range(4)))
    # A claim racing another's commit may come back short; what it left waits for the next run.
    results.append(await shop_events.deliver_due(rt))

    assert sum(r.delivered for r in results) == 12
    posted = [c.event_id for c in shop_receiver.calls]
    assert len(posted) == 12
    assert set(posted) == event_ids
    assert await ShopEvent.count().where(ShopEvent.status == "delivered") == 12


async def test_without_a_webhook_url_nothing_is_recorded_or_sent(
    rt: Runtime, shop_receiver: ShopReceiver
) -> None:
    rt.settings = rt.settings.with_(shop_webhook_url=None, shop_webhook_secret=None)
    order_id = await make_order(rt, "O-1")
    async with rt.writing():
        event_id = await shop_events.record(
            rt, "delivery_change.requested", order_id=order_id, data={}
        )
    assert event_id is None
    assert await ShopEvent.count() == 0
    assert (await shop_events.deliver_due(rt)).claimed == 0
    assert await deliver_shop_events(rt) == {}
    assert shop_receiver.calls == []


async def test_the_scheduler_job_delivers_what_is_due(
    rt: Runtime, shop_receiver: ShopReceiver
) -> None:
    assert "deliver_shop_events" in JOBS
    event_id = await record(rt)
    counts = await deliver_shop_events(rt)
    assert counts["delivered"] == 1
    assert [c.event_id for c in shop_receiver.accepted] == [event_id]


async def test_an_event_refused_for_three_days_is_failed_and_retry_failed_sends_it_again(
    rt: Runtime, shop_receiver: ShopReceiver, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    event_id = await record(rt)
    started = clock.now()
    shop_receiver.fail_next(1000, status=500)
    with caplog.at_level(logging.WARNING, logger="portal.services.shop_events"):
        for _ in range(200):
            if (await shop_events.deliver_due(rt)).failed:
                break
            clock.advance(hours=1)  # the longest backoff: every run finds it due
    row = await stored(event_id)
    assert row["status"] == "failed"
    assert row["next_attempt_at"] is None
    assert clock.now() - started >= timedelta(days=3)
    assert row["attempts"] == len(shop_receiver.calls)
    assert event_id in caplog.text
    clock.advance(days=1)
    assert (await shop_events.deliver_due(rt)).claimed == 0

    shop_receiver.recover()
    requeued = subprocess.run(
        [sys.executable, "-m", "portal", "shop-events", "retry-failed"],
        cwd=ROOT,
        env={**os.environ, "PORTAL_DATABASE_URL": rt.settings.database_url},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "requeued 1 failed shop event" in requeued.stdout
    row = await stored(event_id)
    assert (row["status"], row["attempts"]) == ("pending", 0)
    # The command ran on the real clock; bring the test's up to when the event is due.
    due: datetime = row["next_attempt_at"]
    clock.current = max(clock.current, due)
    assert (await shop_events.deliver_due(rt)).delivered == 1
    assert shop_receiver.accepted[-1].event_id == event_id
    assert await shop_events.retry_failed(rt) == 0
