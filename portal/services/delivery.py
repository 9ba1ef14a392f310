"""Delivery changes: the shopper changes the address, switches to a store, picks a new day
or leaves instructions; the shop reads every change and, when set to, decides it.

Each public function is one transaction that first locks the order's row, so changes to
one order (or parcel) queue up and the second sees the first. Forms carry the order's
version: a change made on a page that is no longer current is refused ("changed
meanwhile"), so two racing changes have exactly one winner. Sensitive changes (address,
store) wait for a one-time code sent to the order's phone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_skeleton
from piccolo.columns import Column

from portal.db.tables import DeliveryChange, OneTimeCode, Order, Shipment, Store
from portal.domain import DomainError, InvalidTransition, otp
from portal.domain import delivery as rules
from portal.domain.address import AddressErrors, check_address
from portal.domain.delivery import ChangeKind, ChangeStatus, Closed, Cutoffs, Offer
from portal.domain.i18n import N_, Nf_, Nn_, words_of
from portal.domain.order import (
    EventType,
    Fulfilment,
    OrderStatus,
    ShipmentStatus,
)
from portal.domain.phone import timezone_of
from portal.runtime import Runtime
from portal.services import messaging, shop_events
from portal.services import pickup as pickup_service
from portal.services import shopper_limits as limits
from portal.services.errors import Conflict, Invalid, NotFound
from portal.services.orders import TrackingView, add_event, readable_parcel
from portal.services.stores import store_choices

log = logging.getLogger(__name__)

CHANGE_EVENT: dict[ChangeKind, EventType] = {
    ChangeKind.ADDRESS: EventType.ADDRESS_CHANGED,
    ChangeKind.SWITCH_TO_PICKUP: EventType.SWITCHED_TO_PICKUP,
    ChangeKind.RESCHEDULE: EventType.DELIVERY_RESCHEDULED,
    ChangeKind.INSTRUCTIONS: EventType.INSTRUCTIONS_UPDATED,
}

# What the shopper reads when a change is not offered (the page shows the same words, in
# the shopper's language: N_ marks the msgids, the page translates them).
CLOSED_TEXT: dict[Closed, str] = {
    Closed.NOT_DELIVERY: N_("this order is collected in a store"),
    Closed.DISPATCHED: N_("the parcel has left the warehouse, so the address can no longer change"),
    Closed.PREPARING: N_("the order is being packed, so the address can no longer change"),
    Closed.NOT_DISPATCHED: N_(
        "the delivery day and instructions can be changed once it is shipped"
    ),
    Closed.OUT_FOR_DELIVERY: N_("the parcel is out for delivery today: nothing can change now"),
    Closed.DELIVERED: N_("the parcel has been delivered"),
    Closed.CANCELLED: N_("the order was cancelled"),
    Closed.CUTOFF: N_("changes closed the evening before the delivery day"),
    Closed.SEVERAL_PARCELS: N_("an order sent in several parcels cannot move to a store"),
    Closed.WAITING: N_("an earlier change is waiting for the shop's answer"),
}
CHANGED_MEANWHILE = N_("your order changed while you were on this page: check it and try again")


def cutoffs(rt: Runtime) -> Cutoffs:
    return Cutoffs(
        address_until=OrderStatus(rt.settings.address_change_until),
        hours_before_day=rt.settings.delivery_change_cutoff_hours,
    )


def _closed(offer: Offer) -> Conflict:
    assert offer.closed is not None
    return Conflict(CLOSED_TEXT[offer.closed], field=offer.kind.value)


# ------------------------------------------------------------------------ loading


_ORDER_COLUMNS = (
    Order.id,
    Order.external_id,
    Order.status,
    Order.fulfilment,
    Order.version,
    Order.delivery_address,
    Order.store,
    Order.customer.name.as_alias("customer_name"),
    Order.customer.phone.as_alias("phone"),
    Order.customer.locale.as_alias("locale"),
)


async def _lock_order(rt: Runtime, order_id: int) -> dict[str, Any]:
    """The order's row, locked until the transaction ends: changes to one order queue up."""
    order = await rt.for_update(Order.select(*_ORDER_COLUMNS).where(Order.id == order_id)).first()
    if order is None:
        raise NotFound("no such order")
    order["tz"] = timezone_of(order["phone"], "Europe/Rome")
    return order


def _check_version(order: dict[str, Any], version: int | None) -> None:
    if version is not None and version != order["version"]:
        raise Conflict(CHANGED_MEANWHILE, field="version")


