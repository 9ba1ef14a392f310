"""Returns and refunds: a shopper starts a return from the link, the shop (or a store's
counter) moves it on, refunds follow it to the money.

Each public function is one transaction that locks the order's row first, so actions on
one order queue up; a return's own row is locked where two people may act on it at once
(two clerks receiving it, the shop and a clerk). The sum of an order's refunds never
exceeds what was paid (portal/domain/refunds.py), and a line's returned quantity never
exceeds what was received (portal/domain/returns.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from piccolo.columns import Column

from portal import db
from portal.db.tables import (
    AuditLog,
    Order,
    OrderLine,
    Refund,
    Reminder,
    ReturnLine,
    ReturnRequest,
    Store,
)
from portal.domain import DomainError, InvalidTransition, qr
from portal.domain import refunds as refund_rules
from portal.domain import returns as rules
from portal.domain.i18n import N_
from portal.domain.money import InvalidMoney, format_decimal_string, to_minor
from portal.domain.order import EventType, OrderStatus
from portal.domain.refunds import RefundStatus
from portal.domain.returns import Method, Reason, ReturnStatus
from portal.runtime import Runtime
from portal.services import kept_qr, messaging, refunds, shop_events
from portal.services import shopper_limits as limits
from portal.services.errors import Conflict, Invalid, NotFound
from portal.services.orders import REFUNDS_SQL, RETURN_ROWS_SQL, add_event
from portal.services.stores import store_choices

SWEEP_BATCH = 100
REMINDER_KINDS = ("return_not_sent", "return_label_unused")

# Shopper-relevant steps: a timeline entry, and the SMS that goes with it (if any).
EVENT_OF: dict[ReturnStatus, EventType] = {
    ReturnStatus.REQUESTED: EventType.RETURN_REQUESTED,
    ReturnStatus.APPROVED: EventType.RETURN_APPROVED,
    ReturnStatus.DROPPED_OFF: EventType.RETURN_IN_TRANSIT,
    ReturnStatus.IN_TRANSIT: EventType.RETURN_IN_TRANSIT,
    ReturnStatus.RECEIVED: EventType.RETURN_RECEIVED,
    ReturnStatus.INSPECTED: EventType.RETURN_INSPECTED,
    ReturnStatus.REFUNDED: EventType.REFUNDED,
    ReturnStatus.REJECTED: EventType.RETURN_REJECTED,
}
SMS_OF: dict[ReturnStatus, str] = {
    ReturnStatus.APPROVED: "return_approved",
    ReturnStatus.RECEIVED: "return_received",
    ReturnStatus.REJECTED: "return_rejected",
}


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


# ------------------------------------------------------------------------ loading

_ORDER_COLUMNS = (
    Order.id,
    Order.external_id,
    Order.status,
    Order.fulfilment,
    Order.currency,
    Order.total_minor,
    Order.closed_at,
    Order.version,
    Order.customer.name.as_alias("customer_name"),
    Order.customer.phone.as_alias("phone"),
    Order.customer.locale.as_alias("locale"),
)


async def _lock_order(rt: Runtime, order_id: int) -> dict[str, Any]:
    order = await rt.for_update(Order.select(*_ORDER_COLUMNS).where(Order.id == order_id)).first()
    if order is None:
        raise NotFound("no such order")
    return order


def _received_at(order: dict[str, Any]) -> datetime | None:
    """When the shopper got the order: delivery or collection closed it."""
    if order["status"] in (OrderStatus.DELIVERED, OrderStatus.COLLECTED):
        return order["closed_at"]
    return None


async def _lines(order_id: int) -> list[dict[str, Any]]:
    return list(
        await OrderLine.select(
            OrderLine.id,
            OrderLine.name,
            OrderLine.sku,
            OrderLine.quantity,
            OrderLine.unit_price_minor,
            OrderLine.returnable,
        )
        .where(OrderLine.order == order_id)
        .order_by(OrderLine.position)
    )


async def _taken(order_id: int) -> dict[int, int]:
    return _taken_by(await db.fetch_rows(ReturnRequest._meta.db, RETURN_ROWS_SQL, order_id))


def _taken_by(rows: Iterable[Mapping[str, Any]]) -> dict[int, int]:
    """Per order line: how many other returns hold (all of a live return's quantity; what
    inspection accepted once it is inspected; nothing of a rejected one). `rows` are the
    order's return lines with their return's `status`."""
    taken: dict[int, int] = {}
    for row in rows:
        if row["order_line"] is None or row["status"] == ReturnStatus.REJECTED:
            continue
        held = row["accepted_quantity"] if row["accepted_quantity"] is not None else row["quantity"]
        taken[row["order_line"]] = taken.get(row["order_line"], 0) + held
    return taken


async def order_lines(order_id: int) -> dict[int, dict[str, Any]]:
    """The order's lines by id (names and prices for the review step)."""
    return {line["id"]: line for line in await _lines(order_id)}


def _domain_lines(lines: list[dict[str, Any]], taken: Mapping[int, int]) -> list[rules.Line]:
    return [
        rules.Line(line["id"], line["quantity"], bool(line["returnable"]), taken.get(line["id"], 0))
        for line in lines
    ]


_CARD_LINE_KEYS = (
    "order_line",
    "name",
    "sku",
    "unit_price_minor",
    "quantity",
    "reason",
    "note",
    "accepted_quantity",
    "rejection_reason",
)


