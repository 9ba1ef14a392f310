"""A local fake of MessageBird's REST SMS API, for tests.

The REAL ``messagebird`` SDK (2.2.0) talks to it unchanged::

    from messagebird.client import USER_AGENT, Client
    from messagebird.http_client import HttpClient

    with FakeMessageBird(access_key="test_key") as fake:
        client = Client("test_key", http_client=HttpClient(fake.base_url + "/", "test_key",
                                                           USER_AGENT))
        msg = client.message_create("Portal", "31612345678", "Hello", {"reference": "42"})
        assert msg.id == fake.messages[0]["id"]

What it mimics (only what a sender of SMS cares about):

* ``POST /messages``: needs ``Authorization: AccessKey <access_key>`` (else 401 with
  ``{"errors": [{"code": 2, ...}]}``), validates ``recipients`` (comma separated digits or a
  list; digits only, no ``+``), ``originator``, a non-empty ``body`` and ``datacoding``
  (plain/unicode/auto) and ``validity`` (whole seconds, at least 1) and answers 422 with
  MessageBird's errors JSON (code 9) when one is wrong. On success it answers 201 with the
  Message resource the SDK parses into ``messagebird.message.Message``. Each accepted
  message is recorded with its ``datacoding`` (``plain`` when none was sent), ``validity``
  (None when none was sent), and how the network would carry its body: ``encoding``
  (``gsm7``/``ucs2``) and ``parts`` (also the resource's ``messagePartCount``), counted
  here on its own so that tests can hold the sender's bookkeeping against it
  (:func:`assert_sent_as_stored`).
* ``GET /messages/<id>``: the stored Message resource (404 errors JSON, code 20, if unknown).
* ``GET /messages``: the list, newest first, with MessageBird's filters: ``originator``,
  ``recipient`` (digits), ``direction`` (``mt``; everything here is outgoing, so ``mo``
  lists nothing), ``type``, ``status`` (a recipient's status), ``searchterm`` (in the body),
  ``contact_id`` (never matches: there are no contacts here), ``from`` and ``until``
  (RFC 3339, on ``createdDatetime``, both inclusive), ``limit`` (1-200, default 20) and
  ``offset``. The answer is MessageBird's list object (``offset``, ``limit``, ``count``,
  ``totalCount``, ``links``, ``items``). A bad filter value answers 422 (code 9).
  ``createdDatetime`` comes from :attr:`clock` (the wall clock unless a test sets it).
* Anything else: 404 (or 405 for a wrong method on ``/messages``) with errors JSON.

How the SDK reacts (useful when writing tests): 401/404/405/422 bodies are parsed and raised as
``messagebird.client.ErrorException`` (``.errors[0].code``); any other non-2xx status makes
``HttpClient`` call ``raise_for_status()`` -> ``requests.HTTPError``; a client-side timeout
surfaces as ``requests.Timeout``.

Failure injection is consumed per ``POST /messages`` request: :meth:`fail_next`,
:meth:`delay_next` and :meth:`drop_next` keep independent counters, so one request can consume
several (a *slow* 503). A delayed or dropped request that is otherwise valid is recorded as
accepted *before* the delay starts or the connection is cut, like a gateway that took the
message but answered late, or whose answer was lost. :meth:`fail_lookups` makes the next
``GET /messages`` lists fail.

Only the standard library is used for the server; ``requests`` is used by :meth:`send_report`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import secrets
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

__all__ = ["FakeMessageBird", "assert_sent_as_stored", "carriage"]

_VALID_DATACODINGS = ("plain", "unicode", "auto")

# GSM 03.38: the basic set (one septet each) and the extension set (escape + char, two).
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = set("^{}\\[~]|€\f")


def carriage(body: str, datacoding: str = "plain") -> tuple[str, int]:
    """(encoding, parts) for a body sent with this datacoding, the way the network splits it:
    GSM-7 160 septets, or 153 per part when concatenated; UCS-2 70 UTF-16 units, or 67. A
    two-unit character (escape pair, surrogate pair) never straddles two parts. "plain" with
    a character outside GSM-7 is counted as UCS-2: it could not go out as sent."""
    gsm = all(c in _GSM_BASIC or c in _GSM_EXTENSION for c in body)
    if gsm and datacoding != "unicode":
        sizes = [2 if c in _GSM_EXTENSION else 1 for c in body]
        encoding, single, multi = "gsm7", 160, 153
    else:
        sizes = [2 if ord(c) > 0xFFFF else 1 for c in body]
        encoding, single, multi = "ucs2", 70, 67
    if sum(sizes) <= single:
        return encoding, 1
    parts, used = 1, 0
    for size in sizes:
        if used + size > multi:
            parts, used = parts + 1, 0
        used += size
    return encoding, parts


def assert_sent_as_stored(message: dict[str, Any], row: dict[str, Any]) -> None:
    """What the fake received is what the outbox row says it sends: same encoding, a
    datacoding that carries it, the same number of segments."""
    expected = "plain" if row["encoding"] == "gsm7" else "unicode"
    assert message["datacoding"] == expected, (message["datacoding"], row["encoding"])
    assert (message["encoding"], message["parts"]) == (row["encoding"], row["segments"]), (
        f"sent as {message['encoding']} in {message['parts']} part(s), but the row says "
        f"{row['encoding']} in {row['segments']}: {message['body']!r}"
    )


_ERROR_BAD_KEY = {
    "code": 2,
    "description": "Request not allowed (incorrect access_key)",
    "parameter": "access_key",
}
_ERROR_NO_RECIPIENTS = {
    "code": 9,
    "description": "no (correct) recipients found",
    "parameter": "recipients",
}
_ERROR_NOT_FOUND = {"code": 20, "description": "Not found", "parameter": None}
_ERROR_BAD_REQUEST = {"code": 21, "description": "Bad request", "parameter": None}


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _rfc3339(at: datetime) -> str:
    """A time the way MessageBird writes it: ``2024-05-03T14:26:57+00:00``."""
    return at.astimezone(UTC).replace(microsecond=0).isoformat()


def _now_rfc3339() -> str:
    return _rfc3339(_wall_clock())


def _normalise_recipients(value: Any) -> list[str] | None:
    """Recipients as a list of digit strings, or None when MessageBird would refuse them."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list):
        items = value
    else:
        return None
    result: list[str] = []
    for item in items:
        if isinstance(item, bool):
            return None
        if isinstance(item, int):
            item = str(item)
        if not isinstance(item, str):
            return None
        item = item.strip()
        if not item or not item.isascii() or not item.isdigit():
            return None
        result.append(item)
    return result or None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeMessageBird

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Never print tracebacks to stderr. Broken connections (a client that timed out and went
        # away) are normal here; anything else is kept for inspection via server_errors.
        self.fake._record_server_error(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "FakeMessageBird/1.0"
    protocol_version = "HTTP/1.0"

    # --- plumbing -------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        try:
            self.fake._handle(self)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            pass
        except Exception:
            self.fake._record_server_error(traceback.format_exc())
            with contextlib.suppress(OSError):
                self.send_plain(500, "fake MessageBird server error")

    @property
    def fake(self) -> FakeMessageBird:
        return self.server.fake

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send_json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), "application/json")

    def send_errors(self, status: int, *errors: dict[str, Any]) -> None:
        self.send_json(status, {"errors": [dict(e) for e in errors]})

    def send_plain(self, status: int, text: str) -> None:
        self._send(status, text.encode("utf-8"), "text/plain; charset=utf-8")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


