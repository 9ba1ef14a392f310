"""Starting a refund, whatever causes it (an inspected return, the shop's API, a pickup not
collected): one place checks that refunds never exceed what was paid and tells the shop.

Called inside the caller's transaction, after it has locked the order's row.
"""

from __future__ import annotations

from typing import Any

from portal.db.tables import Order, Refund
from portal.domain import DomainError
from portal.domain import refunds as rules
from portal.domain.money import format_decimal_string
from portal.domain.refunds import RefundStatus
from portal.runtime import Runtime
from portal.services import shop_events
from portal.services.errors import Conflict, Invalid


async def held(order_id: int) -> list[rules.Held]:
    """The order's refunds as far as the cap is concerned."""
    rows = await Refund.select(Refund.amount_minor, Refund.status).where(Refund.order == order_id)
    return [rules.Held(r["amount_minor"], RefundStatus(r["status"])) for r in rows]


def refund_json(
    order: dict[str, Any],
    refund_id: int,
    amount: int,
    reason: str,
    status: RefundStatus,
    return_id: int | None,
) -> dict[str, Any]:
    """A refund as the shop's API and webhook show it."""
    return {
        "id": refund_id,
        "order": order["external_id"],
        "amount": format_decimal_string(amount, order["currency"]),
        "currency": order["currency"],
        "reason": reason,
        "status": str(status),
        "return_id": return_id,
    }


async def start_refund(
    rt: Runtime,
    order: dict[str, Any],
    amount: int,
    reason: str,
    return_id: int | None = None,
    *,
    at_most_left: bool = False,
) -> int | None:
    """A pending refund of `amount` (minor units) on `order` (id, external_id, currency,
    total_minor). Over what is left to refund: refused (409), or with `at_most_left` cut to
    what is left, and none at all when nothing is (the portal's own refunds: an expired
    pickup, an inspected return, after the shop refunded part by hand)."""
    paid = order["total_minor"]
    existing = await held(order["id"])
    if at_most_left:
        amount = min(amount, rules.refundable(paid, existing))
        if amount <= 0:
            return None
    if amount <= 0:
        raise Invalid("a refund is a positive amount", field="amount")
    try:
        rules.check_new(paid, existing, amount)
    except DomainError as exc:
        left = format_decimal_string(rules.refundable(paid, existing), order["currency"])
        raise Conflict(
            f"only {left} {order['currency']} is left to refund on this order", field="amount"
        ) from exc
    now = rt.clock.now()
    inserted = await Refund.insert(
        Refund(
            order=order["id"],
            amount_minor=amount,
            currency=order["currency"],
            reason=reason,
            status=RefundStatus.PENDING,
            return_request=return_id,
            created_at=now,
            updated_at=now,
        )
    ).returning(Refund.id)
    refund_id = int(inserted[0]["id"])
    await shop_events.record(
        rt,
        "refund.created",
        order_id=order["id"],
        data={
            "refund": refund_json(order, refund_id, amount, reason, RefundStatus.PENDING, return_id)
        },
    )
    await Order.update({Order.version: Order.version + 1, Order.updated_at: now}).where(
        Order.id == order["id"]
    )
    return refund_id
