"""Click-and-collect use cases: set aside, hand over, visits, reminders and expiry.

Each public function is one transaction: the pickup row, the order's status and timeline,
the outgoing SMS and the reminders change together or not at all. Racing clerks queue on
the pickup row (FOR UPDATE on PostgreSQL; BEGIN IMMEDIATE on SQLite), so one wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from piccolo.columns import Column

from portal.db.tables import AccessToken, Order, OrderEvent, OrderLine, Pickup, Reminder
from portal.domain import DomainError, InvalidTransition, qr, tokens
from portal.domain import pickup as rules
from portal.domain.i18n import N_, words_of
from portal.domain.order import EventType, Fulfilment, OrderStatus, transition
from portal.domain.pickup import PickupStatus
from portal.domain.refunds import RefundReason
from portal.runtime import Runtime
from portal.services import kept_qr, messaging, refunds, surveys
from portal.services import shopper_limits as limits
from portal.services.errors import Conflict, Invalid, NotFound
from portal.services.staff import record_audit

SWEEP_BATCH = 100


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts at the counter: a clerk of one store, or a manager (store_id None)."""

    staff_id: int
    store_id: int | None

    @classmethod
    def of(cls, staff: Any) -> Actor:
        """From the signed-in CurrentStaff: managers act for every store."""
        return cls(staff.id, None if staff.is_manager else staff.store_id)


async def open_pickup(rt: Runtime, order_id: int, store_id: int) -> None:
    """Called inside the order's creation transaction."""
    await Pickup.insert(
        Pickup(
            order=order_id,
            store=store_id,
            status=PickupStatus.PREPARING,
            code=rules.new_code(),
            created_at=rt.clock.now(),
            updated_at=rt.clock.now(),
        )
    )


_PICKUP_COLUMNS = (
    Pickup.id,
    Pickup.status,
    Pickup.code,
    Pickup.store,
    Pickup.hold_until,
    Pickup.delegate_name,
    Pickup.wrong_codes,
    Pickup.code_locked_until,
    Pickup.visit_start,
    Pickup.ready_at,
    Pickup.order.id.as_alias("order_id"),
    Pickup.order.external_id.as_alias("external_id"),
    Pickup.order.status.as_alias("order_status"),
    Pickup.order.total_minor.as_alias("total_minor"),
    Pickup.order.currency.as_alias("currency"),
    Pickup.order.customer.name.as_alias("customer_name"),  # type: ignore[union-attr]
    Pickup.order.customer.phone.as_alias("phone"),  # type: ignore[union-attr]
    Pickup.order.customer.locale.as_alias("locale"),  # type: ignore[union-attr]
    Pickup.store.name.as_alias("store_name"),
    Pickup.store.timezone.as_alias("store_timezone"),
    Pickup.store.opening_hours.as_alias("store_hours"),
    Pickup.store.pickup_hold_days.as_alias("hold_days"),
    Pickup.store.pickup_reminder_days.as_alias("reminder_days"),
)


async def _load(rt: Runtime, order_id: int, actor: Actor | None) -> dict[str, Any]:
    """The pickup of an order, locked for this transaction; 404 outside the actor's store."""
    query = Pickup.select(*_PICKUP_COLUMNS).where(Pickup.order == order_id)
    row = await rt.for_update(query).first()
    if row is None or (actor and actor.store_id is not None and row["store"] != actor.store_id):
        raise NotFound("no such pickup order in this store")
    return row


async def _event(
    rt: Runtime, order_id: int, event: EventType, data: dict[str, Any] | None = None
) -> int:
    now = rt.clock.now()
    rows = await OrderEvent.insert(
        OrderEvent(order=order_id, type=event, occurred_at=now, recorded_at=now, data=data or {})
    ).returning(OrderEvent.id)
    return int(rows[0]["id"])


