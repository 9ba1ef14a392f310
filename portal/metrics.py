"""Prometheus metrics (per process). Labels never carry personal data."""

from __future__ import annotations

from prometheus_client import Counter

SMS_OUTCOMES = Counter("portal_sms_dispatch_total", "SMS send attempts by outcome", ["outcome"])
ORDERS_CREATED = Counter("portal_orders_created_total", "Orders created through the API")
ORDER_EVENTS = Counter("portal_order_events_total", "Shop events applied", ["type"])
DELIVERY_REPORTS = Counter("portal_sms_reports_total", "Delivery reports by outcome", ["outcome"])
JOB_FAILURES = Counter("portal_job_failures_total", "Scheduler job runs that failed", ["job"])
# The page's and the poll's reads by token on PostgreSQL, and the queries that carried them
# (portal/db/batch.py): reads / queries is how many a round trip takes on average.
KEYED_READS = Counter("portal_db_keyed_reads_total", "Reads by key (page, poll)")
KEYED_QUERIES = Counter("portal_db_keyed_queries_total", "Queries that carried the reads by key")