async def _refunds(order_id: int) -> list[dict[str, Any]]:
    return await db.fetch_rows(Refund._meta.db, REFUNDS_SQL, order_id)


def _held(refunds: Iterable[dict[str, Any]]) -> list[refund_rules.Held]:
    return [refund_rules.Held(r["amount_minor"], RefundStatus(r["status"])) for r in refunds]


# --------------------------------------------------------------- the shopper's return


@dataclass(frozen=True, slots=True)
class PickIn:
    """One line of the shopper's form, as typed."""

    line_id: int
    quantity: str
    reason: str
    note: str = ""


class ReturnFormErrors(Invalid):
    """Per line id (as a string) or per field: the message to show beside it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()), field=next(iter(errors), None))
        self.errors = errors


def parse_picks(picks: Iterable[PickIn]) -> list[rules.Pick]:
    errors: dict[str, str] = {}
    out: list[rules.Pick] = []
    for pick in picks:
        key = str(pick.line_id)
        quantity = pick.quantity.strip() or "0"
        if not quantity.isdigit() or len(quantity) > 5:
            errors[key] = N_("write how many, as a number")
            continue
        if int(quantity) == 0:
            continue
        try:
            reason = Reason(pick.reason)
        except ValueError:
            errors[key] = N_("choose a reason")
            continue
        out.append(rules.Pick(pick.line_id, int(quantity), reason, pick.note.strip() or None))
    if errors:
        raise ReturnFormErrors(errors)
    return out


async def check_return(
    rt: Runtime, order_id: int, picks: Iterable[PickIn], method: str, store_code: str | None
) -> tuple[list[rules.Pick], Method, dict[str, Any] | None]:
    """The review step: everything a return needs, checked, nothing written."""
    order = await Order.select(*_ORDER_COLUMNS).where(Order.id == order_id).first()
    if order is None:
        raise NotFound("no such order")
    return await _check(rt, order, picks, method, store_code)


async def _check(
    rt: Runtime,
    order: dict[str, Any],
    picks: Iterable[PickIn],
    method: str,
    store_code: str | None,
) -> tuple[list[rules.Pick], Method, dict[str, Any] | None]:
    if not rules.window_open(_received_at(order), rt.clock.now(), rt.settings.return_days):
        raise Conflict(N_("returns for this order are closed"), field="return")
    errors: dict[str, str] = {}
    chosen: list[rules.Pick] = []
    try:
        parsed = parse_picks(picks)
        lines = _domain_lines(await _lines(order["id"]), await _taken(order["id"]))
        chosen = rules.check_picks(lines, parsed)
    except ReturnFormErrors as exc:
        errors.update(exc.errors)
    except rules.ReturnErrors as exc:
        errors.update(exc.errors)
    try:
        how = Method(method)
    except ValueError:
        errors["method"] = N_("choose how you will send it back")
        how = Method.COURIER
    store = None
    if how is Method.STORE:
        store = (
            await Store.select(Store.id, Store.code, Store.name, Store.address)
            .where(Store.code == (store_code or ""))
            .first()
        )
        if store is None:
            errors["store"] = N_("choose one of the stores listed")
    if errors:
        raise ReturnFormErrors(errors)
    return chosen, how, store


@dataclass(frozen=True, slots=True)
class Started:
    return_id: int
    code: str
    status: ReturnStatus


async def start_return(
    rt: Runtime,
    order_id: int,
    picks: Iterable[PickIn],
    method: str,
    store_code: str | None = None,
) -> Started:
    """Create the return (approved at once unless the shop approves each one)."""
    async with limits.acting(rt, order_id, limits.RETURN):
        order = await _lock_order(rt, order_id)
        chosen, how, store = await _check(rt, order, list(picks), method, store_code)
        now = rt.clock.now()
        code = await _unique_code()
        inserted = await ReturnRequest.insert(
            ReturnRequest(
                order=order_id,
                code=code,
                status=ReturnStatus.REQUESTED,
                method=how,
                store=store["id"] if store else None,
                created_at=now,
                updated_at=now,
            )
        ).returning(ReturnRequest.id)
        return_id = int(inserted[0]["id"])
        await ReturnLine.insert(
            *(
                ReturnLine(
                    return_request=return_id,
                    order_line=pick.line_id,
                    quantity=pick.quantity,
                    reason=pick.reason,
                    note=pick.note,
                )
                for pick in chosen
            )
        )
        ret = await _load_return(return_id)
        await add_event(rt, order_id, EventType.RETURN_REQUESTED, data={"return": return_id})
        # The shopper just asked for it on the page: it goes at once, whatever the hour.
        await _sms(
            rt, order, ret, "return_started", f"return:{return_id}:requested", requested=True
        )
        await _tell_shop(rt, order, ret, "return.requested")
        status = ReturnStatus.REQUESTED
        if rt.settings.return_approval == "auto":
            await _move(rt, order, ret, ReturnStatus.APPROVED, by="auto")
            status = ReturnStatus.APPROVED
        await _bump(rt, order_id)
    # The counter's QR the page shows while the return is live (kept only while it is).
    await kept_qr.keep(
        rt,
        ReturnRequest,
        qr.counter_url(rt.settings.base_url, return_id, code),
        (ReturnRequest.id == return_id) & ReturnRequest.status.not_in(list(rules.FINAL)),
    )
    return Started(return_id, code, status)


# What a return that is over keeps of its counter's QR: nothing, as no page shows it.
NO_COUNTER_QR = kept_qr.cleared(ReturnRequest)


async def _unique_code() -> str:
    while True:
        code = rules.new_code()
        if not await ReturnRequest.exists().where(ReturnRequest.code == code):
            return code


_RETURN_COLUMNS = (
    ReturnRequest.id,
    ReturnRequest.order,
    ReturnRequest.code,
    ReturnRequest.status,
    ReturnRequest.method,
    ReturnRequest.store,
    ReturnRequest.store.name.as_alias("store_name"),
    ReturnRequest.store.code.as_alias("store_code"),
    ReturnRequest.label_url,
    ReturnRequest.label_carrier,
    ReturnRequest.label_tracking,
    ReturnRequest.rejection_reason,
    ReturnRequest.created_at,
    ReturnRequest.approved_at,
    ReturnRequest.label_at,
    ReturnRequest.received_at,
    ReturnRequest.inspected_at,
)


async def _load_return(return_id: int, *, lock: Runtime | None = None) -> dict[str, Any]:
    query = ReturnRequest.select(*_RETURN_COLUMNS).where(ReturnRequest.id == return_id)
    row = await (lock.for_update(query) if lock is not None else query).first()
    if row is None:
        raise NotFound(f"no return {return_id}", field="id")
    return row


async def _return_lines(return_ids: list[int]) -> list[dict[str, Any]]:
    if not return_ids:
        return []
    return list(
        await ReturnLine.select(
            ReturnLine.id,
            ReturnLine.return_request,
            ReturnLine.order_line,
            ReturnLine.order_line.name.as_alias("name"),
            ReturnLine.order_line.sku.as_alias("sku"),
            ReturnLine.order_line.unit_price_minor.as_alias("unit_price_minor"),
            ReturnLine.quantity,
            ReturnLine.reason,
            ReturnLine.note,
            ReturnLine.accepted_quantity,
            ReturnLine.rejection_reason,
        )
        .where(ReturnLine.return_request.is_in(return_ids))
        .order_by(ReturnLine.id)
    )


# --------------------------------------------------------------------- moving it on


async def _move(
    rt: Runtime,
    order: dict[str, Any],
    ret: dict[str, Any],
    target: ReturnStatus,
    *,
    by: str,
    values: dict[Column | str, Any] | None = None,
    note: str | None = None,
) -> None:
    """One guarded step of a return: its row, the timeline, the SMS, the shop's event, the
    reminders it starts or ends."""
    current = ReturnStatus(ret["status"])
    try:
        rules.transition(current, target)
    except InvalidTransition as exc:
        raise Conflict(
            f"this return is {current}: it cannot become {target}", field="status"
        ) from exc
    now = rt.clock.now()
    update: dict[Column | str, Any] = {
        ReturnRequest.status: target,
        ReturnRequest.updated_at: now,
        **(values or {}),
    }
    if target in rules.FINAL:
        update.update(NO_COUNTER_QR)
    if target is ReturnStatus.APPROVED:
        update[ReturnRequest.approved_at] = now
    elif target is ReturnStatus.RECEIVED:
        update[ReturnRequest.received_at] = now
    elif target is ReturnStatus.INSPECTED:
        update[ReturnRequest.inspected_at] = now
    await ReturnRequest.update(update).where(ReturnRequest.id == ret["id"])
    ret = {**ret, "status": target}
    await add_event(
        rt, order["id"], EVENT_OF[target], note=note, data={"return": ret["id"], "by": by}
    )
    kind = SMS_OF.get(target)
    # Approved at once (by="auto"): the "return started" text already says so.
    if kind and by != "auto":
        await _sms(rt, order, ret, kind, f"return:{ret['id']}:{target}", reason=note)
    await _tell_shop(rt, order, ret, f"return.{target}", by=by)
    await _cancel_reminders(rt, ret["id"])
    if target is ReturnStatus.APPROVED:
        await _remind(
            rt, order["id"], ret["id"], "return_not_sent", now + rules.REMIND_APPROVED_AFTER
        )
    await _bump(rt, order["id"])


async def _bump(rt: Runtime, order_id: int) -> None:
    await Order.update({Order.version: Order.version + 1, Order.updated_at: rt.clock.now()}).where(
        Order.id == order_id
    )


async def _sms(
    rt: Runtime,
    order: dict[str, Any],
    ret: dict[str, Any],
    kind: str,
    dedupe_key: str,
    *,
    amount: str = "",
    reason: str | None = None,
    requested: bool = False,
) -> None:
    await messaging.text_shopper(
        rt,
        order_id=order["id"],
        phone=order["phone"],
        locale=order["locale"],
        name=order["customer_name"],
        order_number=order["external_id"],
        kind=kind,
        dedupe_key=dedupe_key,
        requested=requested,
        context={
            "return_code": rules.display_code(ret["code"]) if ret.get("code") else "",
            "store": ret.get("method") == Method.STORE,
            "store_name": ret.get("store_name") or "",
            "amount": amount,
            "reason": reason or "",
        },
    )


async def _tell_shop(
    rt: Runtime, order: dict[str, Any], ret: dict[str, Any], type_: str, *, by: str | None = None
) -> None:
    await shop_events.record(
        rt,
        type_,
        order_id=order["id"],
        data={
            "return": {
                "id": ret["id"],
                "order": order["external_id"],
                "code": ret["code"],
                "status": str(ret["status"]),
                "method": ret["method"],
                "store": ret.get("store_code"),
            },
            "by": by,
        },
    )


async def _remind(rt: Runtime, order_id: int, return_id: int, kind: str, due: datetime) -> None:
    key = f"return:{return_id}:{kind}"
    if await Reminder.exists().where(Reminder.key == key):
        return
    await Reminder.insert(
        Reminder(key=key, order=order_id, kind=kind, due_at=due, created_at=rt.clock.now())
    )


async def _cancel_reminders(rt: Runtime, return_id: int) -> None:
    await Reminder.update({Reminder.due_at: None, Reminder.cancelled_at: rt.clock.now()}).where(
        Reminder.key.like(f"return:{return_id}:%") & Reminder.due_at.is_not_null()
    )


async def _locked(rt: Runtime, return_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The order's row and the return's, both locked (in that order, as everywhere)."""
    found = (
        await ReturnRequest.select(ReturnRequest.order).where(ReturnRequest.id == return_id).first()
    )
    if found is None:
        raise NotFound(f"no return {return_id}", field="id")
    order = await _lock_order(rt, found["order"])
    return order, await _load_return(return_id, lock=rt)


