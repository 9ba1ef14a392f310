"""The fake MessageBird server speaks well enough for the REAL messagebird SDK to use it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from messagebird.client import USER_AGENT, Client, ErrorException
from messagebird.http_client import HttpClient, ResponseFormat
from messagebird.message import Message
from messagebird.serde import json_serialize

from portal.sms.gateway import Lookup, TransientError
from portal.sms.messagebird import MessageBirdGateway
from tests.fakes.messagebird_server import FakeMessageBird

KEY = "test_key"
RECIPIENT = "31612345678"


class _TimeoutHttpClient(HttpClient):
    """Like the app's client: the SDK's HttpClient, but POSTs with a short timeout."""

    def request(self, path, method="GET", params=None, format=ResponseFormat.text):
        if method != "POST":
            return super().request(path, method, params, format)
        response = requests.post(
            urljoin(self.endpoint, path),
            headers={
                "Accept": "application/json",
                "Authorization": "AccessKey " + self.access_key,
                "User-Agent": self.user_agent,
                "Content-Type": "application/json; charset=UTF-8",
            },
            data=json_serialize(params),
            timeout=0.2,
        )
        if response.status_code not in (200, 201, 204, 401, 404, 405, 422):
            response.raise_for_status()
        return response.text


@pytest.fixture
def fake() -> Iterator[FakeMessageBird]:
    with FakeMessageBird(access_key=KEY) as server:
        yield server
        assert server.server_errors == []


def sdk_client(fake: FakeMessageBird, key: str = KEY) -> Client:
    return Client(key, http_client=HttpClient(fake.base_url + "/", key, USER_AGENT))


@pytest.fixture
def report_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def _ok(self, params: dict[str, list[str]]) -> None:
            received.append(
                {
                    "method": self.command,
                    "path": urlsplit(self.path).path,
                    "params": {k: v[-1] for k, v in params.items()},
                }
            )
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        def do_GET(self) -> None:
            self._ok(parse_qs(urlsplit(self.path).query))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._ok(parse_qs(self.rfile.read(length).decode()))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}/sms/report", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_created_message_comes_back_as_an_sdk_message_with_the_fake_id(
    fake: FakeMessageBird,
) -> None:
    params = {"reference": "42", "reportUrl": "http://127.0.0.1:9/report"}

    message = sdk_client(fake).message_create("Portal", RECIPIENT, "Your order shipped", params)

    assert isinstance(message, Message)
    [recorded] = fake.messages
    assert len(recorded["id"]) == 32 and int(recorded["id"], 16) >= 0
    assert message.id == recorded["id"]
    assert message.href == f"{fake.base_url}/messages/{recorded['id']}"
    assert (message.direction, message.type, message.reference) == ("mt", "sms", "42")
    assert (message.originator, message.body, message.datacoding) == (
        "Portal",
        "Your order shipped",
        "plain",
    )
    assert message.createdDatetime is not None
    assert message.recipients["totalCount"] == 1
    item = message.recipients["items"][0]
    assert (item.recipient, item.status) == (int(RECIPIENT), "sent")
    assert item.statusDatetime is not None
    assert recorded["recipients_list"] == [RECIPIENT]
    assert recorded["reportUrl"] == params["reportUrl"]
    assert fake.requests[0]["headers"]["Authorization"] == f"AccessKey {KEY}"
    assert fake.requests[0]["status"] == 201


def test_an_injected_503_makes_the_sdk_raise_http_error_and_records_nothing(
    fake: FakeMessageBird,
) -> None:
    fake.fail_next(status=503)

    with pytest.raises(requests.HTTPError):
        sdk_client(fake).message_create("Portal", RECIPIENT, "Hello")

    assert fake.messages == []
    assert [r["status"] for r in fake.requests] == [503]
    sdk_client(fake).message_create("Portal", RECIPIENT, "Hello again")
    assert len(fake.messages) == 1


def test_an_injected_422_makes_the_sdk_raise_error_exception_with_code_9(
    fake: FakeMessageBird,
) -> None:
    fake.fail_next(status=422)

    with pytest.raises(ErrorException) as raised:
        sdk_client(fake).message_create("Portal", RECIPIENT, "Hello")

    assert raised.value.errors[0].code == 9
    assert raised.value.errors[0].parameter == "recipients"
    assert fake.messages == []


def test_a_rejected_recipient_is_a_permanent_422(fake: FakeMessageBird) -> None:
    fake.reject_recipient("+31600000000")

    for _ in range(2):
        with pytest.raises(ErrorException) as raised:
            sdk_client(fake).message_create("Portal", ["31600000000"], "Hello")
        assert raised.value.errors[0].code == 9

    assert fake.messages == []


@pytest.mark.parametrize(
    ("recipients", "originator", "body", "parameter"),
    [
        ("+31612345678", "Portal", "Hi", "recipients"),
        ("", "Portal", "Hi", "recipients"),
        (RECIPIENT, None, "Hi", "originator"),
        (RECIPIENT, "Portal", "", "body"),
    ],
)
def test_invalid_bodies_are_refused_like_messagebird_does(
    fake: FakeMessageBird, recipients: str, originator: str | None, body: str, parameter: str
) -> None:
    with pytest.raises(ErrorException) as raised:
        sdk_client(fake).message_create(originator, recipients, body)

    assert [(e.code, e.parameter) for e in raised.value.errors] == [(9, parameter)]
    assert fake.messages == []


def test_a_wrong_access_key_makes_the_sdk_raise_error_exception_with_code_2(
    fake: FakeMessageBird,
) -> None:
    with pytest.raises(ErrorException) as raised:
        sdk_client(fake, key="wrong_key").message_create("Portal", RECIPIENT, "Hello")

    assert raised.value.errors[0].code == 2
    assert fake.messages == []
    assert fake.requests[0]["status"] == 401


def test_a_late_answer_times_out_the_client_yet_the_message_was_accepted(
    fake: FakeMessageBird,
) -> None:
    fake.delay_next(seconds=1.0)
    client = Client(KEY, http_client=_TimeoutHttpClient(fake.base_url + "/", KEY, USER_AGENT))

    with pytest.raises(requests.Timeout):
        client.message_create("Portal", RECIPIENT, "Hello", {"reference": "7"})

    [recorded] = fake.wait_for_messages(1, timeout=0.5)
    assert recorded["reference"] == "7"
    assert client.message_create("Portal", RECIPIENT, "Hello").id != recorded["id"]


def test_waiting_for_messages_that_never_come_fails_with_what_it_has(
    fake: FakeMessageBird,
) -> None:
    sdk_client(fake).message_create("Portal", RECIPIENT, "only one")

    with pytest.raises(AssertionError, match="got 1"):
        fake.wait_for_messages(2, timeout=0.1)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_status_report_reaches_the_report_url_with_messagebirds_parameters(
    fake: FakeMessageBird, report_receiver: tuple[str, list[dict[str, Any]]], method: str
) -> None:
    report_url, received = report_receiver
    sdk_client(fake).message_create(
        "Portal", RECIPIENT, "Hello", {"reference": "42", "reportUrl": report_url}
    )
    [message] = fake.messages

    status = fake.send_report(
        message, "delivered", status_datetime="2024-05-03T14:26:57+00:00", method=method
    )

    assert status == 200
    [report] = received
    assert (report["method"], report["path"]) == (method, "/sms/report")
    assert report["params"] == {
        "id": message["id"],
        "reference": "42",
        "recipient": RECIPIENT,
        "status": "delivered",
        "statusDatetime": "2024-05-03T14:26:57+00:00",
        "mccmnc": "20408",
        "ported": "0",
        "price[amount]": "0.07",
        "price[currency]": "EUR",
    }


def test_a_report_needs_a_report_url_and_a_reference(fake: FakeMessageBird) -> None:
    sdk_client(fake).message_create("Portal", RECIPIENT, "Hello", {"reference": "42"})

    with pytest.raises(ValueError, match="reportUrl"):
        fake.send_report(fake.messages[0])


def test_unknown_paths_answer_404_with_errors_json(fake: FakeMessageBird) -> None:
    response = requests.get(f"{fake.base_url}/nope", timeout=2)

    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == 20


def test_reset_forgets_messages_requests_and_pending_failures(fake: FakeMessageBird) -> None:
    sdk_client(fake).message_create("Portal", RECIPIENT, "Hello")
    fake.fail_next(3, status=502)

    fake.reset()

    assert fake.messages == [] and fake.requests == []
    sdk_client(fake).message_create("Portal", RECIPIENT, "Hello")
    assert len(fake.messages) == 1


# ----------------------------------------------------------------- listing with filters


def test_the_list_answers_messagebirds_filters_through_the_sdk(fake: FakeMessageBird) -> None:
    moments = iter(datetime(2026, 12, 2, 10, m, tzinfo=UTC) for m in (0, 5, 10))
    fake.clock = lambda: next(moments)
    client = sdk_client(fake)
    for recipient, reference in (("31600000001", "1"), ("31600000002", "2"), ("31600000001", "3")):
        client.message_create("Portal", recipient, f"hello {reference}", {"reference": reference})

    def listed(**params: Any) -> list[str]:
        answer = client.request("messages", "GET", params)
        assert answer["count"] == len(answer["items"]) <= answer["totalCount"]
        return [item["reference"] for item in answer["items"]]

    assert listed() == ["3", "2", "1"]  # newest first
    assert listed(recipient="31600000001") == ["3", "1"]
    assert listed(recipient="31600000001", until="2026-12-02T10:05:00+00:00") == ["1"]
    assert listed(**{"from": "2026-12-02T10:05:00+00:00"}) == ["3", "2"]
    assert listed(direction="mo") == []
    assert listed(searchterm="hello 2") == ["2"]
    assert listed(limit=1, offset=1) == ["2"]
    assert listed(status="sent", originator="Portal") == ["3", "2", "1"]
    with pytest.raises(ErrorException):
        listed(limit=0)
    fake.fail_lookups(1, status=503)
    with pytest.raises(requests.HTTPError):
        listed()


async def test_the_gateway_finds_a_text_by_reference_recipient_and_time(
    fake: FakeMessageBird,
) -> None:
    now = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    fake.clock = lambda: now
    gateway = MessageBirdGateway(
        KEY, endpoint=fake.base_url, originator="Portal", report_url="http://x/r", timeout=2
    )
    client = sdk_client(fake)
    for reference in ("7", "8"):
        client.message_create("Portal", "31600000001", "hi", {"reference": reference})
    window = {"since": now - timedelta(minutes=5), "until": now + timedelta(minutes=5)}
    found = await gateway.find(Lookup("8", "+31600000001", **window))
    assert found is not None and found.gateway_id == fake.messages[1]["id"]
    assert found.status == "sent"
    assert await gateway.find(Lookup("9", "+31600000001", **window)) is None
    assert await gateway.find(Lookup("8", "+31600000002", **window)) is None
    later = {"since": now + timedelta(hours=1), "until": now + timedelta(hours=2)}
    assert await gateway.find(Lookup("8", "+31600000001", **later)) is None
    fake.fail_lookups(1, status=500)
    with pytest.raises(TransientError):
        await gateway.find(Lookup("8", "+31600000001", **window))