async def _move_order(rt: Runtime, pickup: dict[str, Any], target: OrderStatus) -> None:
    now = rt.clock.now()
    try:
        transition(Fulfilment.PICKUP, OrderStatus(pickup["order_status"]), target)
    except InvalidTransition as exc:
        raise Conflict(str(exc)) from exc
    final = target in (OrderStatus.COLLECTED, OrderStatus.CANCELLED)
    await Order.update(
        {
            Order.status: target,
            Order.version: Order.version + 1,
            Order.updated_at: now,
            Order.closed_at: now if final else None,
        }
    ).where(Order.id == pickup["order_id"])
    if final:
        expires = tokens.token_expiry(
            now,
            closed=True,
            days_open=rt.settings.token_days_open,
            days_after_close=rt.settings.token_days_after_close,
        )
        await AccessToken.update({AccessToken.expires_at: expires}).where(
            (AccessToken.order == pickup["order_id"]) & AccessToken.revoked_at.is_null()
        )


async def _bump(rt: Runtime, order_id: int) -> None:
    await Order.update({Order.version: Order.version + 1, Order.updated_at: rt.clock.now()}).where(
        Order.id == order_id
    )


async def _sms(
    rt: Runtime, pickup: dict[str, Any], kind: str, dedupe_key: str, *, urgent: bool = False
) -> None:
    await messaging.text_shopper(
        rt,
        order_id=pickup["order_id"],
        phone=pickup["phone"],
        locale=pickup["locale"],
        name=pickup["customer_name"],
        order_number=pickup["external_id"],
        kind=kind,
        dedupe_key=dedupe_key,
        urgent=urgent,
        context={"store_name": pickup["store_name"], "pickup": True},
    )


async def _cancel_reminders(rt: Runtime, order_id: int) -> None:
    await Reminder.update({Reminder.due_at: None, Reminder.cancelled_at: rt.clock.now()}).where(
        (Reminder.order == order_id)
        & Reminder.due_at.is_not_null()
        & Reminder.kind.is_in(list(rules.REMINDER_KINDS))
    )


async def _schedule_reminders(
    rt: Runtime, pickup: dict[str, Any], ready_at: datetime, until: datetime
) -> None:
    """(Re)plan the reminders of a waiting order: the unsent ones follow the latest plan."""
    await _cancel_reminders(rt, pickup["order_id"])
    for due in rules.reminders(
        ready_at,
        until,
        pickup["store_timezone"],
        pickup["visit_start"],
        waiting_after=timedelta(days=pickup["reminder_days"]),
    ):
        key = f"pickup:{pickup['id']}:{due.kind}:{due.at.isoformat()}"
        if await Reminder.exists().where(Reminder.key == key):
            continue
        await Reminder.insert(
            Reminder(
                key=key,
                order=pickup["order_id"],
                kind=due.kind,
                due_at=due.at,
                created_at=rt.clock.now(),
            )
        )


# ------------------------------------------------------------------ the counter


@dataclass(frozen=True, slots=True)
class Readiness:
    status: PickupStatus
    ready: int
    total: int


async def mark_ready(
    rt: Runtime, actor: Actor, order_id: int, changes: dict[int, int] | None = None
) -> Readiness:
    """Set items aside: `changes` maps line id -> items ready; None means everything.

    When the whole order is ready the shopper gets the "ready for pickup" SMS, the holding
    period starts and reminders are planned. Once the shopper has been told, counts can
    no longer go down."""
    async with rt.writing():
        pickup = await _load(rt, order_id, actor)
        status = PickupStatus(pickup["status"])
        rows = await OrderLine.select(
            OrderLine.id, OrderLine.quantity, OrderLine.ready_quantity
        ).where(OrderLine.order == order_id)
        lines = [rules.Line(r["id"], r["quantity"], r["ready_quantity"]) for r in rows]
        wanted = rules.all_ready(lines) if changes is None else changes
        try:
            updated, target = rules.set_ready(status, lines, wanted)
        except InvalidTransition as exc:
            raise Conflict(
                f"this order is {status.replace('_', ' ')}: nothing to set aside"
            ) from exc
        except DomainError as exc:
            raise Invalid(str(exc), field="ready") from exc
        if status is PickupStatus.READY and target is not PickupStatus.READY:
            raise Conflict("the shopper has been told the order is ready: counts cannot go down")
        before = {line.id: line.ready for line in lines}
        changed = [line for line in updated if before[line.id] != line.ready]
        for line in changed:
            await OrderLine.update({OrderLine.ready_quantity: line.ready}).where(
                OrderLine.id == line.id
            )
        ready, total = rules.items_ready(updated)
        now = rt.clock.now()
        values: dict[Any, Any] = {Pickup.status: target, Pickup.updated_at: now}
        if target is PickupStatus.READY and status is not PickupStatus.READY:
            until = rules.hold_until(now, pickup["hold_days"])
            values.update({Pickup.ready_at: now, Pickup.hold_until: until})
            await _move_order(rt, pickup, OrderStatus.READY_FOR_PICKUP)
            event_id = await _event(rt, order_id, EventType.READY_FOR_PICKUP)
            await _sms(rt, pickup, "ready_for_pickup", f"event:{event_id}")
            await _schedule_reminders(rt, pickup, now, until)
        elif changed:
            await _bump(rt, order_id)
            if target is PickupStatus.PARTLY_READY:
                await _event(rt, order_id, EventType.PARTLY_READY, {"ready": ready, "total": total})
        await Pickup.update(values).where(Pickup.id == pickup["id"])
        if changed:
            await record_audit(
                rt,
                staff_id=actor.staff_id,
                action="mark_ready",
                order_id=order_id,
                store_id=pickup["store"],
                details={"ready": ready, "total": total, "order": pickup["external_id"]},
            )
    if target is PickupStatus.READY and status is not PickupStatus.READY:
        # The handover QR the page shows while the order waits (kept only while it does).
        await kept_qr.keep(
            rt,
            Pickup,
            qr.handover_url(rt.settings.base_url, order_id, pickup["code"]),
            (Pickup.id == pickup["id"]) & (Pickup.status == PickupStatus.READY),
        )
    return Readiness(target, ready, total)


