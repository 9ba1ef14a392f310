"""SMS: the outbox (enqueue inside the caller's transaction), the dispatcher, delivery reports.

Every SMS is a row first, written in the same transaction as the change that caused it. The
dispatcher claims due rows (SKIP LOCKED on PostgreSQL; SQLite serialises writers), marks
them `sending` before the network call, and records the outcome after it. `next_attempt_at`
is set only while a row waits: for a queued row, when to send; for a row being sent or of
unknown outcome, when to give up waiting for a delivery report and send again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jinja2 import TemplateNotFound

from portal.db.tables import AccessToken, SmsMessage
from portal.domain import sms as sms_rules
from portal.domain.sms import SmsStatus
from portal.domain.sms_text import measure, transliterate
from portal.domain.tokens import derive_token
from portal.runtime import Runtime
from portal.sms.gateway import OutgoingSms, PermanentError, TransientError, UnknownOutcome

log = logging.getLogger(__name__)

# Templates allowed more than one segment (by name); all others must fit one.
SEGMENT_BUDGET: dict[str, int] = {}
SEND_CONCURRENCY = 8
# Stands for the shopper's link in a stored body; the link is derived when the SMS leaves.
LINK_MARKER = "⟦link⟧"


def budget(kind: str) -> int:
    return SEGMENT_BUDGET.get(kind, 1)


def render_sms(rt: Runtime, kind: str, locale: str, context: dict[str, Any]) -> str:
    """The text to store: whitespace folded, in GSM-7 where look-alikes allow, and within
    its segment budget where the template's short form (no optional parts) allows."""
    try:
        template = rt.templates.get_template(f"sms/{locale}/{kind}.txt")
    except TemplateNotFound:
        template = rt.templates.get_template(f"sms/en/{kind}.txt")
    text = ""
    for short in (False, True):
        text = " ".join(template.render(link=LINK_MARKER, short=short, **context).split())
        if measure(with_sample_link(rt, text)).encoding != "gsm7":
            # UCS-2 halves what one segment holds: use GSM-7 look-alikes where they exist.
            candidate = transliterate(text)
            if measure(with_sample_link(rt, candidate)).encoding == "gsm7":
                text = candidate
        if measure(with_sample_link(rt, text)).segments <= budget(kind):
            break
    return text


def with_sample_link(rt: Runtime, body: str) -> str:
    """The body as long as it will be when sent (a real token is 22 characters)."""
    return body.replace(LINK_MARKER, rt.settings.tracking_url("x" * 22))


def with_link(rt: Runtime, body: str, salt: str | None) -> str:
    if salt is None:
        return body
    return body.replace(
        LINK_MARKER, rt.settings.tracking_url(derive_token(rt.settings.secret_key, salt))
    )


async def enqueue(
    rt: Runtime,
    *,
    order_id: int | None,
    access_token_id: int | None,
    recipient: str,
    locale: str,
    kind: str,
    dedupe_key: str,
    context: dict[str, Any],
    urgent: bool = False,
) -> bool:
    """Write one outgoing SMS; call inside the transaction of the change that causes it.

    Returns False when a message with this dedupe key exists already (nothing is written).
    """
    existing = await SmsMessage.exists().where(SmsMessage.dedupe_key == dedupe_key)
    if existing:
        return False
    body = render_sms(rt, kind, locale, context)
    length = measure(with_sample_link(rt, body))
    if length.segments > budget(kind):
        log.warning(
            "sms %s in %s needs %d segments (budget %d)",
            kind,
            locale,
            length.segments,
            budget(kind),
        )
    now = rt.clock.now()
    await SmsMessage.insert(
        SmsMessage(
            order=order_id,
            access_token=access_token_id,
            dedupe_key=dedupe_key,
            kind=kind,
            locale=locale,
            recipient=recipient,
            body=body,
            encoding=length.encoding,
            segments=length.segments,
            urgent=urgent,
            status=SmsStatus.QUEUED,
            next_attempt_at=now,
            created_at=now,
            gateway=rt.gateway.name,
        )
    )
    return True