async def _same_again(ret: dict[str, Any], target: ReturnStatus) -> bool:
    """A retried call that asks for the state the return is in: the same answer, nothing new."""
    return ReturnStatus(ret["status"]) is target


async def approve(rt: Runtime, return_id: int) -> dict[str, Any]:
    async with rt.writing():
        order, ret = await _locked(rt, return_id)
        if not await _same_again(ret, ReturnStatus.APPROVED):
            await _move(rt, order, ret, ReturnStatus.APPROVED, by="shop")
    return await return_detail(rt, return_id)


async def reject(rt: Runtime, return_id: int, reason: str | None) -> dict[str, Any]:
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("say why the return is rejected: the shopper reads it", field="reason")
    async with rt.writing():
        order, ret = await _locked(rt, return_id)
        if not await _same_again(ret, ReturnStatus.REJECTED):
            await _move(
                rt,
                order,
                ret,
                ReturnStatus.REJECTED,
                by="shop",
                values={ReturnRequest.rejection_reason: reason},
                note=reason,
            )
    return await return_detail(rt, return_id)


async def set_label(
    rt: Runtime, return_id: int, url: str, carrier: str, tracking_number: str | None
) -> dict[str, Any]:
    """The shop's label for a courier return; the shopper gets it by SMS and on the page."""
    async with rt.writing():
        order, ret = await _locked(rt, return_id)
        if ret["method"] != Method.COURIER:
            raise Conflict("this return goes back through a store: it has no label", field="url")
        if ReturnStatus(ret["status"]) is not ReturnStatus.APPROVED:
            raise Conflict(
                f"this return is {ret['status']}: a label is for an approved one", field="url"
            )
        now = rt.clock.now()
        first = ret["label_url"] is None
        await ReturnRequest.update(
            {
                ReturnRequest.label_url: url,
                ReturnRequest.label_carrier: carrier or None,
                ReturnRequest.label_tracking: tracking_number,
                ReturnRequest.label_at: now,
                ReturnRequest.updated_at: now,
            }
        ).where(ReturnRequest.id == return_id)
        if first:
            await add_event(
                rt, order["id"], EventType.RETURN_LABEL_READY, data={"return": return_id}
            )
            await _sms(rt, order, ret, "return_label", f"return:{return_id}:label")
            await _cancel_reminders(rt, return_id)
            await _remind(
                rt, order["id"], return_id, "return_label_unused", now + rules.REMIND_LABEL_AFTER
            )
        await _tell_shop(rt, order, {**ret, "label_url": url}, "return.label", by="shop")
        await _bump(rt, order["id"])
    return await return_detail(rt, return_id)


