"""Browser fixtures: the real app under uvicorn in a thread, and the system Chromium.

The app owns its database engine: `create_app(settings)` builds it and the lifespan opens the
pool on the server thread's event loop. Tables are bound globally (`portal.db.bind`), so these
tests never touch the database themselves; they talk to the app over HTTP only, like the
shop's systems and the shopper's phone do. The API key comes from the real CLI beforehand.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Locator, Page, sync_playwright

from portal.app import create_app
from portal.serving import proxy_options
from portal.settings import Settings
from tests.conftest import ROOT, TEST_SECRET
from tests.factories import order_payload
from tests.fakes.messagebird_server import FakeMessageBird

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LINK_RE = re.compile(r"https?://\S+/t/[A-Za-z0-9_-]+")


def create_api_key_with_cli(db_url: str, name: str = "browser-tests") -> str:
    env = {**os.environ, "PORTAL_DATABASE_URL": db_url, "PORTAL_SECRET_KEY": TEST_SECRET}
    done = subprocess.run(
        [sys.executable, "-m", "portal", "create-api-key", name],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"create-api-key failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1].strip()


@dataclass
class LiveServer:
    """The running portal, seen from outside: its URL, the shop's API and the SMS it sent."""

    base_url: str
    api: httpx.Client
    sms: FakeMessageBird
    settings: Settings

    def create_order(self, **overrides: Any) -> dict[str, Any]:
        response = self.api.post("/api/v1/orders", json=order_payload(**overrides))
        assert response.status_code == 201, response.text
        receipt: dict[str, Any] = response.json()
        return receipt

    def post_event(self, external_id: str, type_: str, **fields: Any) -> dict[str, Any]:
        response = self.api.post(
            f"/api/v1/orders/{external_id}/events", json={"type": type_, **fields}
        )
        assert response.status_code == 201, response.text
        outcome: dict[str, Any] = response.json()
        return outcome

    def sms_link(self, message: dict[str, Any]) -> str:
        found = LINK_RE.search(message["body"])
        assert found, f"no tracking link in the SMS: {message['body']!r}"
        return found.group(0)


def _listening_socket() -> socket.socket:
    # Bound before uvicorn starts, so the port cannot be taken in between.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def _wait_until_healthy(base_url: str, thread: threading.Thread, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("the live server stopped while starting (see the captured log)")
        try:
            response = httpx.get(f"{base_url}/healthz", timeout=1.0)
            if response.status_code == 200:
                return
            last = response.status_code
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"the live server did not answer /healthz within {timeout}s: {last!r}")


@pytest.fixture
def live_server(db_url: str, fake_mb: FakeMessageBird) -> Iterator[LiveServer]:
    api_key = create_api_key_with_cli(db_url)
    fake_mb.clock = lambda: datetime.now(UTC)  # MessageBird on the live server's wall clock
    sock = _listening_socket()
    host, port = sock.getsockname()[:2]
    base_url = f"http://{host}:{port}"
    settings = Settings(
        database_url=db_url,
        base_url=base_url,
        secret_key=TEST_SECRET,
        messagebird_access_key="test_key",
        messagebird_endpoint=fake_mb.base_url,
        messagebird_originator="TestShop",
        sms_send_timeout=2.0,
        run_scheduler=True,
        dispatch_interval_seconds=0.3,
        poll_seconds=1,
        # The live server runs on the wall clock: no quiet hours, or a night run waits for 8:00.
        extra={"sms_quiet_hours": None},
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=3,
        **proxy_options(settings),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="live-portal", daemon=True
    )
    thread.start()
    api = httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10.0
    )
    try:
        _wait_until_healthy(base_url, thread)
        yield LiveServer(base_url=base_url, api=api, sms=fake_mb, settings=settings)
    finally:
        api.close()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        assert not thread.is_alive(), "the live server did not stop within 10s"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for the module's tests, each in its own context.

    While the sync Playwright API is active its event loop counts as running in this thread,
    so database fixtures use `tests.conftest.run_async`, and the scope ends with the module
    so that the async tests that follow get a thread without a running loop.
    """
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _phone_context(browser: Browser, *, javascript: bool = True) -> BrowserContext:
    """A phone about the size of an iPhone 12-15 (390 x 844 CSS pixels, 3x density)."""
    return browser.new_context(
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=3,
        java_script_enabled=javascript,
    )


@pytest.fixture
def phone(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    """A phone-sized page. Takes `live_server` so it closes before the server stops."""
    context = _phone_context(browser)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def phone_without_js(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    context = _phone_context(browser, javascript=False)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def tablet(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    """A store counter's tablet (1024 x 768, landscape, not mobile). Takes `live_server` so
    it closes before the server stops."""
    context = browser.new_context(viewport={"width": 1024, "height": 768}, is_mobile=False)
    try:
        yield context.new_page()
    finally:
        context.close()


def submit_and_follow(button: Locator) -> None:
    """Click a form's submit `button` with JavaScript off: the form's POST must answer 303
    (saved), and the browser follows it to the page it names."""
    with button.page.expect_navigation() as landed:
        button.click()
    response = landed.value
    assert response is not None
    post = response.request.redirected_from
    assert post is not None and post.method == "POST", response.url
    answer = post.response()
    assert answer is not None and answer.status == 303, answer and answer.status