@dataclass
class DispatchResult:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    unknown: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


async def _claim(rt: Runtime, now: datetime, limit: int) -> list[dict[str, Any]]:
    async with rt.writing():
        query = (
            SmsMessage.select(
                SmsMessage.id,
                SmsMessage.recipient,
                SmsMessage.body,
                SmsMessage.encoding,
                SmsMessage.attempts,
                SmsMessage.status,
                SmsMessage.access_token.salt.as_alias("salt"),
            )
            .where(SmsMessage.next_attempt_at <= now)
            .order_by(SmsMessage.next_attempt_at)
            .limit(limit)
        )
        rows = await rt.for_update(query, skip_locked=True)
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        grace = timedelta(seconds=rt.settings.sms_unknown_grace_seconds)
        await SmsMessage.update(
            {
                SmsMessage.status: SmsStatus.SENDING,
                SmsMessage.attempts: SmsMessage.attempts + 1,
                SmsMessage.claimed_at: now,
                # If this process dies mid-send, the row comes back after the grace period.
                SmsMessage.next_attempt_at: now + grace,
            }
        ).where(SmsMessage.id.is_in(ids))
    for r in rows:
        r["attempts"] += 1
    return rows


async def _settle(rt: Runtime, message_id: int, values: dict[Any, Any]) -> None:
    """Record a send's outcome unless a delivery report got there first."""
    async with rt.writing():
        await SmsMessage.update(values).where(
            (SmsMessage.id == message_id) & (SmsMessage.status == SmsStatus.SENDING)
        )


async def _send_one(rt: Runtime, row: dict[str, Any], result: DispatchResult) -> None:
    sms = OutgoingSms(
        reference=str(row["id"]),
        recipient=row["recipient"],
        body=with_link(rt, row["body"], row["salt"]),
        datacoding="plain" if row["encoding"] == "gsm7" else "unicode",
    )
    attempts = row["attempts"]
    out_of_tries = attempts >= rt.settings.sms_max_attempts
    try:
        accepted = await rt.gateway.send(sms)
    except PermanentError as exc:
        result.failed += 1
        await _fail(rt, row["id"], str(exc))
        return
    except TransientError as exc:
        if out_of_tries:
            result.failed += 1
            await _fail(rt, row["id"], f"gave up after {attempts} tries: {exc}")
            return
        result.retrying += 1
        now = rt.clock.now()
        await _settle(
            rt,
            row["id"],
            {
                SmsMessage.status: SmsStatus.QUEUED,
                SmsMessage.next_attempt_at: now + sms_rules.backoff(attempts),
                SmsMessage.last_error: str(exc)[:300],
            },
        )
        return
    except UnknownOutcome as exc:
        result.unknown += 1
        now = rt.clock.now()
        grace = timedelta(seconds=rt.settings.sms_unknown_grace_seconds)
        await _settle(
            rt,
            row["id"],
            {
                SmsMessage.status: SmsStatus.UNKNOWN,
                # Wait for a delivery report; without one, sending again is the lesser harm.
                SmsMessage.next_attempt_at: None if out_of_tries else now + grace,
                SmsMessage.last_error: str(exc)[:300],
            },
        )
        return
    result.sent += 1
    now = rt.clock.now()
    status = SmsStatus.DELIVERED if accepted.status == "delivered" else SmsStatus.SENT
    async with rt.writing():
        await SmsMessage.update(
            {SmsMessage.gateway_id: accepted.gateway_id, SmsMessage.sent_at: now}
        ).where(SmsMessage.id == row["id"])
        await SmsMessage.update(
            {
                SmsMessage.status: status,
                SmsMessage.gateway_status: accepted.status,
                SmsMessage.status_at: now,
                SmsMessage.next_attempt_at: None,
                SmsMessage.last_error: None,
            }
        ).where((SmsMessage.id == row["id"]) & (SmsMessage.status == SmsStatus.SENDING))


