"""Returns: the state machine and the stepper, the window, what may be picked, inspection
verdicts, and the code a shopper reads aloud at a counter."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.domain import DomainError, InvalidTransition
from portal.domain.returns import (
    CODE_ALPHABET,
    CODE_LENGTH,
    FINAL,
    NOTE_MAX,
    STEPS,
    WINDOW_DAYS,
    Line,
    Pick,
    Reason,
    ReturnErrors,
    ReturnStatus,
    Verdict,
    after_inspection,
    can_transition,
    check_picks,
    check_verdicts,
    display_code,
    new_code,
    normalise_code,
    returnable_quantity,
    steps,
    transition,
    window_closes,
    window_open,
)

R = ReturnStatus
# Monday 23 November 2026, 10:30 in Milan
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)

# ------------------------------------------------------------------ the state machine

# Written out by hand, not read from the module: the table is what is under test.
ALLOWED = {
    (R.REQUESTED, R.APPROVED),
    (R.REQUESTED, R.REJECTED),
    (R.APPROVED, R.DROPPED_OFF),
    (R.APPROVED, R.IN_TRANSIT),
    (R.APPROVED, R.RECEIVED),  # handed over at a store's counter
    (R.APPROVED, R.REJECTED),
    (R.DROPPED_OFF, R.IN_TRANSIT),
    (R.DROPPED_OFF, R.RECEIVED),
    (R.IN_TRANSIT, R.RECEIVED),
    (R.RECEIVED, R.INSPECTED),
    (R.RECEIVED, R.REJECTED),  # nothing accepted
    (R.INSPECTED, R.REFUNDED),
}
ALL_PAIRS = list(itertools.product(ReturnStatus, ReturnStatus))


@pytest.mark.parametrize(
    ("current", "target"), sorted(ALLOWED), ids=[f"{c}->{t}" for c, t in sorted(ALLOWED)]
)
def test_every_allowed_step_of_a_return_succeeds(current: R, target: R) -> None:
    assert can_transition(current, target)
    assert transition(current, target) is target


REFUSED = [pair for pair in ALL_PAIRS if pair not in ALLOWED]


@pytest.mark.parametrize(("current", "target"), REFUSED, ids=[f"{c}->{t}" for c, t in REFUSED])
def test_every_other_step_of_a_return_is_refused_with_invalid_transition(
    current: R, target: R
) -> None:
    assert not can_transition(current, target)
    with pytest.raises(InvalidTransition) as caught:
        transition(current, target)
    assert (caught.value.entity, caught.value.current, caught.value.target) == (
        "return",
        current,
        target,
    )
    assert isinstance(caught.value, DomainError)


def test_refunded_and_rejected_are_the_final_states() -> None:
    assert {R.REFUNDED, R.REJECTED} == FINAL


@pytest.mark.parametrize("final", sorted(FINAL))
def test_a_final_return_never_moves(final: R) -> None:
    for target in ReturnStatus:
        assert not can_transition(final, target)
        with pytest.raises(InvalidTransition):
            transition(final, target)


@settings(max_examples=300, database=None)
@given(st.lists(st.sampled_from(list(ReturnStatus)), max_size=20))
def test_any_sequence_of_requests_follows_only_allowed_steps(targets: list[R]) -> None:
    status, path = R.REQUESTED, [R.REQUESTED]
    for target in targets:
        try:
            status = transition(status, target)
        except InvalidTransition:
            continue
        path.append(status)
    assert all(pair in ALLOWED for pair in itertools.pairwise(path))
    # Once final, nothing moved it: the final state can only be the last one.
    assert not any(s in FINAL for s in path[:-1])


# ------------------------------------------------------------------ the stepper


def test_the_stepper_has_six_steps_from_requested_to_refunded() -> None:
    assert STEPS == (R.REQUESTED, R.APPROVED, R.IN_TRANSIT, R.RECEIVED, R.INSPECTED, R.REFUNDED)


@pytest.mark.parametrize(
    ("status", "current"),
    [
        (R.REQUESTED, 0),
        (R.APPROVED, 1),
        (R.DROPPED_OFF, 2),  # shown as "on its way"
        (R.IN_TRANSIT, 2),
        (R.RECEIVED, 3),
        (R.INSPECTED, 4),
    ],
)
def test_the_stepper_shows_done_steps_then_the_current_one_then_the_rest(
    status: R, current: int
) -> None:
    shown = steps(status)
    assert [s for s, _ in shown] == list(STEPS)
    assert [state for _, state in shown] == (
        ["done"] * current + ["current"] + ["todo"] * (len(STEPS) - current - 1)
    )


def test_a_refunded_return_shows_every_step_done() -> None:
    assert [state for _, state in steps(R.REFUNDED)] == ["done"] * len(STEPS)


def test_a_rejected_return_shows_no_progress() -> None:
    assert [state for _, state in steps(R.REJECTED)] == ["todo"] * len(STEPS)


@pytest.mark.parametrize("status", list(ReturnStatus))
def test_every_status_has_at_most_one_current_step(status: R) -> None:
    states = [state for _, state in steps(status)]
    assert states.count("current") <= 1
    assert states == sorted(states, key=["done", "current", "todo"].index)


# ------------------------------------------------------------------ the window


def test_nothing_received_has_no_window() -> None:
    assert window_closes(None) is None
    assert not window_open(None, NOW)


def test_the_window_closes_thirty_days_after_delivery_to_the_microsecond() -> None:
    closes = NOW + timedelta(days=30)
    assert WINDOW_DAYS == 30
    assert window_closes(NOW) == closes
    assert window_open(NOW, NOW)
    assert window_open(NOW, closes - timedelta(microseconds=1))
    assert not window_open(NOW, closes)
    assert not window_open(NOW, closes + timedelta(days=1))


def test_the_shop_may_choose_another_window() -> None:
    assert window_closes(NOW, days=14) == NOW + timedelta(days=14)
    assert window_open(NOW, NOW + timedelta(days=13, hours=23), days=14)
    assert not window_open(NOW, NOW + timedelta(days=14), days=14)
    assert not window_open(NOW, NOW, days=0)


@given(
    days=st.integers(0, 365),
    elapsed=st.timedeltas(min_value=timedelta(days=-5), max_value=timedelta(days=400)),
)
def test_the_window_is_open_exactly_while_less_than_the_days_have_passed(
    days: int, elapsed: timedelta
) -> None:
    assert window_open(NOW, NOW + elapsed, days) == (elapsed < timedelta(days=days))
    closes = window_closes(NOW, days)
    assert closes is not None and closes - NOW == timedelta(days=days)


# ------------------------------------------------------------------ the picks

LINES = [Line(1, 2), Line(2, 1), Line(3, 1, returnable=False), Line(4, 3, returned=1)]


def errors_of(picks: list[Pick], lines: list[Line] = LINES) -> dict[str, str]:
    with pytest.raises(ReturnErrors) as caught:
        check_picks(lines, picks)
    assert str(caught.value) == "; ".join(caught.value.errors.values())
    return caught.value.errors


def test_what_may_be_returned_is_received_minus_returned_and_nothing_of_a_final_sale() -> None:
    assert [returnable_quantity(line) for line in LINES] == [2, 1, 0, 2]
    assert returnable_quantity(Line(5, 1, returned=3)) == 0  # never negative


def test_lines_within_what_is_left_with_a_reason_are_chosen() -> None:
    picks = [Pick(1, 2, Reason.TOO_SMALL), Pick(4, 2, Reason.DAMAGED)]
    assert check_picks(LINES, picks) == picks


def test_lines_left_at_zero_are_skipped_not_refused() -> None:
    picks = [Pick(1, 0, Reason.TOO_SMALL), Pick(3, 0, Reason.OTHER), Pick(2, 1, Reason.TOO_BIG)]
    assert check_picks(LINES, picks) == [Pick(2, 1, Reason.TOO_BIG)]


@pytest.mark.parametrize("quantity", [3, -1])
def test_more_than_received_or_a_negative_count_is_refused(quantity: int) -> None:
    assert "1 to 2" in errors_of([Pick(1, quantity, Reason.TOO_SMALL)])["1"]


def test_what_other_returns_took_is_not_offered_again() -> None:
    assert "1 to 2" in errors_of([Pick(4, 3, Reason.TOO_SMALL)])["4"]
    assert (
        "already been returned"
        in errors_of([Pick(5, 1, Reason.TOO_SMALL)], [Line(5, 2, returned=2)])["5"]
    )


def test_a_line_that_cannot_be_returned_is_refused() -> None:
    assert "cannot be returned" in errors_of([Pick(3, 1, Reason.DAMAGED)])["3"]


def test_a_line_of_another_order_or_picked_twice_is_refused() -> None:
    assert "not part of the order" in errors_of([Pick(9, 1, Reason.DAMAGED)])["9"]
    twice = errors_of([Pick(1, 1, Reason.DAMAGED), Pick(1, 1, Reason.TOO_BIG)])
    assert "not part of the order" in twice["1"]


@pytest.mark.parametrize("note", [None, "", "   "])
def test_other_needs_a_note(note: str | None) -> None:
    assert "tell us why" in errors_of([Pick(1, 1, Reason.OTHER, note)])["1"]
    assert check_picks(LINES, [Pick(1, 1, Reason.OTHER, "wrong colour")])


def test_a_note_has_at_most_300_characters() -> None:
    assert NOTE_MAX == 300
    assert check_picks(LINES, [Pick(1, 1, Reason.OTHER, "x" * NOTE_MAX)])
    assert "at most 300" in errors_of([Pick(1, 1, Reason.TOO_BIG, "x" * (NOTE_MAX + 1))])["1"]


@pytest.mark.parametrize("picks", [[], [Pick(1, 0, Reason.TOO_SMALL)], [Pick(3, 0, Reason.OTHER)]])
def test_at_least_one_item_is_chosen(picks: list[Pick]) -> None:
    assert errors_of(picks) == {"lines": "choose at least one item to return"}


def test_every_wrong_line_is_reported_at_once() -> None:
    errors = errors_of(
        [Pick(1, 5, Reason.TOO_SMALL), Pick(2, 1, Reason.OTHER), Pick(3, 1, Reason.DAMAGED)]
    )
    assert set(errors) == {"1", "2", "3"}


lines_st = st.lists(
    st.tuples(st.integers(1, 6), st.booleans(), st.integers(0, 8)), min_size=1, max_size=5
).map(
    lambda rows: [
        Line(i + 1, quantity, returnable, min(returned, quantity))
        for i, (quantity, returnable, returned) in enumerate(rows)
    ]
)
picks_st = st.lists(
    st.builds(
        Pick,
        line_id=st.integers(0, 7),
        quantity=st.integers(-1, 9),
        reason=st.sampled_from(list(Reason)),
        note=st.none() | st.sampled_from(["", " ", "wrong colour", "x" * 301]),
    ),
    max_size=6,
)


@settings(max_examples=500, database=None)
@given(lines=lines_st, picks=picks_st)
def test_what_is_chosen_never_exceeds_received_minus_already_returned(
    lines: list[Line], picks: list[Pick]
) -> None:
    by_id = {line.id: line for line in lines}
    try:
        chosen = check_picks(lines, picks)
    except ReturnErrors as exc:
        assert exc.errors
        for key in exc.errors:
            assert key == "lines" or int(key) in {p.line_id for p in picks}
        return
    assert chosen and all(p in picks for p in chosen)
    assert len({p.line_id for p in chosen}) == len(chosen)
    for pick in chosen:
        line = by_id[pick.line_id]
        assert line.returnable
        assert 1 <= pick.quantity <= line.quantity - line.returned
        assert line.returned + pick.quantity <= line.quantity
        if pick.reason is Reason.OTHER:
            assert (pick.note or "").strip()
        assert len(pick.note or "") <= NOTE_MAX


# ------------------------------------------------------------------ inspection

RETURNED = {10: 2, 11: 1}


def test_every_line_accepted_means_inspected() -> None:
    verdicts = check_verdicts(RETURNED, [Verdict(10, 2), Verdict(11, 1)])
    assert set(verdicts) == {10, 11}
    assert after_inspection(verdicts.values()) is R.INSPECTED


def test_a_partial_accept_needs_a_reason_and_is_still_inspected() -> None:
    with pytest.raises(DomainError, match="say why"):
        check_verdicts(RETURNED, [Verdict(10, 1), Verdict(11, 1)])
    with pytest.raises(DomainError, match="say why"):
        check_verdicts(RETURNED, [Verdict(10, 1, "  "), Verdict(11, 1)])
    verdicts = check_verdicts(RETURNED, [Verdict(10, 1, "stained"), Verdict(11, 0, "worn")])
    assert after_inspection(verdicts.values()) is R.INSPECTED


def test_nothing_accepted_means_rejected() -> None:
    verdicts = check_verdicts(RETURNED, [Verdict(10, 0, "worn"), Verdict(11, 0, "worn")])
    assert after_inspection(verdicts.values()) is R.REJECTED
    assert after_inspection([]) is R.REJECTED


@pytest.mark.parametrize("accepted", [-1, 3])
def test_accepted_is_from_zero_to_what_came_back(accepted: int) -> None:
    with pytest.raises(DomainError, match="accept from 0 to 2"):
        check_verdicts(RETURNED, [Verdict(10, accepted, "why"), Verdict(11, 1)])


def test_every_returned_line_has_exactly_one_verdict() -> None:
    with pytest.raises(DomainError, match=r"missing: \[11\]"):
        check_verdicts(RETURNED, [Verdict(10, 2)])
    with pytest.raises(DomainError, match="not part of this return"):
        check_verdicts(RETURNED, [Verdict(10, 2), Verdict(10, 2), Verdict(11, 1)])
    with pytest.raises(DomainError, match="not part of this return"):
        check_verdicts(RETURNED, [Verdict(10, 2), Verdict(11, 1), Verdict(12, 1)])


@settings(max_examples=300, database=None)
@given(
    returned=st.dictionaries(st.integers(1, 6), st.integers(1, 5), min_size=1, max_size=4),
    verdicts=st.lists(
        st.builds(
            Verdict,
            line_id=st.integers(1, 7),
            accepted=st.integers(-1, 6),
            rejection_reason=st.none() | st.just("worn"),
        ),
        max_size=6,
    ),
)
def test_accepted_verdicts_cover_every_line_within_what_came_back(
    returned: dict[int, int], verdicts: list[Verdict]
) -> None:
    try:
        checked = check_verdicts(returned, verdicts)
    except DomainError:
        return
    assert set(checked) == set(returned)
    for line_id, verdict in checked.items():
        assert 0 <= verdict.accepted <= returned[line_id]
        assert verdict.accepted == returned[line_id] or verdict.rejection_reason
    outcome = after_inspection(checked.values())
    assert (outcome is R.INSPECTED) == any(v.accepted for v in checked.values())
    assert can_transition(R.RECEIVED, outcome)


# ------------------------------------------------------------------ the code


def test_codes_are_eight_characters_of_an_alphabet_that_reads_aloud() -> None:
    assert CODE_LENGTH == 8
    assert not set(CODE_ALPHABET) & set("0O1IL2Z5S6G8B")
    assert len(set(CODE_ALPHABET)) == len(CODE_ALPHABET)
    codes = {new_code() for _ in range(500)}
    assert all(len(c) == CODE_LENGTH and set(c) <= set(CODE_ALPHABET) for c in codes)
    assert len(codes) == 500
    assert set("".join(codes)) == set(CODE_ALPHABET)  # every character is used


def test_a_code_is_shown_in_two_groups_of_four() -> None:
    assert display_code("ACDE7934") == "ACDE-7934"


@pytest.mark.parametrize("typed", ["ACDE-7934", "acde 7934", " Acde–7934 ", "ac.de/79 34"])
def test_a_typed_code_may_be_lower_case_with_spaces_or_dashes(typed: str) -> None:
    assert normalise_code(typed) == "ACDE7934"


codes_st = st.text(alphabet=CODE_ALPHABET, min_size=CODE_LENGTH, max_size=CODE_LENGTH)


@given(code=codes_st, separator=st.sampled_from(["-", " ", " - ", ""]), lower=st.booleans())
def test_a_code_survives_being_shown_and_typed_back(code: str, separator: str, lower: bool) -> None:
    typed = display_code(code).replace("-", separator)
    assert normalise_code(typed.lower() if lower else typed) == code
    assert normalise_code(normalise_code(typed)) == normalise_code(typed)