async def _parcels(order_id: int) -> list[dict[str, Any]]:
    rows = (
        await Shipment.select(
            Shipment.id,
            Shipment.tracking_number,
            Shipment.carrier,
            Shipment.status,
            Shipment.eta,
            Shipment.delivery_days,
            Shipment.delivery_day,
            Shipment.instructions,
        )
        .where(Shipment.order == order_id)
        .order_by(Shipment.id)
    )
    return [readable_parcel(row, order_id) for row in rows]


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _delivery_day(parcel: dict[str, Any], tz: str) -> date | None:
    """The day the parcel is due: the shopper's choice, else the ETA's local date."""
    chosen = _day(parcel["delivery_day"])
    if chosen is not None:
        return chosen
    eta: datetime | None = parcel["eta"]
    if eta is None:
        return None
    return eta.astimezone(ZoneInfo(tz)).date()


def _parcel_offers(
    rt: Runtime, parcel: dict[str, Any], tz: str, parcels: int
) -> dict[ChangeKind, Offer]:
    return rules.parcel_offers(
        ShipmentStatus(parcel["status"]),
        _delivery_day(parcel, tz),
        now=rt.clock.now(),
        tz=tz,
        cutoffs=cutoffs(rt),
        parcels=parcels,
    )


def _days_for(rt: Runtime, parcel: dict[str, Any], tz: str) -> list[date]:
    shop_days = [date.fromisoformat(d) for d in _json_list(parcel["delivery_days"])]
    eta = _delivery_day({**parcel, "delivery_day": None}, tz)
    return rules.offered_days(shop_days, eta, now=rt.clock.now(), tz=tz, cutoffs=cutoffs(rt))


def _json_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return list(value or [])


def _json_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value or {})


async def _waiting(order_id: int, shipment_id: int | None) -> bool:
    """An earlier change of this order (or parcel) still waits for the shop's answer."""
    scope = (
        DeliveryChange.shipment.is_null()
        if shipment_id is None
        else DeliveryChange.shipment == shipment_id
    )
    return bool(
        await DeliveryChange.exists().where(
            (DeliveryChange.order == order_id)
            & (DeliveryChange.status == ChangeStatus.REQUESTED)
            & scope
        )
    )


def _find_parcel(parcels: list[dict[str, Any]], shipment_id: int) -> dict[str, Any]:
    for parcel in parcels:
        if parcel["id"] == shipment_id:
            return parcel
    raise NotFound(N_("this order has no such parcel"), field="shipment")


# ------------------------------------------------------------------ making a change


@dataclass(frozen=True, slots=True)
class ChangeResult:
    change_id: int
    kind: ChangeKind
    status: ChangeStatus


async def _feed_lock(rt: Runtime) -> None:
    """Changes get their ids in commit order, so a shop polling `after=<last id>` never
    skips one committed late: one writer at a time takes the next id (they are rare).
    SQLite's write transactions are one at a time already."""
    if not rt.is_sqlite:
        await DeliveryChange.raw("SELECT pg_advisory_xact_lock(74201)")


async def _make_change(
    rt: Runtime,
    order: dict[str, Any],
    kind: ChangeKind,
    data: dict[str, Any],
    *,
    shipment_id: int | None,
    tracking_number: str | None,
) -> ChangeResult:
    """Record a change; when changes are accepted automatically, make it at once."""
    if await _waiting(order["id"], shipment_id):
        raise Conflict(CLOSED_TEXT[Closed.WAITING], field=kind.value)
    await _feed_lock(rt)
    now = rt.clock.now()
    previous = await _previous(order, kind, shipment_id)
    supersedes = await _superseded(order["id"], kind, shipment_id)
    inserted = await DeliveryChange.insert(
        DeliveryChange(
            order=order["id"],
            shipment=shipment_id,
            kind=kind,
            status=ChangeStatus.REQUESTED,
            data=data,
            previous=previous,
            requested_at=now,
            supersedes=supersedes,
        )
    ).returning(DeliveryChange.id)
    change_id = int(inserted[0]["id"])
    change = {
        "id": change_id,
        "kind": kind,
        "data": data,
        "previous": previous,
        "shipment": shipment_id,
        "tracking_number": tracking_number,
        "requested_at": now,
        "supersedes": supersedes,
    }
    if rt.settings.delivery_changes == "auto":
        await _accept(rt, order, change, decided_by="auto")
        return ChangeResult(change_id, kind, ChangeStatus.ACCEPTED)
    await add_event(
        rt,
        order["id"],
        EventType.CHANGE_REQUESTED,
        shipment_id=shipment_id,
        note=None,
        data={"change": change_id, "kind": kind},
    )
    await _bump(rt, order["id"])
    await _tell_shop(rt, order, change, ChangeStatus.REQUESTED)
    return ChangeResult(change_id, kind, ChangeStatus.REQUESTED)