async def in_transit(rt: Runtime, return_id: int) -> dict[str, Any]:
    async with rt.writing():
        order, ret = await _locked(rt, return_id)
        if not await _same_again(ret, ReturnStatus.IN_TRANSIT):
            await _move(rt, order, ret, ReturnStatus.IN_TRANSIT, by="shop")
    return await return_detail(rt, return_id)


async def receive(rt: Runtime, return_id: int, *, staff_id: int | None = None) -> dict[str, Any]:
    async with rt.writing():
        order, ret = await _locked(rt, return_id)
        if not await _same_again(ret, ReturnStatus.RECEIVED):
            await _move(
                rt,
                order,
                ret,
                ReturnStatus.RECEIVED,
                by="shop" if staff_id is None else "store",
                values={ReturnRequest.received_by: staff_id},
            )
    return await return_detail(rt, return_id)


@dataclass(frozen=True, slots=True)
class VerdictIn:
    line_id: int  # the return line
    accepted: int
    reason: str | None = None


async def inspect(
    rt: Runtime, return_id: int, verdicts: Iterable[VerdictIn], *, by: str = "shop"
) -> dict[str, Any]:
    async with rt.writing():
        order, ret = await _locked(rt, return_id)
        await _inspect(rt, order, ret, list(verdicts), by=by)
    return await return_detail(rt, return_id)


