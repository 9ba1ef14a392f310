"""What an operator and a newcomer use: health, metrics, the dev inbox, the commands."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import httpx
import pytest

from portal.app import create_app
from portal.db.tables import SmsMessage
from portal.demo import DEMO_ORDERS
from portal.services import messaging
from portal.settings import Settings, SettingsError
from scheduler.jobs import build_scheduler, dispatch_outbox
from tests.conftest import BASE_URL, ROOT, TEST_SECRET
from tests.web.helpers import create_order


async def test_health_and_readiness_answer(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}


async def test_metrics_count_sms_outcomes(client, auth, rt):
    await create_order(client, auth)
    await dispatch_outbox(rt)
    text = (await client.get("/metrics")).text
    assert 'portal_sms_dispatch_total{outcome="sent"}' in text


@pytest.fixture
async def dev_client(rt):
    """No MessageBird key: SMS go to the dev inbox."""
    rt.settings = replace(rt.settings, messagebird_access_key=None)
    from portal.runtime import make_gateway

    rt.gateway = make_gateway(rt.settings)
    app = create_app(rt.settings, runtime=rt, run_scheduler=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL
    ) as client:
        yield client


async def test_the_dev_inbox_lists_sent_sms_newest_first_with_working_links(
    dev_client, rt, api_key
):
    auth = {"Authorization": f"Bearer {api_key}"}
    first = await create_order(dev_client, auth, external_id="DEV-1")
    second = await create_order(dev_client, auth, external_id="DEV-2")
    await messaging.dispatch_due(rt)
    inbox = await dev_client.get("/dev/sms")
    assert inbox.status_code == 200
    html = inbox.text
    assert html.index("DEV-2") < html.index("DEV-1")
    assert f'<a href="{second["tracking_url"]}"' in html
    assert f'<a href="{first["tracking_url"]}"' in html
    assert "gsm7, 1 segment" in html
    page = await dev_client.get(second["tracking_url"].removeprefix(BASE_URL))
    assert "DEV-2" in page.text


async def test_the_dev_inbox_says_when_a_text_is_unknown_or_being_settled(
    dev_client, rt, api_key, clock
):
    auth = {"Authorization": f"Bearer {api_key}"}
    await create_order(dev_client, auth, external_id="DEV-3")
    await create_order(dev_client, auth, external_id="DEV-4")
    await messaging._claim(rt, clock.now(), 1, messaging.DispatchResult(), "dead-dispatcher")
    clock.advance(seconds=rt.settings.sms_lease_seconds)
    await messaging.dispatch_due(rt)  # DEV-3's text, claimed by a dead dispatcher: taken over
    html = (await dev_client.get("/dev/sms")).text
    assert "Settling: the send's outcome is being found out" in html
    # What a text that could not be settled in time is written as.
    await SmsMessage.update({SmsMessage.status: "unknown"}).where(SmsMessage.status == "settling")
    html = (await dev_client.get("/dev/sms")).text
    assert "Unknown: it may or may not have reached the phone" in html
    assert "it is never sent again" in html


async def test_the_dev_inbox_is_hidden_when_messagebird_is_configured(client):
    assert (await client.get("/dev/sms")).status_code == 404


def test_the_settle_period_of_texts_in_doubt_is_read_and_checked():
    assert Settings.from_env({}).sms_settle_minutes == 30
    assert Settings.from_env({"PORTAL_SMS_SETTLE_MINUTES": "45"}).sms_settle_minutes == 45
    for wrong in ("0", "1441", "half an hour"):
        with pytest.raises(SettingsError, match="PORTAL_SMS_SETTLE_MINUTES"):
            Settings.from_env({"PORTAL_SMS_SETTLE_MINUTES": wrong})


def test_production_refuses_the_development_secret_and_plain_http():
    with pytest.raises(SettingsError, match="PORTAL_SECRET_KEY"):
        Settings.from_env({"PORTAL_ENV": "production", "PORTAL_BASE_URL": "https://x.example"})
    with pytest.raises(SettingsError, match="https"):
        Settings.from_env({"PORTAL_ENV": "production", "PORTAL_SECRET_KEY": "k" * 40})
    ok = Settings.from_env(
        {
            "PORTAL_ENV": "production",
            "PORTAL_SECRET_KEY": "k" * 40,
            "PORTAL_BASE_URL": "https://x.example/",
            "MESSAGEBIRD_SIGNING_KEY": "mb-signing-key",
        }
    )
    assert ok.base_url == "https://x.example"
    with pytest.raises(SettingsError, match="PORTAL_DATABASE_URL"):
        Settings.from_env({"PORTAL_DATABASE_URL": "mysql://x"})


def test_the_scheduler_registers_its_jobs_under_stable_ids(rt):
    scheduler = build_scheduler(rt)
    for job_id in ("dispatch_outbox", "expire_pickups", "pickup_reminders"):
        job = scheduler.get_job(job_id)
        assert job is not None, job_id
        assert job.max_instances == 1 and job.coalesce is True


def run_cli(db_url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PORTAL_DATABASE_URL": db_url, "PORTAL_SECRET_KEY": TEST_SECRET}
    return subprocess.run(
        [sys.executable, "-m", "portal", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        input=stdin,
    )


async def test_create_api_key_prints_a_key_that_opens_the_api(db_url, client):
    done = run_cli(db_url, "create-api-key", "shopify-sync")
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]
    assert key.startswith("pk_")
    response = await client.get("/api/v1/orders/NONE", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 404  # authenticated; the order just does not exist


def test_seed_demo_runs_twice_and_prints_the_links(db_url):
    first = run_cli(db_url, "seed-demo")
    assert first.returncode == 0, first.stderr
    again = run_cli(db_url, "seed-demo")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("/t/") == len(DEMO_ORDERS)
    assert "Clerk console:" in again.stdout
    assert "Demo API key:  pk_" in again.stdout
    # the same links both times: the orders were not created again
    links = lambda out: sorted(line for line in out.splitlines() if "/t/" in line)  # noqa: E731
    assert links(first.stdout) == links(again.stdout)


def test_a_configuration_error_is_a_message_not_a_traceback(db_url):
    done = subprocess.run(
        [sys.executable, "-m", "portal", "migrate"],
        cwd=ROOT,
        env={**os.environ, "PORTAL_DATABASE_URL": db_url, "PORTAL_ENV": "production"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "configuration error: PORTAL_SECRET_KEY" in done.stderr
    assert "Traceback" not in done.stderr