async def _superseded(order_id: int, kind: ChangeKind, shipment_id: int | None) -> int | None:
    """The latest earlier change of the same kind to the same order or parcel, still in
    force (made, or waiting for the shop): the new one replaces it. The feed keeps both;
    once the new one is made, what was not sent yet about the old one (its confirmation
    text, its calls to the shop) is not sent."""
    scope = (
        DeliveryChange.shipment.is_null()
        if shipment_id is None
        else DeliveryChange.shipment == shipment_id
    )
    row = await (
        DeliveryChange.select(DeliveryChange.id)
        .where(
            (DeliveryChange.order == order_id)
            & (DeliveryChange.kind == kind)
            & DeliveryChange.status.is_in([ChangeStatus.REQUESTED, ChangeStatus.ACCEPTED])
            & scope
        )
        .order_by(DeliveryChange.id, ascending=False)
        .first()
    )
    return int(row["id"]) if row else None


def _subject(change_id: int | None) -> str | None:
    """What a change's texts and shop events are about (a newer change replaces them)."""
    return None if change_id is None else f"delivery_change:{change_id}"


async def _previous(
    order: dict[str, Any], kind: ChangeKind, shipment_id: int | None
) -> dict[str, Any]:
    if kind is ChangeKind.ADDRESS or (kind is ChangeKind.SWITCH_TO_PICKUP and not shipment_id):
        return {"address": _json_dict(order["delivery_address"])}
    if shipment_id is None:
        return {}
    parcel = (
        await Shipment.select(Shipment.delivery_day, Shipment.instructions, Shipment.status)
        .where(Shipment.id == shipment_id)
        .first()
    )
    if parcel is None:
        return {}
    if kind is ChangeKind.RESCHEDULE:
        return {"day": parcel["delivery_day"]}
    if kind is ChangeKind.INSTRUCTIONS:
        return {"instructions": _json_dict(parcel["instructions"])}
    return {"shipment_status": parcel["status"]}


async def _accept(
    rt: Runtime, order: dict[str, Any], change: dict[str, Any], *, decided_by: str
) -> None:
    """Make the change: new state, a timeline entry, an SMS, an event for the shop."""
    kind = ChangeKind(change["kind"])
    data = change["data"]
    now = rt.clock.now()
    note: str | None = None
    shipment_id = change["shipment"]
    if kind is ChangeKind.ADDRESS:
        await Order.update({Order.delivery_address: data["address"]}).where(Order.id == order["id"])
        note = f"{data['address']['postcode']} {data['address']['city']}"
    elif kind is ChangeKind.SWITCH_TO_PICKUP:
        note = await _switch_to_store(rt, order, data["store"], shipment_id)
    elif kind is ChangeKind.RESCHEDULE:
        await Shipment.update({Shipment.delivery_day: data["day"], Shipment.updated_at: now}).where(
            Shipment.id == shipment_id
        )
        note = data["day"]
    else:
        await Shipment.update(
            {Shipment.instructions: data["instructions"] or None, Shipment.updated_at: now}
        ).where(Shipment.id == shipment_id)
    await DeliveryChange.update(
        {
            DeliveryChange.status: ChangeStatus.ACCEPTED,
            DeliveryChange.decided_by: decided_by,
            DeliveryChange.decided_at: now,
        }
    ).where(DeliveryChange.id == change["id"])
    await add_event(
        rt,
        order["id"],
        CHANGE_EVENT[kind],
        shipment_id=shipment_id,
        note=note,
        data={"change": change["id"]},
    )
    await _bump(rt, order["id"])
    # Made at once, the confirmation answers what the shopper just did on the page: it goes
    # now, whatever the hour. Accepted later by the shop, it is news like any other.
    await _sms(
        rt,
        order,
        "delivery_changed",
        f"change:{change['id']}:accepted",
        change,
        requested=decided_by == "auto",
    )
    await _tell_shop(rt, order, {**change, "decided_at": now}, ChangeStatus.ACCEPTED, decided_by)


async def _switch_to_store(
    rt: Runtime, order: dict[str, Any], store_code: str, shipment_id: int | None
) -> str:
    store = await Store.select(Store.id, Store.name).where(Store.code == store_code).first()
    if store is None:
        raise Invalid(N_("choose one of the stores listed"), field="store")
    if order["fulfilment"] != Fulfilment.DELIVERY:
        raise Conflict(CLOSED_TEXT[Closed.NOT_DELIVERY], field="store")
    values: dict[Column | str, Any] = {
        Order.fulfilment: Fulfilment.PICKUP,
        Order.store: store["id"],
        Order.updated_at: rt.clock.now(),
    }
    if shipment_id is not None:
        # After a failed attempt the parcel travels on to the store: "shipped" for a
        # pickup order, until the store receives it (arrived_in_store) and sets it aside.
        values[Order.status] = OrderStatus.SHIPPED
    await Order.update(values).where(Order.id == order["id"])
    await pickup_service.open_pickup(rt, order["id"], store["id"])
    return str(store["name"])


async def _bump(rt: Runtime, order_id: int) -> None:
    await Order.update({Order.version: Order.version + 1, Order.updated_at: rt.clock.now()}).where(
        Order.id == order_id
    )