async def _inspect(
    rt: Runtime, order: dict[str, Any], ret: dict[str, Any], verdicts: list[VerdictIn], *, by: str
) -> None:
    """Per line: accepted or not (with why); then a pending refund for what was accepted,
    or the return rejected when nothing was."""
    if ReturnStatus(ret["status"]) is not ReturnStatus.RECEIVED:
        raise Conflict(
            f"this return is {ret['status']}: only a received return is inspected", field="status"
        )
    lines = await _return_lines([ret["id"]])
    try:
        checked = rules.check_verdicts(
            {line["id"]: line["quantity"] for line in lines},
            [rules.Verdict(v.line_id, v.accepted, v.reason) for v in verdicts],
        )
    except DomainError as exc:
        raise Invalid(str(exc), field="lines") from exc
    for line_id, verdict in checked.items():
        await ReturnLine.update(
            {
                ReturnLine.accepted_quantity: verdict.accepted,
                ReturnLine.rejection_reason: (verdict.rejection_reason or "").strip() or None,
            }
        ).where(ReturnLine.id == line_id)
    outcome = rules.after_inspection(checked.values())
    if outcome is ReturnStatus.REJECTED:
        reasons = "; ".join(sorted({(v.rejection_reason or "").strip() for v in checked.values()}))
        await _move(
            rt,
            order,
            ret,
            ReturnStatus.REJECTED,
            by=by,
            values={ReturnRequest.rejection_reason: reasons[:300]},
            note=reasons[:300],
        )
        return
    await _move(rt, order, ret, ReturnStatus.INSPECTED, by=by)
    amount = sum(checked[line["id"]].accepted * line["unit_price_minor"] for line in lines)
    # What is left to refund, if the shop already refunded part of the order by hand.
    await refunds.start_refund(rt, order, amount, "return", ret["id"], at_most_left=True)


# ------------------------------------------------------------------------ refunds


async def create_refund(
    rt: Runtime, external_id: str, amount: str, reason: str, return_id: int | None
) -> dict[str, Any]:
    """The shop starts a refund (a cancellation, goodwill, or a return)."""
    try:
        why = refund_rules.RefundReason(reason)
    except ValueError:
        allowed = ", ".join(r.value for r in refund_rules.RefundReason)
        raise Invalid(f"unknown reason {reason!r}; one of: {allowed}", field="reason") from None
    async with rt.writing():
        found = await Order.select(Order.id).where(Order.external_id == external_id).first()
        if found is None:
            raise NotFound(f"no order with external_id {external_id!r}", field="external_id")
        order = await _lock_order(rt, found["id"])
        try:
            minor = to_minor(amount, order["currency"])
        except InvalidMoney as exc:
            raise Invalid(str(exc), field="amount") from exc
        if return_id is not None:
            owner = (
                await ReturnRequest.select(ReturnRequest.order)
                .where(ReturnRequest.id == return_id)
                .first()
            )
            if owner is None or owner["order"] != order["id"]:
                raise Invalid(
                    f"return {return_id} is not a return of this order", field="return_id"
                )
        refund_id = await refunds.start_refund(rt, order, minor, why, return_id)
        assert refund_id is not None
    return await refund_detail(rt, refund_id)


async def update_refund(
    rt: Runtime, refund_id: int, status: str, reason: str | None = None
) -> dict[str, Any]:
    """pending -> processing -> paid | failed (a failed one may be tried again)."""
    try:
        target = RefundStatus(status)
    except ValueError:
        allowed = ", ".join(s.value for s in RefundStatus)
        raise Invalid(f"unknown status {status!r}; one of: {allowed}", field="status") from None
    async with rt.writing():
        found = await Refund.select(Refund.order).where(Refund.id == refund_id).first()
        if found is None:
            raise NotFound(f"no refund {refund_id}", field="id")
        order = await _lock_order(rt, found["order"])
        order_refunds = await _refunds(order["id"])
        refund = next(r for r in order_refunds if r["id"] == refund_id)
        current = RefundStatus(refund["status"])
        if current is target:
            return await refund_detail(rt, refund_id)
        try:
            refund_rules.transition(current, target)
            if target is RefundStatus.PROCESSING:
                others = [r for r in order_refunds if r["id"] != refund_id]
                refund_rules.check_retry(
                    order["total_minor"],
                    _held(others),
                    refund_rules.Held(refund["amount_minor"], current),
                )
        except InvalidTransition as exc:
            raise Conflict(
                f"this refund is {current}: it cannot become {target}", field="status"
            ) from exc
        except DomainError as exc:
            raise Conflict(str(exc), field="status") from exc
        now = rt.clock.now()
        values: dict[Column | str, Any] = {Refund.status: target, Refund.updated_at: now}
        if target is RefundStatus.PAID:
            values[Refund.paid_at] = now
        if target is RefundStatus.FAILED:
            values[Refund.failure_reason] = (reason or "").strip() or None
        await Refund.update(values).where(Refund.id == refund_id)
        money = _money(refund["amount_minor"], order)
        event = {
            RefundStatus.PROCESSING: EventType.REFUND_PROCESSING,
            RefundStatus.PAID: EventType.REFUNDED,
            RefundStatus.FAILED: EventType.REFUND_FAILED,
        }[target]
        note = reason if target is RefundStatus.FAILED else None
        await add_event(rt, order["id"], event, note=note, data={"refund": refund_id})
        ret: dict[str, Any] = {"code": None}
        if refund["return_request"]:
            ret = await _load_return(refund["return_request"], lock=rt)
        if target in (RefundStatus.PAID, RefundStatus.FAILED):
            kind = "refund_paid" if target is RefundStatus.PAID else "refund_failed"
            await _sms(rt, order, ret, kind, f"refund:{refund_id}:{target}", amount=money)
        if (
            target is RefundStatus.PAID
            and refund["return_request"]
            and ReturnStatus(ret["status"]) is ReturnStatus.INSPECTED
        ):
            # The return ends with its money back (no second timeline entry: the refund's
            # own "refunded" is it).
            await ReturnRequest.update(
                {
                    ReturnRequest.status: ReturnStatus.REFUNDED,
                    ReturnRequest.updated_at: now,
                    **NO_COUNTER_QR,
                }
            ).where(ReturnRequest.id == ret["id"])
            # ...but the shop hears of it like of every other step of a return.
            await _tell_shop(
                rt, order, {**ret, "status": ReturnStatus.REFUNDED}, "return.refunded", by="shop"
            )
        await shop_events.record(
            rt,
            f"refund.{target}",
            order_id=order["id"],
            data={
                "refund": refunds.refund_json(
                    order,
                    refund_id,
                    refund["amount_minor"],
                    refund["reason"],
                    target,
                    refund["return_request"],
                )
            },
        )
        await _bump(rt, order["id"])
    return await refund_detail(rt, refund_id)


