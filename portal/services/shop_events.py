"""The outgoing shop webhook: an outbox of events POSTed, signed, to PORTAL_SHOP_WEBHOOK_URL.

`record` writes an event inside the transaction of the change that causes it, so an event
exists exactly when its change does. `deliver_due` claims due events (SKIP LOCKED on
PostgreSQL; SQLite serialises writers), pushes them a lease ahead so another scheduler
skips them, POSTs each and settles the outcome in a short transaction of its own. Delivery
is at least once: a request that timed out may have reached the shop, so it is sent again
with the same event id, and the shop drops repeats by that id. An event no try of which has
started is superseded by a newer one that `replaces` its `subject` (a newer change of the
same thing, which says all it would): as the SMS outbox drops a stale text. The format is
in docs/webhooks.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any
from uuid import UUID

import httpx

from portal.db.tables import ShopEvent
from portal.runtime import Runtime

log = logging.getLogger(__name__)


class ShopEventStatus(StrEnum):
    PENDING = "pending"  # waits to be (re)sent: next_attempt_at says when
    DELIVERED = "delivered"  # the shop answered 2xx; never sent again
    FAILED = "failed"  # refused for GIVE_UP_AFTER; `shop-events retry-failed` requeues it
    SUPERSEDED = "superseded"  # never sent: a newer event about the same thing replaced it


# The first event types; docs/webhooks.md lists them with their `data`.
DELIVERY_CHANGE_REQUESTED = "delivery_change.requested"
DELIVERY_CHANGE_ACCEPTED = "delivery_change.accepted"
DELIVERY_CHANGE_REJECTED = "delivery_change.rejected"

SIGNATURE_HEADER = "X-Portal-Signature"
EVENT_ID_HEADER = "X-Portal-Event-Id"
EVENT_TYPE_HEADER = "X-Portal-Event-Type"
USER_AGENT = "OrderPortal-Webhook/1"

# Seconds one POST may take, end to end; settings.extra["shop_webhook_timeout"] overrides.
DELIVERY_TIMEOUT = 10.0
DELIVERY_CONCURRENCY = 4
DELIVERY_BATCH = 20
# Added to the time a claimed batch may take before another process may claim it again.
LEASE_MARGIN = timedelta(seconds=30)
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 3600
# An event stops being retried once its failures span this long (about 80 tries).
GIVE_UP_AFTER = timedelta(days=3)


@dataclass
class ShopDeliveryResult:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "claimed": self.claimed,
            "delivered": self.delivered,
            "retried": self.retried,
            "failed": self.failed,
            "errors": len(self.errors),
        }


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, as the shop API writes times: 2026-11-23T09:30:00Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal | UUID):
        return str(value)
    raise TypeError(f"shop event data: {type(value).__name__} is not JSON serialisable")


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed): compact, keys sorted, so every try of one event
    sends the same body."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: sha256= and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempt: int) -> timedelta:
    """Delay after failed try number `attempt`: 30 s, 1 min, 2 min ... at most an hour."""
    return timedelta(
        seconds=min(BACKOFF_BASE_SECONDS * 2 ** max(attempt - 1, 0), BACKOFF_CAP_SECONDS)
    )


def failures_span(attempts: int) -> timedelta:
    """How long an event has been failing once try number `attempts` fails: the waits
    between its tries (at least; a scheduler that was down adds to them, not to this)."""
    return sum((backoff(n) for n in range(1, attempts)), timedelta())


def _timeout(rt: Runtime) -> float:
    return float(rt.settings.extra.get("shop_webhook_timeout", DELIVERY_TIMEOUT))


def _target(rt: Runtime) -> tuple[str, str] | None:
    url, secret = rt.settings.shop_webhook_url, rt.settings.shop_webhook_secret
    if not url:
        return None
    if not secret:  # Settings.validate refuses this; settings built by hand may not
        log.error("shop webhook: a URL without a secret; events are kept, none is sent")
        return None
    return url, secret


async def record(
    rt: Runtime,
    type: str,
    *,
    order_id: int | None,
    data: dict[str, Any],
    subject: str | None = None,
    replaces: str | None = None,
) -> str | None:
    """Write one event for the shop; call inside the transaction of the change it reports.
    `subject` names what it is about; the order's events about `replaces` that no try has
    started yet are superseded by it (never sent).

    Returns its id, or None when no webhook is configured (nothing is written).
    """
    if not rt.settings.shop_webhook_url:
        return None
    if not 0 < len(type) <= 48:
        raise ValueError(f"shop event type must be 1-48 characters: {type!r}")
    now = rt.clock.now()
    event_id = new_event_id()
    envelope = {"id": event_id, "type": type, "created_at": iso_utc(now), "data": data}
    # Stored in its JSON form, so every try sends (and signs) the same bytes.
    payload = json.loads(json.dumps(envelope, default=_jsonable))
    if replaces is not None and order_id is not None:
        # attempts == 0: not claimed yet (a claim counts its try in its own transaction, and
        # on PostgreSQL this waits for a claim holding the row, then sees its count).
        await ShopEvent.update(
            {
                ShopEvent.status: ShopEventStatus.SUPERSEDED,
                ShopEvent.next_attempt_at: None,
                ShopEvent.last_error: f"superseded by {event_id}",
            }
        ).where(
            (ShopEvent.order == order_id)
            & (ShopEvent.subject == replaces)
            & (ShopEvent.status == ShopEventStatus.PENDING)
            & (ShopEvent.attempts == 0)
        )
    await ShopEvent.insert(
        ShopEvent(
            event_id=event_id,
            type=type,
            order=order_id,
            payload=payload,
            status=ShopEventStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            subject=subject,
        )
    )
    return event_id


def _lease(rt: Runtime, limit: int) -> timedelta:
    """Long enough for the whole batch to be posted, DELIVERY_CONCURRENCY at a time."""
    rounds = math.ceil(limit / DELIVERY_CONCURRENCY)
    return timedelta(seconds=rounds * _timeout(rt)) + LEASE_MARGIN


async def _claim(rt: Runtime, limit: int) -> list[dict[str, Any]]:
    async with rt.writing():
        now = rt.clock.now()
        query = (
            ShopEvent.select(
                ShopEvent.id,
                ShopEvent.event_id,
                ShopEvent.type,
                ShopEvent.payload,
                ShopEvent.attempts,
            )
            .where(
                (ShopEvent.next_attempt_at <= now) & (ShopEvent.status == ShopEventStatus.PENDING)
            )
            .order_by(ShopEvent.next_attempt_at, ShopEvent.id)
            .limit(limit)
        )
        rows = list(await rt.for_update(query, skip_locked=True))
        if not rows:
            return []
        await ShopEvent.update(
            {
                # attempts counts tries started; it also fences a late settle (below).
                ShopEvent.attempts: ShopEvent.attempts + 1,
                ShopEvent.claimed_at: now,
                # If this process dies mid-batch, the events come back when the lease ends.
                ShopEvent.next_attempt_at: now + _lease(rt, limit),
            }
        ).where(ShopEvent.id.is_in([r["id"] for r in rows]))
    for row in rows:
        row["attempts"] += 1
        if isinstance(row["payload"], str):
            row["payload"] = json.loads(row["payload"])
    return rows


async def _post(
    rt: Runtime, client: httpx.AsyncClient, url: str, secret: str, row: dict[str, Any]
) -> str | None:
    """POST one event. None when the shop took it (2xx), else a short reason (no body, no
    URL: either may hold personal data or credentials)."""
    body = body_of(row["payload"])
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: row["event_id"],
        EVENT_TYPE_HEADER: row["type"],
        SIGNATURE_HEADER: sign(secret, body),
    }
    timeout = _timeout(rt)
    try:
        async with asyncio.timeout(timeout):  # httpx's timeouts are per read, not in total
            response = await client.post(url, content=body, headers=headers)
    except (TimeoutError, httpx.TimeoutException):
        return f"timeout after {timeout:g} s"
    except httpx.HTTPError as exc:
        return f"connection error: {type(exc).__name__}"
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"


async def _settle(rt: Runtime, row: dict[str, Any], error: str | None) -> str:
    """Record one try's outcome in its own transaction: 'delivered', 'retried' or 'failed'."""
    now = rt.clock.now()
    if error is None:
        async with rt.writing():
            # A 2xx settles the event even if its lease ran out meanwhile and another
            # process claimed it again: what the shop has, it has.
            await ShopEvent.update(
                {
                    ShopEvent.status: ShopEventStatus.DELIVERED,
                    ShopEvent.delivered_at: now,
                    ShopEvent.next_attempt_at: None,
                    ShopEvent.last_error: None,
                }
            ).where((ShopEvent.id == row["id"]) & (ShopEvent.status == ShopEventStatus.PENDING))
        return "delivered"
    attempts = row["attempts"]
    give_up = failures_span(attempts) >= GIVE_UP_AFTER
    values: dict[Any, Any] = {
        ShopEvent.last_error: f"try {attempts}: {error}"[:300],
        ShopEvent.next_attempt_at: None if give_up else now + backoff(attempts),
    }
    if give_up:
        values[ShopEvent.status] = ShopEventStatus.FAILED
    async with rt.writing():
        # Only the latest try of a pending event speaks for it.
        await ShopEvent.update(values).where(
            (ShopEvent.id == row["id"])
            & (ShopEvent.status == ShopEventStatus.PENDING)
            & (ShopEvent.attempts == attempts)
        )
    if give_up:
        log.warning(
            "shop event %s (%s) failed after %d tries over %s; "
            "`python -m portal shop-events retry-failed` sends it again",
            row["event_id"],
            row["type"],
            attempts,
            failures_span(attempts),
        )
        return "failed"
    return "retried"


