"""Small steps that web tests share: talk to the API as the shop would."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import BASE_URL
from tests.factories import order_payload


async def create_order(
    client: httpx.AsyncClient, auth: dict[str, str], **overrides: Any
) -> dict[str, Any]:
    response = await client.post("/api/v1/orders", json=order_payload(**overrides), headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


def path_of(url: str) -> str:
    assert url.startswith(BASE_URL), url
    return url.removeprefix(BASE_URL)


async def post_event(
    client: httpx.AsyncClient, auth: dict[str, str], external_id: str, event: str, **body: Any
) -> httpx.Response:
    return await client.post(
        f"/api/v1/orders/{external_id}/events", json={"type": event, **body}, headers=auth
    )


async def ship(
    client: httpx.AsyncClient, auth: dict[str, str], external_id: str, tracking: str = "BRT123"
) -> None:
    response = await post_event(
        client,
        auth,
        external_id,
        "shipped",
        shipment={"tracking_number": tracking, "carrier": "BRT"},
    )
    assert response.status_code == 201, response.text


def csrf_field(html: str) -> str:
    match = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert match, "the form has no CSRF field"
    return match.group(1)


async def sign_in(
    client: httpx.AsyncClient, username: str, password: str, *, next_path: str | None = None
) -> httpx.Response:
    """What a browser does: open the form (which sets the CSRF cookie), then post it."""
    form = await client.get("/clerk/login")
    assert form.status_code == 200, form.text
    data = {"_csrf_token": csrf_field(form.text), "username": username, "password": password}
    if next_path is not None:
        data["next"] = next_path
    return await client.post("/clerk/login", data=data)


async def sign_out(client: httpx.AsyncClient) -> httpx.Response:
    page = await client.get("/clerk/")
    return await client.post("/clerk/logout", data={"_csrf_token": csrf_field(page.text)})