def _money(minor: int, order: dict[str, Any]) -> str:
    from portal.templating import money

    return money(minor, order["currency"], order["locale"])


# ------------------------------------------------------------------------- reading


async def _refund_ids(return_ids: list[int]) -> dict[int, list[int]]:
    """Per return: the refunds that pay it back (how the shop finds the refund a store's
    inspection started without waiting for its webhook)."""
    if not return_ids:
        return {}
    rows = (
        await Refund.select(Refund.id, Refund.return_request)
        .where(Refund.return_request.is_in(return_ids))
        .order_by(Refund.id)
    )
    found: dict[int, list[int]] = {}
    for r in rows:
        found.setdefault(r["return_request"], []).append(r["id"])
    return found


def _return_json(
    row: dict[str, Any],
    lines: list[dict[str, Any]],
    external_id: str,
    refund_ids: list[int] | None = None,
) -> dict[str, Any]:
    return {
        "id": row["id"],
        "order": external_id,
        "code": row["code"],
        "status": row["status"],
        "method": row["method"],
        "store": row["store_code"],
        "label": (
            {
                "url": row["label_url"],
                "carrier": row["label_carrier"],
                "tracking_number": row["label_tracking"],
            }
            if row["label_url"]
            else None
        ),
        "rejection_reason": row["rejection_reason"],
        "lines": [
            {
                "id": line["id"],
                "sku": line["sku"],
                "name": line["name"],
                "quantity": line["quantity"],
                "reason": line["reason"],
                "note": line["note"],
                "accepted": line["accepted_quantity"],
                "rejection_reason": line["rejection_reason"],
            }
            for line in lines
            if line["return_request"] == row["id"]
        ],
        "created_at": row["created_at"],
        "approved_at": row["approved_at"],
        "received_at": row["received_at"],
        "inspected_at": row["inspected_at"],
        "refund_ids": refund_ids or [],
    }


async def return_detail(rt: Runtime, return_id: int) -> dict[str, Any]:
    row = await _load_return(return_id)
    order = await Order.select(Order.external_id).where(Order.id == row["order"]).first()
    assert order is not None
    refund_ids = await _refund_ids([return_id])
    return _return_json(
        row, await _return_lines([return_id]), order["external_id"], refund_ids.get(return_id)
    )


async def list_returns(
    rt: Runtime, *, status: str | None = None, after: int = 0, limit: int = 100
) -> dict[str, Any]:
    query = ReturnRequest.select(
        *_RETURN_COLUMNS, ReturnRequest.order.external_id.as_alias("external_id")
    ).where(ReturnRequest.id > after)
    if status:
        try:
            query = query.where(ReturnRequest.status == ReturnStatus(status))
        except ValueError:
            allowed = ", ".join(s.value for s in ReturnStatus)
            raise Invalid(f"unknown status {status!r}; one of: {allowed}", field="status") from None
    rows = await query.order_by(ReturnRequest.id).limit(limit)
    ids = [r["id"] for r in rows]
    lines = await _return_lines(ids)
    refund_ids = await _refund_ids(ids)
    items = [_return_json(r, lines, r["external_id"], refund_ids.get(r["id"])) for r in rows]
    return {"returns": items, "next": items[-1]["id"] if items else after}