async def _sms(
    rt: Runtime,
    order: dict[str, Any],
    kind: str,
    dedupe_key: str,
    change: Mapping[str, Any],
    reason: str | None = None,
    *,
    requested: bool = False,
) -> None:
    data = change["data"]
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
        subject=_subject(change["id"]),
        # Made, it replaces the earlier change: that one's confirmation, if still queued, is
        # not sent (a rejection replaces nothing).
        replaces=_subject(change.get("supersedes")) if kind == "delivery_changed" else None,
        context={
            "change": ChangeKind(change["kind"]).value,
            "day": (
                format_skeleton("MMMEd", date.fromisoformat(data["day"]), locale=order["locale"])
                if data.get("day")
                else ""
            ),
            "store_name": data.get("store_name", ""),
            "reason": reason or "",
        },
    )


def _change_json(change: dict[str, Any], order: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": change["id"],
        "order": order["external_id"],
        "kind": str(change["kind"]),
        "tracking_number": change.get("tracking_number"),
        "data": change["data"],
        "previous": change["previous"],
        "supersedes": change.get("supersedes"),
    }


async def _tell_shop(
    rt: Runtime,
    order: dict[str, Any],
    change: dict[str, Any],
    status: ChangeStatus,
    decided_by: str | None = None,
    reason: str | None = None,
) -> None:
    await shop_events.record(
        rt,
        f"delivery_change.{status}",
        order_id=order["id"],
        subject=_subject(change["id"]),
        replaces=(_subject(change.get("supersedes")) if status is ChangeStatus.ACCEPTED else None),
        data={
            **_change_json(change, order),
            "status": str(status),
            "decided_by": decided_by,
            "reason": reason,
            "requested_at": change["requested_at"],
            "decided_at": change.get("decided_at"),
        },
    )


# --------------------------------------------------------------- the shopper's changes


async def reschedule(
    rt: Runtime, order_id: int, shipment_id: int, day: str, *, version: int | None = None
) -> ChangeResult:
    try:
        chosen = date.fromisoformat(day)
    except ValueError:
        raise Invalid(N_("choose one of the days offered"), field="day") from None
    async with limits.acting(rt, order_id, limits.RESCHEDULE):
        order = await _lock_order(rt, order_id)
        _check_version(order, version)
        parcels = await _parcels(order_id)
        parcel = _find_parcel(parcels, shipment_id)
        offer = _parcel_offers(rt, parcel, order["tz"], len(parcels))[ChangeKind.RESCHEDULE]
        if not offer.open:
            raise _closed(offer)
        try:
            rules.check_day(chosen, _days_for(rt, parcel, order["tz"]))
        except DomainError as exc:
            raise Invalid(words_of(exc), field="day") from exc
        if parcel["delivery_day"] == chosen.isoformat():
            raise Invalid(N_("that is already the delivery day"), field="day")
        return await _make_change(
            rt,
            order,
            ChangeKind.RESCHEDULE,
            {"day": chosen.isoformat()},
            shipment_id=shipment_id,
            tracking_number=parcel["tracking_number"],
        )


class FieldErrors(Invalid):
    """Several fields wrong at once; `errors` maps each to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()), field=next(iter(errors), None))
        self.errors = errors


async def set_instructions(
    rt: Runtime,
    order_id: int,
    shipment_id: int,
    *,
    safe_place: str | None,
    neighbour: str | None,
    note: str | None,
    version: int | None = None,
) -> ChangeResult:
    try:
        instructions = rules.check_instructions(safe_place, neighbour, note)
    except rules.InstructionErrors as exc:
        raise FieldErrors(exc.errors) from exc
    async with limits.acting(rt, order_id, limits.INSTRUCTIONS):
        order = await _lock_order(rt, order_id)
        _check_version(order, version)
        parcels = await _parcels(order_id)
        parcel = _find_parcel(parcels, shipment_id)
        offer = _parcel_offers(rt, parcel, order["tz"], len(parcels))[ChangeKind.INSTRUCTIONS]
        if not offer.open:
            raise _closed(offer)
        return await _make_change(
            rt,
            order,
            ChangeKind.INSTRUCTIONS,
            {"instructions": instructions.as_dict()},
            shipment_id=shipment_id,
            tracking_number=parcel["tracking_number"],
        )


# ----------------------------------------------------- sensitive changes: a code first


@dataclass(frozen=True, slots=True)
class Challenge:
    """A code is on its way to the order's phone; the change waits for it."""

    kind: ChangeKind
    expires_at: datetime
    summary: str  # what will change, to show beside the code box