async def deliver_due(rt: Runtime, *, limit: int | None = None) -> ShopDeliveryResult:
    """POST the events that are due. Safe to run in several processes at once; never
    raises (failures are logged and counted)."""
    result = ShopDeliveryResult()
    target = _target(rt)
    if target is None:
        return result
    url, secret = target
    batch = limit or DELIVERY_BATCH
    try:
        rows = await _claim(rt, batch)
    except Exception as exc:  # the database: the next run tries again
        log.exception("shop events: claim failed")
        result.errors.append(type(exc).__name__)
        return result
    result.claimed = len(rows)
    if not rows:
        return result
    gate = asyncio.Semaphore(DELIVERY_CONCURRENCY)

    async def deliver(client: httpx.AsyncClient, row: dict[str, Any]) -> None:
        async with gate:
            try:
                outcome = await _settle(rt, row, await _post(rt, client, url, secret, row))
            except Exception as exc:  # a bug or the database: the lease brings the event back
                log.exception("shop event %s: delivery failed", row["event_id"])
                result.errors.append(type(exc).__name__)
                return
        if outcome == "delivered":
            result.delivered += 1
        elif outcome == "retried":
            result.retried += 1
        else:
            result.failed += 1

    try:
        async with httpx.AsyncClient(timeout=_timeout(rt), follow_redirects=False) as client:
            await asyncio.gather(*(deliver(client, row) for row in rows))
    except Exception as exc:  # building the client; the lease brings the events back
        log.exception("shop events: delivery batch failed")
        result.errors.append(type(exc).__name__)
    return result


async def retry_failed(rt: Runtime) -> int:
    """Put every failed event back in the queue, due now, with a fresh retry budget."""
    async with rt.writing():
        requeued = (
            await ShopEvent.update(
                {
                    ShopEvent.status: ShopEventStatus.PENDING,
                    ShopEvent.attempts: 0,
                    ShopEvent.next_attempt_at: rt.clock.now(),
                    ShopEvent.claimed_at: None,
                }
            )
            .where(ShopEvent.status == ShopEventStatus.FAILED)
            .returning(ShopEvent.id)
        )
    return len(requeued)