async def refund_detail(rt: Runtime, refund_id: int) -> dict[str, Any]:
    row = (
        await Refund.select(
            Refund.id,
            Refund.order.external_id.as_alias("external_id"),
            Refund.amount_minor,
            Refund.currency,
            Refund.reason,
            Refund.status,
            Refund.return_request,
            Refund.paid_at,
            Refund.failure_reason,
            Refund.created_at,
        )
        .where(Refund.id == refund_id)
        .first()
    )
    if row is None:
        raise NotFound(f"no refund {refund_id}", field="id")
    return {
        "id": row["id"],
        "order": row["external_id"],
        "amount": format_decimal_string(row["amount_minor"], row["currency"]),
        "currency": row["currency"],
        "reason": row["reason"],
        "status": row["status"],
        "return_id": row["return_request"],
        "paid_at": row["paid_at"],
        "failure_reason": row["failure_reason"],
        "created_at": row["created_at"],
    }


# -------------------------------------------------------------- the shopper's page


@dataclass(slots=True)
class ReturnableLine:
    id: int
    name: str
    quantity: int  # still returnable
    unit_price_minor: int
    returnable: bool


@dataclass(slots=True)
class ReturnCard:
    """One return as the shopper follows it."""

    id: int
    code: str
    status: str
    method: str
    store_name: str | None
    label_url: str | None
    label_carrier: str | None
    rejection_reason: str | None
    created_at: datetime
    lines: list[dict[str, Any]]
    steps: list[tuple[str, str]]
    # While it is live: the counter's QR made with the return, and the URL it encodes.
    qr_svg: str = ""
    qr_url: str = ""

    @property
    def display_code(self) -> str:
        return rules.display_code(self.code)

    @property
    def live(self) -> bool:
        return ReturnStatus(self.status) not in rules.FINAL


@dataclass(slots=True)
class ReturnsView:
    """The page's returns and refunds card."""

    window_open: bool
    closes_at: datetime | None
    lines: list[ReturnableLine] = field(default_factory=list)
    stores: list[dict[str, str]] = field(default_factory=list)
    returns: list[ReturnCard] = field(default_factory=list)
    refunds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def can_start(self) -> bool:
        return self.window_open and any(line.quantity > 0 for line in self.lines)


async def returns_view(
    rt: Runtime,
    order_id: int,
    *,
    status: str,
    closed_at: datetime | None,
    has_returns: bool,
    has_refunds: bool,
    order_lines: list[dict[str, Any]] | None = None,
    refunds: list[dict[str, Any]] | None = None,
    return_rows: list[dict[str, Any]] | None = None,
) -> ReturnsView | None:
    """None when there is nothing to show: no return possible and none made, no refund.
    The page knows the order's status and whether it has returns or refunds (one query),
    so an order with nothing to show costs nothing more here. On PostgreSQL the page's
    query also read the order's lines, refunds and return rows, passed in here."""
    received = _received_at({"status": status, "closed_at": closed_at})
    open_ = rules.window_open(received, rt.clock.now(), rt.settings.return_days)
    if not (has_returns or has_refunds or open_):
        if received is None:
            return None
        return ReturnsView(False, rules.window_closes(received, rt.settings.return_days))
    if refunds is not None:
        order_refunds = refunds
    else:
        order_refunds = await _refunds(order_id) if has_refunds else []
    if return_rows is not None:
        rows = return_rows
    else:
        rows = await db.fetch_rows(rt.engine, RETURN_ROWS_SQL, order_id) if has_returns else []
    if received is None and not order_refunds and not rows:
        return None
    lines = []
    if open_:
        taken = _taken_by(rows)
        for line in order_lines if order_lines is not None else await _lines(order_id):
            domain = rules.Line(
                line["id"], line["quantity"], bool(line["returnable"]), taken.get(line["id"], 0)
            )
            lines.append(
                ReturnableLine(
                    line["id"],
                    line["name"],
                    rules.returnable_quantity(domain),
                    line["unit_price_minor"],
                    bool(line["returnable"]),
                )
            )
    cards: dict[int, ReturnCard] = {}
    for row in rows:
        card = cards.get(row["id"])
        if card is None:
            card = cards[row["id"]] = ReturnCard(
                id=row["id"],
                code=row["code"],
                status=row["status"],
                method=row["method"],
                store_name=row["store_name"],
                label_url=row["label_url"],
                label_carrier=row["label_carrier"],
                rejection_reason=row["return_rejection_reason"],
                created_at=row["created_at"],
                lines=[],
                steps=[(s.value, state) for s, state in rules.steps(ReturnStatus(row["status"]))],
                qr_svg=row["qr_svg"] or "",
                qr_url=row["qr_url"] or "",
            )
        if row["line_id"] is not None:
            line = {"id": row["line_id"], "return_request": row["id"]}
            line.update((key, row[key]) for key in _CARD_LINE_KEYS)
            card.lines.append(line)
    stores = await store_choices(rt) if open_ else []
    return ReturnsView(
        window_open=open_,
        closes_at=rules.window_closes(received, rt.settings.return_days),
        lines=lines,
        stores=stores,
        returns=list(cards.values()),
        refunds=order_refunds,
    )


# ------------------------------------------------------------------ the scheduler


