"""A one-time code whose text is in doubt (its dispatcher died mid-send) does not make the
shopper wait: "Send a new code" issues a new one at once, and the old text, found never
sent, is not sent late with a code that no longer works."""

from __future__ import annotations

from portal.db.tables import SmsMessage
from portal.domain.sms import SmsStatus
from portal.services import messaging
from tests.web.helpers import create_order, path_of
from tests.web.test_delivery_changes import NEW_ADDRESS, post_form, texted_code


async def test_a_code_in_doubt_is_replaced_at_once_and_the_old_text_never_goes(
    rt, client, auth, stores, fake_mb, clock
):
    body = await create_order(client, auth, external_id="D-300900")
    path = path_of(body["tracking_url"])
    await messaging.dispatch_due(rt)  # the order's confirmation
    assert (await post_form(client, path, "delivery/address", NEW_ADDRESS)).status_code == 303
    first = await texted_code(body["id"])
    # The dispatcher claims the code's text and dies before sending it.
    await messaging._claim(rt, clock.now(), 10, messaging.DispatchResult(), "dead-dispatcher")
    clock.advance(seconds=61)  # the page lets a new code be asked for after a minute
    again = await post_form(client, path, "delivery/resend", {}, version=False)
    assert again.status_code == 303
    second = await texted_code(body["id"])
    result = await messaging.dispatch_due(rt)
    assert (result.sent, result.taken_over) == (1, 1)  # the new code goes at once
    assert second in fake_mb.messages[-1]["body"]
    clock.advance(minutes=1)
    assert (await messaging.dispatch_due(rt)).dropped == 1  # looked up: never sent, stale
    done = await post_form(client, path, "delivery/code", {"code": second}, version=False)
    assert done.status_code == 303
    clock.advance(hours=1)
    await messaging.dispatch_due(rt)
    codes = [m["body"] for m in fake_mb.messages if first in m["body"] or second in m["body"]]
    assert len(codes) == 1 and (first == second or first not in codes[0])
    rows = await SmsMessage.select(SmsMessage.status).where(SmsMessage.kind == "otp")
    assert sorted(r["status"] for r in rows) == [SmsStatus.DROPPED, SmsStatus.SENT]
