"""MessageBird's delivery reports arriving over HTTP, signed and unsigned."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from urllib.parse import urlencode

import jwt
import pytest

from portal.db.tables import Customer, SmsMessage
from portal.services import messaging
from portal.settings import Settings, SettingsError
from tests.conftest import ROOT
from tests.web.helpers import create_order

SIGNING_KEY = "mb-signing-key-for-the-tests-32-bytes+"
STATUS_PATH = "/webhooks/messagebird/status"
INBOUND_PATH = "/webhooks/messagebird/inbound"


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
    claims = {k: v for k, v in claims.items() if v is not None}  # url_hash=None: left out
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


# Edge values in signed reports: the webhook rule of the contract (200, what can be applied
# applied, the rest logged once), never a 500.


async def status_at(row):
    found = await SmsMessage.select(SmsMessage.status_at).where(SmsMessage.id == row["id"]).first()
    return found["status_at"]


async def signed_get(client, params: dict[str, str], **claims):
    query = urlencode(params)
    url = f"http://portal.test{STATUS_PATH}?{query}"
    return await client.get(
        f"{STATUS_PATH}?{query}", headers={"MessageBird-Signature-JWT": sign(url, **claims)}
    )


async def test_signed_reports_with_edge_values_are_answered_200_and_applied_where_they_can_be(
    client, sent, signed_app, clock, caplog
):
    row, msg = sent
    # A reference beyond PostgreSQL's integer, or digits that are not ASCII: not ours.
    for reference in (str(2**31), "9" * 30, "²", "١٢"):
        response = await signed_get(client, {**report_params(row, msg), "reference": reference})
        assert response.status_code == 200, response.text
        assert response.json() == {"result": "unknown"}
    # Garbage everywhere else: nothing to apply, still 200.
    garbage = {"reference": str(row["id"]), "status": "\x00??", "statusDatetime": "soon"}
    response = await signed_get(client, {**garbage, "recipient": "x" * 500, "id": "\x01"})
    assert response.status_code == 200, response.text
    assert await current_status(row) == "sent"
    # Year 9999 (behind UTC, so past what a datetime holds): the status is applied, the time
    # is the portal's own; and the unusable field is logged once, by name only.
    caplog.clear()
    edge = {**report_params(row, msg), "statusDatetime": "9999-12-31T23:59:59-05:00"}
    response = await signed_get(client, edge)
    assert response.status_code == 200, response.text
    assert response.json() == {"result": "updated"}
    assert await current_status(row) == "delivered"
    assert await status_at(row) == clock.now()
    warnings = [r.getMessage() for r in caplog.records if "unusable" in r.getMessage()]
    assert warnings == ["delivery report: unusable statusDatetime left out"]


async def test_a_signature_without_url_hash_covers_the_body_only(client, sent, signed_app):
    row, msg = sent
    # A GET: the query is not covered, so nothing is taken from it.
    response = await signed_get(client, report_params(row, msg), url_hash=None)
    assert response.status_code == 200, response.text
    assert response.json() == {"result": "unknown"}
    assert await current_status(row) == "sent"
    # A POST: its body is covered by payload_hash, and applied; a forged query is not.
    body = urlencode(report_params(row, msg)).encode()
    url = f"http://portal.test{STATUS_PATH}"
    response = await client.post(
        f"{STATUS_PATH}?status=delivery_failed",
        content=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "MessageBird-Signature-JWT": sign(url, body, url_hash=None),
        },
    )
    assert response.status_code == 200, response.text
    assert await current_status(row) == "delivered"


# PORTAL_MESSAGEBIRD_WEBHOOKS=off: both routes are gone, and nothing a caller sends counts.


async def test_with_webhooks_off_both_routes_answer_404_and_change_nothing(client, sent, rt):
    from dataclasses import replace

    row, msg = sent
    rt.settings = replace(rt.settings, messagebird_webhooks=False)
    assert (await client.get(STATUS_PATH, params=report_params(row, msg))).status_code == 404
    assert (await client.post(STATUS_PATH, data=report_params(row, msg))).status_code == 404
    stop = {"id": "in-1", "originator": "393471234567", "body": "STOP"}
    assert (await client.post(INBOUND_PATH, data=stop)).status_code == 404
    assert await current_status(row) == "sent"
    assert await Customer.select(Customer.sms_opt_out_at).first() == {"sms_opt_out_at": None}


PRODUCTION = {
    "PORTAL_ENV": "production",
    "PORTAL_SECRET_KEY": "k" * 40,
    "PORTAL_BASE_URL": "https://shop.example",
}


def test_production_without_a_signing_key_refuses_to_start_unless_webhooks_are_off():
    with pytest.raises(SettingsError, match="MESSAGEBIRD_SIGNING_KEY"):
        Settings.from_env(PRODUCTION)
    assert Settings.from_env({**PRODUCTION, "MESSAGEBIRD_SIGNING_KEY": SIGNING_KEY})
    off = Settings.from_env({**PRODUCTION, "PORTAL_MESSAGEBIRD_WEBHOOKS": "OFF"})
    assert off.messagebird_webhooks is False
    with pytest.raises(SettingsError, match="PORTAL_MESSAGEBIRD_WEBHOOKS must be on or off"):
        Settings.from_env({**PRODUCTION, "PORTAL_MESSAGEBIRD_WEBHOOKS": "no"})


@pytest.mark.parametrize(
    "command", [["-m", "portal", "serve", "--port", "0"], ["-m", "scheduler"]], ids=str
)
def test_both_commands_exit_2_naming_the_signing_key(tmp_path, command):
    done = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env={
            **os.environ,
            **PRODUCTION,
            "PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
            "MESSAGEBIRD_SIGNING_KEY": "",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("configuration error: MESSAGEBIRD_SIGNING_KEY must be set")
