"""Per-order limits on what a shopper does from their link (PORTAL_SHOPPER_CHANGES_PER_HOUR,
PORTAL_SHOPPER_TEXTS_PER_DAY), shared by every instance of the app through the database, and
what a newer delivery change supersedes: its texts and shop webhook calls not sent yet
(never sent), while the changes feed keeps every change and names the one it supersedes.

The clock starts on Monday 23 November 2026, 10:30 in Milan; the parcel is expected on
Wednesday 25 November, so its instructions can change until Tuesday 24 at 18:00.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from portal.clock import SystemClock
from portal.db.tables import (
    DeliveryChange,
    OrderLine,
    Shipment,
    ShopEvent,
    ShopperAction,
    SmsMessage,
)
from portal.domain.sms import SmsStatus
from portal.services import delivery, messaging, preferences, shop_events
from portal.services.shopper_limits import TooManyChanges
from tests.conftest import BASE_URL, ROOT, TEST_SECRET
from tests.web.helpers import create_order, path_of, post_event
from tests.web.test_serving import free_port

ETA = "2026-11-25T12:00:00+01:00"
REFUSED = "You can make another change after 11:30"  # an hour after the first, Milan time
CSRF = re.compile(r'(?:name="_csrf_token" value=|"x-csrftoken": )"([^"]+)"')


async def delivery_order(client, auth, external_id="L-500100", eta=ETA):
    body = await create_order(client, auth, external_id=external_id)
    shipped = await post_event(
        client,
        auth,
        external_id,
        "shipped",
        shipment={"tracking_number": "BRT0001", "carrier": "BRT", "eta": eta},
    )
    assert shipped.status_code == 201, shipped.text
    parcel = await Shipment.select(Shipment.id).where(Shipment.order == body["id"]).first()
    path = path_of(body["tracking_url"])
    return {**body, "path": path, "instructions": f"parcels/{parcel['id']}/instructions"}


@pytest.fixture
async def order(client, auth, stores):
    return await delivery_order(client, auth)


@pytest.fixture
def webhook(rt, shop_receiver):
    object.__setattr__(
        rt,
        "settings",
        rt.settings.with_(
            shop_webhook_url=shop_receiver.url, shop_webhook_secret=shop_receiver.secret
        ),
    )
    return shop_receiver


async def post_form(client, path, action, data, *, htmx=False):
    """What a browser does: open the page (CSRF cookie and field), then post the form."""
    page = await client.get(path)
    fields = {"_csrf_token": CSRF.search(page.text).group(1), **data}
    headers = {"HX-Request": "true"} if htmx else {}
    return await client.post(f"{path}/{action}", data=fields, headers=headers)


def note(n: int) -> dict[str, str]:
    return {"safe_place": "", "neighbour": "", "note": f"Ring twice ({n})"}


async def written(order_id: int) -> tuple[int, int, int]:
    """Texts, feed rows and shop webhook calls the order has."""
    return (
        await SmsMessage.count().where(SmsMessage.order == order_id),
        await DeliveryChange.count().where(DeliveryChange.order == order_id),
        await ShopEvent.count().where(ShopEvent.order == order_id),
    )


# ------------------------------------------------------------------ changes an hour


async def test_the_sixth_change_within_the_hour_is_refused_with_the_time_and_queues_nothing(
    client, order, clock, webhook
):
    for n in range(5):
        done = await post_form(client, order["path"], order["instructions"], note(n))
        assert done.status_code == 303, done.text
        clock.advance(minutes=5)
    before = await written(order["id"])
    # Without JavaScript: the whole page, the message above the delivery forms.
    plain = await post_form(client, order["path"], order["instructions"], note(5))
    assert plain.status_code == 429
    assert plain.text.startswith("<!doctype html>")
    assert REFUSED in plain.text
    # The page's htmx swaps a 429 answer, as it does a 422 one.
    config = re.search(r'name="htmx-config" content=\'([^\']+)\'', plain.text).group(1)
    assert {"code": "400|409|422|429", "swap": True} in json.loads(config)["responseHandling"]
    # With htmx: the card alone, with the same message.
    card = await post_form(client, order["path"], order["instructions"], note(6), htmx=True)
    assert card.status_code == 429
    assert card.text.startswith('<section id="delivery"') and REFUSED in card.text
    assert await written(order["id"]) == before  # no text, no feed row, no webhook call
    clock.advance(minutes=40)  # 11:30 in Milan: the first change is an hour old
    again = await post_form(client, order["path"], order["instructions"], note(7))
    assert again.status_code == 303


async def test_every_kind_of_shopper_action_counts_against_the_same_limit(
    client, auth, stores, clock
):
    body = await create_order(
        client, auth, external_id="L-500200", fulfilment={"method": "pickup", "store": "MI01"}
    )
    path = path_of(body["tracking_url"])
    visit = {"day": "2026-11-23", "time": "15:00"}
    assert (await post_form(client, path, "visit", visit)).status_code == 303
    assert (await post_form(client, path, "delegate", {"name": "Marco Rossi"})).status_code == 303
    assert (await post_form(client, path, "sms", {"updates": "off"})).status_code == 303
    assert (await post_form(client, path, "sms", {"updates": "on"})).status_code == 303
    assert (await post_form(client, path, "language", {"language": "en"})).status_code == 303
    # The sixth, whatever it is: the visit form with htmx (its card), the language switch
    # without (the whole page, the message by the switches).
    refused = await post_form(client, path, "visit", visit, htmx=True)
    assert refused.status_code == 429
    assert refused.text.startswith('<section id="pickup"') and REFUSED in refused.text
    page = await post_form(client, path, "language", {"language": "it"})
    assert page.status_code == 429
    # A plain form's answer opens at its action's #preferences (not at the page's top,
    # far from the message): the footer, the message first.
    footer = re.search(r'<footer id="preferences".*?</footer>', page.text, re.S).group(0)
    assert footer.index(REFUSED) < footer.index("<form")
    for switch in ("sms", "language"):
        assert f'action="{path}/{switch}#preferences"' in footer
    assert 'lang="en"' in page.text  # nothing changed
    assert await ShopperAction.count().where(ShopperAction.order == body["id"]) == 5


async def test_return_starts_and_new_codes_count_too(client, auth, stores, clock):
    body = await create_order(client, auth, external_id="L-500300")
    path = path_of(body["tracking_url"])
    shirts = await OrderLine.select(OrderLine.id).where(OrderLine.sku == "TSHIRT-M").first()
    for _ in range(3):
        assert (await post_form(client, path, "language", {"language": "en"})).status_code == 303
    new_address = {
        "name": "Bianchi",
        "line1": "Corso Buenos Aires 12",
        "postcode": "20124",
        "city": "Milano",
        "region": "mi",
    }
    assert (await post_form(client, path, "delivery/address", new_address)).status_code == 303
    assert (await post_form(client, path, "delivery/cancel", {})).status_code == 303  # free
    clock.advance(seconds=61)  # a new code a minute after the last
    assert (await post_form(client, path, "delivery/address", new_address)).status_code == 303
    resend = await post_form(client, path, "delivery/resend", {})
    assert resend.status_code == 429 and REFUSED in resend.text
    codes = await (
        SmsMessage.select(SmsMessage.status).where(SmsMessage.kind == "otp").order_by(SmsMessage.id)
    )
    # The first code no longer works: still queued, it is not sent.
    assert [c["status"] for c in codes] == [SmsStatus.DROPPED, SmsStatus.QUEUED]
    await post_event(client, auth, "L-500300", "shipped", shipment={"tracking_number": "B1"})
    await post_event(client, auth, "L-500300", "delivered")
    line = shirts["id"]
    data = {f"qty_{line}": "1", f"reason_{line}": "too_small", "method": "store", "store": "MI01"}
    refused = await post_form(client, path, "returns", data)
    assert refused.status_code == 429 and REFUSED in refused.text


async def test_racing_changes_do_not_both_take_the_last_slot(rt, order):
    for _ in range(4):
        await preferences.set_language(rt, order["id"], "en")
    parcel = int(order["instructions"].split("/")[1])
    results = await asyncio.gather(
        *(
            delivery.set_instructions(
                rt, order["id"], parcel, safe_place=None, neighbour=None, note=f"race {n}"
            )
            for n in range(4)
        ),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, delivery.ChangeResult)]
    refused = [r for r in results if isinstance(r, TooManyChanges)]
    assert len(won) == 1 and len(refused) == 3, results
    assert await DeliveryChange.count().where(DeliveryChange.order == order["id"]) == 1


# ---------------------------------------------------------------- what supersedes what


async def test_a_burst_queues_at_most_the_daily_texts_and_only_the_latest_leave(
    rt, client, auth, order, webhook
):
    first = await post_form(client, order["path"], order["instructions"], note(0))
    assert first.status_code == 303
    await messaging.dispatch_due(rt)  # the first change's text and call leave at once
    await shop_events.deliver_due(rt)
    # A burst from one link: one page, its token, then many posts at once.
    page = await client.get(order["path"])
    token = CSRF.search(page.text).group(1)
    answers = await asyncio.gather(
        *(
            client.post(
                f"{order['path']}/{order['instructions']}",
                data={"_csrf_token": token, **note(n)},
            )
            for n in range(1, 13)
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [303] * 4 + [429] * 8
    texts = await SmsMessage.select(SmsMessage.status, SmsMessage.body).where(
        (SmsMessage.order == order["id"]) & (SmsMessage.kind == "delivery_changed")
    )
    assert len(texts) == 5 <= rt.settings.shopper_texts_per_day
    assert sum(t["status"] == SmsStatus.QUEUED for t in texts) == 1  # three superseded
    await messaging.dispatch_due(rt)
    await shop_events.deliver_due(rt)
    sent = await SmsMessage.count().where(
        (SmsMessage.order == order["id"])
        & (SmsMessage.kind == "delivery_changed")
        & SmsMessage.sent_at.is_not_null()
    )
    assert sent == 2
    # The feed keeps every change, each naming the one it supersedes.
    feed = (await client.get("/api/v1/changes", headers=auth)).json()["changes"]
    assert len(feed) == 5
    assert feed[0]["supersedes"] is None
    assert [c["supersedes"] for c in feed[1:]] == [c["id"] for c in feed[:-1]]
    # The shop got the first call (sent before the burst) and the latest; the three between
    # were superseded before any try.
    calls = [c.json for c in webhook.accepted]
    assert [c["data"]["id"] for c in calls] == [feed[0]["id"], feed[-1]["id"]]
    assert calls[-1]["data"]["supersedes"] == feed[-2]["id"]
    latest_note = calls[-1]["data"]["data"]["instructions"]["note"]
    assert latest_note == feed[-1]["data"]["instructions"]["note"]
    statuses = await ShopEvent.select(ShopEvent.status).where(ShopEvent.order == order["id"])
    assert sorted(s["status"] for s in statuses) == ["delivered"] * 2 + ["superseded"] * 3


async def test_a_change_supersedes_only_once_made(rt, client, auth, order):
    """When the shop decides: a rejected change replaces nothing; an accepted one drops the
    earlier change's confirmation still queued."""
    object.__setattr__(rt, "settings", rt.settings.with_(delivery_changes="manual"))

    async def change(n: int, decision: str) -> int:
        await post_form(client, order["path"], order["instructions"], note(n))
        made = await DeliveryChange.select(DeliveryChange.id).order_by(
            DeliveryChange.id, ascending=False
        )
        decided = await client.post(
            f"/api/v1/changes/{made[0]['id']}/{decision}",
            headers=auth,
            json={"reason": "the courier cannot"} if decision == "reject" else None,
        )
        assert decided.status_code in (200, 201), decided.text
        return made[0]["id"]

    async def text_of(change_id: int) -> str:
        row = await SmsMessage.select(SmsMessage.status).where(
            SmsMessage.subject == f"delivery_change:{change_id}"
        )
        return row[0]["status"]

    first = await change(1, "accept")
    assert await text_of(first) == SmsStatus.QUEUED
    rejected = await change(2, "reject")
    assert await text_of(first) == SmsStatus.QUEUED
    latest = await change(3, "accept")
    assert await text_of(first) == SmsStatus.DROPPED
    assert await text_of(latest) == SmsStatus.QUEUED
    feed = {
        c["id"]: c for c in (await client.get("/api/v1/changes", headers=auth)).json()["changes"]
    }
    assert feed[rejected]["supersedes"] == first and feed[latest]["supersedes"] == first


