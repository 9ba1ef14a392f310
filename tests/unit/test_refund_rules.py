"""Refunds: the state machine, the cap (never more back than was paid), and a simulated
order that lives through random returns, inspections, cancellations and refunds with the
domain deciding every step: the sum of refunds never exceeds what was paid, and a line's
returned quantity never exceeds its quantity."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from portal.domain import DomainError, InvalidTransition
from portal.domain import returns as return_rules
from portal.domain.refunds import (
    FINAL,
    Held,
    RefundReason,
    RefundStatus,
    can_transition,
    check_new,
    check_retry,
    committed,
    refundable,
    transition,
)
from portal.domain.returns import Pick, Reason, ReturnStatus, Verdict

F = RefundStatus
R = ReturnStatus
FINAL_R = return_rules.FINAL
T = TypeVar("T")

# ------------------------------------------------------------------ the state machine

ALLOWED = {
    (F.PENDING, F.PROCESSING),
    (F.PENDING, F.PAID),
    (F.PENDING, F.FAILED),
    (F.PROCESSING, F.PAID),
    (F.PROCESSING, F.FAILED),
    (F.FAILED, F.PROCESSING),  # tried again
}
ALL_PAIRS = list(itertools.product(RefundStatus, RefundStatus))


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS, ids=[f"{c}->{t}" for c, t in ALL_PAIRS])
def test_a_refund_moves_exactly_along_the_allowed_steps(current: F, target: F) -> None:
    if (current, target) in ALLOWED:
        assert can_transition(current, target)
        assert transition(current, target) is target
    else:
        assert not can_transition(current, target)
        with pytest.raises(InvalidTransition) as caught:
            transition(current, target)
        assert (caught.value.entity, caught.value.current, caught.value.target) == (
            "refund",
            current,
            target,
        )


def test_a_paid_refund_never_moves() -> None:
    assert {F.PAID} == FINAL
    for target in RefundStatus:
        with pytest.raises(InvalidTransition):
            transition(F.PAID, target)


def test_nothing_goes_back_to_pending() -> None:
    assert not any(can_transition(s, F.PENDING) for s in RefundStatus)


def test_the_reasons_the_shop_may_give() -> None:
    assert {r.value for r in RefundReason} == {
        "return",
        "cancellation",
        "pickup_expired",
        "goodwill",
        "other",
    }


# ------------------------------------------------------------------ the cap

PAID = 5230


def test_pending_processing_and_paid_count_against_what_was_paid_failed_does_not() -> None:
    refunds = [
        Held(1000, F.PENDING),
        Held(200, F.PROCESSING),
        Held(30, F.PAID),
        Held(4000, F.FAILED),
    ]
    assert committed(refunds) == 1230
    assert refundable(PAID, refunds) == 4000
    assert committed([]) == 0 and refundable(PAID, []) == PAID


def test_what_is_left_is_never_negative() -> None:
    assert refundable(100, [Held(150, F.PAID)]) == 0


def test_a_new_refund_may_take_exactly_what_is_left_and_not_a_cent_more() -> None:
    refunds = [Held(5000, F.PAID)]
    assert check_new(PAID, refunds, 230) == 230
    with pytest.raises(DomainError, match="only 230 "):
        check_new(PAID, refunds, 231)


@pytest.mark.parametrize("amount", [0, -1])
def test_a_refund_is_a_positive_amount(amount: int) -> None:
    with pytest.raises(DomainError, match="positive"):
        check_new(PAID, [], amount)


def test_a_failed_refund_is_retried_only_while_its_money_is_still_there() -> None:
    failed = Held(5000, F.FAILED)
    check_retry(PAID, [Held(230, F.PENDING)], failed)
    with pytest.raises(DomainError, match="more than was paid"):
        check_retry(PAID, [Held(231, F.PENDING)], failed)
    # Other failed refunds do not count; the retried one may be in the list itself.
    check_retry(PAID, [Held(5230, F.FAILED), failed], failed)


def test_only_a_failed_refund_is_checked_again_when_it_moves_on() -> None:
    check_retry(PAID, [Held(PAID, F.PAID)], Held(5000, F.PENDING))


held_st = st.lists(
    st.builds(Held, amount=st.integers(1, 3000), status=st.sampled_from(list(RefundStatus))),
    max_size=6,
)


@settings(max_examples=300, database=None)
@given(paid=st.integers(0, 10_000), refunds=held_st, amount=st.integers(-10, 10_000))
def test_a_new_refund_is_accepted_exactly_when_it_fits(
    paid: int, refunds: list[Held], amount: int
) -> None:
    fits = 0 < amount <= paid - committed(refunds)
    try:
        assert check_new(paid, refunds, amount) == amount
    except DomainError:
        assert not fits
    else:
        assert fits
        assert committed([*refunds, Held(amount, F.PENDING)]) <= max(paid, committed(refunds))


# ---------------------------------------------- an order through returns and refunds


@dataclass(frozen=True)
class OrderLine:
    id: int
    quantity: int
    price: int  # minor units, each
    returnable: bool


@dataclass
class Return:
    status: ReturnStatus
    quantities: dict[int, int]  # order line id -> sent back (one return line per order line)
    accepted: dict[int, int] | None = None  # after inspection


@dataclass
class Refund:
    amount: int
    status: RefundStatus
    return_index: int | None = None


@dataclass
class World:
    """The rows of one order, as the service keeps them."""

    lines: list[OrderLine]
    returns: list[Return] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)

    @property
    def paid(self) -> int:
        return sum(line.quantity * line.price for line in self.lines)

    def held(self, *, but: int | None = None) -> list[Held]:
        return [Held(r.amount, r.status) for i, r in enumerate(self.refunds) if i != but]

    def taken(self, line_id: int) -> int:
        """As the service's `_taken`: all of a live return, what inspection accepted, nothing
        of a rejected one."""
        total = 0
        for ret in self.returns:
            if ret.status is R.REJECTED:
                continue
            held = ret.accepted if ret.accepted is not None else ret.quantities
            total += held.get(line_id, 0)
        return total

    def domain_lines(self) -> list[return_rules.Line]:
        return [
            return_rules.Line(line.id, line.quantity, line.returnable, self.taken(line.id))
            for line in self.lines
        ]


MOVES = [R.APPROVED, R.DROPPED_OFF, R.IN_TRANSIT, R.RECEIVED, R.REJECTED]
NEXT = {
    R.REQUESTED: R.APPROVED,
    R.APPROVED: R.RECEIVED,  # at a store's counter
    R.DROPPED_OFF: R.IN_TRANSIT,
    R.IN_TRANSIT: R.RECEIVED,
}

order_lines_st = st.lists(
    st.tuples(st.integers(1, 4), st.integers(1, 5000), st.sampled_from([True, True, False])),
    min_size=1,
    max_size=4,
).map(
    lambda rows: [
        OrderLine(i + 1, q, price, returnable) for i, (q, price, returnable) in enumerate(rows)
    ]
)


def pick(items: list[T], index: int, likely: Callable[[T], bool]) -> int:
    """Mostly one of the items an operation is likely to succeed on, so that runs get far;
    the others when there is none (and the domain refuses)."""
    numbers = [i for i, item in enumerate(items) if likely(item)] or list(range(len(items)))
    return numbers[index % len(numbers)]


class OrderLife(RuleBasedStateMachine):
    """Every operation asks the domain first and writes only when all of it is allowed (the
    service's one transaction); a refused operation leaves the order exactly as it was."""

    world: World
    auto_approve: bool

    def __init__(self) -> None:
        super().__init__()
        self.done = 0
        self.refused = 0
        self.final_returns: dict[int, Return] = {}
        self.paid_refunds: dict[int, Refund] = {}

    @initialize(lines=order_lines_st, auto=st.sampled_from([True, True, False]))
    def an_order_is_delivered(self, lines: list[OrderLine], auto: bool) -> None:
        self.world = World(lines)
        self.auto_approve = auto  # PORTAL_RETURN_APPROVAL=auto (the default) or manual

    def attempt(self, operation: Callable[[], None]) -> None:
        before = copy.deepcopy(self.world)
        try:
            operation()
        except DomainError:
            assert self.world == before, "a refused operation changed the order"
            self.refused += 1
        else:
            self.done += 1

    # ---- returns

    @rule(data=st.data())
    def the_shopper_starts_a_return(self, data: st.DataObject) -> None:
        ids = [line.id for line in self.world.lines]
        anything = st.builds(
            Pick,
            line_id=st.sampled_from([*ids, 99]),
            quantity=st.integers(-1, 5),
            reason=st.sampled_from(list(Reason)),
            note=st.none() | st.just("wrong colour"),
        )
        # Mostly what the form offers (what is left of returnable lines), so that returns
        # get far; sometimes anything at all.
        offered = [
            st.builds(
                Pick,
                line_id=st.just(line.id),
                quantity=st.integers(1, max(return_rules.returnable_quantity(line), 1)),
                reason=st.sampled_from(list(Reason)),
                note=st.just("too long in the sleeves"),
            )
            for line in self.world.domain_lines()
            if return_rules.returnable_quantity(line)
        ]
        picks = data.draw(
            st.lists(st.one_of(*offered), min_size=1, max_size=3, unique_by=lambda p: p.line_id)
            if offered and data.draw(st.sampled_from([True, True, True, False]), label="offered")
            else st.lists(anything, max_size=3),
            label="picks",
        )

        def start() -> None:
            chosen = return_rules.check_picks(self.world.domain_lines(), picks)
            status = R.REQUESTED
            if self.auto_approve:
                status = return_rules.transition(status, R.APPROVED)
            self.world.returns.append(
                Return(status, {pick.line_id: pick.quantity for pick in chosen})
            )

        self.attempt(start)

    @precondition(lambda self: self.world.returns)
    @rule(index=st.integers(0, 50), to=st.sampled_from([None, None, *MOVES]))
    def the_shop_or_a_courier_moves_a_return(self, index: int, to: ReturnStatus | None) -> None:
        """To a given status, or (None) the usual next one."""
        ret = self.world.returns[pick(self.world.returns, index, lambda r: r.status in NEXT)]
        target = NEXT.get(ret.status, R.APPROVED) if to is None else to

        def move() -> None:
            ret.status = return_rules.transition(ret.status, target)

        self.attempt(move)

    @precondition(lambda self: self.world.returns)
    @rule(index=st.integers(0, 50), at_counter=st.booleans(), data=st.data())
    def a_return_is_inspected(self, index: int, at_counter: bool, data: st.DataObject) -> None:
        """A received return; or (at a store's counter) one received and inspected at once."""
        at_counter = at_counter or all(r.status is not R.RECEIVED for r in self.world.returns)
        waits = {R.APPROVED, R.DROPPED_OFF, R.IN_TRANSIT} if at_counter else {R.RECEIVED}
        number = pick(self.world.returns, index, lambda r: r.status in waits)
        ret = self.world.returns[number]
        # Mostly a verdict the inspector's form would send; sometimes a wrong one.
        sensible = data.draw(st.sampled_from([True, True, True, False]), label="sensible")
        verdicts = [
            Verdict(
                line_id,
                data.draw(
                    st.integers(0, quantity) if sensible else st.integers(-1, quantity + 1),
                    label=f"accepted of line {line_id}",
                ),
                "stained" if sensible else data.draw(st.sampled_from([None, " ", "worn"])),
            )
            for line_id, quantity in ret.quantities.items()
        ]
        if verdicts and not sensible and data.draw(st.booleans(), label="forget a line"):
            verdicts.pop()
        prices = {line.id: line.price for line in self.world.lines}

        def inspect() -> None:
            status = return_rules.transition(ret.status, R.RECEIVED) if at_counter else ret.status
            return_rules.transition(status, R.INSPECTED)  # only a received return
            checked = return_rules.check_verdicts(ret.quantities, verdicts)
            outcome = return_rules.transition(
                status, return_rules.after_inspection(checked.values())
            )
            amount = sum(v.accepted * prices[v.line_id] for v in checked.values())
            if outcome is R.INSPECTED:
                check_new(self.world.paid, self.world.held(), amount)
                self.world.refunds.append(Refund(amount, F.PENDING, number))
            ret.accepted = {line_id: v.accepted for line_id, v in checked.items()}
            ret.status = outcome

        self.attempt(inspect)

    # ---- refunds

    @rule(amount=st.integers(1, 2000) | st.integers(-100, 30_000))
    def the_shop_refunds_an_amount(self, amount: int) -> None:
        def create() -> None:
            check_new(self.world.paid, self.world.held(), amount)
            self.world.refunds.append(Refund(amount, F.PENDING))

        self.attempt(create)

    @rule(now=st.sampled_from([False, False, False, True]))
    def the_order_is_cancelled_and_what_is_left_refunded(self, now: bool) -> None:
        if not now:  # rarely: little would happen afterwards
            return

        def cancel() -> None:
            left = refundable(self.world.paid, self.world.held())
            check_new(self.world.paid, self.world.held(), left)
            self.world.refunds.append(Refund(left, F.PENDING))

        self.attempt(cancel)

    @precondition(lambda self: self.world.refunds)
    @rule(
        index=st.integers(0, 50),
        of_a_return=st.booleans(),
        to=st.sampled_from([F.PROCESSING, F.PAID, F.FAILED, F.PENDING]),
    )
    def the_payment_provider_moves_a_refund(
        self, index: int, of_a_return: bool, to: RefundStatus
    ) -> None:
        number = pick(
            self.world.refunds,
            index,
            lambda r: r.status is not F.PAID and (r.return_index is not None) is of_a_return,
        )
        refund = self.world.refunds[number]

        def move() -> None:
            status = transition(refund.status, to)
            if status is F.PROCESSING:
                check_retry(
                    self.world.paid,
                    self.world.held(but=number),
                    Held(refund.amount, refund.status),
                )
            ret = None if refund.return_index is None else self.world.returns[refund.return_index]
            if status is F.PAID and ret is not None and ret.status is R.INSPECTED:
                # The money is back: the return it pays for ends.
                ret.status = return_rules.transition(ret.status, R.REFUNDED)
            refund.status = status

        self.attempt(move)

    # ---- what always holds

    def teardown(self) -> None:
        # How far the runs got, for --hypothesis-show-statistics.
        world = getattr(self, "world", None)
        if world is None:
            return
        for status in {r.status for r in world.returns} & {R.INSPECTED, R.REFUNDED, R.REJECTED}:
            event(f"a return ended {status}")
        if any(r.status is F.PAID for r in world.refunds):
            event("a refund was paid")

    @invariant()
    def refunds_never_exceed_what_was_paid(self) -> None:
        assert committed(self.world.held()) <= self.world.paid
        assert all(r.amount > 0 for r in self.world.refunds)

    @invariant()
    def a_line_is_never_returned_more_than_its_quantity(self) -> None:
        for line in self.world.lines:
            assert 0 <= self.world.taken(line.id) <= line.quantity
            if not line.returnable:
                assert all(line.id not in ret.quantities for ret in self.world.returns)
        for ret in self.world.returns:
            assert ret.quantities and all(q >= 1 for q in ret.quantities.values())
            if ret.accepted is not None:
                assert ret.accepted.keys() == ret.quantities.keys()
                assert all(0 <= ret.accepted[k] <= q for k, q in ret.quantities.items())

    @invariant()
    def a_return_refund_is_what_was_accepted(self) -> None:
        prices = {line.id: line.price for line in self.world.lines}
        for refund in self.world.refunds:
            if refund.return_index is not None:
                ret = self.world.returns[refund.return_index]
                assert ret.accepted is not None
                assert refund.amount == sum(q * prices[k] for k, q in ret.accepted.items())
        for number, ret in enumerate(self.world.returns):
            if ret.status is R.REFUNDED:
                assert any(
                    r.return_index == number and r.status is F.PAID for r in self.world.refunds
                )

    @invariant()
    def final_returns_and_paid_refunds_never_change(self) -> None:
        for number, ret in self.final_returns.items():
            assert self.world.returns[number] == ret
        for number, refund in self.paid_refunds.items():
            assert self.world.refunds[number] == refund
        for number, ret in enumerate(self.world.returns):
            if ret.status in return_rules.FINAL:
                self.final_returns.setdefault(number, copy.deepcopy(ret))
        for number, refund in enumerate(self.world.refunds):
            if refund.status in FINAL:
                self.paid_refunds.setdefault(number, copy.deepcopy(refund))


OrderLife.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAnOrderThroughReturnsAndRefunds = OrderLife.TestCase