async def send_due_reminders(rt: Runtime) -> int:
    """Returns approved but not on their way, labels unused: one reminder each, dropped
    when the return has moved on. Safe with several schedulers (SKIP LOCKED)."""
    sent = 0
    async with rt.writing():
        now = rt.clock.now()
        due = await rt.for_update(
            Reminder.select(Reminder.id, Reminder.kind, Reminder.order, Reminder.key)
            .where((Reminder.due_at <= now) & Reminder.kind.is_in(list(REMINDER_KINDS)))
            .order_by(Reminder.due_at)
            .limit(SWEEP_BATCH),
            skip_locked=True,
        )
        for reminder in due:
            return_id = int(reminder["key"].split(":")[1])
            ret = (
                await ReturnRequest.select(*_RETURN_COLUMNS)
                .where(ReturnRequest.id == return_id)
                .first()
            )
            waiting = ret is not None and ReturnStatus(ret["status"]) is ReturnStatus.APPROVED
            done: dict[Column | str, Any] = {Reminder.due_at: None}
            done[Reminder.sent_at if waiting else Reminder.cancelled_at] = now
            await Reminder.update(done).where(Reminder.id == reminder["id"])
            if waiting and ret is not None:
                order = (
                    await Order.select(*_ORDER_COLUMNS).where(Order.id == reminder["order"]).first()
                )
                if order is not None:
                    await _sms(rt, order, ret, reminder["kind"], f"reminder:{reminder['id']}")
                    sent += 1
    return sent


# ------------------------------------------------------------------ the store's counter


@dataclass(frozen=True, slots=True)
class CounterReturn:
    id: int
    code: str
    status: str
    order_number: str
    customer_name: str
    lines: list[dict[str, Any]]
    currency: str = "EUR"
    store_name: str | None = None
    # The refund inspection started (amount in minor units and its status), once inspected.
    refund_minor: int | None = None
    refund_status: str | None = None

    @property
    def display_code(self) -> str:
        return rules.display_code(self.code)

    @property
    def receivable(self) -> bool:
        return ReturnStatus(self.status) in (
            ReturnStatus.APPROVED,
            ReturnStatus.DROPPED_OFF,
            ReturnStatus.IN_TRANSIT,
        )


async def find_by_code(rt: Runtime, store_id: int | None, typed: str) -> int:
    """The return with this code at this store (a manager: any store's); NotFound alike
    for an unknown code and another store's return."""
    code = rules.normalise_code(typed)
    row = (
        await ReturnRequest.select(ReturnRequest.id, ReturnRequest.store, ReturnRequest.method)
        .where(ReturnRequest.code == code)
        .first()
    )
    # A courier return has no counter (counter_return refuses it too).
    if (
        row is None
        or row["method"] != Method.STORE
        or (store_id is not None and row["store"] != store_id)
    ):
        raise NotFound("no return with this code at this store", field="code")
    return int(row["id"])


async def counter_return(rt: Runtime, store_id: int | None, return_id: int) -> CounterReturn:
    row = (
        await ReturnRequest.select(
            *_RETURN_COLUMNS,
            ReturnRequest.order.external_id.as_alias("external_id"),
            ReturnRequest.order.customer.name.as_alias("customer_name"),  # type: ignore[union-attr]
            ReturnRequest.order.currency.as_alias("currency"),
        )
        .where(ReturnRequest.id == return_id)
        .first()
    )
    if (
        row is None
        or row["method"] != Method.STORE
        or (store_id is not None and row["store"] != store_id)
    ):
        raise NotFound("no such return at this store")
    refund = (
        await Refund.select(Refund.amount_minor, Refund.status)
        .where(Refund.return_request == return_id)
        .order_by(Refund.id)
        .first()
    )
    return CounterReturn(
        id=row["id"],
        code=row["code"],
        status=row["status"],
        order_number=row["external_id"],
        customer_name=row["customer_name"],
        lines=await _return_lines([return_id]),
        currency=row["currency"],
        store_name=row["store_name"],
        refund_minor=refund["amount_minor"] if refund else None,
        refund_status=refund["status"] if refund else None,
    )


async def receive_at_counter(
    rt: Runtime, staff_id: int, store_id: int | None, return_id: int, verdicts: list[VerdictIn]
) -> dict[str, Any]:
    """The clerk takes the parcel and checks it: received and inspected at once, with a
    pending refund for what is accepted. Two clerks at once: the second is refused."""
    async with rt.writing():
        await counter_return(rt, store_id, return_id)  # 404 for another store's return
        order, ret = await _locked(rt, return_id)
        if ReturnStatus(ret["status"]) is ReturnStatus.REQUESTED:
            raise Conflict(
                "this return waits for the shop's approval: it cannot be received yet",
                field="status",
            )
        if ReturnStatus(ret["status"]) not in (
            ReturnStatus.APPROVED,
            ReturnStatus.DROPPED_OFF,
            ReturnStatus.IN_TRANSIT,
        ):
            raise Conflict(f"this return is already {ret['status']}", field="status")
        await _move(
            rt,
            order,
            ret,
            ReturnStatus.RECEIVED,
            by="store",
            values={ReturnRequest.received_by: staff_id},
        )
        ret = await _load_return(return_id)
        await _inspect(rt, order, ret, verdicts, by="store")
        await AuditLog.insert(
            AuditLog(
                staff=staff_id,
                action="return_received",
                order=order["id"],
                store=ret["store"],
                at=rt.clock.now(),
                details={
                    "return": return_id,
                    "lines": [{"line": v.line_id, "accepted": v.accepted} for v in verdicts],
                },
            )
        )
    return await return_detail(rt, return_id)
