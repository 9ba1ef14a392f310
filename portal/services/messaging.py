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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from time import monotonic
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
from portal.sms.gateway import (
    Found,
    Lookup,
    OutgoingSms,
    PermanentError,
    TransientError,
    UnknownOutcome,
)

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
    unknown: int = 0  # sends of unknown outcome (timeout, answer lost): now settling
    failed: int = 0
    held: int = 0  # due in quiet hours: put back to the end of them
    dropped: int = 0  # queued for a number that has opted out since
    taken_over: int = 0  # claims of a dispatcher that stopped renewing them: settling
    settled: int = 0  # settling ones MessageBird turned out to have
    requeued: int = 0  # settling ones MessageBird turned out not to have: queued again
    unresolved: int = 0  # settling ones still unresolved after the settle period: unknown
    given_back: int = 0  # claimed, not sent: the dispatcher is stopping (or lost its lease)
    errors: list[str] = field(default_factory=list)


def _lease(rt: Runtime) -> timedelta:
    return timedelta(seconds=rt.settings.sms_lease_seconds)


def _settle_delay(rt: Runtime) -> timedelta:
    """How long after a request may have left before asking MessageBird about it: by then
    it has reached MessageBird or never will (connecting is bounded by the send timeout,
    and a text's request is a few hundred bytes sent at once), with a margin."""
    return timedelta(seconds=rt.settings.sms_send_timeout + 5)


# What the two halves of the dispatcher claim: texts to send, and texts to settle (claims
# of a dead dispatcher to take over, "maybe sent" ones to look up). Separate jobs, so that
# a batch of slow sends never holds up a takeover.
TO_SEND = (SmsStatus.QUEUED,)
TO_SETTLE = (SmsStatus.SENDING, SmsStatus.SETTLING)


