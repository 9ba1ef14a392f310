"""The order aggregate: the transition table, shop events through plan_event, the stepper."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from portal.domain import DomainError, InvalidTransition
from portal.domain.order import (
    FINAL,
    SHIPMENT_EVENTS,
    SHOP_EVENTS,
    STEPS,
    TRANSITIONS,
    EventPlan,
    EventType,
    Fulfilment,
    OrderStatus,
    ShipmentStatus,
    aggregate_shipments,
    can_transition,
    is_final,
    plan_event,
    progress,
    sms_for,
    transition,
)

D, P = Fulfilment.DELIVERY, Fulfilment.PICKUP
S = OrderStatus
SS = ShipmentStatus
E = EventType

# ------------------------------------------------------------------ the transition table

ALL_PAIRS = list(itertools.product(Fulfilment, OrderStatus, OrderStatus))


def _allowed(fulfilment: Fulfilment, current: OrderStatus, target: OrderStatus) -> bool:
    return current in TRANSITIONS[fulfilment].get(target, frozenset())


@pytest.mark.parametrize(
    ("fulfilment", "current", "target"),
    ALL_PAIRS,
    ids=[f"{f}:{c}->{t}" for f, c, t in ALL_PAIRS],
)
def test_a_transition_succeeds_exactly_when_the_table_lists_it(
    fulfilment: Fulfilment, current: OrderStatus, target: OrderStatus
) -> None:
    if _allowed(fulfilment, current, target):
        assert can_transition(fulfilment, current, target)
        assert transition(fulfilment, current, target) is target
    else:
        assert not can_transition(fulfilment, current, target)
        with pytest.raises(InvalidTransition) as caught:
            transition(fulfilment, current, target)
        assert (caught.value.entity, caught.value.current, caught.value.target) == (
            "order",
            current,
            target,
        )
        assert str(caught.value) == f"order cannot go from {current} to {target}"


@pytest.mark.parametrize("fulfilment", list(Fulfilment))
@pytest.mark.parametrize("final", sorted(FINAL))
def test_a_final_order_accepts_no_transition_at_all(
    fulfilment: Fulfilment, final: OrderStatus
) -> None:
    assert is_final(final)
    for target in OrderStatus:
        assert not can_transition(fulfilment, final, target)
        with pytest.raises(InvalidTransition):
            transition(fulfilment, final, target)


def test_only_delivered_collected_and_cancelled_are_final() -> None:
    assert {s for s in OrderStatus if is_final(s)} == {S.DELIVERED, S.COLLECTED, S.CANCELLED}


def test_the_table_refuses_the_moves_a_shopper_would_find_absurd() -> None:
    assert not can_transition(D, S.SHIPPED, S.CANCELLED)  # too late to cancel a parcel
    assert not can_transition(D, S.PLACED, S.DELIVERED)  # nothing delivers unshipped
    assert not can_transition(P, S.SHIPPED, S.OUT_FOR_DELIVERY)  # a pickup has no courier
    assert not can_transition(P, S.PACKED, S.DELIVERED)
    assert not can_transition(D, S.PACKED, S.ARRIVED_IN_STORE)
    assert can_transition(P, S.SHIPPED, S.ARRIVED_IN_STORE)
    assert can_transition(D, S.DELIVERY_FAILED, S.OUT_FOR_DELIVERY)  # a second attempt


# ------------------------------------------------------------------ shop events, one by one


def _apply(shipments: dict[str, ShipmentStatus], plan: EventPlan) -> dict[str, ShipmentStatus]:
    if plan.shipment_key is None or plan.shipment_status is None:
        return dict(shipments)
    return {**shipments, plan.shipment_key: plan.shipment_status}


def test_a_split_delivery_stays_shipped_until_the_last_parcel_arrives() -> None:
    status, parcels = S.PACKED, {}
    first = plan_event(D, status, E.SHIPPED, parcels, "PARCEL-1")
    assert first.new_shipment and first.order_status is S.SHIPPED
    status, parcels = first.order_status, _apply(parcels, first)

    second = plan_event(D, status, E.SHIPPED, parcels, "PARCEL-2")
    assert second.new_shipment and second.order_status is S.SHIPPED
    status, parcels = second.order_status, _apply(parcels, second)

    one_arrived = plan_event(D, status, E.DELIVERED, parcels, "PARCEL-1")
    assert one_arrived.order_status is S.SHIPPED
    assert one_arrived.shipment_status is SS.DELIVERED
    status, parcels = one_arrived.order_status, _apply(parcels, one_arrived)

    both_arrived = plan_event(D, status, E.DELIVERED, parcels, "PARCEL-2")
    assert both_arrived.order_status is S.DELIVERED
    assert not both_arrived.duplicate


def test_a_repeated_shipped_event_with_the_same_tracking_number_is_a_harmless_duplicate() -> None:
    plan = plan_event(D, S.SHIPPED, E.SHIPPED, {"JJD01": SS.SHIPPED}, "JJD01")
    assert plan.duplicate
    assert plan.order_status is S.SHIPPED
    assert not plan.new_shipment


def test_a_repeated_delivered_event_for_a_delivered_order_is_a_harmless_duplicate() -> None:
    plan = plan_event(D, S.DELIVERED, E.DELIVERED, {"JJD01": SS.DELIVERED}, None)
    assert plan.duplicate and plan.order_status is S.DELIVERED


def test_a_repeated_cancellation_is_a_harmless_duplicate() -> None:
    plan = plan_event(D, S.CANCELLED, E.CANCELLED, {})
    assert plan.duplicate and plan.order_status is S.CANCELLED


def test_shipped_again_for_a_parcel_already_out_for_delivery_is_refused() -> None:
    with pytest.raises(InvalidTransition):
        plan_event(D, S.OUT_FOR_DELIVERY, E.SHIPPED, {"JJD01": SS.OUT_FOR_DELIVERY}, "JJD01")


def test_a_shipped_event_without_a_tracking_number_is_refused_for_a_delivery() -> None:
    with pytest.raises(DomainError, match="tracking_number is required"):
        plan_event(D, S.PACKED, E.SHIPPED, {}, None)


def test_a_parcel_event_for_an_unknown_tracking_number_is_refused() -> None:
    with pytest.raises(DomainError, match="no shipment with tracking number NOPE"):
        plan_event(D, S.SHIPPED, E.DELIVERED, {"JJD01": SS.SHIPPED}, "NOPE")


def test_a_parcel_event_that_does_not_say_which_of_two_parcels_is_refused() -> None:
    with pytest.raises(DomainError, match="2 shipments"):
        plan_event(D, S.SHIPPED, E.DELIVERED, {"A": SS.SHIPPED, "B": SS.SHIPPED}, None)


def test_a_parcel_event_without_a_tracking_number_finds_the_only_parcel() -> None:
    plan = plan_event(D, S.SHIPPED, E.OUT_FOR_DELIVERY, {"JJD01": SS.SHIPPED}, None)
    assert plan.shipment_key == "JJD01"
    assert plan.order_status is S.OUT_FOR_DELIVERY


def test_delivered_before_anything_shipped_is_an_invalid_transition() -> None:
    with pytest.raises(InvalidTransition):
        plan_event(D, S.PACKED, E.DELIVERED, {}, None)


def test_the_placed_event_cannot_be_posted_by_the_shop() -> None:
    assert E.PLACED not in SHOP_EVENTS
    with pytest.raises(DomainError, match="recorded when the order is created"):
        plan_event(D, S.PLACED, E.PLACED, {})


def test_a_pickup_order_has_no_courier_events() -> None:
    for event in (E.OUT_FOR_DELIVERY, E.DELIVERY_FAILED, E.DELIVERED):
        with pytest.raises(InvalidTransition):
            plan_event(P, S.SHIPPED, event, {})


def test_a_pickup_order_may_travel_to_the_store_and_arrive_there() -> None:
    shipped = plan_event(P, S.PACKED, E.SHIPPED, {}, "TRANSFER-1")
    assert shipped.order_status is S.SHIPPED
    arrived = plan_event(P, shipped.order_status, E.ARRIVED_IN_STORE, {})
    assert arrived.order_status is S.ARRIVED_IN_STORE


def test_a_delivered_order_does_not_take_a_further_parcel() -> None:
    with pytest.raises(InvalidTransition):
        plan_event(D, S.DELIVERED, E.SHIPPED, {"PARCEL-1": SS.DELIVERED}, "PARCEL-2")


def test_a_repeated_shipped_event_for_a_pickup_order_is_a_harmless_duplicate() -> None:
    first = plan_event(P, S.PACKED, E.SHIPPED, {}, "TRANSFER-1")
    parcels = _apply({}, first)
    again = plan_event(P, first.order_status, E.SHIPPED, parcels, "TRANSFER-1")
    assert again.duplicate and again.order_status is S.SHIPPED


def test_split_delivery_status_is_delivered_only_when_every_parcel_is() -> None:
    assert aggregate_shipments([SS.DELIVERED, SS.DELIVERED]) is S.DELIVERED
    assert aggregate_shipments([SS.DELIVERED, SS.SHIPPED]) is S.SHIPPED
    assert aggregate_shipments([SS.DELIVERED, SS.OUT_FOR_DELIVERY]) is S.OUT_FOR_DELIVERY
    assert aggregate_shipments([SS.DELIVERY_FAILED, SS.OUT_FOR_DELIVERY]) is S.OUT_FOR_DELIVERY
    assert aggregate_shipments([SS.DELIVERY_FAILED, SS.DELIVERED]) is S.DELIVERY_FAILED
    with pytest.raises(DomainError):
        aggregate_shipments([])


# ------------------------------------------------------------------ shop events, at random

# Parcel events weigh double: the telling sequences ship, deliver and ship again.
EVENTS = st.sampled_from(sorted(SHIPMENT_EVENTS) * 2 + sorted(SHOP_EVENTS) + [E.PLACED])
Parcels = dict[str, ShipmentStatus]
Step_ = tuple[OrderStatus, EventPlan | None, OrderStatus, Parcels]


def _play(fulfilment: Fulfilment, data: st.DataObject) -> Iterator[Step_]:
    """Feed random shop events as the service does: yield (before, plan or None, after, parcels).

    A refusal (DomainError, InvalidTransition included) changes nothing, as in the service.
    Tracking numbers are none, a known parcel's, or a new one.
    """
    status: OrderStatus = S.PLACED
    parcels: Parcels = {}
    for _ in range(data.draw(st.integers(0, 30), label="events")):
        event = data.draw(EVENTS)
        tracking = data.draw(st.sampled_from([None, *sorted(parcels), f"P{len(parcels) + 1}"]))
        try:
            plan = plan_event(fulfilment, status, event, dict(parcels), tracking)
        except DomainError:
            yield status, None, status, parcels
            continue
        if plan.duplicate:
            yield status, plan, status, parcels
            continue
        before, status, parcels = status, plan.order_status, _apply(parcels, plan)
        yield before, plan, status, parcels


@settings(max_examples=200, database=None, deadline=None)
@given(fulfilment=st.sampled_from(list(Fulfilment)), data=st.data())
def test_random_shop_events_keep_an_order_consistent(
    fulfilment: Fulfilment, data: st.DataObject
) -> None:
    for before, plan, after, parcels in _play(fulfilment, data):
        assert isinstance(after, OrderStatus) and after in set(OrderStatus)
        if before is S.CANCELLED:
            assert after is S.CANCELLED
        if plan is not None and plan.duplicate:
            assert plan.order_status is before
        if after is S.DELIVERED:
            assert parcels, "delivered without a parcel"
            assert all(s is SS.DELIVERED for s in parcels.values())
        if fulfilment is D and parcels:
            # With parcels, a delivery order's status is theirs.
            assert after is aggregate_shipments(parcels.values())
        if fulfilment is P:
            assert after not in {S.OUT_FOR_DELIVERY, S.DELIVERY_FAILED, S.DELIVERED}
        if plan is not None and not plan.duplicate and plan.shipment_key is None:
            # Order-level events follow the table.
            assert can_transition(fulfilment, before, after)


@settings(
    max_examples=200,
    database=None,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
)
@given(fulfilment=st.sampled_from(list(Fulfilment)), data=st.data())
def test_random_shop_events_never_leave_a_delivered_or_cancelled_order(
    fulfilment: Fulfilment, data: st.DataObject
) -> None:
    for before, _plan, after, _parcels in _play(fulfilment, data):
        if is_final(before):
            assert after is before


# ------------------------------------------------------------------ the stepper


def _reachable(fulfilment: Fulfilment) -> list[OrderStatus]:
    table = TRANSITIONS[fulfilment]
    seen = {S.PLACED} | set(table) | {s for sources in table.values() for s in sources}
    return [s for s in OrderStatus if s in seen]


REACHABLE = [(f, s) for f in Fulfilment for s in _reachable(f)]


@pytest.mark.parametrize(
    ("fulfilment", "status"), REACHABLE, ids=[f"{f}:{s}" for f, s in REACHABLE]
)
def test_the_stepper_shows_one_current_step_with_done_before_and_todo_after(
    fulfilment: Fulfilment, status: OrderStatus
) -> None:
    steps = progress(fulfilment, status)
    assert [s.status for s in steps] == list(STEPS[fulfilment])
    states = [s.state for s in steps]
    if status is S.CANCELLED:
        assert set(states) == {"todo"}
        return
    if status is STEPS[fulfilment][-1]:
        assert set(states) == {"done"}  # delivered, or arrived in the store
        return
    live = [i for i, state in enumerate(states) if state in {"current", "problem"}]
    assert len(live) == 1
    (i,) = live
    assert set(states[:i]) <= {"done"}
    assert set(states[i + 1 :]) <= {"todo"}
    assert (states[i] == "problem") == (status in {S.BACKORDERED, S.DELIVERY_FAILED})


def test_a_delivered_order_shows_every_step_done() -> None:
    assert {s.state for s in progress(D, S.DELIVERED)} == {"done"}


def test_a_failed_delivery_shows_a_problem_on_the_out_for_delivery_step() -> None:
    steps = {s.status: s.state for s in progress(D, S.DELIVERY_FAILED)}
    assert steps[S.OUT_FOR_DELIVERY] == "problem"
    assert steps[S.SHIPPED] == "done"
    assert steps[S.DELIVERED] == "todo"


FORWARD = [
    (f, src, tgt)
    for f, table in TRANSITIONS.items()
    for tgt, sources in table.items()
    for src in sorted(sources)
    if tgt is not S.CANCELLED
]


@pytest.mark.parametrize(
    ("fulfilment", "current", "target"),
    [(f, c, t) for f, c, t in FORWARD],
    ids=[f"{f}:{c}->{t}" for f, c, t in FORWARD],
)
def test_the_stepper_never_goes_back_on_an_allowed_transition(
    fulfilment: Fulfilment, current: OrderStatus, target: OrderStatus
) -> None:
    def done(status: OrderStatus) -> int:
        return sum(step.state == "done" for step in progress(fulfilment, status))

    assert done(target) >= done(current)


# ------------------------------------------------------------------ which SMS an event sends


def test_a_transfer_to_the_store_sends_no_sms_but_a_delivery_shipment_does() -> None:
    assert sms_for(E.SHIPPED, P) is None
    assert sms_for(E.SHIPPED, D) == "shipped"
