"""Returns and refunds through the services on both databases, in random order: whatever the
shop, the shopper and the payment provider do, the refunds of an order never exceed what was
paid, a line is never returned more than its quantity, and a refused action leaves the order
as it was (rows and shop events alike).

Each example is a new delivered order (its own external_id), so examples share the database
but not their state.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from portal.db.tables import OrderLine, Refund, ReturnLine, ReturnRequest, ShopEvent
from portal.domain.money import format_decimal_string
from portal.domain.refunds import RefundStatus
from portal.domain.returns import Reason, ReturnStatus
from portal.runtime import Runtime
from portal.services import returns
from portal.services.errors import Conflict, Invalid
from portal.services.inputs import (
    AddressIn,
    CustomerIn,
    DeliveryIn,
    EventIn,
    LineIn,
    OrderIn,
    ShipmentIn,
)
from portal.services.orders import create_order, record_event
from portal.settings import Settings

_seq = itertools.count(1)
R = ReturnStatus

# "advance" takes a return to its usual next step; the others may be anything at all.
ACTIONS = [
    "start",
    "advance",
    "advance",
    "advance",
    "approve",
    "in_transit",
    "receive",
    "reject",
    "inspect",
    "refund",
    "move_refund",
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Shop events are recorded (never sent: no scheduler runs), so they are checked too."""
    return settings.with_(
        shop_webhook_url="https://shop.example/portal-events",
        shop_webhook_secret="shop-webhook-secret-0123456789abcdef",
    )


async def delivered_order(rt: Runtime, lines: list[tuple[int, int]]) -> tuple[int, str]:
    external_id = f"PROP-{next(_seq)}"
    receipt, _ = await create_order(
        rt,
        OrderIn(
            external_id=external_id,
            customer=CustomerIn(name="Giulia Bianchi", phone="+39 347 123 4567", locale="en"),
            fulfilment=DeliveryIn(
                address=AddressIn(line1="Via Roma 1", city="Milano", postcode="20121", country="IT")
            ),
            lines=[
                LineIn(
                    sku=f"SKU-{i}",
                    name=f"Item {i}",
                    quantity=quantity,
                    unit_price=format_decimal_string(price, "EUR"),
                    returnable=i != 3,  # the fourth line, when there is one, is a final sale
                )
                for i, (quantity, price) in enumerate(lines)
            ],
            currency="EUR",
        ),
    )
    await record_event(
        rt, external_id, EventIn(type="shipped", shipment=ShipmentIn(tracking_number="T1"))
    )
    await record_event(rt, external_id, EventIn(type="delivered"))
    return receipt.id, external_id


async def snapshot(order_id: int) -> dict[str, Any]:
    """Everything an action may write for this order."""
    return {
        "returns": await ReturnRequest.select(
            ReturnRequest.id, ReturnRequest.status, ReturnRequest.rejection_reason
        )
        .where(ReturnRequest.order == order_id)
        .order_by(ReturnRequest.id),
        "lines": await ReturnLine.select(
            ReturnLine.id, ReturnLine.quantity, ReturnLine.accepted_quantity
        )
        .where(ReturnLine.return_request.order == order_id)
        .order_by(ReturnLine.id),
        "refunds": await Refund.select(Refund.id, Refund.amount_minor, Refund.status)
        .where(Refund.order == order_id)
        .order_by(Refund.id),
        "events": await ShopEvent.count().where(ShopEvent.order == order_id),
    }