# What a pickup that no longer waits keeps of its handover QR: nothing, as no page shows it.
NO_HANDOVER_QR = kept_qr.cleared(Pickup)


@dataclass(frozen=True, slots=True)
class Handover:
    ok: bool
    message: str
    handed_to: str | None = None


async def hand_over(rt: Runtime, actor: Actor, order_id: int, typed_code: str) -> Handover:
    """Check the code the shopper shows and hand the order over; exactly one clerk wins.

    A wrong code is counted (and locks the order after a few) and reported, not raised, so
    that the count is kept."""
    async with rt.writing():
        pickup = await _load(rt, order_id, actor)
        status = PickupStatus(pickup["status"])
        if status is PickupStatus.COLLECTED:
            raise Conflict("this order has already been handed over")
        if status is not PickupStatus.READY:
            raise Conflict(f"this order cannot be handed over: it is {status.replace('_', ' ')}")
        now = rt.clock.now()
        try:
            check = rules.check_code(
                pickup["code"], typed_code, pickup["wrong_codes"], pickup["code_locked_until"], now
            )
        except DomainError as exc:
            return Handover(False, str(exc))
        if not check.ok:
            await Pickup.update(
                {
                    Pickup.wrong_codes: check.wrong_codes,
                    Pickup.code_locked_until: check.locked_until,
                }
            ).where(Pickup.id == pickup["id"])
            await record_audit(
                rt,
                staff_id=actor.staff_id,
                action="wrong_pickup_code",
                order_id=order_id,
                store_id=pickup["store"],
                details={"order": pickup["external_id"], "locked": check.locked_until is not None},
            )
            message = "that code is not right for this order"
            if check.locked_until:
                message += ": too many wrong codes, try again in a few minutes"
            return Handover(False, message)
        handed_to = pickup["delegate_name"] or pickup["customer_name"]
        await Pickup.update(
            {
                Pickup.status: PickupStatus.COLLECTED,
                Pickup.collected_at: now,
                Pickup.collected_by: actor.staff_id,
                Pickup.handed_to: handed_to,
                Pickup.hold_until: None,
                Pickup.wrong_codes: 0,
                Pickup.updated_at: now,
                **NO_HANDOVER_QR,
            }
        ).where(Pickup.id == pickup["id"])
        await _move_order(rt, pickup, OrderStatus.COLLECTED)
        event_id = await _event(rt, order_id, EventType.COLLECTED, {"by": handed_to})
        await _sms(rt, pickup, "collected", f"event:{event_id}", urgent=True)
        await _cancel_reminders(rt, order_id)
        await surveys.plan_survey(rt, order_id, now)
        await record_audit(
            rt,
            staff_id=actor.staff_id,
            action="hand_over",
            order_id=order_id,
            store_id=pickup["store"],
            details={"order": pickup["external_id"], "handed_to": handed_to},
        )
    return Handover(True, "handed over", handed_to)