async def test_texts_the_shopper_causes_are_limited_per_day(rt, client, order, clock):
    for n in range(6):  # one every quarter of an hour: under the hourly limit, each texted
        done = await post_form(client, order["path"], order["instructions"], note(n))
        assert done.status_code == 303
        await messaging.dispatch_due(rt)
        clock.advance(minutes=15)
    refused = await post_form(client, order["path"], order["instructions"], note(6))
    assert refused.status_code == 429
    # 24 hours after the first text, in Milan.
    assert "We have sent you many text messages today: you can do this after" in refused.text
    assert "Tue, Nov 24, 10:30" in refused.text
    # What texts nothing still goes.
    language = await post_form(client, order["path"], "language", {"language": "en"})
    assert language.status_code == 303
    sent = await SmsMessage.count().where(
        (SmsMessage.order == order["id"]) & (SmsMessage.kind == "delivery_changed")
    )
    assert sent == 6


# ----------------------------------------------------------- two instances, one database


@pytest.fixture
def other_instance(db_url) -> Iterator[Callable[[], Awaitable[str]]]:
    """`python -m portal serve` on the same database: another process, its own pool. Started
    at once; the test awaits it (its base URL) when it needs it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "portal", "serve", "--port", str(port)],
        cwd=ROOT,
        env={
            **os.environ,
            "PORTAL_DATABASE_URL": db_url,
            "PORTAL_SECRET_KEY": TEST_SECRET,
            "PORTAL_BASE_URL": BASE_URL,
            "PORTAL_RUN_SCHEDULER": "0",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    async def ready() -> str:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(base_url=url, timeout=1) as probe:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await probe.get("/healthz")).status_code == 200:
                        return url
                assert proc.poll() is None and time.monotonic() < deadline, "it did not start"
                await asyncio.sleep(0.1)

    try:
        yield ready
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


async def test_the_limit_holds_across_two_app_instances_on_one_database(
    rt, client, auth, stores, other_instance
):
    rt.clock = SystemClock()  # the other instance runs on the wall clock: so does this one
    eta = (datetime.now(UTC) + timedelta(days=3)).replace(hour=11, minute=0).isoformat()
    order = await delivery_order(client, auth, "L-500400", eta=eta)
    async with httpx.AsyncClient(base_url=await other_instance()) as other:
        for n in range(5):
            browser = client if n % 2 else other
            done = await post_form(browser, order["path"], order["instructions"], note(n))
            assert done.status_code == 303, done.text
        for browser in (client, other):
            refused = await post_form(browser, order["path"], order["instructions"], note(9))
            assert refused.status_code == 429
            assert "You can make another change after" in refused.text
    assert await DeliveryChange.count().where(DeliveryChange.order == order["id"]) == 5