async def check_invariants(order_id: int, paid: int) -> None:
    refunds = await Refund.select(
        Refund.id, Refund.amount_minor, Refund.status, Refund.return_request
    ).where(Refund.order == order_id)
    assert sum(r["amount_minor"] for r in refunds if r["status"] != RefundStatus.FAILED) <= paid
    assert all(r["amount_minor"] > 0 for r in refunds)

    quantities = {
        r["id"]: r["quantity"]
        for r in await OrderLine.select(OrderLine.id, OrderLine.quantity).where(
            OrderLine.order == order_id
        )
    }
    taken = dict.fromkeys(quantities, 0)
    for row in await ReturnLine.select(
        ReturnLine.order_line,
        ReturnLine.quantity,
        ReturnLine.accepted_quantity,
        ReturnLine.return_request.status.as_alias("status"),
    ).where(ReturnLine.return_request.order == order_id):
        accepted = row["accepted_quantity"]
        assert accepted is None or 0 <= accepted <= row["quantity"]
        if row["status"] != ReturnStatus.REJECTED:
            taken[row["order_line"]] += row["quantity"] if accepted is None else accepted
    assert all(taken[line] <= quantity for line, quantity in quantities.items()), taken

    statuses = {
        r["id"]: r["status"]
        for r in await ReturnRequest.select(ReturnRequest.id, ReturnRequest.status).where(
            ReturnRequest.order == order_id
        )
    }
    for return_id, status in statuses.items():
        if status == ReturnStatus.REFUNDED:
            assert any(
                r["return_request"] == return_id and r["status"] == RefundStatus.PAID
                for r in refunds
            )
    # The shop heard of every return and refund, and of the status each is in now.
    heard = set()
    for row in await ShopEvent.select(ShopEvent.type, ShopEvent.payload).where(
        ShopEvent.order == order_id
    ):
        payload = json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"]
        assert payload["type"] == row["type"]
        thing = payload["data"].get("return") or payload["data"]["refund"]
        assert row["type"].split(".")[0] in ("return", "refund")
        heard.add((row["type"], thing["id"], thing["status"]))
    types = [t for t, _, _ in heard]
    assert types.count("return.requested") == len(statuses)
    assert types.count("refund.created") == len(refunds)
    for return_id, status in statuses.items():
        assert (f"return.{status}", return_id, status) in heard, (return_id, status)
    for refund in refunds:
        now = "created" if refund["status"] == RefundStatus.PENDING else refund["status"]
        assert (f"refund.{now}", refund["id"], refund["status"]) in heard, refund


async def left_to_return(order_id: int) -> dict[int, int]:
    """Per returnable order line: what returns have not taken yet."""
    held: dict[int, int] = {}
    for row in await ReturnLine.select(
        ReturnLine.order_line,
        ReturnLine.quantity,
        ReturnLine.accepted_quantity,
        ReturnLine.return_request.status.as_alias("status"),
    ).where(ReturnLine.return_request.order == order_id):
        if row["status"] != ReturnStatus.REJECTED:
            kept = row["accepted_quantity"]
            held[row["order_line"]] = held.get(row["order_line"], 0) + (
                row["quantity"] if kept is None else kept
            )
    return {
        line["id"]: line["quantity"] - held.get(line["id"], 0)
        for line in await OrderLine.select(
            OrderLine.id, OrderLine.quantity, OrderLine.returnable
        ).where(OrderLine.order == order_id)
        if line["returnable"]
    }


async def start(rt: Runtime, order_id: int, data: st.DataObject) -> None:
    lines = await OrderLine.select(OrderLine.id, OrderLine.quantity).where(
        OrderLine.order == order_id
    )
    left = await left_to_return(order_id)
    if data.draw(st.sampled_from([True, True, False]), label="as the form offers"):
        picks = [
            returns.PickIn(line_id, str(data.draw(st.integers(0, n), label="quantity")), "too_big")
            for line_id, n in left.items()
            if n > 0
        ]
    else:
        picks = [
            returns.PickIn(
                line["id"],
                str(data.draw(st.integers(0, line["quantity"] + 1), label="quantity")),
                data.draw(st.sampled_from([r.value for r in Reason]), label="reason"),
                data.draw(st.sampled_from(["", "colour"]), label="note"),
            )
            for line in lines
        ]
    await returns.start_return(rt, order_id, picks, "courier")


async def inspect(rt: Runtime, return_id: int, data: st.DataObject) -> None:
    sent = await ReturnLine.select(ReturnLine.id, ReturnLine.quantity).where(
        ReturnLine.return_request == return_id
    )
    verdicts = [
        returns.VerdictIn(
            line["id"], data.draw(st.integers(0, line["quantity"]), label="accepted"), "stained"
        )
        for line in sent
    ]
    await returns.inspect(rt, return_id, verdicts)