# ------------------------------------------------------------------ the shopper


async def choose_visit(rt: Runtime, order_id: int, start: datetime, end: datetime) -> None:
    """The shopper says when they will come; changeable until collected."""
    async with limits.acting(rt, order_id, limits.VISIT):
        pickup = await _load(rt, order_id, None)
        await _check_open_for_shopper(pickup)
        now = rt.clock.now()
        until = pickup["hold_until"] or rules.hold_until(now, pickup["hold_days"])
        try:
            rules.check_visit(
                start, end, _hours(pickup["store_hours"]), pickup["store_timezone"], now, until
            )
        except DomainError as exc:
            raise Invalid(words_of(exc), field="visit") from exc
        await Pickup.update(
            {Pickup.visit_start: start, Pickup.visit_end: end, Pickup.updated_at: now}
        ).where(Pickup.id == pickup["id"])
        await _bump(rt, order_id)
        if pickup["ready_at"] is not None and pickup["hold_until"] is not None:
            await _schedule_reminders(
                rt, {**pickup, "visit_start": start}, pickup["ready_at"], until
            )


async def name_delegate(rt: Runtime, order_id: int, name: str | None) -> str | None:
    """Name the person who will collect the order; None takes the name back (the shopper
    collects after all)."""
    async with limits.acting(rt, order_id, limits.DELEGATE):
        pickup = await _load(rt, order_id, None)
        await _check_open_for_shopper(pickup)
        try:
            clean = None if name is None else rules.check_delegate(name)
        except DomainError as exc:
            raise Invalid(words_of(exc), field="delegate") from exc
        await Pickup.update({Pickup.delegate_name: clean, Pickup.updated_at: rt.clock.now()}).where(
            Pickup.id == pickup["id"]
        )
        await _bump(rt, order_id)
    return clean


async def _check_open_for_shopper(pickup: dict[str, Any]) -> None:
    if PickupStatus(pickup["status"]) in rules.FINAL:
        raise Conflict(N_("this order is no longer waiting to be collected"))


def _hours(value: Any) -> dict[str, list[str]]:
    import json

    return json.loads(value) if isinstance(value, str) else (value or {})


# ------------------------------------------------------------------ the scheduler


async def _due(rt: Runtime, query: Any) -> list[dict[str, Any]]:
    return list(await rt.for_update(query.limit(SWEEP_BATCH), skip_locked=True))


async def expire_due(rt: Runtime) -> int:
    """Cancel orders not collected in time: refund pending for what was paid, an SMS, and
    the clerk queue shows them as 'return to stock'. Safe with several schedulers."""
    expired = 0
    async with rt.writing():
        now = rt.clock.now()
        due = await _due(
            rt,
            Pickup.select(*_PICKUP_COLUMNS)
            .where(Pickup.hold_until <= now)
            .order_by(Pickup.hold_until),
        )
        for pickup in due:
            if PickupStatus(pickup["status"]) is not PickupStatus.READY:
                continue
            await Pickup.update(
                {
                    Pickup.status: PickupStatus.EXPIRED,
                    Pickup.hold_until: None,
                    Pickup.updated_at: now,
                    **NO_HANDOVER_QR,
                }
            ).where(Pickup.id == pickup["id"])
            await _move_order(rt, pickup, OrderStatus.CANCELLED)
            event_id = await _event(rt, pickup["order_id"], EventType.PICKUP_EXPIRED)
            # What was paid, less what the shop may have refunded already.
            await refunds.start_refund(
                rt,
                {**pickup, "id": pickup["order_id"]},
                pickup["total_minor"],
                RefundReason.PICKUP_EXPIRED,
                at_most_left=True,
            )
            await _sms(rt, pickup, "pickup_expired", f"event:{event_id}")
            await _cancel_reminders(rt, pickup["order_id"])
            expired += 1
    return expired


