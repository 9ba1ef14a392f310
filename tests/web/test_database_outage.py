"""A database outage: requests answer 503 with Retry-After (JSON for the shop's API, a
translated "try again in a moment" page for shoppers and clerks), the log gets one warning a
minute and no traceback, and everything works again once the database is back.

PostgreSQL is reached through a TCP proxy the test closes and opens (the machine's server
is shared and never stopped); SQLite's file is made unreachable by moving its directory
away, as a lost mount would.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from portal.settings import Settings
from scheduler.jobs import _guarded, dispatch_outbox
from tests.fakes.tcp_proxy import TcpProxy
from tests.web.conftest import CLERK_PASSWORD
from tests.web.helpers import create_order, csrf_field, path_of, sign_in


class Outage:
    """Where the app finds the database, and a switch that takes it away and back."""

    def __init__(self, db_url: str, tmp_path: Path) -> None:
        self.proxy: TcpProxy | None = None
        self.url = db_url
        if db_url.startswith("sqlite:///"):
            disk = tmp_path / "disk"
            disk.mkdir()
            path = Path(db_url.removeprefix("sqlite:///"))
            path.rename(disk / path.name)
            self.disk, self.away = disk, tmp_path / "disk-away"
            self.url = f"sqlite:///{disk / path.name}"

    def through(self, proxy: TcpProxy) -> None:
        target = urlparse(self.url)
        self.proxy = proxy
        proxy.target = (target.hostname or "127.0.0.1", target.port or 5432)
        proxy.open()
        user = target.netloc.rpartition("@")[0]  # with its password, if any
        self.url = target._replace(netloc=f"{user}@127.0.0.1:{proxy.port}").geturl()

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
        else:
            self.disk.rename(self.away)

    def start(self) -> None:
        if self.proxy is not None:
            self.proxy.open()
        else:
            self.away.rename(self.disk)


@pytest.fixture
def outage(db_url: str, tmp_path: Path) -> Iterator[Outage]:
    switch = Outage(db_url, tmp_path)
    if switch.url.startswith("sqlite:///"):
        yield switch
        return
    with TcpProxy("127.0.0.1", 5432) as proxy:
        switch.through(proxy)
        yield switch


@pytest.fixture
def settings(settings: Settings, outage: Outage) -> Settings:
    return settings.with_(database_url=outage.url)


def portal_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The portal's own warnings (asyncpg's pool adds at most one line a minute of its own
    while it cannot reconnect, portal.db)."""
    return [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("portal")
    ]


async def test_a_database_outage_answers_503_with_retry_after_and_one_warning_a_minute(
    outage, rt, client, client_from, auth, clerk, clock, caplog
):
    order = await create_order(client, auth)
    page = path_of(order["tracking_url"])
    api = f"/api/v1/orders/{order['external_id']}"
    counter = await client_from("198.51.100.20")
    assert (await sign_in(counter, "anna.rossi", CLERK_PASSWORD)).status_code == 303
    before = await client.get(page)
    assert before.status_code == 200

    caplog.clear()
    caplog.set_level(logging.INFO)
    outage.stop()

    answer = await client.get(api, headers=auth)
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["status_code"] == 503 and "try again" in answer.json()["detail"]
    events = await client.post(f"{api}/events", json={"type": "packed"}, headers=auth)
    assert events.status_code == 503 and events.headers["retry-after"] == "5"

    shopper = await client.get(page, headers={"Accept-Language": "it-IT,it;q=0.9"})
    assert shopper.status_code == 503
    assert shopper.headers["retry-after"] == "5"
    assert "Torniamo subito" in shopper.text and "Riprova tra qualche istante" in shopper.text
    assert f'href="{page}"' in shopper.text  # try again: the same page
    poll = await client.get(page, headers={"HX-Request": "true"})
    assert poll.status_code == 503  # htmx leaves the page as it was
    assert "hx-refresh" not in poll.headers
    # An htmx form would do nothing on a 503: the page reloads, to the page above.
    form = {"_csrf_token": csrf_field(before.text), "updates": "off"}
    sent = await client.post(f"{page}/sms", data=form, headers={"HX-Request": "true"})
    assert sent.status_code == 503 and sent.headers["hx-refresh"] == "true"

    console = await counter.get("/clerk/")
    assert console.status_code == 503 and console.headers["retry-after"] == "5"
    assert "Back in a moment" in console.text
    assert (await client.get("/readyz")).status_code == 503

    for _ in range(5):  # more requests within the minute: no more lines in the log
        assert (await client.get(api, headers=auth)).status_code == 503
    text = {"originator": "+393331234567", "body": "STOP", "id": "mb-outage-1"}
    inbound = await client.post("/webhooks/messagebird/inbound", data=text)
    assert inbound.status_code == 503  # MessageBird sends it again later
    for _ in range(2):  # the scheduler's runs meanwhile (in this process by default)
        await _guarded("dispatch_outbox", dispatch_outbox, rt)()
    [job_warning] = [r for r in caplog.records if r.name == "scheduler.jobs"]
    assert "database unavailable" in job_warning.getMessage()
    [warning] = portal_warnings(caplog)
    assert "database unavailable" in warning.getMessage() and warning.exc_info is None
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    clock.advance(seconds=61)  # a minute on: one more warning, with the count in between
    assert (await client.get(api, headers=auth)).status_code == 503
    assert len(portal_warnings(caplog)) == 2
    assert "(11 more since the last warning)" in portal_warnings(caplog)[1].getMessage()

    outage.start()
    assert (await client.get(api, headers=auth)).status_code == 200
    assert (await client.get(page)).status_code == 200
    assert (await counter.get("/clerk/")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200
    assert "Traceback" not in caplog.text