async def request_address_change(
    rt: Runtime, order_id: int, fields: Mapping[str, str | None], *, version: int | None = None
) -> Challenge:
    async with limits.acting(rt, order_id, limits.ADDRESS):
        order = await _lock_order(rt, order_id)
        _check_version(order, version)
        offer = _order_offer(rt, order, ChangeKind.ADDRESS)
        if not offer.open:
            raise _closed(offer)
        country = str(_json_dict(order["delivery_address"]).get("country") or "IT")
        try:
            address = check_address(fields, country)
        except AddressErrors as exc:
            raise FieldErrors(exc.errors) from exc
        pending = {
            "kind": ChangeKind.ADDRESS,
            "data": {"address": address.as_dict()},
            "shipment": None,
            "version": order["version"],
            "summary": f"{address.line1}, {address.short}",
        }
        return await _issue_code(rt, order, pending)


async def request_store_switch(
    rt: Runtime,
    order_id: int,
    store_code: str,
    *,
    shipment_id: int | None = None,
    version: int | None = None,
) -> Challenge:
    async with limits.acting(rt, order_id, limits.SWITCH_TO_PICKUP):
        order = await _lock_order(rt, order_id)
        _check_version(order, version)
        tracking_number = None
        if shipment_id is None:
            offer = _order_offer(rt, order, ChangeKind.SWITCH_TO_PICKUP)
        else:
            parcels = await _parcels(order_id)
            parcel = _find_parcel(parcels, shipment_id)
            tracking_number = parcel["tracking_number"]
            offer = _parcel_offers(rt, parcel, order["tz"], len(parcels))[
                ChangeKind.SWITCH_TO_PICKUP
            ]
        if order["fulfilment"] != Fulfilment.DELIVERY:
            offer = Offer(ChangeKind.SWITCH_TO_PICKUP, Closed.NOT_DELIVERY)
        if not offer.open:
            raise _closed(offer)
        store = (
            await Store.select(Store.code, Store.name, Store.address)
            .where(Store.code == store_code)
            .first()
        )
        if store is None:
            raise Invalid(N_("choose one of the stores listed"), field="store")
        city = _json_dict(store["address"]).get("city") or ""
        pending = {
            "kind": ChangeKind.SWITCH_TO_PICKUP,
            "data": {"store": store["code"], "store_name": store["name"]},
            "shipment": shipment_id,
            "tracking_number": tracking_number,
            "version": order["version"],
            "summary": f"{store['name']}, {city}" if city else store["name"],
        }
        return await _issue_code(rt, order, pending)


def _order_offer(rt: Runtime, order: dict[str, Any], kind: ChangeKind) -> Offer:
    return rules.order_offers(
        Fulfilment(order["fulfilment"]), OrderStatus(order["status"]), cutoffs(rt)
    )[kind]


async def _codes(order_id: int) -> list[dict[str, Any]]:
    """The order's codes of the last hours, newest first (what rationing and locks need)."""
    return list(
        await OneTimeCode.select(
            OneTimeCode.id,
            OneTimeCode.code_hash,
            OneTimeCode.pending,
            OneTimeCode.attempts,
            OneTimeCode.expires_at,
            OneTimeCode.locked_until,
            OneTimeCode.used_at,
            OneTimeCode.created_at,
        )
        .where(OneTimeCode.order == order_id)
        .order_by(OneTimeCode.id, ascending=False)
        .limit(otp.MAX_PER_HOUR + 1)
    )


def _lock_of(codes: list[dict[str, Any]]) -> datetime | None:
    locks = [c["locked_until"] for c in codes if c["locked_until"] is not None]
    return max(locks) if locks else None


async def _issue_code(rt: Runtime, order: dict[str, Any], pending: dict[str, Any]) -> Challenge:
    now = rt.clock.now()
    codes = await _codes(order["id"])
    verdict = otp.may_issue([c["created_at"] for c in codes], _lock_of(codes), now)
    if verdict.refusal is not None:
        raise _refused(verdict)
    # A new code replaces any earlier one still open, and inherits its wrong tries: asking
    # for new codes does not buy more guesses (five an hour, then the lock).
    replaced = next((c for c in codes if c["used_at"] is None), None)
    carried = (
        replaced["attempts"]
        if replaced is not None and now - replaced["created_at"] < timedelta(hours=1)
        else 0
    )
    await OneTimeCode.update({OneTimeCode.used_at: now}).where(
        (OneTimeCode.order == order["id"]) & OneTimeCode.used_at.is_null()
    )
    code = otp.new_code()
    expires = now + otp.VALID_FOR
    inserted = await OneTimeCode.insert(
        OneTimeCode(
            order=order["id"],
            purpose="delivery_change",
            code_hash=otp.hash_code(rt.settings.secret_key, order["id"], code),
            pending=pending,
            attempts=carried,
            expires_at=expires,
            created_at=now,
        )
    ).returning(OneTimeCode.id)
    # Urgent: it never waits for quiet hours. Asked for on the page, so it goes even to a
    # number that turned updates off.
    await messaging.enqueue(
        rt,
        order_id=order["id"],
        access_token_id=None,
        recipient=order["phone"],
        locale=order["locale"],
        kind="otp",
        dedupe_key=f"otp:{inserted[0]['id']}",
        context={"code": code, "order_number": order["external_id"], "minutes": 10},
        urgent=True,
        requested=True,
    )
    return Challenge(ChangeKind(pending["kind"]), expires, pending["summary"])