async def send_due_reminders(rt: Runtime) -> int:
    """Queue the reminders that are due, each once; those of orders no longer waiting are
    dropped."""
    sent = 0
    async with rt.writing():
        now = rt.clock.now()
        due = await _due(
            rt,
            Reminder.select(Reminder.id, Reminder.kind, Reminder.order)
            .where((Reminder.due_at <= now) & Reminder.kind.is_in(list(rules.REMINDER_KINDS)))
            .order_by(Reminder.due_at),
        )
        for reminder in due:
            pickup = (
                await Pickup.select(*_PICKUP_COLUMNS)
                .where(Pickup.order == reminder["order"])
                .first()
            )
            waiting = pickup is not None and PickupStatus(pickup["status"]) is PickupStatus.READY
            done: dict[Column | str, Any] = {Reminder.due_at: None}
            done[Reminder.sent_at if waiting else Reminder.cancelled_at] = now
            await Reminder.update(done).where(Reminder.id == reminder["id"])
            if waiting and pickup is not None:
                await _sms(rt, pickup, reminder["kind"], f"reminder:{reminder['id']}")
                sent += 1
    return sent


# ------------------------------------------------------------------ reading, for the console

QUEUE_SECTIONS = ("to_prepare", "partly_ready", "waiting", "collected_today", "return_to_stock")
_SECTION_OF = {
    PickupStatus.PREPARING: "to_prepare",
    PickupStatus.PARTLY_READY: "partly_ready",
    PickupStatus.READY: "waiting",
    PickupStatus.COLLECTED: "collected_today",
    PickupStatus.EXPIRED: "return_to_stock",
}
RETURN_TO_STOCK_DAYS = 7


@dataclass(slots=True)
class QueueEntry:
    order_id: int
    external_id: str
    customer_name: str
    store_code: str
    status: str
    ready: int
    total: int
    ready_at: datetime | None
    hold_until: datetime | None
    visit_start: datetime | None
    visit_end: datetime | None
    delegate_name: str | None
    collected_at: datetime | None
    updated_at: datetime

    def days_waiting(self, now: datetime) -> int:
        return (now - self.ready_at).days if self.ready_at else 0


async def store_queue(
    rt: Runtime, actor: Actor, search: str | None = None
) -> dict[str, list[QueueEntry]]:
    """The counter's queue, by section. Open pickups of the actor's store (all stores for a
    manager), plus those collected today and those expired in the last week; `search`
    matches the order number, the customer's name or the pickup code."""
    now = rt.clock.now()
    since = now - timedelta(days=RETURN_TO_STOCK_DAYS)
    open_statuses = [PickupStatus.PREPARING, PickupStatus.PARTLY_READY, PickupStatus.READY]
    where: Any = (
        Pickup.status.is_in(open_statuses)
        | ((Pickup.status == PickupStatus.COLLECTED) & (Pickup.collected_at >= since))
        | ((Pickup.status == PickupStatus.EXPIRED) & (Pickup.updated_at >= since))
    )
    if actor.store_id is not None:
        where = (Pickup.store == actor.store_id) & where
    text = (search or "").strip()
    if text:
        code = rules.normalise_code(text)
        where = where & (
            (Pickup.order.external_id.ilike(f"%{text}%"))
            | (Pickup.order.customer.name.ilike(f"%{text}%"))  # type: ignore[union-attr]
            | (Pickup.code == code)
        )
    rows = await (
        Pickup.select(
            Pickup.id,
            Pickup.status,
            Pickup.ready_at,
            Pickup.hold_until,
            Pickup.visit_start,
            Pickup.visit_end,
            Pickup.delegate_name,
            Pickup.collected_at,
            Pickup.updated_at,
            Pickup.order.id.as_alias("order_id"),
            Pickup.order.external_id.as_alias("external_id"),
            Pickup.order.customer.name.as_alias("customer_name"),  # type: ignore[union-attr]
            Pickup.store.code.as_alias("store_code"),
            Pickup.store.timezone.as_alias("store_timezone"),
        )
        .where(where)
        .order_by(Pickup.updated_at)
        .limit(500)
    )
    counts = await _item_counts([r["order_id"] for r in rows])
    sections: dict[str, list[QueueEntry]] = {name: [] for name in QUEUE_SECTIONS}
    for r in rows:
        status = PickupStatus(r["status"])
        if status is PickupStatus.CANCELLED:
            continue
        if status is PickupStatus.COLLECTED and not _same_local_day(
            r["collected_at"], now, r["store_timezone"]
        ):
            continue
        ready, total = counts.get(r["order_id"], (0, 0))
        sections[_SECTION_OF[status]].append(
            QueueEntry(
                order_id=r["order_id"],
                external_id=r["external_id"],
                customer_name=r["customer_name"],
                store_code=r["store_code"],
                status=status,
                ready=ready,
                total=total,
                ready_at=r["ready_at"],
                hold_until=r["hold_until"],
                visit_start=r["visit_start"],
                visit_end=r["visit_end"],
                delegate_name=r["delegate_name"],
                collected_at=r["collected_at"],
                updated_at=r["updated_at"],
            )
        )
    sections["waiting"].sort(key=lambda e: (e.visit_start is None, e.visit_start or e.updated_at))
    return sections


