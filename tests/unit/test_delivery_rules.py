"""Delivery changes: which change is open in which state, cut-offs in the delivery zone, the
days offered, instructions for the courier, and the change's own state machine."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.domain import DomainError, InvalidTransition
from portal.domain.delivery import (
    NEIGHBOUR_MAX,
    NOTE_MAX,
    OFFERED_DAYS,
    SENSITIVE,
    ChangeKind,
    ChangeStatus,
    Closed,
    Cutoffs,
    InstructionErrors,
    Instructions,
    Offer,
    SafePlace,
    check_day,
    check_instructions,
    day_cutoff,
    offered_days,
    order_offers,
    parcel_offers,
    transition,
)
from portal.domain.order import Fulfilment, OrderStatus, ShipmentStatus

FAST = settings(max_examples=200, database=None, deadline=None)
K = ChangeKind
S = OrderStatus
SS = ShipmentStatus
D, P = Fulfilment.DELIVERY, Fulfilment.PICKUP
ROME = "Europe/Rome"
DEFAULT = Cutoffs()
UNTIL_PACKED = Cutoffs(address_until=S.PACKED)
# Monday 23 November 2026, 10:30 in Rome
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
MON, TUE, WED, THU, FRI, SAT = (date(2026, 11, 23) + timedelta(days=i) for i in range(6))
ZONES = [
    "Europe/Rome",
    "Europe/Warsaw",
    "Europe/Madrid",
    "Atlantic/Canary",
    "Europe/Lisbon",
    "Europe/London",
    "America/New_York",
    "Australia/Sydney",
]
INSTANTS = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
DAYS = st.dates(min_value=date(2025, 12, 1), max_value=date(2029, 1, 31))


def _rome(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), ZoneInfo(ROME))


def _open(offers: dict[ChangeKind, Offer]) -> set[ChangeKind]:
    return {kind for kind, offer in offers.items() if offer.open}


# ------------------------------------------------------------------ before dispatch


@pytest.mark.parametrize("status", [S.PLACED, S.BACKORDERED, S.PACKED])
def test_before_dispatch_the_shopper_may_change_the_address_or_collect_in_a_store(
    status: OrderStatus,
) -> None:
    assert _open(order_offers(D, status, DEFAULT)) == {K.ADDRESS, K.SWITCH_TO_PICKUP}


def test_once_the_parcel_has_left_the_address_is_fixed() -> None:
    offers = order_offers(D, S.SHIPPED, DEFAULT)
    assert offers[K.ADDRESS] == Offer(K.ADDRESS, Closed.DISPATCHED)
    assert offers[K.SWITCH_TO_PICKUP].closed is Closed.DISPATCHED


def test_a_shop_may_close_address_changes_once_the_order_is_packed() -> None:
    assert _open(order_offers(D, S.BACKORDERED, UNTIL_PACKED)) == {K.ADDRESS, K.SWITCH_TO_PICKUP}
    offers = order_offers(D, S.PACKED, UNTIL_PACKED)
    assert {offer.closed for offer in offers.values()} == {Closed.PREPARING}


@pytest.mark.parametrize(
    ("fulfilment", "status", "reason"),
    [
        (P, S.PLACED, Closed.NOT_DELIVERY),
        (D, S.CANCELLED, Closed.CANCELLED),
        (D, S.DELIVERED, Closed.DELIVERED),
        (D, S.OUT_FOR_DELIVERY, Closed.DISPATCHED),
        (D, S.DELIVERY_FAILED, Closed.DISPATCHED),
    ],
)
def test_the_page_can_say_why_the_address_cannot_change(
    fulfilment: Fulfilment, status: OrderStatus, reason: Closed
) -> None:
    assert order_offers(fulfilment, status, DEFAULT)[K.ADDRESS].closed is reason


ORDER_CASES = list(itertools.product(Fulfilment, OrderStatus, [DEFAULT, UNTIL_PACKED]))


@pytest.mark.parametrize(
    ("fulfilment", "status", "cutoffs"),
    ORDER_CASES,
    ids=[f"{f}:{s}:until-{c.address_until}" for f, s, c in ORDER_CASES],
)
def test_whole_order_changes_are_open_exactly_for_a_delivery_not_yet_dispatched(
    fulfilment: Fulfilment, status: OrderStatus, cutoffs: Cutoffs
) -> None:
    before = [S.PLACED, S.BACKORDERED] + ([S.PACKED] if cutoffs.address_until is S.SHIPPED else [])
    expected = {K.ADDRESS, K.SWITCH_TO_PICKUP} if fulfilment is D and status in before else set()
    offers = order_offers(fulfilment, status, cutoffs)
    assert _open(offers) == expected
    assert all(offer.until is None for offer in offers.values())


# ------------------------------------------------------------------ after dispatch


def test_a_parcel_on_its_way_may_get_a_new_day_or_instructions_until_18_the_evening_before() -> (
    None
):
    offers = parcel_offers(SS.SHIPPED, WED, now=NOW, tz=ROME, cutoffs=DEFAULT)
    assert _open(offers) == {K.RESCHEDULE, K.INSTRUCTIONS}
    assert offers[K.RESCHEDULE].until == _rome(TUE, 18)
    assert offers[K.INSTRUCTIONS].until == _rome(TUE, 18)


def test_at_18_the_evening_before_new_days_and_instructions_close() -> None:
    just_before = _rome(TUE, 17, 59)
    assert _open(parcel_offers(SS.SHIPPED, WED, now=just_before, tz=ROME, cutoffs=DEFAULT)) == {
        K.RESCHEDULE,
        K.INSTRUCTIONS,
    }
    offers = parcel_offers(SS.SHIPPED, WED, now=_rome(TUE, 18), tz=ROME, cutoffs=DEFAULT)
    assert offers[K.RESCHEDULE].closed is Closed.CUTOFF
    assert offers[K.INSTRUCTIONS].closed is Closed.CUTOFF


def test_a_shop_may_ask_for_more_notice() -> None:
    day_before = Cutoffs(hours_before_day=24)
    offers = parcel_offers(SS.SHIPPED, WED, now=_rome(TUE, 0, 30), tz=ROME, cutoffs=day_before)
    assert offers[K.RESCHEDULE].closed is Closed.CUTOFF
    assert offers[K.RESCHEDULE].until == _rome(TUE, 0)


def test_a_parcel_without_a_known_day_stays_open_with_no_clock_shown() -> None:
    offers = parcel_offers(SS.SHIPPED, None, now=NOW, tz=ROME, cutoffs=DEFAULT)
    assert _open(offers) == {K.RESCHEDULE, K.INSTRUCTIONS}
    assert offers[K.RESCHEDULE].until is None


def test_a_parcel_on_its_way_cannot_be_sent_to_a_store() -> None:
    offers = parcel_offers(SS.SHIPPED, WED, now=NOW, tz=ROME, cutoffs=DEFAULT)
    assert offers[K.SWITCH_TO_PICKUP].closed is Closed.DISPATCHED


@pytest.mark.parametrize(
    ("status", "reason"),
    [(SS.OUT_FOR_DELIVERY, Closed.OUT_FOR_DELIVERY), (SS.DELIVERED, Closed.DELIVERED)],
)
def test_nothing_changes_once_the_courier_has_the_parcel_in_the_van(
    status: ShipmentStatus, reason: Closed
) -> None:
    offers = parcel_offers(status, WED, now=NOW, tz=ROME, cutoffs=DEFAULT)
    assert {offer.closed for offer in offers.values()} == {reason}


def test_after_a_failed_attempt_the_shopper_may_choose_a_new_day_or_collect_in_a_store() -> None:
    # The old delivery day has passed; that must not close the choice.
    offers = parcel_offers(SS.DELIVERY_FAILED, MON, now=_rome(MON, 20), tz=ROME, cutoffs=DEFAULT)
    assert _open(offers) == {K.RESCHEDULE, K.INSTRUCTIONS, K.SWITCH_TO_PICKUP}


def test_one_parcel_of_several_cannot_be_sent_to_a_store_after_a_failed_attempt() -> None:
    offers = parcel_offers(SS.DELIVERY_FAILED, MON, now=NOW, tz=ROME, cutoffs=DEFAULT, parcels=2)
    assert offers[K.SWITCH_TO_PICKUP].closed is Closed.SEVERAL_PARCELS
    assert offers[K.RESCHEDULE].open


def test_the_address_and_a_switch_to_a_store_need_a_code_by_sms() -> None:
    assert {K.ADDRESS, K.SWITCH_TO_PICKUP} == SENSITIVE


@FAST
@given(
    status=st.sampled_from(ShipmentStatus),
    day=st.one_of(st.none(), DAYS),
    now=INSTANTS,
    tz=st.sampled_from(ZONES),
    hours=st.integers(0, 72),
    parcels=st.integers(1, 4),
    order_status=st.sampled_from(OrderStatus),
    fulfilment=st.sampled_from(Fulfilment),
    address_until=st.sampled_from([S.PACKED, S.SHIPPED]),
)
def test_sensitive_changes_are_never_open_after_dispatch_except_a_store_after_a_failure(
    status: ShipmentStatus,
    day: date | None,
    now: datetime,
    tz: str,
    hours: int,
    parcels: int,
    order_status: OrderStatus,
    fulfilment: Fulfilment,
    address_until: OrderStatus,
) -> None:
    cutoffs = Cutoffs(address_until=address_until, hours_before_day=hours)
    parcel = parcel_offers(status, day, now=now, tz=tz, cutoffs=cutoffs, parcels=parcels)
    # A parcel that has left never gets a new address; it may go to a store only when the
    # courier failed, and only when it is the whole order.
    assert K.ADDRESS not in _open(parcel)
    store_allowed = status is SS.DELIVERY_FAILED and parcels == 1
    assert (K.SWITCH_TO_PICKUP in _open(parcel)) == store_allowed
    # Nothing at all once the van has it or it has arrived.
    if status in (SS.OUT_FOR_DELIVERY, SS.DELIVERED):
        assert _open(parcel) == set()
    # At order level, nothing sensitive from shipped on.
    if order_status not in (S.PLACED, S.BACKORDERED, S.PACKED):
        assert _open(order_offers(fulfilment, order_status, cutoffs)) & SENSITIVE == set()


@FAST
@given(day=DAYS, now=INSTANTS, tz=st.sampled_from(ZONES), hours=st.integers(0, 72))
def test_a_parcel_on_its_way_is_open_exactly_until_its_days_cutoff(
    day: date, now: datetime, tz: str, hours: int
) -> None:
    cutoffs = Cutoffs(hours_before_day=hours)
    offers = parcel_offers(SS.SHIPPED, day, now=now, tz=tz, cutoffs=cutoffs)
    cutoff = day_cutoff(day, tz, hours)
    for kind in (K.RESCHEDULE, K.INSTRUCTIONS):
        assert offers[kind].until == cutoff
        assert offers[kind].open == (now < cutoff)


# ------------------------------------------------------------------ cut-offs


@pytest.mark.parametrize(
    ("day", "cutoff"),
    [
        # Monday after the clocks went forward: 18:00 summer time on Sunday.
        (date(2026, 3, 30), datetime(2026, 3, 29, 16, 0, tzinfo=UTC)),
        # The day the clocks go forward: 18:00 winter time on Saturday.
        (date(2026, 3, 29), datetime(2026, 3, 28, 17, 0, tzinfo=UTC)),
        # The day the clocks go back: 18:00 summer time on Saturday.
        (date(2026, 10, 25), datetime(2026, 10, 24, 16, 0, tzinfo=UTC)),
        # Monday after: 18:00 winter time on Sunday.
        (date(2026, 10, 26), datetime(2026, 10, 25, 17, 0, tzinfo=UTC)),
    ],
)
def test_the_cutoff_is_18_local_time_the_evening_before_on_either_side_of_a_clock_change(
    day: date, cutoff: datetime
) -> None:
    assert day_cutoff(day, ROME, 6) == cutoff


def test_the_cutoff_is_in_the_delivery_zone() -> None:
    day = date(2026, 12, 2)
    assert day_cutoff(day, "Europe/Lisbon", 6) == datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
    assert day_cutoff(day, "Europe/Warsaw", 6) == datetime(2026, 12, 1, 17, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("hours", "local"),
    [
        (0, datetime(2026, 12, 2, 0, 0)),
        (24, datetime(2026, 12, 1, 0, 0)),
        (30, datetime(2026, 11, 30, 18, 0)),
    ],
)
def test_the_cutoff_hours_are_configurable(hours: int, local: datetime) -> None:
    assert day_cutoff(date(2026, 12, 2), ROME, hours) == local.replace(tzinfo=ZoneInfo(ROME))


@FAST
@given(day=DAYS, tz=st.sampled_from(ZONES))
def test_by_default_every_day_closes_at_18_local_time_the_evening_before(
    day: date, tz: str
) -> None:
    local = day_cutoff(day, tz, 6).astimezone(ZoneInfo(tz))
    assert (local.date(), local.time()) == (day - timedelta(days=1), time(18, 0))


@FAST
@given(day=DAYS, tz=st.sampled_from(ZONES), hours=st.integers(0, 71))
def test_asking_for_more_notice_never_closes_later_and_always_before_the_day(
    day: date, tz: str, hours: int
) -> None:
    start = datetime.combine(day, time(0), ZoneInfo(tz))
    assert day_cutoff(day, tz, hours + 1) <= day_cutoff(day, tz, hours) <= start


# ------------------------------------------------------------------ the days offered


def test_by_default_the_five_working_days_after_the_eta_are_offered() -> None:
    days = offered_days(None, WED, now=NOW, tz=ROME, cutoffs=DEFAULT)
    assert days == [THU, FRI, date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 2)]


@pytest.mark.parametrize("eta", [None, date(2026, 11, 20), MON])
def test_with_an_unknown_or_passed_eta_the_days_start_tomorrow(eta: date | None) -> None:
    days = offered_days(None, eta, now=NOW, tz=ROME, cutoffs=DEFAULT)
    assert days == [TUE, WED, THU, FRI, date(2026, 11, 30)]


def test_after_18_tomorrow_is_no_longer_offered_but_five_days_still_are() -> None:
    days = offered_days(None, None, now=_rome(MON, 19), tz=ROME, cutoffs=DEFAULT)
    assert days == [WED, THU, FRI, date(2026, 11, 30), date(2026, 12, 1)]


def test_on_friday_evening_monday_is_still_offered() -> None:
    days = offered_days(None, None, now=_rome(FRI, 19), tz=ROME, cutoffs=DEFAULT)
    assert days[0] == date(2026, 11, 30)
    assert all(d.weekday() < 5 for d in days)


def test_the_shops_own_days_are_offered_in_order_once_each_while_still_open() -> None:
    days = offered_days([SAT, TUE, TUE, MON], WED, now=NOW, tz=ROME, cutoffs=DEFAULT)
    assert days == [TUE, SAT]  # Monday's cut-off was yesterday evening


def test_a_day_that_was_not_offered_is_refused() -> None:
    offered = [TUE, WED]
    assert check_day(WED, offered) == WED
    with pytest.raises(DomainError, match="choose one of the days offered"):
        check_day(SAT, offered)


@FAST
@given(
    shop_days=st.one_of(st.none(), st.lists(DAYS, max_size=8)),
    eta=st.one_of(st.none(), DAYS),
    now=INSTANTS,
    tz=st.sampled_from(ZONES),
    hours=st.integers(0, 72),
)
def test_every_offered_day_can_still_be_chosen(
    shop_days: list[date] | None, eta: date | None, now: datetime, tz: str, hours: int
) -> None:
    days = offered_days(shop_days, eta, now=now, tz=tz, cutoffs=Cutoffs(hours_before_day=hours))
    assert all(day_cutoff(d, tz, hours) > now for d in days)
    assert days == sorted(set(days))
    if shop_days:
        assert set(days) <= set(shop_days)


@FAST
@given(
    eta=st.one_of(st.none(), DAYS),
    now=INSTANTS,
    tz=st.sampled_from(ZONES),
    hours=st.integers(0, 72),
)
def test_without_shop_days_the_next_five_open_weekdays_after_the_eta_or_today_are_offered(
    eta: date | None, now: datetime, tz: str, hours: int
) -> None:
    days = offered_days(None, eta, now=now, tz=tz, cutoffs=Cutoffs(hours_before_day=hours))
    today = now.astimezone(ZoneInfo(tz)).date()
    start = max(eta or today, today)
    assert len(days) == OFFERED_DAYS
    assert all(d.weekday() < 5 and d > start for d in days)
    # No weekday was skipped that the shopper could still have chosen.
    day = start + timedelta(days=1)
    while day < days[-1]:
        if day.weekday() < 5 and day not in days:
            assert day_cutoff(day, tz, hours) <= now
        day += timedelta(days=1)


# ------------------------------------------------------------------ instructions


def test_instructions_for_the_courier_are_tidied() -> None:
    result = check_instructions("porch", None, "  Ring twice,\n  the bell is   broken ")
    assert result == Instructions(SafePlace.PORCH, None, "Ring twice, the bell is broken")
    assert result.as_dict() == {"safe_place": "porch", "note": "Ring twice, the bell is broken"}


def test_leaving_it_with_a_neighbour_needs_the_neighbours_name() -> None:
    with pytest.raises(InstructionErrors) as caught:
        check_instructions("neighbour", "  ", None)
    assert caught.value.errors == {"neighbour": "write the neighbour's name"}
    result = check_instructions("neighbour", " Sig.ra  Rossi, int. 3 ", None)
    assert result.neighbour == "Sig.ra Rossi, int. 3"


def test_a_neighbours_name_is_not_kept_when_another_place_is_chosen() -> None:
    assert check_instructions("garage", "Rossi", None).neighbour is None


def test_a_place_that_is_not_in_the_list_is_refused() -> None:
    with pytest.raises(InstructionErrors, match="choose one of the places listed"):
        check_instructions("roof", None, None)


def test_a_note_may_be_200_characters_but_not_201() -> None:
    assert check_instructions(None, None, "x" * NOTE_MAX).note == "x" * NOTE_MAX
    with pytest.raises(InstructionErrors) as caught:
        check_instructions(None, None, "x" * (NOTE_MAX + 1))
    assert caught.value.errors == {"note": "at most 200 characters (201 written)"}


def test_a_neighbours_name_may_be_at_most_80_characters() -> None:
    with pytest.raises(InstructionErrors, match="neighbour: at most 80 characters"):
        check_instructions("neighbour", "n" * (NEIGHBOUR_MAX + 1), None)


def test_all_empty_clears_the_instructions() -> None:
    result = check_instructions("", "", "  ")
    assert result.empty
    assert result.as_dict() == {}


@FAST
@given(
    place=st.one_of(st.none(), st.sampled_from([*SafePlace, "", "roof"])),
    neighbour=st.one_of(st.none(), st.text(max_size=100)),
    note=st.one_of(st.none(), st.text(max_size=260)),
)
def test_any_instructions_are_kept_within_limits_or_refused_field_by_field(
    place: str | None, neighbour: str | None, note: str | None
) -> None:
    try:
        result = check_instructions(place, neighbour, note)
    except InstructionErrors as caught:
        assert caught.errors
        assert set(caught.errors) <= {"safe_place", "neighbour", "note"}
        return
    assert result.note is None or 0 < len(result.note) <= NOTE_MAX
    assert result.note is None or result.note == " ".join(result.note.split())
    assert (result.neighbour is not None) == (result.safe_place is SafePlace.NEIGHBOUR)
    assert result.neighbour is None or 0 < len(result.neighbour) <= NEIGHBOUR_MAX


# ------------------------------------------------------------------ the change's state machine

CHANGE_PAIRS = list(itertools.product(ChangeStatus, ChangeStatus))


@pytest.mark.parametrize(
    ("current", "target"), CHANGE_PAIRS, ids=[f"{c}->{t}" for c, t in CHANGE_PAIRS]
)
def test_a_change_only_goes_from_requested_to_accepted_or_rejected(
    current: ChangeStatus, target: ChangeStatus
) -> None:
    allowed = current is ChangeStatus.REQUESTED and target is not ChangeStatus.REQUESTED
    if allowed:
        assert transition(current, target) is target
    else:
        with pytest.raises(InvalidTransition) as caught:
            transition(current, target)
        assert str(caught.value) == f"delivery change cannot go from {current} to {target}"


def test_a_shop_cannot_change_its_mind_about_an_answered_change() -> None:
    accepted = transition(ChangeStatus.REQUESTED, ChangeStatus.ACCEPTED)
    with pytest.raises(InvalidTransition):
        transition(accepted, ChangeStatus.REJECTED)
