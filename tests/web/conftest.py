"""Fixtures for the store console: stores, staff accounts, clients from other addresses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import httpx
import pytest
from litestar import Litestar

from portal.runtime import Runtime
from portal.services.staff import CreatedStaff, create_staff
from tests.conftest import BASE_URL
from tests.factories import store_payload

CLERK_PASSWORD = "counter-pass-2026"
MANAGER_PASSWORD = "manager-pass-2026"


@pytest.fixture
async def stores(client: httpx.AsyncClient, auth: dict[str, str]) -> list[str]:
    """Two stores, MI01 (Europe/Rome) and RM01, created through the shop API."""
    for code, name in (("MI01", "Milano Centro"), ("RM01", "Roma Termini")):
        response = await client.put(
            f"/api/v1/stores/{code}", json=store_payload(name=name), headers=auth
        )
        assert response.status_code in (200, 201), response.text
    return ["MI01", "RM01"]


@pytest.fixture
async def clerk(rt: Runtime, stores: list[str]) -> CreatedStaff:
    return await create_staff(rt, "anna.rossi", CLERK_PASSWORD, store_code="MI01")


@pytest.fixture
async def manager(rt: Runtime, stores: list[str]) -> CreatedStaff:
    return await create_staff(rt, "marco", MANAGER_PASSWORD, role="manager")


@pytest.fixture
async def client_from(
    app: Litestar,
) -> AsyncIterator[Callable[[str], Awaitable[httpx.AsyncClient]]]:
    """Another browser: its own cookies and client address, the same app."""
    async with AsyncExitStack() as stack:

        async def make(address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(address, 52000))
            return await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url=BASE_URL)
            )

        yield make