def _refused(verdict: otp.IssueCheck) -> Conflict:
    if verdict.refusal is otp.Refusal.LOCKED:
        return Conflict(
            N_("too many wrong codes: for your safety, changes are locked for an hour"),
            field="code",
        )
    if verdict.refusal is otp.Refusal.TOO_SOON:
        return Conflict(
            N_("a code was sent a moment ago: wait a minute for a new one"), field="code"
        )
    return Conflict(N_("too many codes were sent: try again in an hour"), field="code")


async def resend_code(rt: Runtime, order_id: int) -> Challenge:
    """A new code for the change waiting for one (the SMS did not arrive)."""
    async with limits.acting(rt, order_id, limits.CODE_RESEND):
        order = await _lock_order(rt, order_id)
        current = _open_code(await _codes(order_id), rt.clock.now())
        if current is None:
            raise Conflict(N_("no change is waiting for a code: start again"), field="code")
        return await _issue_code(rt, order, _json_dict(current["pending"]))


async def cancel_code(rt: Runtime, order_id: int) -> None:
    """The shopper gave up the change waiting for a code."""
    async with rt.writing():
        await _lock_order(rt, order_id)
        await OneTimeCode.update({OneTimeCode.used_at: rt.clock.now()}).where(
            (OneTimeCode.order == order_id) & OneTimeCode.used_at.is_null()
        )


def _open_code(codes: list[dict[str, Any]], now: datetime) -> dict[str, Any] | None:
    for code in codes:
        if (
            code["used_at"] is None
            and code["expires_at"] > now
            and code["attempts"] < otp.MAX_TRIES
        ):
            return code
    return None


@dataclass(frozen=True, slots=True)
class CodeOutcome:
    result: ChangeResult | None
    error: str | None = None
    status_code: int = 200


async def confirm_code(rt: Runtime, order_id: int, typed: str) -> ChangeResult:
    """Check the code; when right, make the change it was sent for. A wrong try is
    counted (and kept) even though the call fails."""
    outcome = await _try_code(rt, order_id, otp.normalise(typed))
    if outcome.result is None:
        error = Invalid if outcome.status_code == 422 else Conflict
        raise error(outcome.error or N_("wrong code"), field="code")
    return outcome.result


async def _try_code(rt: Runtime, order_id: int, typed: str) -> CodeOutcome:
    async with limits.acting(rt, order_id, limits.CODE_CONFIRM):
        await _lock_order(rt, order_id)
        now = rt.clock.now()
        codes = await _codes(order_id)
        lock = _lock_of(codes)
        if lock is not None and now < lock:
            return CodeOutcome(None, _refused(otp.IssueCheck(otp.Refusal.LOCKED)).detail, 409)
        current = next((c for c in codes if c["used_at"] is None), None)
        if current is None:
            return CodeOutcome(None, N_("no change is waiting for a code: start again"), 409)
        if len(typed) != otp.DIGITS:
            return CodeOutcome(None, Nf_("the code has %(digits)s digits", digits=otp.DIGITS), 422)
        state = otp.CodeState(
            current["code_hash"], current["attempts"], current["expires_at"], None, None
        )
        check = otp.check(state, otp.hash_code(rt.settings.secret_key, order_id, typed), now)
        values: dict[Column | str, Any] = {OneTimeCode.attempts: check.attempts}
        if check.locked_until is not None:
            values[OneTimeCode.locked_until] = check.locked_until
        if check.verdict is otp.Verdict.OK:
            values[OneTimeCode.used_at] = now
        await OneTimeCode.update(values).where(OneTimeCode.id == current["id"])
        if check.verdict is otp.Verdict.EXPIRED:
            return CodeOutcome(None, N_("the code has expired: ask for a new one"), 409)
        if check.verdict is otp.Verdict.LOCKED:
            return CodeOutcome(None, _refused(otp.IssueCheck(otp.Refusal.LOCKED)).detail, 409)
        if check.verdict is not otp.Verdict.OK:
            wrong = Nn_(
                "that is not the code we sent (%(num)s try left)",
                "that is not the code we sent (%(num)s tries left)",
                check.tries_left,
            )
            return CodeOutcome(None, wrong, 422)
        pending = _json_dict(current["pending"])
    # The code was right and is spent either way; the change itself is its own transaction,
    # so a change refused now (the order moved on) still leaves the code used.
    return CodeOutcome(await _apply_pending(rt, order_id, pending))


