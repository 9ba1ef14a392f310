"""SMS: the outbox (enqueue inside the caller's transaction), the dispatcher, delivery reports.

Every SMS is a row first, written in the same transaction as the change that caused it. The
dispatcher claims due rows (SKIP LOCKED on PostgreSQL; SQLite serialises writers), marks
them `sending` before the network call, and records the outcome after it. `next_attempt_at`
is set only while a row waits: for a queued row, when to send; for a row being sent or of
unknown outcome, when to give up waiting for a delivery report and send again.

Timing (the shopper's time zone: the phone's country, else the store's, else Europe/Rome):
a non-urgent SMS never leaves in quiet hours: it is queued for the end of the quiet
period, and one that falls due inside it (a retry) is put back to that moment when
claimed. At most `DAILY_CAP` non-urgent SMS per order leave on one local day; more are
dropped. A queued SMS that a newer one makes stale (`sms.SUPERSEDED_BY`) is dropped, and
so is anything but what the shopper asked for once their number has opted out.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import TemplateNotFound

from portal.db.tables import AccessToken, Customer, Order, SmsMessage
from portal.domain import quiet_hours
from portal.domain import sms as sms_rules
from portal.domain.order import first_name
from portal.domain.phone import timezone_of
from portal.domain.quiet_hours import QuietWindow
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
# Local time when non-urgent SMS wait. `settings.extra["sms_quiet_hours"]` may replace it
# with ("21:00", "08:00")-like pairs, or None for none (a live test server on the wall clock).
QUIET_HOURS = quiet_hours.DEFAULT_WINDOW
# Non-urgent SMS one order may send on one local day of the shopper.
DAILY_CAP = 4
# News of the shopper's money is never dropped for the cap (it still waits for the morning).
UNCAPPED_KINDS = frozenset({"refund_paid", "refund_failed"})
# MessageBird `validity`, in seconds: what the network could not deliver by then is
# discarded rather than delivered late (an hours-old "out for delivery"; a stale code).
VALIDITY_SECONDS = 4 * 3600
URGENT_VALIDITY_SECONDS = 10 * 60


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
    requested: bool = False,
    subject: str | None = None,
    replaces: str | None = None,
) -> bool:
    """Write one outgoing SMS; call inside the transaction of the change that causes it.

    `urgent` (a one-time code, a handover confirmation): sent at once, whatever the hour
    and the daily cap. `requested` (the shopper asked for it on the page): sent even to a
    number that opted out, and as urgent. Otherwise the row may be written `dropped`
    (opted out, over the daily cap) with the reason in `last_error`; older queued SMS of
    the order that this one makes stale are dropped here too: by kind (`sms.SUPERSEDED_BY`),
    and those whose `subject` is what this one `replaces` (a newer change of the same thing).

    Returns True when a row was written (dropped or not), False when a message with this
    dedupe key exists already (nothing is written).
    """
    existing = await SmsMessage.exists().where(SmsMessage.dedupe_key == dedupe_key)
    if existing:
        return False
    urgent = urgent or requested  # asked for on the page: the shopper is waiting for it
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
    dropped: str | None = None
    if not requested and await _opted_out(recipient):
        dropped = "opted out"
    if order_id is not None:
        await _drop_superseded(order_id, kind, now, replaces)
    send_at = now
    if not urgent and dropped is None:
        tz = await _zone_for(recipient, order_id)
        window = quiet_window(rt)
        if window is not None:
            send_at = quiet_hours.next_send_time(now, tz, window)
        if (
            order_id is not None
            and kind not in UNCAPPED_KINDS
            and await _sent_on_day(order_id, send_at, tz) >= DAILY_CAP
        ):
            day = send_at.astimezone(tz).date().isoformat()
            dropped = f"daily cap: {DAILY_CAP} SMS for this order on {day}"
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
            requested=requested,
            subject=subject,
            status=SmsStatus.DROPPED if dropped else SmsStatus.QUEUED,
            next_attempt_at=None if dropped else send_at,
            last_error=dropped,
            status_at=now if dropped else None,
            created_at=now,
            gateway=rt.gateway.name,
        )
    )
    return True


def quiet_window(rt: Runtime) -> QuietWindow | None:
    """QUIET_HOURS, or what `settings.extra["sms_quiet_hours"]` says (None: no quiet hours)."""
    if "sms_quiet_hours" not in rt.settings.extra:
        return QUIET_HOURS
    value = rt.settings.extra["sms_quiet_hours"]
    if value is None or isinstance(value, QuietWindow):
        return value
    start, end = value
    return QuietWindow(time.fromisoformat(start), time.fromisoformat(end))


def shopper_zone(recipient: str, store_zone: str | None) -> ZoneInfo:
    """The phone's country's zone, else the store's, else Europe/Rome."""
    return quiet_hours.zone(timezone_of(recipient, ""), store_zone or quiet_hours.DEFAULT_ZONE)


async def _zone_for(recipient: str, order_id: int | None) -> ZoneInfo:
    store_zone = None
    if order_id is not None and not timezone_of(recipient, ""):
        row = (
            await Order.select(Order.store.timezone.as_alias("tz"))
            .where(Order.id == order_id)
            .first()
        )
        store_zone = row["tz"] if row else None
    return shopper_zone(recipient, store_zone)


async def _opted_out(recipient: str) -> bool:
    return bool(
        await Customer.exists().where(
            (Customer.phone == recipient) & Customer.sms_opt_out_at.is_not_null()
        )
    )


