"""A local stand-in for the shop's webhook endpoint, for tests.

It is what a shop would write from docs/webhooks.md, and nothing from the portal: it checks
each call's ``X-Portal-Signature`` against the raw body with its own HMAC code, and answers
``401`` to a bad one, ``200`` otherwise::

    with ShopReceiver(secret="s" * 32) as shop:
        ...  # point PORTAL_SHOP_WEBHOOK_URL at shop.url
        [call] = shop.calls
        assert call.signature_ok and call.json["id"] == call.event_id

Failures on demand, consumed one per call: :meth:`fail_next` answers an error status,
:meth:`delay_next` waits before answering (longer than the client's timeout, it is a timeout
for the client, though the call was received and recorded first, as a slow shop would).

Only the standard library is used.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import threading
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["ReceivedCall", "ShopReceiver", "verify_signature"]

PATH = "/hooks/order-portal"


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """The check docs/webhooks.md tells the shop to make."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected, header)


@dataclass
class ReceivedCall:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    signature_ok: bool
    status: int | None = None  # the status answered; None while a delayed answer waits

    @property
    def event_id(self) -> str | None:
        return self.headers.get("X-Portal-Event-Id")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    receiver: ShopReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.receiver._record_server_error(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "FakeShop/1.0"
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        try:
            self.server.receiver._handle(self)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            pass  # the client gave up waiting (a timeout the test asked for)
        except Exception:
            self.server.receiver._record_server_error(traceback.format_exc())
            with contextlib.suppress(OSError):
                self.answer(500)

    def do_GET(self) -> None:
        self.answer(405)

    def answer(self, status: int) -> None:
        data = json.dumps({"status": status}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


class ShopReceiver:
    """The shop's webhook endpoint, in a daemon thread. Also a context manager."""

    def __init__(self, secret: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.secret = secret
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None
        self._calls: list[ReceivedCall] = []
        self._server_errors: list[str] = []
        self._fail_queue: list[int] = []
        self._delay_queue: list[float] = []

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> ShopReceiver:
        if self._server is not None:
            raise RuntimeError("ShopReceiver is already running")
        self._stopping.clear()
        server = _Server((self.host, self.port), _Handler)
        server.receiver = self
        self._server = server
        host, port = server.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode()
        self._url = f"http://{host}:{port}{PATH}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"ShopReceiver:{port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes delayed answers; they close without answering
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> ShopReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The endpoint to configure as PORTAL_SHOP_WEBHOOK_URL (known after start)."""
        if self._url is None:
            raise RuntimeError("ShopReceiver.url is only known after start()")
        return self._url

    # --- inspection -----------------------------------------------------------------------

    @property
    def calls(self) -> list[ReceivedCall]:
        """Every call received, in order, failed and timed-out ones included (copies)."""
        with self._lock:
            return copy.deepcopy(self._calls)

    @property
    def accepted(self) -> list[ReceivedCall]:
        """The calls answered 2xx: what the shop has processed."""
        return [c for c in self.calls if c.status is not None and 200 <= c.status < 300]

    @property
    def server_errors(self) -> list[str]:
        with self._lock:
            return list(self._server_errors)

    def wait_for_calls(self, count: int, timeout: float = 5.0) -> list[ReceivedCall]:
        """Block until ``count`` calls have been answered; AssertionError otherwise."""
        with self._changed:
            self._changed.wait_for(
                lambda: sum(c.status is not None for c in self._calls) >= count, timeout=timeout
            )
            got = copy.deepcopy(self._calls)
        if sum(c.status is not None for c in got) < count:
            raise AssertionError(f"expected {count} answered call(s) in {timeout}s, got {got!r}")
        return got

    # --- behaviour control ----------------------------------------------------------------

    def fail_next(self, n: int = 1, *, status: int = 500) -> None:
        """The next ``n`` calls answer ``status`` (a 4xx or 5xx) instead of 200."""
        if n < 0 or not 400 <= status <= 599:
            raise ValueError("n must be >= 0 and status an HTTP error status")
        with self._lock:
            self._fail_queue.extend([status] * n)

    def delay_next(self, n: int = 1, *, seconds: float) -> None:
        """The next ``n`` calls are recorded, then answered only after ``seconds``."""
        if n < 0 or seconds < 0:
            raise ValueError("n and seconds must be >= 0")
        with self._lock:
            self._delay_queue.extend([float(seconds)] * n)

    def recover(self) -> None:
        """Forget the failures and delays still queued: every call succeeds again."""
        with self._lock:
            self._fail_queue.clear()
            self._delay_queue.clear()

    # --- server side (handler threads) ----------------------------------------------------

    def _record_server_error(self, text: str) -> None:
        if "BrokenPipeError" in text or "ConnectionResetError" in text:
            return
        with self._lock:
            self._server_errors.append(text)

    def _handle(self, h: _Handler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length > 0 else b""
        try:
            parsed: Any = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            parsed = None
        call = ReceivedCall(
            method=h.command,
            path=h.path,
            headers=dict(h.headers.items()),
            body=body,
            json=parsed,
            signature_ok=verify_signature(self.secret, body, h.headers.get("X-Portal-Signature")),
        )
        with self._lock:
            self._calls.append(call)
            fail = self._fail_queue.pop(0) if self._fail_queue else None
            delay = self._delay_queue.pop(0) if self._delay_queue else 0.0
            self._changed.notify_all()
        if delay > 0 and self._stopping.wait(delay):
            return
        if fail is not None:
            status = fail
        elif h.path != PATH:
            status = 404
        elif not call.signature_ok:
            status = 401
        elif parsed is None:
            status = 400
        else:
            status = 200
        with self._lock:
            call.status = status
            self._changed.notify_all()
        h.answer(status)
