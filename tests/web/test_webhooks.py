"""MessageBird's delivery reports arriving over HTTP, signed and unsigned."""

from __future__ import annotations

import hashlib
import time

import jwt
import pytest

from portal.db.tables import SmsMessage
from portal.services import messaging
from tests.web.helpers import create_order

SIGNING_KEY = "mb-signing-key-for-the-tests-32-bytes+"
STATUS_PATH = "/webhooks/messagebird/status"


@pytest.fixture
async def sent(client, auth, rt, fake_mb):
    await create_order(client, auth)
    await messaging.dispatch_due(rt)
    row = await SmsMessage.select().first()
    return row, fake_mb.messages[0]


def report_params(row, msg, status="delivered"):
    return {
        "id": msg["id"],
        "reference": str(row["id"]),
        "recipient": "393471234567",
        "status": status,
        "statusDatetime": "2026-11-23T09:31:00+00:00",
    }


async def current_status(row) -> str:
    return (await SmsMessage.select(SmsMessage.status).where(SmsMessage.id == row["id"]).first())[
        "status"
    ]


async def test_a_get_delivery_report_marks_the_sms_delivered(client, sent):
    row, msg = sent
    response = await client.get(STATUS_PATH, params=report_params(row, msg))
    assert response.status_code == 200
    assert await current_status(row) == "delivered"


async def test_a_posted_form_report_works_too_and_a_replay_is_harmless(client, sent):
    row, msg = sent
    for _ in range(3):
        response = await client.post(STATUS_PATH, data=report_params(row, msg, "delivery_failed"))
        assert response.status_code == 200
    assert await current_status(row) == "failed"
    late = await client.get(STATUS_PATH, params=report_params(row, msg, "delivered"))
    assert late.status_code == 200
    assert await current_status(row) == "failed"


async def test_reports_about_nothing_we_sent_are_acknowledged_and_ignored(client):
    response = await client.get(STATUS_PATH, params={"reference": "424242", "status": "delivered"})
    assert response.status_code == 200
    assert response.json() == {"result": "unknown"}
    empty = await client.get(STATUS_PATH)
    assert empty.status_code == 200


def sign(url: str, body: bytes = b"", key: str = SIGNING_KEY, **overrides) -> str:
    now = int(time.time())
    claims = {
        "iss": "MessageBird",
        "nbf": now - 1,
        "exp": now + 60,
        "jti": "j1",
        "url_hash": hashlib.sha256(url.encode()).hexdigest(),
    }
    if body:
        claims["payload_hash"] = hashlib.sha256(body).hexdigest()
    claims.update(overrides)
    return jwt.encode(claims, key, algorithm="HS256")


@pytest.fixture
def signed_app(rt):
    # The signing key is set: unsigned or badly signed calls are refused.
    from dataclasses import replace

    rt.settings = replace(rt.settings, messagebird_signing_key=SIGNING_KEY)
    return rt


async def test_with_a_signing_key_a_correctly_signed_report_is_accepted(client, sent, signed_app):
    row, msg = sent
    params = report_params(row, msg)
    query = "&".join(f"{k}={v}" for k, v in params.items()).replace("+", "%2B")
    url = f"http://portal.test{STATUS_PATH}?{query}"
    response = await client.get(
        f"{STATUS_PATH}?{query}", headers={"MessageBird-Signature-JWT": sign(url)}
    )
    assert response.status_code == 200, response.text
    assert await current_status(row) == "delivered"


async def test_with_a_signing_key_unsigned_forged_or_altered_reports_get_401(
    client, sent, signed_app
):
    row, _msg = sent
    query = f"reference={row['id']}&status=delivered&recipient=393471234567"
    url = f"http://portal.test{STATUS_PATH}?{query}"
    attempts = [
        {},
        {"MessageBird-Signature-JWT": "not-a-jwt"},
        {"MessageBird-Signature-JWT": sign(url, key="someone-else-with-a-key-of-32-bytes")},
        {"MessageBird-Signature-JWT": sign(url.replace("delivered", "sent"))},
        {"MessageBird-Signature-JWT": sign(url, iss="Mallory")},
        {"MessageBird-Signature-JWT": sign(url, exp=int(time.time()) - 120)},
    ]
    for headers in attempts:
        response = await client.get(f"{STATUS_PATH}?{query}", headers=headers)
        assert response.status_code == 401, headers
        assert "Signature" in response.json()["detail"]
    assert await current_status(row) == "sent"


async def test_a_signed_post_covers_its_body(client, sent, signed_app):
    row, msg = sent
    body = (
        "&".join(f"{k}={v}" for k, v in report_params(row, msg).items())
        .replace("+", "%2B")
        .encode()
    )
    url = f"http://portal.test{STATUS_PATH}"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    tampered = body.replace(b"delivered", b"expired")
    bad = await client.post(
        STATUS_PATH,
        content=tampered,
        headers={**headers, "MessageBird-Signature-JWT": sign(url, body)},
    )
    assert bad.status_code == 401
    good = await client.post(
        STATUS_PATH, content=body, headers={**headers, "MessageBird-Signature-JWT": sign(url, body)}
    )
    assert good.status_code == 200
    assert await current_status(row) == "delivered"
