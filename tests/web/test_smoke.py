from __future__ import annotations

from tests.factories import order_payload


async def test_an_order_posted_by_the_shop_opens_on_its_tracking_link(client, auth):
    response = await client.post("/api/v1/orders", json=order_payload(), headers=auth)
    assert response.status_code == 201, response.text
    url = response.json()["tracking_url"]
    page = await client.get(url.removeprefix("http://portal.test"))
    assert page.status_code == 200
    assert "Giulia" in page.text