async def _apply_pending(rt: Runtime, order_id: int, pending: dict[str, Any]) -> ChangeResult:
    kind = ChangeKind(pending["kind"])
    async with rt.writing():
        order = await _lock_order(rt, order_id)
        _check_version(order, pending.get("version"))
        shipment_id = pending.get("shipment")
        if shipment_id is None:
            offer = _order_offer(rt, order, kind)
        else:
            parcels = await _parcels(order_id)
            offer = _parcel_offers(
                rt, _find_parcel(parcels, shipment_id), order["tz"], len(parcels)
            )[kind]
        if not offer.open:
            raise _closed(offer)
        return await _make_change(
            rt,
            order,
            kind,
            pending["data"],
            shipment_id=shipment_id,
            tracking_number=pending.get("tracking_number"),
        )


# ------------------------------------------------------------------- the shop's side


def _row_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "order": row["external_id"],
        "kind": row["kind"],
        "status": row["status"],
        "tracking_number": row["tracking_number"],
        "data": _json_dict(row["data"]),
        "previous": _json_dict(row["previous"]),
        "reason": row["reason"],
        "decided_by": row["decided_by"],
        "requested_at": row["requested_at"],
        "decided_at": row["decided_at"],
        "supersedes": row["supersedes"],
    }


_CHANGE_COLUMNS = (
    DeliveryChange.id,
    DeliveryChange.order.external_id.as_alias("external_id"),
    DeliveryChange.shipment.tracking_number.as_alias("tracking_number"),
    DeliveryChange.kind,
    DeliveryChange.status,
    DeliveryChange.data,
    DeliveryChange.previous,
    DeliveryChange.reason,
    DeliveryChange.decided_by,
    DeliveryChange.requested_at,
    DeliveryChange.decided_at,
    DeliveryChange.supersedes,
)


async def list_changes(rt: Runtime, *, after: int = 0, limit: int = 100) -> dict[str, Any]:
    """Changes in the order they were made, after the cursor; `next` is the cursor to send
    next time (the same when nothing new came)."""
    rows = (
        await DeliveryChange.select(*_CHANGE_COLUMNS)
        .where(DeliveryChange.id > after)
        .order_by(DeliveryChange.id)
        .limit(limit)
    )
    items = [_row_json(r) for r in rows]
    return {"changes": items, "next": items[-1]["id"] if items else after}


async def get_change(rt: Runtime, change_id: int) -> dict[str, Any]:
    row = (
        await DeliveryChange.select(*_CHANGE_COLUMNS).where(DeliveryChange.id == change_id).first()
    )
    if row is None:
        raise NotFound(f"no delivery change {change_id}", field="id")
    return _row_json(row)


async def decide(
    rt: Runtime, change_id: int, *, accept: bool, reason: str | None = None
) -> dict[str, Any]:
    """The shop accepts (the change is made) or rejects (with a reason the shopper reads)."""
    target = ChangeStatus.ACCEPTED if accept else ChangeStatus.REJECTED
    async with rt.writing():
        found = (
            await DeliveryChange.select(DeliveryChange.order)
            .where(DeliveryChange.id == change_id)
            .first()
        )
        if found is None:
            raise NotFound(f"no delivery change {change_id}", field="id")
        order = await _lock_order(rt, found["order"])
        row = await rt.for_update(
            DeliveryChange.select(
                DeliveryChange.id,
                DeliveryChange.kind,
                DeliveryChange.status,
                DeliveryChange.data,
                DeliveryChange.previous,
                DeliveryChange.shipment,
                DeliveryChange.shipment.tracking_number.as_alias("tracking_number"),
                DeliveryChange.requested_at,
                DeliveryChange.supersedes,
            ).where(DeliveryChange.id == change_id)
        ).first()
        assert row is not None
        current = ChangeStatus(row["status"])
        if current is target:
            return await get_change(rt, change_id)  # a retried call: same answer, nothing new
        try:
            rules.transition(current, target)
        except InvalidTransition as exc:
            raise Conflict(f"this change was already {current}", field="status") from exc
        change = {
            "id": change_id,
            "kind": row["kind"],
            "data": _json_dict(row["data"]),
            "previous": _json_dict(row["previous"]),
            "shipment": row["shipment"],
            "tracking_number": row["tracking_number"],
            "requested_at": row["requested_at"],
            "supersedes": row["supersedes"],
        }
        if accept:
            await _accept(rt, order, change, decided_by="shop")
        else:
            await _reject(rt, order, change, reason or "")
    return await get_change(rt, change_id)


