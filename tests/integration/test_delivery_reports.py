"""Delivery reports: each MessageBird status updates the message; repeats and late ones do not."""

from __future__ import annotations

import pytest

from portal.db.tables import SmsMessage
from portal.domain.sms import SmsStatus
from portal.services import messaging
from portal.services.orders import create_order
from tests.integration.test_outbox import order


@pytest.fixture
async def sent(rt, fake_mb):
    await create_order(rt, order("R-1"))
    await messaging.dispatch_due(rt)
    return (await SmsMessage.select().first()), fake_mb.messages[0]


def report(row, status, gateway_id="x", recipient="393471234567"):
    return messaging.StatusReport(str(row["id"]), gateway_id, recipient, status, None)


async def status_of(row) -> str:
    return (await SmsMessage.select(SmsMessage.status).where(SmsMessage.id == row["id"]).first())[
        "status"
    ]


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        ("buffered", SmsStatus.SENT),
        ("delivered", SmsStatus.DELIVERED),
        ("delivery_failed", SmsStatus.FAILED),
        ("expired", SmsStatus.EXPIRED),
    ],
)
async def test_each_messagebird_status_updates_the_message(rt, sent, reported, expected):
    row, msg = sent
    await messaging.apply_status_report(rt, report(row, reported, msg["id"]))
    assert await status_of(row) == expected


async def test_a_late_sent_report_does_not_undo_delivered(rt, sent):
    row, msg = sent
    assert await messaging.apply_status_report(rt, report(row, "delivered", msg["id"])) == "updated"
    assert await messaging.apply_status_report(rt, report(row, "sent", msg["id"])) == "ignored"
    assert await messaging.apply_status_report(rt, report(row, "delivered", msg["id"])) == "ignored"
    assert await status_of(row) == SmsStatus.DELIVERED


async def test_reports_for_other_messages_or_numbers_change_nothing(rt, sent):
    row, _msg = sent
    assert (
        await messaging.apply_status_report(rt, report(row, "delivered", recipient="390000000"))
        == "unknown"
    )
    stranger = messaging.StatusReport("999999", "x", "393471234567", "delivered", None)
    assert await messaging.apply_status_report(rt, stranger) == "unknown"
    garbage = messaging.StatusReport("abc", "x", None, "delivered", None)
    assert await messaging.apply_status_report(rt, garbage) == "unknown"
    assert await status_of(row) == SmsStatus.SENT
