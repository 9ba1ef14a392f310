"""The order aggregate: statuses, the one table of allowed transitions, the events they make.

An order with several shipments takes its delivery status from them (`aggregate_shipments`),
so a split delivery reads "shipped" until every parcel has arrived.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from portal.domain import DomainError, InvalidTransition


class Fulfilment(StrEnum):
    DELIVERY = "delivery"
    PICKUP = "pickup"


class OrderStatus(StrEnum):
    PLACED = "placed"
    BACKORDERED = "backordered"
    PACKED = "packed"
    SHIPPED = "shipped"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERY_FAILED = "delivery_failed"
    DELIVERED = "delivered"
    ARRIVED_IN_STORE = "arrived_in_store"
    READY_FOR_PICKUP = "ready_for_pickup"
    COLLECTED = "collected"
    CANCELLED = "cancelled"


class EventType(StrEnum):
    """Timeline entries. The shop's API may post the ones in SHOP_EVENTS."""

    PLACED = "placed"
    BACKORDERED = "backordered"
    PACKED = "packed"
    SHIPPED = "shipped"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERY_FAILED = "delivery_failed"
    DELIVERED = "delivered"
    ARRIVED_IN_STORE = "arrived_in_store"
    PARTLY_READY = "partly_ready"
    READY_FOR_PICKUP = "ready_for_pickup"
    COLLECTED = "collected"
    PICKUP_EXPIRED = "pickup_expired"
    CANCELLED = "cancelled"
    # The shopper's delivery changes (portal/domain/delivery.py).
    ADDRESS_CHANGED = "address_changed"
    SWITCHED_TO_PICKUP = "switched_to_pickup"
    DELIVERY_RESCHEDULED = "delivery_rescheduled"
    INSTRUCTIONS_UPDATED = "instructions_updated"
    CHANGE_REQUESTED = "change_requested"
    CHANGE_REJECTED = "change_rejected"
    # The shopper answered yes by SMS to "ready for pickup" or "see you today".
    VISIT_CONFIRMED = "visit_confirmed"
    # Returns and refunds (portal/domain/returns.py, refunds.py).
    RETURN_REQUESTED = "return_requested"
    RETURN_APPROVED = "return_approved"
    RETURN_LABEL_READY = "return_label_ready"
    RETURN_IN_TRANSIT = "return_in_transit"
    RETURN_RECEIVED = "return_received"
    RETURN_INSPECTED = "return_inspected"
    RETURN_REJECTED = "return_rejected"
    REFUND_PROCESSING = "refund_processing"
    REFUNDED = "refunded"
    REFUND_FAILED = "refund_failed"


# Recorded by the portal itself (order creation, the store's counter, the scheduler).
PORTAL_EVENTS: frozenset[EventType] = frozenset(
    {
        EventType.PLACED,
        EventType.PARTLY_READY,
        EventType.READY_FOR_PICKUP,
        EventType.COLLECTED,
        EventType.PICKUP_EXPIRED,
        EventType.ADDRESS_CHANGED,
        EventType.SWITCHED_TO_PICKUP,
        EventType.DELIVERY_RESCHEDULED,
        EventType.INSTRUCTIONS_UPDATED,
        EventType.CHANGE_REQUESTED,
        EventType.CHANGE_REJECTED,
        EventType.VISIT_CONFIRMED,
        EventType.RETURN_REQUESTED,
        EventType.RETURN_APPROVED,
        EventType.RETURN_LABEL_READY,
        EventType.RETURN_IN_TRANSIT,
        EventType.RETURN_RECEIVED,
        EventType.RETURN_INSPECTED,
        EventType.RETURN_REJECTED,
        EventType.REFUND_PROCESSING,
        EventType.REFUNDED,
        EventType.REFUND_FAILED,
    }
)
SHOP_EVENTS: frozenset[EventType] = frozenset(EventType) - PORTAL_EVENTS

