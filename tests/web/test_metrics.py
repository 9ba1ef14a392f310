"""/metrics as an operator reads it: every counter counts what it names after real actions
(through the API, the webhooks, the scheduler's jobs), requests by route template and never
by raw path, and in production only for the bearer of PORTAL_METRICS_TOKEN."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from portal.db.tables import SmsMessage
from scheduler.jobs import build_scheduler
from tests.conftest import SHOP_WEBHOOK_SECRET
from tests.factories import order_payload
from tests.web.helpers import path_of, post_event, ship

Sample = tuple[str, tuple[tuple[str, str], ...]]


def samples(text: str) -> dict[Sample, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("portal_")
    }


def grown(before: dict[Sample, float], after: dict[Sample, float]) -> dict[Sample, float]:
    """What the actions in between added (the counters live as long as the test process)."""
    return {
        key: after[key] - before.get(key, 0.0)
        for key in after
        if after[key] != before.get(key, 0.0)
    }


def key(name: str, **labels: str) -> Sample:
    return name, tuple(sorted(labels.items()))


@pytest.fixture
def settings(settings, shop_receiver):
    return replace(
        settings, shop_webhook_url=shop_receiver.url, shop_webhook_secret=SHOP_WEBHOOK_SECRET
    )


async def run_job(rt, job_id: str) -> None:
    """As the scheduler runs it (guarded, counted)."""
    await build_scheduler(rt).get_job(job_id).func()


async def test_a_scrape_after_real_actions_shows_what_happened(client, auth, rt):
    before = samples((await client.get("/metrics")).text)
    body = order_payload()
    order = (await client.post("/api/v1/orders", json=body, headers=auth)).json()
    again = await client.post("/api/v1/orders", json=body, headers=auth)
    assert again.status_code == 200  # the same order again: not created twice
    await ship(client, auth, order["external_id"])
    await post_event(client, auth, order["external_id"], "shipped")  # a duplicate: not applied
    page = path_of(order["tracking_url"])
    assert (await client.get(page)).status_code == 200
    assert (await client.get("/no/such/page")).status_code == 404
    refund = {"amount": "5.00", "reason": "goodwill"}
    response = await client.post(
        f"/api/v1/orders/{order['external_id']}/refunds", json=refund, headers=auth
    )
    assert response.status_code == 201, response.text
    await run_job(rt, "dispatch_outbox")
    await run_job(rt, "deliver_shop_events")
    sms = await SmsMessage.select().order_by(SmsMessage.id).first()
    report = {"reference": str(sms["id"]), "status": "delivered", "recipient": sms["recipient"]}
    assert (await client.get("/webhooks/messagebird/status", params=report)).status_code == 200
    stop = {"id": "in-1", "originator": sms["recipient"].lstrip("+"), "body": "STOP"}
    assert (await client.post("/webhooks/messagebird/inbound", data=stop)).status_code == 200

    text = (await client.get("/metrics")).text
    added = grown(before, samples(text))
    assert added[key("portal_orders_created_total")] == 1
    assert added[key("portal_order_events_total", type="shipped")] == 1
    assert added[key("portal_sms_dispatch_total", outcome="sent")] == 2  # confirmed, shipped
    assert added[key("portal_shop_webhook_total", outcome="delivered")] == 1
    assert added[key("portal_sms_reports_total", outcome="updated")] == 1
    assert added[key("portal_sms_inbound_total", kind="stop")] == 1
    for job in ("dispatch_outbox", "deliver_shop_events"):
        assert added[key("portal_job_runs_total", job=job)] == 1
    requests = "portal_http_requests_total"
    assert added[key(requests, method="POST", route="/api/v1/orders", status="201")] == 1
    assert added[key(requests, method="POST", route="/api/v1/orders", status="200")] == 1
    assert added[key(requests, method="GET", route="/t/{token}", status="200")] == 1
    assert added[key(requests, method="GET", route="unmatched", status="404")] == 1
    assert added[key(requests, method="GET", route="/metrics", status="200")] == 1
    token = page.removeprefix("/t/")
    assert token not in text and "/no/such/page" not in text  # no raw path, ever


async def test_in_production_metrics_need_the_token(client, rt):
    rt.settings = replace(rt.settings, env="production")
    assert (await client.get("/metrics")).status_code == 404
    rt.settings = replace(rt.settings, metrics_token="scrape-token-0123456789")
    assert (await client.get("/metrics")).status_code == 401
    wrong = {"Authorization": "Bearer scrape-token-9999999999"}
    assert (await client.get("/metrics", headers=wrong)).status_code == 401
    right = {"Authorization": "Bearer scrape-token-0123456789"}
    scrape = await client.get("/metrics", headers=right)
    assert scrape.status_code == 200
    assert "portal_http_requests_total" in scrape.text