class FakeMessageBird:
    """A local MessageBird REST SMS API, in a daemon thread. Also a context manager."""

    def __init__(self, access_key: str = "test_key", host: str = "127.0.0.1", port: int = 0):
        self.access_key = access_key
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None
        self._messages: list[dict[str, Any]] = []
        self._requests: list[dict[str, Any]] = []
        self._resources: dict[str, dict[str, Any]] = {}
        self._server_errors: list[str] = []
        self._fail_queue: list[int] = []
        self._delay_queue: list[float] = []
        self._drop_queue: list[bool] = []
        self._lookup_fail_queue: list[int] = []
        self._rejected: set[str] = set()
        # What "now" is for createdDatetime (and the list's from/until); tests on a manual
        # clock set it to theirs.
        self.clock: Callable[[], datetime] = _wall_clock

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeMessageBird:
        if self._server is not None:
            raise RuntimeError("FakeMessageBird is already running")
        self._stopping.clear()
        server = _Server((self.host, self.port), _Handler)
        server.fake = self
        self._server = server
        bound_host, bound_port = server.server_address[:2]
        if isinstance(bound_host, bytes):
            bound_host = bound_host.decode()
        self._base_url = f"http://{bound_host}:{bound_port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeMessageBird:{bound_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a delay; they close without answering
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeMessageBird:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://host:port`` without a trailing slash. Only valid after :meth:`start`."""
        if self._base_url is None:
            raise RuntimeError("FakeMessageBird.base_url is only known after start()")
        return self._base_url

    # --- inspection -----------------------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Accepted messages: the request JSON plus ``id`` and ``recipients_list`` (a copy)."""
        with self._lock:
            return copy.deepcopy(self._messages)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request received, failed ones included (a copy).

        Each entry: ``method``, ``path`` (without query), ``query`` (dict of lists),
        ``headers`` (dict), ``json`` (parsed body or None) and ``status`` (the status answered,
        None while a delayed answer is still pending).
        """
        with self._lock:
            return copy.deepcopy(self._requests)

    @property
    def server_errors(self) -> list[str]:
        """Tracebacks of unexpected exceptions inside the fake (should stay empty)."""
        with self._lock:
            return list(self._server_errors)

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least ``count`` accepted messages exist; AssertionError otherwise."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._messages) >= count, timeout=timeout)
            got = copy.deepcopy(self._messages)
        if len(got) < count:
            raise AssertionError(
                f"expected at least {count} accepted MessageBird message(s) within {timeout}s, "
                f"got {len(got)}: {got!r}"
            )
        return got

    # --- behaviour control ----------------------------------------------------------------

    def fail_next(self, n: int = 1, *, status: int = 500) -> None:
        """The next ``n`` ``POST /messages`` answer ``status`` and record no message.

        401 -> errors JSON code 2; 422 -> errors JSON code 9 (recipients); any other status
        (500/502/503/...) -> a plain-text body, so the SDK raises ``requests.HTTPError``.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        with self._lock:
            self._fail_queue.extend([status] * n)

    def delay_next(self, n: int = 1, *, seconds: float) -> None:
        """The next ``n`` ``POST /messages`` wait ``seconds`` before answering.

        A valid message is recorded as accepted before the wait (an ambiguous timeout for the
        client). :meth:`stop` cuts the wait short and closes the connection without answering.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._lock:
            self._delay_queue.extend([float(seconds)] * n)

    def drop_next(self, n: int = 1) -> None:
        """The next ``n`` ``POST /messages`` are taken (recorded, when valid) and then the
        connection is closed without an answer: the sender cannot know what happened."""
        if n < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            self._drop_queue.extend([True] * n)

    def fail_lookups(self, n: int = 1, *, status: int = 500) -> None:
        """The next ``n`` ``GET /messages`` (lists) answer ``status`` with a plain body."""
        if n < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            self._lookup_fail_queue.extend([status] * n)

    def reject_recipient(self, msisdn_digits: str) -> None:
        """Any message including this recipient gets 422 code 9 (a permanent failure)."""
        digits = str(msisdn_digits).strip().removeprefix("+")
        if not digits.isascii() or not digits.isdigit():
            raise ValueError(f"not an MSISDN in digits: {msisdn_digits!r}")
        with self._lock:
            self._rejected.add(digits)

    def clear_injections(self) -> None:
        """Forget the failures, delays and drops not consumed yet; keep everything else."""
        with self._lock:
            self._fail_queue.clear()
            self._delay_queue.clear()
            self._drop_queue.clear()
            self._lookup_fail_queue.clear()

    def reset(self) -> None:
        """Forget messages, requests, pending failures/delays and rejected recipients."""
        with self._lock:
            self._messages.clear()
            self._requests.clear()
            self._resources.clear()
            self._server_errors.clear()
            self._fail_queue.clear()
            self._delay_queue.clear()
            self._drop_queue.clear()
            self._lookup_fail_queue.clear()
            self._rejected.clear()
            self._changed.notify_all()

    # --- delivery reports -----------------------------------------------------------------

    def send_report(
        self,
        message: dict[str, Any],
        status: str = "delivered",
        *,
        status_datetime: str | None = None,
        method: str = "GET",
        recipient: str | None = None,
    ) -> int:
        """Call the message's ``reportUrl`` like MessageBird does; return the HTTP status.

        GET (default) sends query parameters, POST the same as form fields: ``id``,
        ``reference``, ``recipient``, ``status``, ``statusDatetime`` (RFC3339 UTC), ``mccmnc``,
        ``ported``, ``price[amount]``, ``price[currency]``. ``recipient`` defaults to the
        message's first recipient. ValueError if the message had no reportUrl or reference.
        """
        report_url = message.get("reportUrl")
        reference = message.get("reference")
        if not report_url:
            raise ValueError("the message has no reportUrl; MessageBird would not report it")
        if reference is None or str(reference) == "":
            raise ValueError("the message has no reference; MessageBird would not report it")
        if "id" not in message:
            raise ValueError("the message has no id (use an entry of FakeMessageBird.messages)")
        if recipient is None:
            recipients = message.get("recipients_list") or _normalise_recipients(
                message.get("recipients")
            )
            if not recipients:
                raise ValueError("the message has no recipients")
            recipient = recipients[0]
        params = {
            "id": str(message["id"]),
            "reference": str(reference),
            "recipient": str(recipient),
            "status": status,
            "statusDatetime": status_datetime or _now_rfc3339(),
            "mccmnc": "20408",
            "ported": "0",
            "price[amount]": "0.07",
            "price[currency]": "EUR",
        }
        verb = method.upper()
        if verb == "GET":
            response = requests.get(report_url, params=params, timeout=10)
        elif verb == "POST":
            response = requests.post(report_url, data=params, timeout=10)
        else:
            raise ValueError(f"MessageBird reports with GET or POST, not {method!r}")
        return response.status_code

    # --- server side (called from handler threads) ----------------------------------------

    def _record_server_error(self, text: str) -> None:
        if "BrokenPipeError" in text or "ConnectionResetError" in text:
            return
        with self._lock:
            self._server_errors.append(text)

    def _handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        path = split.path
        raw = h.read_body()
        content_type = (h.headers.get("Content-Type") or "").lower()
        body_json: Any = None
        body_is_valid = True
        form: dict[str, Any] | None = None
        if raw:
            if content_type.startswith("application/x-www-form-urlencoded"):
                parsed = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
                form = {k: v[-1] for k, v in parsed.items()}
            else:
                try:
                    body_json = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    body_is_valid = False
        entry: dict[str, Any] = {
            "method": h.command,
            "path": path,
            "query": parse_qs(split.query, keep_blank_values=True),
            "headers": dict(h.headers.items()),
            "json": body_json,
            "status": None,
        }
        with self._lock:
            self._requests.append(entry)
            self._changed.notify_all()

        def answer(status: int, send: Any, *args: Any) -> None:
            with self._lock:
                entry["status"] = status
            send(status, *args)

        segments = [s for s in path.split("/") if s]
        if segments == ["messages"] and h.command == "GET":
            self._list_messages(h, entry, answer)
            return
        if segments == ["messages"]:
            if h.command != "POST":
                error = {"code": 21, "description": "Method not allowed", "parameter": None}
                answer(405, h.send_errors, error)
                return
            payload = form if form is not None else body_json
            self._create_message(h, entry, payload, body_is_valid, answer)
            return
        if len(segments) == 2 and segments[0] == "messages" and h.command == "GET":
            if not self._authorised(h):
                answer(401, h.send_errors, _ERROR_BAD_KEY)
                return
            with self._lock:
                resource = copy.deepcopy(self._resources.get(segments[1]))
            if resource is None:
                answer(404, h.send_errors, _ERROR_NOT_FOUND)
            else:
                answer(200, h.send_json, resource)
            return
        answer(404, h.send_errors, _ERROR_NOT_FOUND)

    def _list_messages(self, h: _Handler, entry: dict[str, Any], answer: Any) -> None:
        if not self._authorised(h):
            answer(401, h.send_errors, _ERROR_BAD_KEY)
            return
        with self._lock:
            fail_status = self._lookup_fail_queue.pop(0) if self._lookup_fail_queue else None
        if fail_status is not None:
            status, send, args = self._injected_failure(h, fail_status)
            answer(status, send, *args)
            return
        query = {k: v[-1] for k, v in entry["query"].items()}
        try:
            limit = int(query.get("limit", 20))
            offset = int(query.get("offset", 0))
            since = datetime.fromisoformat(query["from"]) if "from" in query else None
            until = datetime.fromisoformat(query["until"]) if "until" in query else None
            if not 1 <= limit <= 200 or offset < 0:
                raise ValueError("limit or offset")
        except ValueError:
            answer(422, h.send_errors, {"code": 9, "description": "bad filter", "parameter": None})
            return
        with self._lock:
            resources = copy.deepcopy(list(self._resources.values()))

        def matches(resource: dict[str, Any]) -> bool:
            created = datetime.fromisoformat(resource["createdDatetime"])
            items = resource["recipients"]["items"]
            return (
                query.get("direction", "mt") == "mt"
                and query.get("originator", resource["originator"]) == resource["originator"]
                and query.get("type", resource["type"]) == resource["type"]
                and "contact_id" not in query
                and query.get("searchterm", "") in resource["body"]
                and (
                    "recipient" not in query
                    or any(str(i["recipient"]) == query["recipient"] for i in items)
                )
                and ("status" not in query or any(i["status"] == query["status"] for i in items))
                and (since is None or created >= since)
                and (until is None or created <= until)
            )

        found = [r for r in reversed(resources) if matches(r)]
        page = found[offset : offset + limit]
        answer(
            200,
            h.send_json,
            {
                "offset": offset,
                "limit": limit,
                "count": len(page),
                "totalCount": len(found),
                "links": {"first": None, "previous": None, "next": None, "last": None},
                "items": page,
            },
        )

    def _authorised(self, h: _Handler) -> bool:
        return h.headers.get("Authorization", "") == f"AccessKey {self.access_key}"

    def _create_message(
        self,
        h: _Handler,
        entry: dict[str, Any],
        payload: Any,
        body_is_valid: bool,
        answer: Any,
    ) -> None:
        with self._lock:
            fail_status = self._fail_queue.pop(0) if self._fail_queue else None
            delay = self._delay_queue.pop(0) if self._delay_queue else 0.0
            drop = self._drop_queue.pop(0) if self._drop_queue else False

        outcome: tuple[int, Any, tuple[Any, ...]]
        accepted: dict[str, Any] | None = None
        if fail_status is not None:
            outcome = self._injected_failure(h, fail_status)
        elif not self._authorised(h):
            outcome = (401, h.send_errors, (_ERROR_BAD_KEY,))
        elif not body_is_valid or not isinstance(payload, dict):
            outcome = (400, h.send_errors, (_ERROR_BAD_REQUEST,))
        else:
            errors, recipients = self._validate(payload)
            if errors:
                outcome = (422, h.send_errors, tuple(errors))
            else:
                assert recipients is not None
                message_id = secrets.token_hex(16)
                resource = self._resource(message_id, payload, recipients)
                accepted = dict(payload)
                accepted["id"] = message_id
                accepted["recipients_list"] = list(recipients)
                accepted["datacoding"] = payload.get("datacoding") or "plain"
                accepted["validity"] = payload.get("validity")
                accepted["encoding"], accepted["parts"] = carriage(
                    payload["body"], accepted["datacoding"]
                )
                outcome = (201, h.send_json, (resource,))
                with self._lock:
                    self._messages.append(accepted)
                    self._resources[message_id] = resource
                    self._changed.notify_all()

        if delay > 0 and self._stopping.wait(delay):
            return  # stopped while "processing": close the connection without an answer
        if drop:
            return  # the answer is lost: the connection closes without one
        status, send, args = outcome
        answer(status, send, *args)

    def _injected_failure(self, h: _Handler, status: int) -> tuple[int, Any, tuple[Any, ...]]:
        if status == 401:
            return (401, h.send_errors, (_ERROR_BAD_KEY,))
        if status == 422:
            return (422, h.send_errors, (_ERROR_NO_RECIPIENTS,))
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Error"
        return (status, h.send_plain, (f"{status} {reason}",))

    def _validate(self, payload: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str] | None]:
        errors: list[dict[str, Any]] = []
        recipients = _normalise_recipients(payload.get("recipients"))
        if recipients is None:
            errors.append(dict(_ERROR_NO_RECIPIENTS))
        else:
            with self._lock:
                rejected = [r for r in recipients if r in self._rejected]
            if rejected:
                errors.append(dict(_ERROR_NO_RECIPIENTS))
        originator = payload.get("originator")
        if originator is None or str(originator).strip() == "":
            errors.append(
                {"code": 9, "description": "originator is required", "parameter": "originator"}
            )
        body = payload.get("body")
        if not isinstance(body, str) or body == "":
            errors.append({"code": 9, "description": "body is required", "parameter": "body"})
        datacoding = payload.get("datacoding")
        if datacoding is not None and datacoding not in _VALID_DATACODINGS:
            errors.append(
                {"code": 9, "description": "datacoding is invalid", "parameter": "datacoding"}
            )
        validity = payload.get("validity")
        if validity is not None and (
            isinstance(validity, bool) or not isinstance(validity, int) or validity < 1
        ):
            errors.append(
                {"code": 9, "description": "validity is invalid", "parameter": "validity"}
            )
        return errors, recipients

    def _resource(
        self, message_id: str, payload: dict[str, Any], recipients: list[str]
    ) -> dict[str, Any]:
        now = _rfc3339(self.clock())
        scheduled = payload.get("scheduledDatetime") or None
        recipient_status = "scheduled" if scheduled else "sent"
        _, parts = carriage(payload["body"], payload.get("datacoding") or "plain")
        return {
            "id": message_id,
            "href": f"{self.base_url}/messages/{message_id}",
            "direction": "mt",
            "type": payload.get("type") or "sms",
            "originator": str(payload["originator"]),
            "body": payload["body"],
            "reference": payload.get("reference"),
            "validity": payload.get("validity"),
            "gateway": payload.get("gateway", 10),
            "typeDetails": payload.get("typeDetails") or {},
            "datacoding": payload.get("datacoding") or "plain",
            "mclass": payload.get("mclass", 1),
            "scheduledDatetime": scheduled,
            "createdDatetime": now,
            "recipients": {
                "totalCount": len(recipients),
                "totalSentCount": 0 if scheduled else len(recipients),
                "totalDeliveredCount": 0,
                "totalDeliveryFailedCount": 0,
                "items": [
                    {
                        "recipient": int(r),
                        "status": recipient_status,
                        "statusDatetime": now,
                        "messagePartCount": parts,
                    }
                    for r in recipients
                ],
            },
        }
