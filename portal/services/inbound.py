"""Texts shoppers send us: consent keywords, replies matched to an order, and the SMS the
counter must know did not arrive.

`receive` is one transaction per inbound message. MessageBird's id is unique in
`inbound_sms`, so a repeated webhook call changes nothing (and a racing one fails on the
index, rolls back, and finds the first one when retried).

How a text is handled, in this order:
- STOP words opt the number out (`customer.sms_opt_out_at`) with one confirmation; START
  words opt it back in with one; HELP words get the shop's contact (the phone of the store
  of the order last texted, or the order page). A repeated STOP or START (nothing changes)
  is confirmed at most once a day.
- Otherwise the reply belongs to the order of the newest SMS that reached that number
  (our own answers to replies do not count). After the satisfaction survey, "1".."5"
  (optionally followed by a comment) is the answer: one response per order, and a later
  answer replaces the earlier one, so the shopper's last word counts once. After "ready
  for pickup" or "see you today", a yes ("1", "OK", "SI", "TAK", "YES") is recorded on the
  order's timeline as `visit_confirmed` (once per SMS), while the order waits at the
  counter.
- Anything else gets one polite answer with the order's link, at most once a day per
  number; numbers that opted out get none.
- Texts from numbers we have no customer for are recorded and not answered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import phonenumbers

from portal.db import is_unique_violation
from portal.db.tables import (
    Customer,
    InboundSms,
    Order,
    OrderEvent,
    Pickup,
    SmsMessage,
    SurveyResponse,
)
from portal.domain import inbound as rules
from portal.domain.inbound import Keyword
from portal.domain.order import EventType, Fulfilment, first_name
from portal.domain.phone import InvalidPhone, normalise, timezone_of
from portal.domain.pickup import PickupStatus
from portal.domain.sms import SmsStatus
from portal.runtime import Runtime
from portal.services import messaging
from portal.services.errors import Invalid

log = logging.getLogger(__name__)

# Our answers to texts: a reply is matched to the SMS before them, not to these.
REPLY_KINDS = ("sms_stopped", "sms_started", "sms_help", "reply_unknown")
BODY_MAX = 2000
GATEWAY_ID_MAX = 64
FALLBACK_ZONE = "Europe/Rome"


@dataclass(frozen=True, slots=True)
class InboundIn:
    gateway_id: str
    originator: str  # E.164
    body: str

    @classmethod
    def parse(cls, params: dict[str, str], default_region: str) -> InboundIn:
        """MessageBird's fields (`id`, `originator`, `body`; `message` is read as the body
        too). Missing or malformed fields raise Invalid naming the field."""
        gateway_id = (params.get("id") or "").strip()
        if not gateway_id:
            raise Invalid("is required (MessageBird's message id)", field="id")
        if len(gateway_id) > GATEWAY_ID_MAX:
            raise Invalid(f"is longer than {GATEWAY_ID_MAX} characters", field="id")
        raw = (params.get("originator") or "").strip()
        if not raw:
            raise Invalid("is required (the sender's number)", field="originator")
        if raw.isdigit():
            raw = "+" + raw  # MessageBird sends numbers as digits, country code first
        try:
            originator = normalise(raw, default_region)
        except InvalidPhone as exc:
            raise Invalid(str(exc), field="originator") from exc
        body = params.get("body")
        if body is None:
            body = params.get("message")
        if body is None:
            raise Invalid("is required (the text of the message)", field="body")
        return cls(gateway_id, originator, body[:BODY_MAX])


async def receive(rt: Runtime, message: InboundIn) -> str:
    """Handle one inbound text; returns how it was handled ('duplicate' for a repeat).
    A racing duplicate fails on the unique id and is retried once, finding the first."""
    try:
        return await _receive(rt, message)
    except Exception as exc:
        if not is_unique_violation(exc):
            raise
        return await _receive(rt, message)


async def _receive(rt: Runtime, message: InboundIn) -> str:
    async with rt.writing():
        if await InboundSms.exists().where(InboundSms.gateway_id == message.gateway_id):
            return "duplicate"
        handled_as, order_id = await _handle(rt, message)
        await InboundSms.insert(
            InboundSms(
                gateway_id=message.gateway_id,
                originator=message.originator,
                body=message.body,
                order=order_id,
                handled_as=handled_as,
                received_at=rt.clock.now(),
            )
        )
    return handled_as


@dataclass(slots=True)
class _Context:
    """Who texted, and the order (and SMS) their text most likely answers."""

    customer: dict[str, Any]
    order: dict[str, Any] | None
    last_sms: dict[str, Any] | None

    @property
    def order_id(self) -> int | None:
        return self.order["id"] if self.order else None


async def _context(phone: str) -> _Context | None:
    customer = await (
        Customer.select(
            Customer.id, Customer.name, Customer.phone, Customer.locale, Customer.sms_opt_out_at
        )
        .where(Customer.phone == phone)
        .first()
    )
    if customer is None:
        return None
    # Every lookup is indexed: the customer by phone, their orders, each order's SMS.
    order_ids = [
        r["id"]
        for r in await Order.select(Order.id)
        .where(Order.customer == customer["id"])
        .order_by(Order.id, ascending=False)
        .limit(200)
    ]
    last_sms = None
    if order_ids:
        last_sms = await (
            SmsMessage.select(SmsMessage.id, SmsMessage.kind, SmsMessage.order, SmsMessage.sent_at)
            .where(
                SmsMessage.order.is_in(order_ids)
                & SmsMessage.sent_at.is_not_null()
                & SmsMessage.kind.not_in(list(REPLY_KINDS))
            )
            .order_by(SmsMessage.sent_at, ascending=False)
            .order_by(SmsMessage.id, ascending=False)
            .first()
        )
    order_id = last_sms["order"] if last_sms else (order_ids[0] if order_ids else None)
    order = None
    if order_id is not None:
        order = await (
            Order.select(
                Order.id,
                Order.external_id,
                Order.status,
                Order.fulfilment,
                Order.store.id.as_alias("store_id"),
                Order.store.name.as_alias("store_name"),
                Order.store.phone.as_alias("store_phone"),
                Order.store.timezone.as_alias("store_timezone"),
            )
            .where(Order.id == order_id)
            .first()
        )
    return _Context(customer, order, last_sms)


async def _handle(rt: Runtime, message: InboundIn) -> tuple[str, int | None]:
    ctx = await _context(message.originator)
    if ctx is None:
        return "no_customer", None
    word = rules.keyword(message.body)
    if word is Keyword.STOP:
        return await _stop(rt, message, ctx), ctx.order_id
    if word is Keyword.START:
        return await _start(rt, message, ctx), ctx.order_id
    if word is Keyword.HELP:
        await _answer(rt, ctx, "sms_help", f"inbound:{message.gateway_id}", requested=True)
        return "help", ctx.order_id
    kind = ctx.last_sms["kind"] if ctx.last_sms else None
    if kind == rules.SURVEY_KIND and ctx.order is not None:
        answer = rules.survey_answer(message.body)
        if answer is not None:
            await _store_survey_answer(rt, ctx.order, answer)
            return "survey", ctx.order_id
    if (
        kind in rules.CONFIRMABLE_KINDS
        and ctx.last_sms
        and rules.is_yes(message.body)
        and await _confirm_visit(rt, ctx.order_id, ctx.last_sms)
    ):
        return "visit_confirmed", ctx.order_id
    return await _unknown(rt, ctx), ctx.order_id


async def _stop(rt: Runtime, message: InboundIn, ctx: _Context) -> str:
    now = rt.clock.now()
    if ctx.customer["sms_opt_out_at"] is not None:
        await _answer(rt, ctx, "sms_stopped", _daily_key(rt, "stop", ctx), requested=True)
        return "stop_again"
    # Queued before the opt-out is written, so it is the last text this number gets.
    await _answer(rt, ctx, "sms_stopped", f"inbound:{message.gateway_id}", requested=True)
    await Customer.update({Customer.sms_opt_out_at: now}).where(Customer.id == ctx.customer["id"])
    return "stop"


async def _start(rt: Runtime, message: InboundIn, ctx: _Context) -> str:
    if ctx.customer["sms_opt_out_at"] is None:
        await _answer(rt, ctx, "sms_started", _daily_key(rt, "start", ctx), requested=True)
        return "start_again"
    await Customer.update({Customer.sms_opt_out_at: None}).where(Customer.id == ctx.customer["id"])
    await _answer(rt, ctx, "sms_started", f"inbound:{message.gateway_id}", requested=True)
    return "start"


async def _unknown(rt: Runtime, ctx: _Context) -> str:
    if ctx.customer["sms_opt_out_at"] is not None:
        return "reply_quiet"
    queued = await _answer(rt, ctx, "reply_unknown", _daily_key(rt, "reply", ctx))
    return "reply" if queued else "reply_quiet"


def _zone(ctx: _Context) -> str:
    if ctx.order and ctx.order["store_timezone"]:
        return str(ctx.order["store_timezone"])
    return timezone_of(ctx.customer["phone"], FALLBACK_ZONE)


def _daily_key(rt: Runtime, what: str, ctx: _Context) -> str:
    day = rules.local_day(rt.clock.now(), _zone(ctx))
    return f"{what}:{ctx.customer['phone']}:{day}"


async def _answer(
    rt: Runtime, ctx: _Context, kind: str, dedupe_key: str, *, requested: bool = False
) -> bool:
    """Queue our answer (urgent: the shopper is waiting for it), with the order's link.
    `requested`: what the shopper asked for (STOP, START, HELP) leaves even when the number
    opted out."""
    token = await messaging.link_token(ctx.order_id) if ctx.order_id else None
    order = ctx.order or {}
    return await messaging.enqueue(
        rt,
        order_id=ctx.order_id,
        access_token_id=token["id"] if token else None,
        recipient=ctx.customer["phone"],
        locale=ctx.customer["locale"],
        kind=kind,
        dedupe_key=dedupe_key,
        urgent=True,
        context={
            "first_name": first_name(ctx.customer["name"]),
            "order_number": order.get("external_id") or "",
            "store_name": order.get("store_name") or "",
            "store_phone": _readable(order.get("store_phone")),
            "pickup": order.get("fulfilment") == Fulfilment.PICKUP,
            "has_link": token is not None,
        },
        requested=requested,
    )


def _readable(phone: str | None) -> str:
    """A stored number as people write it: +390212345678 -> +39 02 1234 5678."""
    if not phone:
        return ""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return phone
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


async def _store_survey_answer(
    rt: Runtime, order: dict[str, Any], answer: rules.SurveyAnswer
) -> None:
    now = rt.clock.now()
    updated = (
        await SurveyResponse.update(
            {
                SurveyResponse.score: answer.score,
                SurveyResponse.comment: answer.comment,
                SurveyResponse.received_at: now,
            }
        )
        .where(SurveyResponse.order == order["id"])
        .returning(SurveyResponse.id)
    )
    if not updated:
        await SurveyResponse.insert(
            SurveyResponse(
                order=order["id"],
                store=order["store_id"],
                score=answer.score,
                comment=answer.comment,
                received_at=now,
            )
        )


async def _confirm_visit(rt: Runtime, order_id: int | None, sms: dict[str, Any]) -> bool:
    """A yes to a pickup SMS, while the order waits at the counter: on the timeline once."""
    if order_id is None:
        return False
    pickup = await Pickup.select(Pickup.status).where(Pickup.order == order_id).first()
    if pickup is None or PickupStatus(pickup["status"]) is not PickupStatus.READY:
        return False
    already = await OrderEvent.exists().where(
        (OrderEvent.order == order_id)
        & (OrderEvent.type == EventType.VISIT_CONFIRMED)
        & (OrderEvent.recorded_at >= sms["sent_at"])
    )
    if not already:
        now = rt.clock.now()
        await OrderEvent.insert(
            OrderEvent(
                order=order_id,
                type=EventType.VISIT_CONFIRMED,
                occurred_at=now,
                recorded_at=now,
                data={"sms": sms["id"], "answering": sms["kind"]},
            )
        )
        await Order.update({Order.version: Order.version + 1, Order.updated_at: now}).where(
            Order.id == order_id
        )
    return True


# ------------------------------------------------------------------ the counter


# Not delivered, or not known whether it was sent (it is never sent again): call them.
FAILED_STATUSES = (SmsStatus.FAILED, SmsStatus.EXPIRED, SmsStatus.UNKNOWN)
OTP_RECENT = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class FailedSms:
    """An SMS the shopper needed that did not arrive: staff should call."""

    order_id: int
    external_id: str
    customer_name: str
    phone: str  # shown to staff only
    kind: str
    failed_at: datetime | None
    store_code: str
    unknown: bool = False  # not known whether it was sent (rather than not delivered)


def _is_action_kind(kind: str) -> bool:
    return kind == "ready_for_pickup" or kind.startswith("otp")


async def failed_action_sms(rt: Runtime, store_id: int | None) -> list[FailedSms]:
    """Texts that failed for good: "ready for pickup", and one-time codes of the last day,
    for orders still open at the store's counter (every store's for a manager, None).

    Indexed: the store's open pickups, then each one's SMS by order."""
    open_statuses = [PickupStatus.PREPARING, PickupStatus.PARTLY_READY, PickupStatus.READY]
    where: Any = Pickup.status.is_in(open_statuses)
    if store_id is not None:
        where = (Pickup.store == store_id) & where
    pickups = await (
        Pickup.select(
            Pickup.order.id.as_alias("order_id"),
            Pickup.order.external_id.as_alias("external_id"),
            Pickup.order.customer.name.as_alias("customer_name"),  # type: ignore[union-attr]
            Pickup.order.customer.phone.as_alias("phone"),  # type: ignore[union-attr]
            Pickup.store.code.as_alias("store_code"),
        )
        .where(where)
        .limit(500)
    )
    if not pickups:
        return []
    by_order = {p["order_id"]: p for p in pickups}
    # Newest first: a later text that reached the phone (a reminder) means they know.
    rows = await (
        SmsMessage.select(
            SmsMessage.order, SmsMessage.kind, SmsMessage.status, SmsMessage.status_at
        )
        .where(
            SmsMessage.order.is_in(list(by_order))
            & SmsMessage.status.is_in([*FAILED_STATUSES, SmsStatus.DELIVERED])
        )
        .order_by(SmsMessage.id, ascending=False)
    )
    now = rt.clock.now()
    out: list[FailedSms] = []
    settled: set[int] = set()
    for r in rows:
        order_id, kind = r["order"], r["kind"]
        if order_id in settled:
            continue
        if r["status"] == SmsStatus.DELIVERED:
            if kind not in REPLY_KINDS:
                settled.add(order_id)
            continue
        if not _is_action_kind(kind):
            continue
        if kind != "ready_for_pickup" and (
            r["status_at"] is None or r["status_at"] < now - OTP_RECENT
        ):
            continue
        settled.add(order_id)
        p = by_order[order_id]
        out.append(
            FailedSms(
                order_id=order_id,
                external_id=p["external_id"],
                customer_name=p["customer_name"],
                phone=p["phone"],
                kind=kind,
                failed_at=r["status_at"],
                store_code=p["store_code"],
                unknown=r["status"] == SmsStatus.UNKNOWN,
            )
        )
    return out