def _same_local_day(moment: datetime | None, now: datetime, tz: str) -> bool:
    from zoneinfo import ZoneInfo

    if moment is None:
        return False
    zone = ZoneInfo(tz)
    return moment.astimezone(zone).date() == now.astimezone(zone).date()


async def _item_counts(order_ids: list[int]) -> dict[int, tuple[int, int]]:
    if not order_ids:
        return {}
    rows = await OrderLine.select(
        OrderLine.order, OrderLine.quantity, OrderLine.ready_quantity
    ).where(OrderLine.order.is_in(order_ids))
    counts: dict[int, tuple[int, int]] = {}
    for r in rows:
        ready, total = counts.get(r["order"], (0, 0))
        counts[r["order"]] = (ready + r["ready_quantity"], total + r["quantity"])
    return counts


@dataclass(slots=True)
class CounterView:
    """One pickup order as the clerk sees it. The code is not shown: the shopper shows it."""

    order_id: int
    external_id: str
    status: str
    customer_name: str
    delegate_name: str | None
    store_name: str
    store_timezone: str
    lines: list[dict[str, Any]]
    ready: int
    total: int
    ready_at: datetime | None
    hold_until: datetime | None
    visit_start: datetime | None
    visit_end: datetime | None
    collected_at: datetime | None
    collected_by: str | None
    handed_to: str | None
    code_locked_until: datetime | None

    @property
    def may_collect(self) -> str:
        return self.delegate_name or self.customer_name


async def counter_view(rt: Runtime, actor: Actor, order_id: int) -> CounterView:
    """404 for orders of another store, as for orders that do not exist."""
    row = await (
        Pickup.select(
            Pickup.status,
            Pickup.store,
            Pickup.delegate_name,
            Pickup.ready_at,
            Pickup.hold_until,
            Pickup.visit_start,
            Pickup.visit_end,
            Pickup.collected_at,
            Pickup.handed_to,
            Pickup.code_locked_until,
            Pickup.collected_by.username.as_alias("collected_by"),
            Pickup.order.external_id.as_alias("external_id"),
            Pickup.order.customer.name.as_alias("customer_name"),  # type: ignore[union-attr]
            Pickup.store.name.as_alias("store_name"),
            Pickup.store.timezone.as_alias("store_timezone"),
        )
        .where(Pickup.order == order_id)
        .first()
    )
    if row is None or (actor.store_id is not None and row["store"] != actor.store_id):
        raise NotFound("no such pickup order in this store")
    lines = await (
        OrderLine.select(
            OrderLine.id,
            OrderLine.sku,
            OrderLine.name,
            OrderLine.quantity,
            OrderLine.ready_quantity,
        )
        .where(OrderLine.order == order_id)
        .order_by(OrderLine.position)
    )
    ready, total = rules.items_ready(
        rules.Line(r["id"], r["quantity"], r["ready_quantity"]) for r in lines
    )
    return CounterView(
        order_id=order_id,
        external_id=row["external_id"],
        status=row["status"],
        customer_name=row["customer_name"],
        delegate_name=row["delegate_name"],
        store_name=row["store_name"],
        store_timezone=row["store_timezone"],
        lines=lines,
        ready=ready,
        total=total,
        ready_at=row["ready_at"],
        hold_until=row["hold_until"],
        visit_start=row["visit_start"],
        visit_end=row["visit_end"],
        collected_at=row["collected_at"],
        collected_by=row["collected_by"],
        handed_to=row["handed_to"],
        code_locked_until=row["code_locked_until"],
    )
