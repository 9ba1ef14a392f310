"""The page's "SMS updates: on/off" switch: the same flag as texting STOP or START."""

from __future__ import annotations

import pytest

from portal.db.tables import Customer, SmsMessage
from tests.web.helpers import create_order, csrf_field, path_of, post_event


@pytest.fixture
async def order(client, auth):
    body = await create_order(client, auth, external_id="S-500100")
    return {**body, "path": path_of(body["tracking_url"])}


async def switch(client, path: str, updates: str):
    page = await client.get(path)
    return await client.post(
        f"{path}/sms", data={"_csrf_token": csrf_field(page.text), "updates": updates}
    )


async def test_turning_updates_off_stops_the_next_texts_and_on_brings_them_back(
    client, auth, order
):
    html = (await client.get(order["path"])).text
    assert "Turn SMS updates off" in html
    answer = await switch(client, order["path"], "off")
    assert answer.status_code == 303
    html = (await client.get(order["path"])).text
    assert "SMS updates are off" in html and "Turn SMS updates on" in html
    assert (await Customer.select(Customer.sms_opt_out_at).first())["sms_opt_out_at"] is not None
    await post_event(
        client, auth, "S-500100", "shipped", shipment={"tracking_number": "T1", "carrier": "BRT"}
    )
    shipped = await SmsMessage.select(SmsMessage.status).where(SmsMessage.kind == "shipped").first()
    assert shipped["status"] == "dropped"

    assert (await switch(client, order["path"], "on")).status_code == 303
    assert (await Customer.select(Customer.sms_opt_out_at).first())["sms_opt_out_at"] is None
    await post_event(client, auth, "S-500100", "out_for_delivery")
    latest = (
        await SmsMessage.select(SmsMessage.status)
        .where(SmsMessage.kind == "out_for_delivery")
        .first()
    )
    assert latest["status"] == "queued"


async def test_the_switch_refuses_a_value_it_does_not_know_and_a_post_without_csrf(client, order):
    assert (await switch(client, order["path"], "maybe")).status_code == 400
    bare = await client.post(f"{order['path']}/sms", data={"updates": "off"})
    assert bare.status_code == 403
    assert (await Customer.select(Customer.sms_opt_out_at).first())["sms_opt_out_at"] is None