async def _drop_superseded(
    order_id: int, kind: str, now: datetime, replaces: str | None = None
) -> None:
    stale = sms_rules.superseded_by(kind)
    if not stale and replaces is None:
        return
    which: Any = SmsMessage.kind.is_in(sorted(stale)) if stale else None
    if replaces is not None:
        same = SmsMessage.subject == replaces
        which = same if which is None else which | same
    await SmsMessage.update(
        {
            SmsMessage.status: SmsStatus.DROPPED,
            SmsMessage.next_attempt_at: None,
            SmsMessage.last_error: f"superseded by {kind}",
            SmsMessage.status_at: now,
        }
    ).where((SmsMessage.order == order_id) & (SmsMessage.status == SmsStatus.QUEUED) & which)


async def _sent_on_day(order_id: int, at: datetime, tz: ZoneInfo) -> int:
    """Non-urgent SMS of the order that left, or are queued to leave, on `at`'s local day."""
    start, end = quiet_hours.local_day(at, tz)
    sent_that_day = (SmsMessage.sent_at >= start) & (SmsMessage.sent_at < end)
    due_that_day = (
        SmsMessage.sent_at.is_null()
        & (SmsMessage.next_attempt_at >= start)
        & (SmsMessage.next_attempt_at < end)
    )
    return await SmsMessage.count().where(
        (SmsMessage.order == order_id)
        & SmsMessage.urgent.eq(False)
        & (SmsMessage.status != SmsStatus.DROPPED)
        & (sent_that_day | due_that_day)
    )


@dataclass
class DispatchResult:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    unknown: int = 0
    failed: int = 0
    held: int = 0  # due in quiet hours: put back to the end of them
    dropped: int = 0  # queued for a number that has opted out since
    errors: list[str] = field(default_factory=list)


async def _claim(
    rt: Runtime, now: datetime, limit: int, result: DispatchResult | None = None
) -> list[dict[str, Any]]:
    async with rt.writing():
        query = (
            SmsMessage.select(
                SmsMessage.id,
                SmsMessage.recipient,
                SmsMessage.body,
                SmsMessage.encoding,
                SmsMessage.attempts,
                SmsMessage.status,
                SmsMessage.urgent,
                SmsMessage.access_token.salt.as_alias("salt"),
                SmsMessage.order._.store._.timezone.as_alias("store_zone"),
            )
            .where(SmsMessage.next_attempt_at <= now)
            .order_by(SmsMessage.next_attempt_at)
            .limit(limit)
        )
        rows = await rt.for_update(query, skip_locked=True)
        rows = await _hold_or_drop(rt, rows, now, result or DispatchResult())
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


async def _hold_or_drop(
    rt: Runtime, rows: list[dict[str, Any]], now: datetime, result: DispatchResult
) -> list[dict[str, Any]]:
    """The rows to send now. Non-urgent ones that fell due in quiet hours (a retry) wait for
    their end; queued ones to a number that opted out since they were written are dropped.
    Runs in the claim's transaction, on the rows it locked."""
    waiting = [r for r in rows if not r["urgent"]]
    if not waiting:
        return rows
    numbers = {r["recipient"] for r in waiting if r["status"] == SmsStatus.QUEUED}
    opted_out: set[str] = set()
    if numbers:
        opted_out = {
            c["phone"]
            for c in await Customer.select(Customer.phone).where(
                Customer.phone.is_in(sorted(numbers)) & Customer.sms_opt_out_at.is_not_null()
            )
        }
    window = quiet_window(rt)
    drop: list[int] = []
    hold: dict[datetime, list[int]] = defaultdict(list)
    for r in waiting:
        if r["status"] == SmsStatus.QUEUED and r["recipient"] in opted_out:
            drop.append(r["id"])
        elif window is not None:
            tz = shopper_zone(r["recipient"], r["store_zone"])
            until = quiet_hours.next_send_time(now, tz, window)
            if until > now:
                hold[until].append(r["id"])
    if drop:
        result.dropped += len(drop)
        await SmsMessage.update(
            {
                SmsMessage.status: SmsStatus.DROPPED,
                SmsMessage.next_attempt_at: None,
                SmsMessage.last_error: "opted out",
                SmsMessage.status_at: now,
            }
        ).where(SmsMessage.id.is_in(drop))
    for until, ids in hold.items():
        result.held += len(ids)
        # Status unchanged: a row of unknown outcome can still be settled by a report.
        await SmsMessage.update({SmsMessage.next_attempt_at: until}).where(SmsMessage.id.is_in(ids))
    skipped = set(drop).union(*hold.values())
    return [r for r in rows if r["id"] not in skipped]


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
        validity=URGENT_VALIDITY_SECONDS if row["urgent"] else VALIDITY_SECONDS,
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
    rows = await _claim(rt, rt.clock.now(), limit or rt.settings.dispatch_batch, result)
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


async def text_shopper(
    rt: Runtime,
    *,
    order_id: int,
    phone: str,
    locale: str,
    name: str,
    order_number: str,
    kind: str,
    dedupe_key: str,
    context: Mapping[str, Any] | None = None,
    urgent: bool = False,
    requested: bool = False,
    subject: str | None = None,
    replaces: str | None = None,
) -> bool:
    """An SMS to an order's shopper with the order's link, greeted by first name and naming
    the order; `context` adds what the template needs. Inside the caller's transaction."""
    token = await link_token(order_id)
    return await enqueue(
        rt,
        order_id=order_id,
        access_token_id=token["id"] if token else None,
        recipient=phone,
        locale=locale,
        kind=kind,
        dedupe_key=dedupe_key,
        context={"first_name": first_name(name), "order_number": order_number, **(context or {})},
        urgent=urgent,
        requested=requested,
        subject=subject,
        replaces=replaces,
    )


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