# Events that concern one parcel: they carry or find a shipment.
SHIPMENT_EVENTS: frozenset[EventType] = frozenset(
    {
        EventType.SHIPPED,
        EventType.OUT_FOR_DELIVERY,
        EventType.DELIVERY_FAILED,
        EventType.DELIVERED,
    }
)

FINAL: frozenset[OrderStatus] = frozenset(
    {OrderStatus.DELIVERED, OrderStatus.COLLECTED, OrderStatus.CANCELLED}
)

S = OrderStatus
# target status -> statuses it may be reached from (per fulfilment where they differ).
_COMMON: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.BACKORDERED: frozenset({S.PLACED}),
    S.PACKED: frozenset({S.PLACED, S.BACKORDERED}),
    S.CANCELLED: frozenset({S.PLACED, S.BACKORDERED, S.PACKED}),
}
TRANSITIONS: dict[Fulfilment, dict[OrderStatus, frozenset[OrderStatus]]] = {
    Fulfilment.DELIVERY: {
        **_COMMON,
        S.SHIPPED: frozenset({S.PLACED, S.BACKORDERED, S.PACKED}),
        S.OUT_FOR_DELIVERY: frozenset({S.SHIPPED, S.DELIVERY_FAILED}),
        S.DELIVERY_FAILED: frozenset({S.SHIPPED, S.OUT_FOR_DELIVERY}),
        S.DELIVERED: frozenset({S.SHIPPED, S.OUT_FOR_DELIVERY, S.DELIVERY_FAILED}),
    },
    Fulfilment.PICKUP: {
        **_COMMON,
        # A pickup order may travel to the store as a parcel before it arrives there.
        S.SHIPPED: frozenset({S.PLACED, S.BACKORDERED, S.PACKED}),
        S.ARRIVED_IN_STORE: frozenset({S.PLACED, S.BACKORDERED, S.PACKED, S.SHIPPED}),
        # The store's counter: everything set aside (the clerk marks it ready).
        S.READY_FOR_PICKUP: frozenset(
            {S.PLACED, S.BACKORDERED, S.PACKED, S.SHIPPED, S.ARRIVED_IN_STORE}
        ),
        S.COLLECTED: frozenset({S.READY_FOR_PICKUP}),
        # The shop may cancel until the order is collected; the portal cancels it when
        # the holding period ends.
        S.CANCELLED: frozenset(
            {S.PLACED, S.BACKORDERED, S.PACKED, S.SHIPPED, S.ARRIVED_IN_STORE, S.READY_FOR_PICKUP}
        ),
    },
}

# Progress steps shown to the shopper, per fulfilment.
STEPS: dict[Fulfilment, tuple[OrderStatus, ...]] = {
    Fulfilment.DELIVERY: (S.PLACED, S.PACKED, S.SHIPPED, S.OUT_FOR_DELIVERY, S.DELIVERED),
    Fulfilment.PICKUP: (S.PLACED, S.PACKED, S.READY_FOR_PICKUP, S.COLLECTED),
}
# Where an off-path status sits on the stepper, per fulfilment.
_STEP_OF: dict[Fulfilment, dict[OrderStatus, OrderStatus]] = {
    Fulfilment.DELIVERY: {S.BACKORDERED: S.PLACED, S.DELIVERY_FAILED: S.OUT_FOR_DELIVERY},
    # On its way to the store: still at the "packed" stage for the shopper.
    Fulfilment.PICKUP: {S.BACKORDERED: S.PLACED, S.SHIPPED: S.PACKED, S.ARRIVED_IN_STORE: S.PACKED},
}
# Off-path statuses that mean something went wrong at their step.
_PROBLEMS = frozenset({S.BACKORDERED, S.DELIVERY_FAILED})


def first_name(name: str) -> str:
    """How texts and pages greet the customer (cut to 30 characters for the SMS budget)."""
    return (name.split() or [name])[0][:30]


def can_transition(fulfilment: Fulfilment, current: OrderStatus, target: OrderStatus) -> bool:
    return current in TRANSITIONS[fulfilment].get(target, frozenset())


