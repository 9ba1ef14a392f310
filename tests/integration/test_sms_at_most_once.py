"""At most once: a text whose outcome write fails, whose answer is lost, or whose dispatcher
dies is never sent a second time; it is settled (its MessageBird id kept, or looked up)
instead. Against the fake MessageBird through the real SDK, on real databases."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from portal.domain import sms as sms_rules
from portal.domain.sms import SmsStatus
from portal.services import messaging
from portal.services.orders import create_order
from tests.fakes.outbox import ALLOW_OUTCOMES, REFUSE_OUTCOMES, kind_of, run_sql
from tests.integration.test_outbox import only_message, order


async def sent_once_as(rt, fake_mb, clock, accepted: dict) -> None:
    """The text is recorded as sent with MessageBird's id, and never goes out again."""
    row = await only_message()
    assert row["status"] == SmsStatus.SENT
    assert row["gateway_id"] == accepted["id"]
    clock.advance(hours=2)
    assert (await messaging.dispatch_due(rt)).claimed == 0
    assert fake_mb.messages == [accepted]


async def test_an_outcome_write_the_database_refuses_is_retried_and_never_sent_twice(
    rt, fake_mb, clock, db_url
):
    rt.settings = rt.settings.with_(sms_lease_seconds=1.0)  # renewed every third of it
    await create_order(rt, order("O-W1"))
    await run_sql(db_url, REFUSE_OUTCOMES[kind_of(db_url)])
    sending = asyncio.create_task(messaging.dispatch_due(rt))
    [accepted] = await asyncio.to_thread(fake_mb.wait_for_messages, 1)
    await asyncio.sleep(0.3)
    assert (await only_message())["status"] == SmsStatus.SENDING  # refused so far
    # Long after the old 600 s claim: the live dispatcher keeps its claim alive.
    clock.advance(minutes=11)
    await asyncio.sleep(0.6)
    assert (await messaging.dispatch_due(rt)).claimed == 0
    assert len(fake_mb.messages) == 1
    assert (await only_message())["status"] == SmsStatus.SENDING  # still its claim
    await run_sql(db_url, ALLOW_OUTCOMES[kind_of(db_url)])
    result = await asyncio.wait_for(sending, timeout=15)
    assert result.sent == 1
    await sent_once_as(rt, fake_mb, clock, accepted)


async def test_a_lost_answer_is_settled_by_looking_the_text_up_and_not_sent_again(
    rt, fake_mb, clock
):
    await create_order(rt, order("O-W2"))
    fake_mb.drop_next(1)  # MessageBird takes the text; its answer never arrives
    first = await messaging.dispatch_due(rt)
    assert (first.claimed, first.unknown) == (1, 1)
    assert (await only_message())["status"] == SmsStatus.SETTLING
    assert (await messaging.dispatch_due(rt)).settled == 0  # not before the request landed
    clock.advance(seconds=rt.settings.sms_send_timeout + 5)
    looked = await messaging.dispatch_due(rt)
    assert (looked.claimed, looked.settled) == (0, 1)
    lists = [r for r in fake_mb.requests if r["method"] == "GET" and r["path"] == "/messages"]
    assert len(lists) == 1
    assert lists[0]["query"]["recipient"] == ["393471234567"]
    assert set(lists[0]["query"]) >= {"from", "until", "direction"}
    await sent_once_as(rt, fake_mb, clock, fake_mb.messages[0])


async def test_a_timed_out_text_messagebird_never_answers_about_is_unknown_and_never_resent(
    rt, fake_mb, clock
):
    await create_order(rt, order("O-W3"))
    fake_mb.delay_next(1, seconds=2.5)  # longer than the 1 s client timeout
    fake_mb.fail_lookups(100, status=503)
    assert (await messaging.dispatch_due(rt)).unknown == 1
    started = (await only_message())["claimed_at"]
    for _ in range(20):
        row = await only_message()
        if row["next_attempt_at"] is None:
            break
        clock.current = max(clock.now(), row["next_attempt_at"])
        await messaging.dispatch_due(rt)
    assert row["status"] == SmsStatus.UNKNOWN
    assert "not sent again" in row["last_error"]
    assert row["status_at"] - started >= timedelta(minutes=rt.settings.sms_settle_minutes)
    lookups = [r for r in fake_mb.requests if r["method"] == "GET"]
    assert 2 <= len(lookups) <= sms_rules.MAX_LOOKUPS
    clock.advance(days=1)
    assert (await messaging.dispatch_due(rt)).claimed == 0
    assert len(fake_mb.messages) == 1
    # A report that comes after all still says what happened.
    [accepted] = fake_mb.messages
    report = messaging.StatusReport(str(row["id"]), accepted["id"], None, "delivered", None)
    assert await messaging.apply_status_report(rt, report) == "updated"
    assert (await only_message())["status"] == SmsStatus.DELIVERED


async def test_a_dead_dispatchers_claim_is_taken_over_within_a_minute_and_sent_once(
    rt, fake_mb, clock
):
    await create_order(rt, order("O-W4"))
    await messaging._claim(rt, clock.now(), 10, messaging.DispatchResult(), "dead-dispatcher")
    assert (await messaging.dispatch_due(rt)).claimed == 0  # its lease still runs
    clock.advance(seconds=rt.settings.sms_lease_seconds)
    assert (await messaging.dispatch_due(rt)).taken_over == 1
    clock.advance(seconds=rt.settings.sms_send_timeout + 5)
    assert (await messaging.dispatch_due(rt)).requeued == 1  # MessageBird has no such text
    assert (await messaging.dispatch_due(rt)).sent == 1
    assert len(fake_mb.messages) == 1
    clock.advance(hours=2)
    assert (await messaging.dispatch_due(rt)).claimed == 0
    assert len(fake_mb.messages) == 1
