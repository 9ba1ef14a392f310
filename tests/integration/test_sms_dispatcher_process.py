"""A real `python -m scheduler` stopped mid-send: SIGTERM (a deploy) leaves no text "maybe
sent"; SIGKILL (a crash) leaves claims that another dispatcher takes over within a minute
and settles without sending any text twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from portal.db.tables import SmsMessage
from portal.domain.sms import SmsStatus
from portal.services import messaging
from tests.conftest import BASE_URL, ROOT, TEST_SECRET
from tests.fakes.outbox import queue_urgent_texts

TEXTS = 12  # more than one process sends at once (8): some wait their turn when it stops


@pytest.fixture
def scheduler_process(rt, fake_mb, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m scheduler` against the test's database and the fake MessageBird, which
    answers each text late (the texts are in flight when the process is stopped)."""
    fake_mb.clock = lambda: datetime.now(UTC)  # the process lives on the wall clock
    fake_mb.delay_next(TEXTS, seconds=1.0)
    env = {
        **os.environ,
        "PORTAL_DATABASE_URL": rt.settings.database_url,
        "PORTAL_SECRET_KEY": TEST_SECRET,
        "PORTAL_BASE_URL": BASE_URL,
        "MESSAGEBIRD_ACCESS_KEY": "test_key",
        "MESSAGEBIRD_ENDPOINT": fake_mb.base_url,
    }
    with (tmp_path / "scheduler.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scheduler"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def in_flight(fake_mb, count: int) -> None:
    """Until MessageBird has received `count` texts (and not yet answered them)."""
    await asyncio.to_thread(fake_mb.wait_for_messages, count, 30.0)


async def statuses() -> dict[str, int]:
    rows = await SmsMessage.select(SmsMessage.status)
    out: dict[str, int] = {}
    for r in rows:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return out


def references(fake_mb) -> list[str]:
    return [m["reference"] for m in fake_mb.messages]


async def test_sigterm_finishes_the_sends_in_flight_and_leaves_none_maybe_sent(
    rt, fake_mb, clock, scheduler_process
):
    await queue_urgent_texts(rt, TEXTS, "proc")
    await in_flight(fake_mb, 4)
    scheduler_process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(scheduler_process.wait, 30) == 0
    after = await statuses()
    assert after.get(SmsStatus.SENDING, 0) == after.get(SmsStatus.SETTLING, 0) == 0, after
    # What left is recorded as sent; what had not left is queued again, for whoever is next.
    assert after.get(SmsStatus.SENT, 0) == len(fake_mb.messages)
    assert after.get(SmsStatus.SENT, 0) + after.get(SmsStatus.QUEUED, 0) == TEXTS
    fake_mb.clear_injections()
    clock.current = datetime.now(UTC)
    await messaging.dispatch_due(rt)
    assert (await statuses()) == {SmsStatus.SENT: TEXTS}
    assert sorted(references(fake_mb)) == sorted(set(references(fake_mb)))
    assert len(fake_mb.messages) == TEXTS


async def test_after_sigkill_the_claims_are_taken_over_within_a_minute_and_none_sent_twice(
    rt, fake_mb, clock, scheduler_process
):
    await queue_urgent_texts(rt, TEXTS, "proc")
    await in_flight(fake_mb, 4)
    scheduler_process.send_signal(signal.SIGKILL)
    scheduler_process.wait(10)
    killed_at = datetime.now(UTC)
    fake_mb.clear_injections()  # MessageBird answers at once from now on
    assert (await statuses()).get(SmsStatus.SENDING) == TEXTS  # all claimed by the dead one
    accepted = len(fake_mb.messages)
    clock.current = killed_at
    await messaging.dispatch_due(rt)
    assert len(fake_mb.messages) == accepted  # its claims' lease still runs
    clock.current = killed_at + timedelta(seconds=30)  # the lease is "about 30 s"
    await messaging.dispatch_due(rt)  # taken over: to be looked up, not sent blind
    assert len(fake_mb.messages) == accepted
    # Looked up once any request the dead process made has surely arrived: the texts
    # MessageBird has are recorded as sent, the others sent now.
    clock.advance(seconds=rt.settings.sms_send_timeout + 5)
    await messaging.dispatch_due(rt)
    await messaging.dispatch_due(rt)
    assert clock.now() - killed_at < timedelta(minutes=1)
    assert (await statuses()) == {SmsStatus.SENT: TEXTS}
    assert len(fake_mb.messages) == TEXTS
    assert sorted(references(fake_mb)) == sorted(set(references(fake_mb)))