def transition(fulfilment: Fulfilment, current: OrderStatus, target: OrderStatus) -> OrderStatus:
    if not can_transition(fulfilment, current, target):
        raise InvalidTransition("order", current, target)
    return target


def is_final(status: OrderStatus) -> bool:
    return status in FINAL


@dataclass(frozen=True, slots=True)
class Step:
    status: OrderStatus
    state: str  # "done" | "current" | "todo" | "problem"


def progress(fulfilment: Fulfilment, status: OrderStatus) -> list[Step]:
    """The stepper: each step done, current, still to come, or current-with-a-problem."""
    steps = STEPS[fulfilment]
    if status is S.CANCELLED:
        return [Step(s, "todo") for s in steps]
    anchor = _STEP_OF[fulfilment].get(status, status)
    index = steps.index(anchor)
    problem = status in _PROBLEMS
    out = []
    for i, step in enumerate(steps):
        if i < index:
            out.append(Step(step, "done"))
        elif i == index:
            final_step = i == len(steps) - 1
            state = "problem" if problem else ("done" if final_step else "current")
            out.append(Step(step, state))
        else:
            out.append(Step(step, "todo"))
    return out


class ShipmentStatus(StrEnum):
    SHIPPED = "shipped"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERY_FAILED = "delivery_failed"
    DELIVERED = "delivered"


SHIPMENT_TRANSITIONS: dict[ShipmentStatus, frozenset[ShipmentStatus]] = {
    ShipmentStatus.OUT_FOR_DELIVERY: frozenset(
        {ShipmentStatus.SHIPPED, ShipmentStatus.DELIVERY_FAILED}
    ),
    ShipmentStatus.DELIVERY_FAILED: frozenset(
        {ShipmentStatus.SHIPPED, ShipmentStatus.OUT_FOR_DELIVERY}
    ),
    ShipmentStatus.DELIVERED: frozenset(
        {ShipmentStatus.SHIPPED, ShipmentStatus.OUT_FOR_DELIVERY, ShipmentStatus.DELIVERY_FAILED}
    ),
}


def shipment_transition(current: ShipmentStatus, target: ShipmentStatus) -> ShipmentStatus:
    if current not in SHIPMENT_TRANSITIONS.get(target, frozenset()):
        raise InvalidTransition("shipment", current, target)
    return target


def aggregate_shipments(statuses: Iterable[ShipmentStatus]) -> OrderStatus:
    """A delivery order's status from its parcels: delivered only when all are."""
    seen = list(statuses)
    if not seen:
        raise DomainError("an order in delivery has at least one shipment")
    if all(s is ShipmentStatus.DELIVERED for s in seen):
        return S.DELIVERED
    for candidate in (ShipmentStatus.OUT_FOR_DELIVERY, ShipmentStatus.DELIVERY_FAILED):
        if candidate in seen:
            return OrderStatus(candidate.value)
    return S.SHIPPED


# Which SMS an event sends (template name), per fulfilment; absent: no SMS.
SMS_FOR_EVENT: dict[EventType, str] = {
    EventType.PLACED: "order_confirmed",
    EventType.BACKORDERED: "backordered",
    EventType.SHIPPED: "shipped",
    EventType.OUT_FOR_DELIVERY: "out_for_delivery",
    EventType.DELIVERY_FAILED: "delivery_failed",
    EventType.DELIVERED: "delivered",
    EventType.CANCELLED: "cancelled",
    EventType.READY_FOR_PICKUP: "ready_for_pickup",
    EventType.COLLECTED: "collected",
    EventType.PICKUP_EXPIRED: "pickup_expired",
}


def sms_for(event: EventType, fulfilment: Fulfilment) -> str | None:
    if fulfilment is Fulfilment.PICKUP and event is EventType.SHIPPED:
        return None  # a transfer to the store is not news to the shopper; "ready" is
    return SMS_FOR_EVENT.get(event)