async def _fail(rt: Runtime, message_id: int, reason: str) -> None:
    await _settle(
        rt,
        message_id,
        {
            SmsMessage.status: SmsStatus.FAILED,
            SmsMessage.next_attempt_at: None,
            SmsMessage.last_error: reason[:300],
            SmsMessage.status_at: rt.clock.now(),
        },
    )


async def dispatch_due(rt: Runtime, *, limit: int | None = None) -> DispatchResult:
    """Send what is due now. Safe to run in several processes at once."""
    result = DispatchResult()
    rows = await _claim(rt, rt.clock.now(), limit or rt.settings.dispatch_batch)
    result.claimed = len(rows)
    gate = asyncio.Semaphore(SEND_CONCURRENCY)

    async def guarded(row: dict[str, Any]) -> None:
        async with gate:
            try:
                await _send_one(rt, row, result)
            except Exception as exc:  # a bug or the database: keep the rest of the batch going
                log.exception("sms %s: dispatch failed", row["id"])
                result.errors.append(type(exc).__name__)

    await asyncio.gather(*(guarded(r) for r in rows))
    return result


@dataclass(frozen=True, slots=True)
class StatusReport:
    reference: str | None
    gateway_id: str | None
    recipient: str | None
    status: str
    status_at: datetime | None


async def apply_status_report(rt: Runtime, report: StatusReport) -> str:
    """Apply one MessageBird delivery report. Returns what happened, for logs and tests:
    'updated', 'ignored' (duplicate, stale or out of order) or 'unknown' (not our message)."""
    mapped = sms_rules.REPORT_STATUS.get(report.status)
    if mapped is None or not report.reference or not report.reference.isdigit():
        return "unknown"
    async with rt.writing():
        message = (
            await SmsMessage.select(
                SmsMessage.id, SmsMessage.status, SmsMessage.recipient, SmsMessage.gateway_id
            )
            .where(SmsMessage.id == int(report.reference))
            .first()
        )
        if message is None:
            return "unknown"
        if report.recipient and report.recipient.lstrip("+") != message["recipient"].lstrip("+"):
            return "unknown"
        current = SmsStatus(message["status"])
        target = sms_rules.apply_report(current, mapped)
        if target is None:
            return "ignored"
        values: dict[Any, Any] = {
            SmsMessage.status: target,
            SmsMessage.gateway_status: report.status[:24],
            SmsMessage.status_at: report.status_at or rt.clock.now(),
            SmsMessage.next_attempt_at: None,
        }
        if target is SmsStatus.FAILED:
            values[SmsMessage.last_error] = f"delivery report: {report.status}"
        if message["gateway_id"] is None and report.gateway_id:
            values[SmsMessage.gateway_id] = report.gateway_id[:64]
        updated = (
            await SmsMessage.update(values)
            .where((SmsMessage.id == message["id"]) & (SmsMessage.status == current))
            .returning(SmsMessage.id)
        )
    return "updated" if updated else "ignored"


async def link_token(order_id: int) -> dict[str, Any] | None:
    """The order's live shopper link (id and salt), which SMS carry."""
    return await (
        AccessToken.select(AccessToken.id, AccessToken.salt)
        .where(
            (AccessToken.order == order_id)
            & (AccessToken.purpose == "track")
            & AccessToken.revoked_at.is_null()
        )
        .order_by(AccessToken.id, ascending=False)
        .first()
    )


async def recent_messages(rt: Runtime, limit: int = 100) -> list[dict[str, Any]]:
    """Newest first, with the links in (for the dev inbox)."""
    rows = await (
        SmsMessage.select(
            *SmsMessage.all_columns(exclude=[SmsMessage.access_token]),
            SmsMessage.access_token.salt.as_alias("salt"),
        )
        .order_by(SmsMessage.id, ascending=False)
        .limit(limit)
    )
    for row in rows:
        row["text"] = with_link(rt, row["body"], row["salt"])
    return rows