async def _claim(
    rt: Runtime,
    now: datetime,
    limit: int,
    result: DispatchResult,
    owner: str,
    statuses: tuple[SmsStatus, ...] = TO_SEND + TO_SETTLE,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Claim what is due: (queued rows to send, settling rows to look up). Both carry the
    owner and a lease; a "sending" row whose lease ran out (its owner died) is taken over
    as settling, to be looked up once a request it may have sent has surely arrived."""
    async with rt.writing():
        query = (
            SmsMessage.select(
                SmsMessage.id,
                SmsMessage.order,
                SmsMessage.kind,
                SmsMessage.recipient,
                SmsMessage.body,
                SmsMessage.encoding,
                SmsMessage.attempts,
                SmsMessage.lookups,
                SmsMessage.claimed_at,
                SmsMessage.status,
                SmsMessage.urgent,
                SmsMessage.access_token.salt.as_alias("salt"),
                SmsMessage.order._.store._.timezone.as_alias("store_zone"),
            )
            .where((SmsMessage.next_attempt_at <= now) & SmsMessage.status.is_in(list(statuses)))
            .order_by(SmsMessage.next_attempt_at)
            .limit(limit)
        )
        rows = await rt.for_update(query, skip_locked=True)
        rows = await _hold_or_drop(rt, rows, now, result)
        by_status: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            by_status[r["status"]].append(r)
        if taken := [r["id"] for r in by_status[SmsStatus.SENDING]]:
            result.taken_over += len(taken)
            await SmsMessage.update(
                {
                    SmsMessage.status: SmsStatus.SETTLING,
                    SmsMessage.claimed_by: None,
                    SmsMessage.next_attempt_at: now + _settle_delay(rt),
                    SmsMessage.last_error: "its dispatcher stopped during the send",
                }
            ).where(SmsMessage.id.is_in(taken))
        settling = by_status[SmsStatus.SETTLING]
        if settling:
            await SmsMessage.update(
                {SmsMessage.claimed_by: owner, SmsMessage.next_attempt_at: now + _lease(rt)}
            ).where(SmsMessage.id.is_in([r["id"] for r in settling]))
        sending = by_status[SmsStatus.QUEUED]
        if sending:
            await SmsMessage.update(
                {
                    SmsMessage.status: SmsStatus.SENDING,
                    SmsMessage.attempts: SmsMessage.attempts + 1,
                    SmsMessage.claimed_at: now,
                    SmsMessage.claimed_by: owner,
                    SmsMessage.lookups: 0,
                    SmsMessage.next_attempt_at: now + _lease(rt),
                }
            ).where(SmsMessage.id.is_in([r["id"] for r in sending]))
    for r in sending:
        r["attempts"] += 1
        r["claimed_at"] = now
    return sending, settling


async def _hold_or_drop(
    rt: Runtime, rows: list[dict[str, Any]], now: datetime, result: DispatchResult
) -> list[dict[str, Any]]:
    """The rows to handle now. Queued non-urgent ones that fell due in quiet hours (a retry)
    wait for their end; queued ones to a number that opted out since they were written are
    dropped. Runs in the claim's transaction, on the rows it locked."""
    waiting = [r for r in rows if not r["urgent"] and r["status"] == SmsStatus.QUEUED]
    if not waiting:
        return rows
    numbers = {r["recipient"] for r in waiting}
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
        if r["recipient"] in opted_out:
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
        await SmsMessage.update({SmsMessage.next_attempt_at: until}).where(SmsMessage.id.is_in(ids))
    skipped = set(drop).union(*hold.values())
    return [r for r in rows if r["id"] not in skipped]


class _Lease:
    """The claims of one dispatch run, kept alive while it runs: renewed every third of the
    lease. Locally it is trusted only as long as the last renewal that landed allows; a
    send is not started on a lease about to run out (another dispatcher may take it over)."""

    def __init__(self, rt: Runtime, owner: str, ids: list[int]) -> None:
        self.rt, self.owner, self.ids = rt, owner, set(ids)
        self.valid_until = monotonic() + rt.settings.sms_lease_seconds

    def usable(self) -> bool:
        margin = min(1.0, self.rt.settings.sms_lease_seconds / 4)
        return monotonic() < self.valid_until - margin

    async def keep(self) -> None:
        seconds = self.rt.settings.sms_lease_seconds
        while True:
            await asyncio.sleep(seconds / 3)
            if not self.ids:
                continue
            started = monotonic()
            try:
                async with self.rt.writing():
                    await SmsMessage.update(
                        {SmsMessage.next_attempt_at: self.rt.clock.now() + _lease(self.rt)}
                    ).where(
                        SmsMessage.id.is_in(sorted(self.ids))
                        & (SmsMessage.claimed_by == self.owner)
                        & SmsMessage.status.is_in([SmsStatus.SENDING, SmsStatus.SETTLING])
                    )
                self.valid_until = started + seconds
            except Exception as exc:  # the outcome writes retry; the next renewal may land
                log.warning("sms lease renewal failed: %s", type(exc).__name__)


async def _write(rt: Runtime, message_id: int, write: Callable[[], Awaitable[Any]]) -> None:
    """Run an outcome write until it lands: what happened to a text must not be lost to a
    database hiccup (the claim's lease is renewed meanwhile, so nobody takes it over)."""
    tries = 0
    while True:
        try:
            async with rt.writing():
                await write()
            return
        except Exception as exc:
            tries += 1
            if tries == 1 or tries % 20 == 0:
                log.warning(
                    "sms %s: outcome not written (%s), try %d; retrying",
                    message_id,
                    type(exc).__name__,
                    tries,
                )
            await asyncio.sleep(min(0.1 * 2**tries, 5.0))


def _mine(message_id: int, owner: str, *statuses: SmsStatus) -> Any:
    return (
        (SmsMessage.id == message_id)
        & (SmsMessage.claimed_by == owner)
        & SmsMessage.status.is_in(list(statuses))
    )


async def _send_one(
    rt: Runtime, row: dict[str, Any], result: DispatchResult, owner: str, gate: asyncio.Semaphore
) -> None:
    sms = OutgoingSms(
        reference=str(row["id"]),
        recipient=row["recipient"],
        body=with_link(rt, row["body"], row["salt"]),
        datacoding="plain" if row["encoding"] == "gsm7" else "unicode",
        validity=URGENT_VALIDITY_SECONDS if row["urgent"] else VALIDITY_SECONDS,
    )
    attempts = row["attempts"]
    out_of_tries = attempts >= rt.settings.sms_max_attempts
    message_id = row["id"]
    values: dict[Any, Any]
    async with gate:  # the outcome is written outside it: a slow write holds up no send
        try:
            accepted = await rt.gateway.send(sms)
        except PermanentError as exc:
            result.failed += 1
            values = _failed(rt, str(exc))
        except TransientError as exc:
            if out_of_tries:
                result.failed += 1
                values = _failed(rt, f"gave up after {attempts} tries: {exc}")
            else:
                result.retrying += 1
                values = {
                    SmsMessage.status: SmsStatus.QUEUED,
                    SmsMessage.claimed_by: None,
                    SmsMessage.next_attempt_at: rt.clock.now() + sms_rules.backoff(attempts),
                    SmsMessage.last_error: str(exc)[:300],
                }
        except UnknownOutcome as exc:
            # Maybe sent: never sent blind. Settled by a report, or by asking MessageBird
            # once the request has surely arrived there or never will.
            result.unknown += 1
            values = {
                SmsMessage.status: SmsStatus.SETTLING,
                SmsMessage.claimed_by: None,
                SmsMessage.next_attempt_at: rt.clock.now() + _settle_delay(rt),
                SmsMessage.last_error: str(exc)[:300],
            }
        else:
            result.sent += 1
            await _write(
                rt,
                message_id,
                lambda: _record_sent(rt, message_id, accepted.gateway_id, accepted.status),
            )
            return
    # A report may have got there first (then the status is no longer ours to set).
    mine = _mine(message_id, owner, SmsStatus.SENDING)
    await _write(rt, message_id, lambda: SmsMessage.update(values).where(mine))


def _failed(rt: Runtime, reason: str, status: SmsStatus = SmsStatus.FAILED) -> dict[Any, Any]:
    """The values that end a text's sending for good, with the reason."""
    return {
        SmsMessage.status: status,
        SmsMessage.claimed_by: None,
        SmsMessage.next_attempt_at: None,
        SmsMessage.last_error: reason[:300],
        SmsMessage.status_at: rt.clock.now(),
    }


async def _record_sent(rt: Runtime, message_id: int, gateway_id: str, gateway_status: str) -> None:
    """MessageBird has the message: its id is kept whatever happened meanwhile (a report
    got there first, or the row was taken over for settling); the status unless final."""
    now = rt.clock.now()
    status = sms_rules.REPORT_STATUS.get(gateway_status, SmsStatus.SENT)
    await SmsMessage.update(
        {SmsMessage.gateway_id: gateway_id[:64], SmsMessage.sent_at: now}
    ).where((SmsMessage.id == message_id) & SmsMessage.gateway_id.is_null())
    await SmsMessage.update(
        {
            SmsMessage.status: status,
            SmsMessage.gateway_status: gateway_status[:24],
            SmsMessage.status_at: now,
            SmsMessage.claimed_by: None,
            SmsMessage.next_attempt_at: None,
            SmsMessage.last_error: None,
        }
    ).where(
        (SmsMessage.id == message_id)
        & SmsMessage.status.is_in([SmsStatus.SENDING, SmsStatus.SETTLING, SmsStatus.UNKNOWN])
    )


async def _settle_one(
    rt: Runtime, row: dict[str, Any], result: DispatchResult, owner: str, gate: asyncio.Semaphore
) -> None:
    """Find out whether a "maybe sent" text left: ask MessageBird for that recipient and
    time, a bounded number of times within the settle period; unresolved after it, the
    text is marked unknown and never sent again."""
    message_id = row["id"]
    now = rt.clock.now()
    claimed_at = row["claimed_at"] or now
    deadline = claimed_at + timedelta(minutes=rt.settings.sms_settle_minutes)
    lookup = Lookup(
        reference=str(message_id),
        recipient=row["recipient"],
        since=claimed_at - timedelta(minutes=5),  # clocks differ a little
        until=now + timedelta(minutes=5),
    )
    mine = _mine(message_id, owner, SmsStatus.SETTLING)
    values: dict[Any, Any]
    found: Found | None = None
    error: str | None = None
    async with gate:
        try:
            found = await rt.gateway.find(lookup)
        except TransientError as exc:
            error = str(exc)
    if found is not None:
        result.settled += 1
        gateway_id, status = found.gateway_id, found.status
        await _write(rt, message_id, lambda: _record_sent(rt, message_id, gateway_id, status))
        return
    lookups = row["lookups"] + 1
    if error is None:  # MessageBird has no such message: it never left
        if await _stale(row):
            result.dropped += 1
            values = _failed(rt, "not sent, and a newer text replaces it", SmsStatus.DROPPED)
        elif row["attempts"] >= rt.settings.sms_max_attempts:
            result.failed += 1
            values = _failed(
                rt, f"gave up after {row['attempts']} tries: never reached MessageBird"
            )
        else:
            result.requeued += 1
            values = {
                SmsMessage.status: SmsStatus.QUEUED,
                SmsMessage.claimed_by: None,
                # Due since its first try: ahead of the texts queued meanwhile.
                SmsMessage.next_attempt_at: min(claimed_at, now),
                SmsMessage.lookups: lookups,
                SmsMessage.last_error: "not sent: MessageBird has no such message",
            }
    elif lookups >= sms_rules.MAX_LOOKUPS or now >= deadline:
        result.unresolved += 1
        reason = f"not known whether it was sent; not sent again ({error})"
        values = {**_failed(rt, reason, SmsStatus.UNKNOWN), SmsMessage.lookups: lookups}
    else:
        later = now + sms_rules.lookup_delay(lookups)
        if lookups == sms_rules.MAX_LOOKUPS - 1 or later > deadline:
            later = deadline  # the last lookup at the end of the settle period
        values = {
            SmsMessage.claimed_by: None,
            SmsMessage.next_attempt_at: later,
            SmsMessage.lookups: lookups,
            SmsMessage.last_error: (error or "")[:300],
        }
    await _write(rt, message_id, lambda: SmsMessage.update(values).where(mine))


async def _stale(row: dict[str, Any]) -> bool:
    """Whether a newer text of the same order makes this one no use (a new code)."""
    if row["order"] is None:
        return False
    newer = await SmsMessage.select(SmsMessage.kind).where(
        (SmsMessage.order == row["order"]) & (SmsMessage.id > row["id"])
    )
    return any(sms_rules.made_stale_by(row["kind"], n["kind"]) for n in newer)


async def _give_back(rt: Runtime, row: dict[str, Any], owner: str, result: DispatchResult) -> None:
    """A claimed text this run will not send after all (stopping, or its lease is in doubt):
    queued again at once for whoever runs next. Nothing was sent, so nothing to settle."""
    result.given_back += 1
    try:
        async with rt.writing():
            await SmsMessage.update(
                {
                    SmsMessage.status: SmsStatus.QUEUED,
                    SmsMessage.attempts: SmsMessage.attempts - 1,
                    SmsMessage.claimed_by: None,
                    SmsMessage.next_attempt_at: row["claimed_at"],  # first in line again
                }
            ).where(_mine(row["id"], owner, SmsStatus.SENDING))
    except Exception as exc:  # then its lease runs out and it is taken over: still once
        log.warning("sms %s: not given back (%s)", row["id"], type(exc).__name__)


async def dispatch_due(
    rt: Runtime, *, limit: int | None = None, owner: str | None = None
) -> DispatchResult:
    """Settle what may have been sent, and send what is due now, in one run."""
    return await _dispatch(rt, TO_SEND + TO_SETTLE, limit, owner)


async def send_due(
    rt: Runtime, *, limit: int | None = None, owner: str | None = None
) -> DispatchResult:
    """Send the queued texts that are due (the scheduler's outbox job)."""
    return await _dispatch(rt, TO_SEND, limit, owner)


async def settle_due(
    rt: Runtime, *, limit: int | None = None, owner: str | None = None
) -> DispatchResult:
    """Take over dead dispatchers' claims and look up "maybe sent" texts that are due."""
    return await _dispatch(rt, TO_SETTLE, limit, owner)


async def _dispatch(
    rt: Runtime, statuses: tuple[SmsStatus, ...], limit: int | None, owner: str | None
) -> DispatchResult:
    """Safe to run in several processes at once. Once the process is stopping, it claims
    nothing."""
    result = DispatchResult()
    state = rt.dispatching
    if state.stopping:
        return result
    owner = owner or state.owner
    async with state.run():
        sending, settling = await _claim(
            rt, rt.clock.now(), limit or rt.settings.dispatch_batch, result, owner, statuses
        )
        result.claimed = len(sending)
        if not sending and not settling:
            return result
        lease = _Lease(rt, owner, [r["id"] for r in [*sending, *settling]])
        keeper = asyncio.create_task(lease.keep())
        gate = asyncio.Semaphore(SEND_CONCURRENCY)

        async def guarded(row: dict[str, Any], work: Any) -> None:
            try:
                if work is _send_one and (state.stopping or not lease.usable()):
                    await _give_back(rt, row, owner, result)
                else:
                    await work(rt, row, result, owner, gate)
            except Exception as exc:  # a bug: keep the rest of the batch going
                log.exception("sms %s: dispatch failed", row["id"])
                result.errors.append(type(exc).__name__)
            finally:
                lease.ids.discard(row["id"])

        try:
            await asyncio.gather(
                *(guarded(r, _send_one) for r in sending),
                *(guarded(r, _settle_one) for r in settling),
            )
        finally:
            keeper.cancel()
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