@dataclass(frozen=True, slots=True)
class EventPlan:
    """What one event does to an order: new statuses, or nothing when it is a repeat."""

    order_status: OrderStatus
    shipment_key: str | None = None  # tracking number of the parcel it concerns
    shipment_status: ShipmentStatus | None = None
    new_shipment: bool = False
    duplicate: bool = False


# Where a further parcel may still be added. Delivered is final: a shop that splits an
# order posts `shipped` for every parcel before the last one is delivered.
_SHIPPING = frozenset({S.SHIPPED, S.OUT_FOR_DELIVERY, S.DELIVERY_FAILED})


def plan_event(
    fulfilment: Fulfilment,
    status: OrderStatus,
    event: EventType,
    shipments: dict[str, ShipmentStatus],
    tracking_number: str | None = None,
) -> EventPlan:
    """Decide what `event` does to an order in `status` with these parcels.

    Repeating the event that made the current state (a shop retrying a call) is a harmless
    duplicate; anything else the tables do not allow raises InvalidTransition.
    """
    if event is EventType.PLACED:
        raise DomainError("placed is recorded when the order is created")
    # Pickup orders have parcels only for the transfer to the store (`shipped`).
    if event in SHIPMENT_EVENTS and (
        fulfilment is Fulfilment.DELIVERY or event is EventType.SHIPPED or shipments
    ):
        return _plan_shipment_event(fulfilment, status, event, shipments, tracking_number)
    target = OrderStatus(event.value)
    if target is status and event not in SHIPMENT_EVENTS:
        return EventPlan(status, duplicate=True)
    return EventPlan(transition(fulfilment, status, target))


def _plan_shipment_event(
    fulfilment: Fulfilment,
    status: OrderStatus,
    event: EventType,
    shipments: dict[str, ShipmentStatus],
    tracking_number: str | None,
) -> EventPlan:
    target = ShipmentStatus(event.value)
    if event is EventType.SHIPPED:
        if not tracking_number:
            raise DomainError("shipment.tracking_number is required for a shipped event")
        if tracking_number in shipments:
            if shipments[tracking_number] is ShipmentStatus.SHIPPED:
                return EventPlan(status, tracking_number, target, duplicate=True)
            raise InvalidTransition("shipment", shipments[tracking_number], target)
        # A first parcel moves the order on; a further parcel (split delivery) may follow
        # while the order is still in delivery.
        if not shipments:
            transition(fulfilment, status, S.SHIPPED)
        elif status not in _SHIPPING:
            raise InvalidTransition("order", status, S.SHIPPED)
        after = {**shipments, tracking_number: target}
        return EventPlan(
            _order_status(fulfilment, after), tracking_number, target, new_shipment=True
        )
    if fulfilment is Fulfilment.PICKUP:
        raise InvalidTransition("order", status, OrderStatus(event.value))
    key = _pick_shipment(shipments, tracking_number, status, event)
    current = shipments[key]
    if current is target:
        return EventPlan(status, key, target, duplicate=True)
    shipment_transition(current, target)
    return EventPlan(_order_status(fulfilment, {**shipments, key: target}), key, target)


def _order_status(fulfilment: Fulfilment, shipments: dict[str, ShipmentStatus]) -> OrderStatus:
    if fulfilment is Fulfilment.PICKUP:
        return S.SHIPPED
    return aggregate_shipments(shipments.values())


def _pick_shipment(
    shipments: dict[str, ShipmentStatus],
    tracking_number: str | None,
    status: OrderStatus,
    event: EventType,
) -> str:
    if tracking_number:
        if tracking_number not in shipments:
            raise DomainError(f"this order has no shipment with tracking number {tracking_number}")
        return tracking_number
    if not shipments:
        raise InvalidTransition("order", status, OrderStatus(event.value))
    if len(shipments) > 1:
        raise DomainError(
            f"this order has {len(shipments)} shipments: say which one in shipment.tracking_number"
        )
    return next(iter(shipments))