async def _reject(rt: Runtime, order: dict[str, Any], change: dict[str, Any], reason: str) -> None:
    now = rt.clock.now()
    await DeliveryChange.update(
        {
            DeliveryChange.status: ChangeStatus.REJECTED,
            DeliveryChange.decided_by: "shop",
            DeliveryChange.decided_at: now,
            DeliveryChange.reason: reason or None,
        }
    ).where(DeliveryChange.id == change["id"])
    await add_event(
        rt,
        order["id"],
        EventType.CHANGE_REJECTED,
        shipment_id=change["shipment"],
        note=reason or None,
        data={"change": change["id"], "kind": change["kind"]},
    )
    await _bump(rt, order["id"])
    await _sms(rt, order, "change_rejected", f"change:{change['id']}:rejected", change, reason)
    await _tell_shop(
        rt, order, {**change, "decided_at": now}, ChangeStatus.REJECTED, "shop", reason or None
    )


# --------------------------------------------------------------------- the page's view


@dataclass(slots=True)
class ParcelOptions:
    id: int
    tracking_number: str
    status: str
    delivery_day: date | None
    chosen_day: bool  # the shopper picked it (else it is the ETA)
    days: list[date]
    instructions: dict[str, str]
    offers: dict[str, Offer]
    waiting: bool


@dataclass(slots=True)
class DeliveryOptions:
    """What the page's "Change delivery" card offers, and why not where it does not."""

    version: int
    address: Offer
    switch: Offer
    waiting: bool  # an order-level change waits for the shop
    parcels: list[ParcelOptions] = field(default_factory=list)
    stores: list[dict[str, str]] = field(default_factory=list)
    challenge: Challenge | None = None
    last_rejected: dict[str, Any] | None = None

    @property
    def anything_open(self) -> bool:
        return (
            self.address.open
            or self.switch.open
            or any(o.open for p in self.parcels for o in p.offers.values())
        )


async def options(rt: Runtime, view: TrackingView) -> DeliveryOptions | None:
    """None for orders this does not apply to (collected in a store from the start, or
    final). Built from what the page's one query read; it reads more only when a change
    waits for the shop or for a code, and the stores only when one may be chosen."""
    if view.fulfilment != Fulfilment.DELIVERY:
        return None
    status = OrderStatus(view.state.status)
    if status in (OrderStatus.DELIVERED, OrderStatus.CANCELLED):
        return None
    order_id = view.state.order_id
    tz = view.timezone
    offers = rules.order_offers(Fulfilment.DELIVERY, status, cutoffs(rt))
    waiting_scopes = await _waiting_scopes(order_id) if view.has_waiting_change else set()
    waiting = None in waiting_scopes
    address, switch = offers[ChangeKind.ADDRESS], offers[ChangeKind.SWITCH_TO_PICKUP]
    if waiting:
        address = Offer(ChangeKind.ADDRESS, Closed.WAITING) if address.open else address
        switch = Offer(ChangeKind.SWITCH_TO_PICKUP, Closed.WAITING) if switch.open else switch
    parcels = view.shipments
    parcel_views = []
    for parcel in parcels:
        p_offers = _parcel_offers(rt, parcel, tz, len(parcels))
        p_waiting = parcel["id"] in waiting_scopes
        if p_waiting:
            p_offers = {k: Offer(k, Closed.WAITING) if o.open else o for k, o in p_offers.items()}
        parcel_views.append(
            ParcelOptions(
                id=parcel["id"],
                tracking_number=parcel["tracking_number"],
                status=parcel["status"],
                delivery_day=_delivery_day(parcel, tz),
                chosen_day=bool(parcel["delivery_day"]),
                days=_days_for(rt, parcel, tz) if p_offers[ChangeKind.RESCHEDULE].open else [],
                instructions=_json_dict(parcel["instructions"]),
                offers={k.value: o for k, o in p_offers.items()},
                waiting=p_waiting,
            )
        )
    any_switch = switch.open or any(
        p.offers[ChangeKind.SWITCH_TO_PICKUP].open for p in parcel_views
    )
    challenge = None
    if view.has_open_code:
        code = _open_code(await _codes(order_id), rt.clock.now())
        if code is not None:
            pending = _json_dict(code["pending"])
            challenge = Challenge(
                ChangeKind(pending["kind"]), code["expires_at"], pending["summary"]
            )
    return DeliveryOptions(
        version=view.state.version,
        address=address,
        switch=switch,
        waiting=waiting,
        parcels=parcel_views,
        stores=await store_choices(rt) if any_switch else [],
        challenge=challenge,
    )


async def _waiting_scopes(order_id: int) -> set[int | None]:
    """The parcels (None: the whole order) with a change waiting for the shop."""
    rows = await DeliveryChange.select(DeliveryChange.shipment).where(
        (DeliveryChange.order == order_id) & (DeliveryChange.status == ChangeStatus.REQUESTED)
    )
    return {r["shipment"] for r in rows}


async def set_delivery_days(rt: Runtime, shipment_id: int, days: list[date] | None) -> None:
    """The shop's offered days for a parcel (called inside the event's transaction)."""
    await Shipment.update(
        {Shipment.delivery_days: [d.isoformat() for d in sorted(set(days))] if days else None}
    ).where(Shipment.id == shipment_id)
