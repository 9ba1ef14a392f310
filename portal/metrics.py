"""Prometheus metrics. Labels never carry personal data, nor a raw path (tokens live in
paths): HTTP requests are labelled by route template (`/t/{token}`).

The figures are whole across processes: `python -m portal serve --workers N` gives its
workers one directory (PROMETHEUS_MULTIPROC_DIR, made and removed by the supervisor) where
each keeps its counts, and a scrape of any worker adds them all up (prometheus_client's
multiprocess mode). A worker that is replaced leaves its counts there, so totals never go
back. `python -m scheduler` on its own serves its counters on PORTAL_METRICS_PORT.

Services count through the functions below, one line each.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter
from prometheus_client import generate_latest as _generate
from prometheus_client.multiprocess import MultiProcessCollector

if TYPE_CHECKING:
    from portal.settings import Settings

log = logging.getLogger(__name__)

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

SMS_OUTCOMES = Counter("portal_sms_dispatch_total", "SMS send attempts by outcome", ["outcome"])
ORDERS_CREATED = Counter("portal_orders_created_total", "Orders created through the API")
ORDER_EVENTS = Counter("portal_order_events_total", "Shop events applied", ["type"])
DELIVERY_REPORTS = Counter("portal_sms_reports_total", "Delivery reports by outcome", ["outcome"])
INBOUND_TEXTS = Counter(
    "portal_sms_inbound_total", "Texts from shoppers by how they were handled", ["kind"]
)
SHOP_WEBHOOK_CALLS = Counter(
    "portal_shop_webhook_total", "Calls of the shop's webhook by outcome", ["outcome"]
)
HTTP_REQUESTS = Counter(
    "portal_http_requests_total",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
)
JOB_RUNS = Counter("portal_job_runs_total", "Scheduler job runs", ["job"])
JOB_FAILURES = Counter("portal_job_failures_total", "Scheduler job runs that failed", ["job"])
# The page's and the poll's reads by token on PostgreSQL, and the queries that carried them
# (portal/db/batch.py): reads / queries is how many a round trip takes on average.
KEYED_READS = Counter("portal_db_keyed_reads_total", "Reads by key (page, poll)")
KEYED_QUERIES = Counter("portal_db_keyed_queries_total", "Queries that carried the reads by key")

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # no route: the raw path is never a label


def order_created() -> None:
    ORDERS_CREATED.inc()


def order_event(event: str) -> None:
    ORDER_EVENTS.labels(str(event)).inc()


def delivery_report(outcome: str) -> None:
    DELIVERY_REPORTS.labels(outcome).inc()


def inbound_text(kind: str) -> None:
    INBOUND_TEXTS.labels(kind).inc()


def sms_outcomes(counts: Mapping[str, int]) -> None:
    """A dispatch run's outcomes (`claimed` is not one)."""
    _outcomes(SMS_OUTCOMES, counts)


def shop_webhook_calls(counts: Mapping[str, int]) -> None:
    """A delivery run's outcomes (`claimed` is not one)."""
    _outcomes(SHOP_WEBHOOK_CALLS, counts)


def _outcomes(counter: Counter, counts: Mapping[str, int]) -> None:
    for outcome, n in counts.items():
        if n and outcome != "claimed":
            counter.labels(outcome).inc(n)


def job_run(job: str, *, failed: bool = False) -> None:
    JOB_RUNS.labels(job).inc()
    if failed:
        JOB_FAILURES.labels(job).inc()


async def count_response(message: Mapping[str, Any], scope: Mapping[str, Any]) -> None:
    """Litestar's `before_send` hook: each answer (404s of no route, 500s included), by
    the route template the router matched."""
    if message["type"] != "http.response.start" or scope.get("type") != "http":
        return
    method = scope.get("method", "")
    HTTP_REQUESTS.labels(
        method if method in METHODS else "other",
        scope.get("path_template") or UNMATCHED,
        str(message["status"]),
    ).inc()


def render() -> bytes:
    """The exposition text: every process's counts in multiprocess mode, else this one's."""
    if os.environ.get(MULTIPROC_DIR):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return _generate(registry)
    return _generate(REGISTRY)


def refusal(settings: Settings, authorization: str | None) -> int | None:
    """None when a scrape may read the metrics, else the status to answer: with
    PORTAL_METRICS_TOKEN set, `Authorization: Bearer <token>` is needed (401 otherwise); in
    production without a token the metrics are not there (404)."""
    token = settings.metrics_token
    if not token:
        return 404 if settings.production else None
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return None
    return 401


def serve_metrics(settings: Settings) -> ThreadingHTTPServer | None:
    """For `python -m scheduler`: its counters on PORTAL_METRICS_PORT (all addresses), by
    the same rules as the web's /metrics. None when the port is not set."""
    if settings.metrics_port is None:
        return None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = refusal(settings, self.headers.get("Authorization"))
            body = render() if status is None else b""
            self.send_response(status or 200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes are not news

    try:
        server = ThreadingHTTPServer(("", settings.metrics_port), Handler)
    except OSError as exc:
        raise SystemExit(f"PORTAL_METRICS_PORT {settings.metrics_port}: {exc.strerror}") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("scheduler metrics on port %s", settings.metrics_port)
    return server
