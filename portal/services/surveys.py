"""The satisfaction survey (one SMS the day after delivery or collection, answered 1-5 by
text) and what managers read: answers and averages per store, and the texts sent per day.

`plan_survey` is called inside the transaction that makes an order delivered or collected.
It writes a Reminder keyed `survey:<order id>`, due the next day at 10:00 in the shopper's
zone (the store's for a pickup, the phone's otherwise). `send_due_surveys` claims due ones
(SKIP LOCKED on PostgreSQL) through the reminders' `due_at` index and queues the SMS,
deduplicated on the same key, so an order is asked once. Answers are stored by
`services.inbound` (one per order; a later answer replaces the earlier one).

Reports read time windows without a time index: ids grow with time, so the first row of a
window is found by bisecting the primary key (a few dozen indexed lookups), and the window
is then a primary-key range. The cost follows the window, not the table.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from piccolo.columns import Column
from piccolo.table import Table

from portal.db.tables import Order, Reminder, SmsMessage, Store, SurveyResponse
from portal.domain import inbound as rules
from portal.domain.order import OrderStatus, first_name
from portal.domain.phone import timezone_of
from portal.domain.staff import CurrentStaff
from portal.runtime import Runtime
from portal.services import messaging
from portal.services.staff import ensure_manager

SWEEP_BATCH = 100
FALLBACK_ZONE = "Europe/Rome"
ANSWERED_STATUSES = frozenset({OrderStatus.DELIVERED, OrderStatus.COLLECTED})
REPORT_DAYS = 90
MESSAGE_DAYS = 14
RECENT_ANSWERS = 50


def survey_key(order_id: int) -> str:
    return f"survey:{order_id}"


async def plan_survey(rt: Runtime, order_id: int, at: datetime) -> bool:
    """Plan the survey of an order delivered or collected at `at`; once per order.
    Call it inside the transaction of that change (it joins it). Returns False when the
    order already has one."""
    async with rt.writing():
        key = survey_key(order_id)
        if await Reminder.exists().where(Reminder.key == key):
            return False
        order = await (
            Order.select(
                Order.store.timezone.as_alias("store_timezone"),
                Order.customer.phone.as_alias("phone"),
            )
            .where(Order.id == order_id)
            .first()
        )
        if order is None:
            return False
        zone = order["store_timezone"] or timezone_of(order["phone"], FALLBACK_ZONE)
        await Reminder.insert(
            Reminder(
                key=key,
                order=order_id,
                kind=rules.SURVEY_KIND,
                due_at=rules.survey_due(at, zone),
                created_at=rt.clock.now(),
            )
        )
    return True


async def send_due_surveys(rt: Runtime) -> int:
    """Queue the surveys that are due, each once. Orders that are not delivered or
    collected, numbers that opted out, and every survey while MessageBird's webhooks are
    off (PORTAL_MESSAGEBIRD_WEBHOOKS=off: the answer could not reach us) are skipped. Safe
    with several schedulers."""
    queued = 0
    async with rt.writing():
        now = rt.clock.now()
        query = (
            Reminder.select(Reminder.id, Reminder.order)
            .where((Reminder.due_at <= now) & (Reminder.kind == rules.SURVEY_KIND))
            .order_by(Reminder.due_at)
            .limit(SWEEP_BATCH)
        )
        for reminder in await rt.for_update(query, skip_locked=True):
            order = await (
                Order.select(
                    Order.id,
                    Order.external_id,
                    Order.status,
                    Order.store.name.as_alias("store_name"),
                    Order.customer.name.as_alias("customer_name"),
                    Order.customer.phone.as_alias("phone"),
                    Order.customer.locale.as_alias("locale"),
                    Order.customer.sms_opt_out_at.as_alias("opted_out"),
                )
                .where(Order.id == reminder["order"])
                .first()
            )
            wanted = (
                order is not None
                and order["status"] in ANSWERED_STATUSES
                and order["opted_out"] is None
                and rt.settings.messagebird_webhooks  # off: no answer could reach us
            )
            done: dict[Column | str, Any] = {Reminder.due_at: None}
            done[Reminder.sent_at if wanted else Reminder.cancelled_at] = now
            await Reminder.update(done).where(Reminder.id == reminder["id"])
            if not wanted or order is None:
                continue
            token = await messaging.link_token(order["id"])
            if await messaging.enqueue(
                rt,
                order_id=order["id"],
                access_token_id=token["id"] if token else None,
                recipient=order["phone"],
                locale=order["locale"],
                kind=rules.SURVEY_KIND,
                dedupe_key=survey_key(order["id"]),
                context={
                    "first_name": first_name(order["customer_name"]),
                    "order_number": order["external_id"],
                    "store_name": order["store_name"] or "",
                    "has_link": token is not None,
                },
            ):
                queued += 1
    return queued


# ------------------------------------------------------------------ reading, for managers


async def first_id_since(table: type[Table], column: Column, since: datetime) -> int | None:
    """The id of the first row whose `column` is at or after `since`, by bisecting the
    primary key: ids and times grow together, and each probe is an indexed lookup."""
    pk: Any = table._meta.primary_key

    async def probe(where: Any, ascending: bool) -> dict[str, Any] | None:
        query = table.select(pk.as_alias("id"), column.as_alias("at"))
        if where is not None:
            query = query.where(where)
        return await query.order_by(pk, ascending=ascending).first()

    last = await probe(None, False)
    if last is None or last["at"] is None or last["at"] < since:
        return None
    first = await probe(None, True)
    if first is None or (first["at"] is not None and first["at"] >= since):
        return first["id"] if first else None
    lo, hi, answer = first["id"], last["id"], last["id"]
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        row = await probe(pk >= mid, True)
        if row is None or row["id"] >= hi:
            hi = mid  # no rows in [mid, hi): look below
        elif row["at"] is not None and row["at"] >= since:
            answer, hi = row["id"], mid
        else:
            lo = row["id"]
    return answer


@dataclass(slots=True)
class StoreScores:
    store_code: str | None  # None: home deliveries
    store_name: str
    answers: int = 0
    total: int = 0
    by_score: dict[int, int] = field(default_factory=lambda: dict.fromkeys(range(1, 6), 0))

    @property
    def average(self) -> float | None:
        return self.total / self.answers if self.answers else None


@dataclass(frozen=True, slots=True)
class Answer:
    received_at: datetime
    score: int
    comment: str | None
    order_external_id: str
    store_code: str | None
    timezone: str


@dataclass(frozen=True, slots=True)
class DayCount:
    day: date
    messages: int
    segments: int
    failed: int


@dataclass(slots=True)
class SurveyReport:
    since: datetime
    stores: list[StoreScores]
    overall: StoreScores
    recent: list[Answer]
    days: list[DayCount]
    zone: str


async def survey_report(rt: Runtime, staff: CurrentStaff) -> SurveyReport:
    """Managers only (others: the same 404 as a missing page)."""
    ensure_manager(staff)
    now = rt.clock.now()
    since = now - timedelta(days=REPORT_DAYS)
    stores = {
        r["id"]: r
        for r in await Store.select(Store.id, Store.code, Store.name, Store.timezone).order_by(
            Store.code
        )
    }
    zones = {r["timezone"] for r in stores.values()}
    zone = zones.pop() if len(zones) == 1 else "UTC"

    scores: dict[int | None, StoreScores] = {}
    overall = StoreScores(None, "All")
    start = await first_id_since(SurveyResponse, SurveyResponse.received_at, since)
    if start is not None:
        rows = await SurveyResponse.select(SurveyResponse.store, SurveyResponse.score).where(
            (SurveyResponse.id >= start) & (SurveyResponse.received_at >= since)
        )
        for r in rows:
            store = stores.get(r["store"])
            entry = scores.get(r["store"])
            if entry is None:
                entry = scores[r["store"]] = StoreScores(
                    store["code"] if store else None,
                    store["name"] if store else "Home delivery",
                )
            for target in (entry, overall):
                target.answers += 1
                target.total += r["score"]
                target.by_score[r["score"]] = target.by_score.get(r["score"], 0) + 1

    recent_rows = await (
        SurveyResponse.select(
            SurveyResponse.received_at,
            SurveyResponse.score,
            SurveyResponse.comment,
            SurveyResponse.order.external_id.as_alias("external_id"),
            SurveyResponse.store.code.as_alias("store_code"),
            SurveyResponse.store.timezone.as_alias("store_timezone"),
        )
        .order_by(SurveyResponse.id, ascending=False)
        .limit(RECENT_ANSWERS)
    )
    recent = [
        Answer(
            received_at=r["received_at"],
            score=r["score"],
            comment=r["comment"],
            order_external_id=r["external_id"],
            store_code=r["store_code"],
            timezone=r["store_timezone"] or zone,
        )
        for r in recent_rows
    ]
    ordered = sorted(scores.values(), key=lambda s: (s.store_code is None, s.store_code or ""))
    return SurveyReport(
        since=since,
        stores=ordered,
        overall=overall,
        recent=recent,
        days=await messages_per_day(rt, now, zone),
        zone=zone,
    )


# UTC hours, the same text on both databases ("2026-11-23 09"), folded into local days.
_HOUR_SQL = {
    "sqlite": "substr(sent_at, 1, 13)",
    "postgres": "to_char(sent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24')",
}
_PER_HOUR = """SELECT {hour} AS hour, COUNT(*) AS messages, SUM(segments) AS segments,
SUM(CASE WHEN status IN ('failed', 'expired') THEN 1 ELSE 0 END) AS failed
FROM sms_message WHERE id >= {{}} AND sent_at >= {{}} GROUP BY 1"""


async def messages_per_day(rt: Runtime, now: datetime, zone: str) -> list[DayCount]:
    """Texts that left (and their segments) on each of the last MESSAGE_DAYS days, newest
    first; `failed` counts those a delivery report said never arrived."""
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    first_day = today - timedelta(days=MESSAGE_DAYS - 1)
    since = datetime.combine(first_day, datetime.min.time(), tzinfo=tz).astimezone(UTC)
    # A text leaves soon after it is written; a day's slack covers retries.
    start = await first_id_since(SmsMessage, SmsMessage.created_at, since - timedelta(days=1))
    totals: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
    if start is not None:
        sql = _PER_HOUR.format(hour=_HOUR_SQL["sqlite" if rt.is_sqlite else "postgres"])
        for r in await SmsMessage.raw(sql, start, since):
            hour = datetime.strptime(r["hour"], "%Y-%m-%d %H").replace(tzinfo=UTC)
            day = hour.astimezone(tz).date()
            counts = totals[day]
            counts[0] += int(r["messages"])
            counts[1] += int(r["segments"] or 0)
            counts[2] += int(r["failed"] or 0)
    return [
        DayCount(day, *totals.get(day, [0, 0, 0]))
        for day in (today - timedelta(days=i) for i in range(MESSAGE_DAYS))
    ]