async def advance(rt: Runtime, state: dict[str, Any], data: st.DataObject) -> str:
    """A live return to its usual next step (an inspected one: its refund paid)."""
    live = [r for r in state["returns"] if r["status"] not in (R.REJECTED, R.REFUNDED)]
    if not live:
        return "nothing to advance"
    ret = data.draw(st.sampled_from(live), label="return")
    status = ReturnStatus(ret["status"])
    if status is R.REQUESTED:
        await returns.approve(rt, ret["id"])
    elif status in (R.APPROVED, R.DROPPED_OFF, R.IN_TRANSIT):
        await returns.receive(rt, ret["id"])  # an approved one: at a store's counter
    elif status is R.RECEIVED:
        await inspect(rt, ret["id"], data)
    else:
        refund = await Refund.select(Refund.id).where(Refund.return_request == ret["id"]).first()
        assert refund is not None, "an inspected return has its refund"
        await returns.update_refund(rt, refund["id"], RefundStatus.PAID)
    return f"advance from {status}"


async def act(rt: Runtime, order_id: int, external_id: str, data: st.DataObject) -> str:
    """One random action, as the shop, the shopper or the payment provider would call it."""
    action = data.draw(st.sampled_from(ACTIONS), label="action")
    state = await snapshot(order_id)
    return_ids = [r["id"] for r in state["returns"]]
    refund_ids = [r["id"] for r in state["refunds"]]
    if action == "start":
        await start(rt, order_id, data)
    elif action == "advance":
        return await advance(rt, state, data)
    elif action == "refund":
        minor = data.draw(st.integers(1, 1500) | st.integers(1, 20_000), label="amount")
        reason = data.draw(st.sampled_from(["goodwill", "cancellation"]), label="why")
        await returns.create_refund(
            rt, external_id, format_decimal_string(minor, "EUR"), reason, None
        )
    elif action == "move_refund":
        if not refund_ids:
            return "no refund to move"
        refund_id = data.draw(st.sampled_from(refund_ids), label="refund")
        status = data.draw(st.sampled_from([s.value for s in RefundStatus]), label="status")
        await returns.update_refund(rt, refund_id, status, "card expired")
    elif not return_ids:
        return "no return to move"
    else:
        return_id = data.draw(st.sampled_from(return_ids), label="return")
        if action == "approve":
            await returns.approve(rt, return_id)
        elif action == "in_transit":
            await returns.in_transit(rt, return_id)
        elif action == "receive":
            await returns.receive(rt, return_id)
        elif action == "reject":
            await returns.reject(rt, return_id, "worn")
        else:
            await inspect(rt, return_id, data)
    return action


@hypothesis_settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    lines=st.lists(st.tuples(st.integers(1, 3), st.integers(1, 3000)), min_size=1, max_size=4),
    manual=st.booleans(),
    data=st.data(),
)
async def test_random_returns_and_refunds_never_refund_more_than_was_paid(
    rt: Runtime, lines: list[tuple[int, int]], manual: bool, data: st.DataObject
) -> None:
    # The shop approves each return, or the portal does at once.
    object.__setattr__(
        rt, "settings", rt.settings.with_(return_approval="manual" if manual else "auto")
    )
    order_id, external_id = await delivered_order(rt, lines)
    paid = sum(quantity * price for quantity, price in lines)
    for _ in range(data.draw(st.integers(8, 24), label="steps")):
        before = await snapshot(order_id)
        try:
            action = await act(rt, order_id, external_id, data)
        except (Conflict, Invalid):
            assert await snapshot(order_id) == before, "a refused action changed the order"
        else:
            event(f"done: {action}")  # for --hypothesis-show-statistics
        await check_invariants(order_id, paid)
    for status in {r["status"] for r in (await snapshot(order_id))["returns"]}:
        event(f"a return ended {status}")
